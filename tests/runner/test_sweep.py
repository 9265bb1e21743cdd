"""Sweeps: grid expansion, identical rows on every backend, failures, SIGKILL and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from galu.experiments import ConfigError
from galu.runner import plot_run
from galu.runner.sweep import expand, parse_grid, read_failures, run_sweep

ROOT = Path(__file__).resolve().parents[2]
MEMO = dict(preset="smoke", overrides=["steps=40", "hill_climb_steps=2", "repeats=2"])


@pytest.fixture
def toy_env(monkeypatch, tmp_path):
    """Make the test-only `toy` experiment visible here and in every worker process."""
    monkeypatch.setenv("GALU_EXPERIMENTS", "tests.runner.toy_experiment")
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))
    monkeypatch.setenv("GALU_TOY_FAIL_FILE", str(tmp_path / "fail-now"))
    return tmp_path


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(list(table.columns)).reset_index(drop=True)


def test_grid_replaces_list_keys_and_adds_scalar_axes():
    from galu.experiments import get_experiment

    cls = get_experiment("memorization")
    grid = parse_grid(["k=2,4", "lr=0.1,0.01,0.1", "models=galu-exact"])
    meta, points = expand(cls, "smoke", {}, grid)
    assert meta["axes"] == {"lr": [0.1, 0.01]}  # repeated values dropped
    assert meta["base"]["k"] == [2, 4] and meta["base"]["models"] == ["galu-exact"]
    # 2 lr cells × 2 widths × 1 model; the cell's lr is part of every point's parameters.
    assert len(points) == 4
    assert {(p["lr"], p["k"]) for _, _, p in points} == {(0.1, 2), (0.1, 4), (0.01, 2), (0.01, 4)}
    assert all(config["lr"] == p["lr"] for config, _, p in points)
    with pytest.raises(ConfigError, match="unknown config key 'kk'"):
        expand(cls, "smoke", {}, parse_grid(["kk=1,2"]))
    with pytest.raises(ConfigError, match="--grid names 'k' twice"):
        parse_grid(["k=1", "k=2"])
    with pytest.raises(ConfigError, match="--grid expects key=v1,v2"):
        parse_grid(["k"])


def test_inline_and_process_pool_give_identical_rows_for_a_real_experiment(tmp_path):
    grid = ["k=2,4", "lr=0.01,0.02"]
    inline = run_sweep("memorization", grid=grid, out=tmp_path / "a", progress=False, **MEMO)
    pool = run_sweep(
        "memorization",
        grid=grid,
        out=tmp_path / "b",
        backend="process",
        workers=2,
        progress=False,
        **MEMO,
    )
    assert inline.done == pool.done == inline.total == 2 * 2 * 4 * 2  # k × lr × models × seeds
    assert inline.failed == pool.failed == 0
    a = pd.read_csv(tmp_path / "a" / "results.csv")
    b = pd.read_csv(tmp_path / "b" / "results.csv")
    assert "lr" in a.columns
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b), check_exact=True)
    # One figure set per lr cell; `galu plot` redraws a sweep the same way.
    assert {f.parent.name for f in pool.figures} == {"lr=0.01", "lr=0.02"}
    figures, _ = plot_run(tmp_path / "b")
    assert sorted(figures) == sorted(pool.figures)


def test_ray_backend_gives_the_same_rows(tmp_path, toy_env):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'galu[ray]'")
    grid = ["x=1,2,3,4", "scale=1.0,2.0"]
    inline = run_sweep("toy", grid=grid, out=tmp_path / "a", progress=False)
    ray_res = run_sweep(
        "toy", grid=grid, out=tmp_path / "b", backend="ray", workers=2, progress=False
    )
    assert ray_res.workers == 2 and ray_res.done == inline.done == 4 * 2 * 2
    a = pd.read_csv(tmp_path / "a" / "results.csv")
    b = pd.read_csv(tmp_path / "b" / "results.csv")
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b), check_exact=True)


def test_a_failing_point_is_recorded_and_retried_on_request(tmp_path, toy_env):
    (toy_env / "fail-now").touch()
    over = ["fail_on=2"]
    res = run_sweep("toy", grid=["x=1,2,3"], overrides=over, out=tmp_path / "s", progress=False)
    assert res.failed == 2 and res.done == 4 and res.total == 6  # x=2 fails for both seeds
    failures = read_failures(tmp_path / "s")
    assert {f["params"]["x"] for f in failures} == {2}
    assert "ValueError: toy failure at x=2" in failures[0]["error"]
    assert "Traceback" in failures[0]["traceback"] and "run_point" in failures[0]["traceback"]
    # A plain re-run skips the failed points; --retry-failed runs them again.
    again = run_sweep("toy", grid=["x=1,2,3"], overrides=over, out=tmp_path / "s", progress=False)
    assert again.ran == 0 and again.failed == 2
    (toy_env / "fail-now").unlink()
    fixed = run_sweep(
        "toy",
        grid=["x=1,2,3"],
        overrides=over,
        out=tmp_path / "s",
        retry_failed=True,
        progress=False,
    )
    assert fixed.ran == 2 and fixed.failed == 0 and fixed.done == 6
    assert read_failures(tmp_path / "s") == []


def test_bad_arguments_name_the_argument(tmp_path, toy_env):
    with pytest.raises(ValueError, match=r"`backend` \(='slurm'\) must be one of inline"):
        run_sweep("toy", out=tmp_path / "a", backend="slurm", progress=False)
    with pytest.raises(ValueError, match=r"`workers` \(=0\) must be a positive integer"):
        run_sweep("toy", out=tmp_path / "b", backend="process", workers=0, progress=False)
    with pytest.raises(ValueError, match=r"`address` \(='auto'\) only applies to --backend ray"):
        run_sweep("toy", out=tmp_path / "c", backend="process", address="auto", progress=False)
    run_sweep("toy", grid=["x=1"], out=tmp_path / "d", progress=False)
    with pytest.raises(Exception, match="holds a run with grid"):
        run_sweep("toy", grid=["x=1", "scale=2.0,3.0"], out=tmp_path / "d", progress=False)


def _sweep_cmd(out: Path) -> list[str]:
    return [
        sys.executable, "-m", "galu", "sweep", "toy", "--out", str(out), "--grid",
        "x=" + ",".join(str(i) for i in range(30)), "--set", "sleep=0.15",
        "--backend", "process", "--workers", "2", "--no-progress",
    ]  # fmt: skip


def test_sigkill_mid_sweep_then_the_same_command_finishes_every_point_exactly_once(
    tmp_path, toy_env
):
    out = tmp_path / "sweep"
    log = tmp_path / "first.log"
    with open(log, "w") as fh:
        # Its own process group, so the kill takes the pool's workers too (as `kill -9` of a
        # job would): a killed parent alone left them orphaned for the rest of the session.
        proc = subprocess.Popen(
            _sweep_cmd(out), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 120
    points = out / "points"
    while time.monotonic() < deadline:
        if points.exists() and len(list(points.glob("*.json"))) >= 8:
            break
        if proc.poll() is not None:
            pytest.fail(f"sweep ended before it was killed: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = len(list(points.glob("*.json")))
    assert 8 <= before < 60, before  # killed mid-run
    for f in points.glob("*.json"):  # every file present is a whole point
        assert json.loads(f.read_text())["rows"]
    done = subprocess.run(_sweep_cmd(out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(f.read_text()) for f in points.glob("*.json")]
    keys = [(r["params"]["x"], r["seed"]) for r in records]
    assert sorted(keys) == sorted((x, s) for x in range(30) for s in (0, 1))  # exactly once
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 30 * 2 * 2 and not table.duplicated(["x", "seed", "metric"]).any()
    # The second call ran only what the first had not finished.
    calls = [json.loads(x) for x in (out / "sweeps.jsonl").read_text().splitlines()]
    assert calls[-1]["ran"] == 60 - before and calls[-1]["resumed"] is True
    assert not list(points.glob(".*.tmp"))  # no temporary files left behind
