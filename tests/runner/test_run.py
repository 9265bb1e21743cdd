"""Run directories: contents, resumption after Ctrl-C and after SIGKILL, reproducibility."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from galu.runner import RunDirError, plot_run, run_experiment

SMALL = ["k=2,4", "repeats=2", "steps=50", "hill_climb_steps=4"]


def _run(out, overrides=SMALL, **kw):
    return run_experiment(
        "memorization", preset="smoke", out=out, overrides=list(overrides), progress=False, **kw
    )


def _key(table):
    return table.drop(columns=["value"]).astype(str).agg("|".join, axis=1)


def test_run_directory_contents(tmp_path):
    res = _run(tmp_path / "r")
    assert not res.interrupted and res.done == res.total == 2 * 4 * 2  # k × models × seeds
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["experiment"] == "memorization" and record["preset"] == "smoke"
    assert record["config"]["k"] == [2, 4] and record["config"]["steps"] == 50
    assert {"versions", "git_sha", "device", "python"} <= set(record)
    assert record["versions"]["torch"]
    table = pd.read_csv(tmp_path / "r" / "results.csv")
    assert list(table.columns) == ["m", "d", "k", "model", "seed", "metric", "value"]
    # One row per point × seed × metric, none duplicated.
    assert not _key(table).duplicated().any()
    per_model = table.groupby("model")["metric"].agg(lambda s: sorted(set(s)))
    assert per_model["relu"] == ["train_mse"]
    assert per_model["galu-exact-hc"] == ["accepted", "train_mse", "weight_norm"]
    assert [p.name for p in res.figures] == ["memorization.png"]
    assert res.figures[0].stat().st_size > 10_000


def test_rerun_resumes_without_redoing_or_duplicating(tmp_path):
    first = _run(tmp_path / "r")
    calls = []
    second = _run(tmp_path / "r", on_point=lambda p, s: calls.append((p, s)))
    assert calls == [] and second.resumed
    pd.testing.assert_frame_equal(first.table, second.table)


def test_interrupted_run_keeps_finished_points_and_resumes_to_the_same_numbers(tmp_path):
    reference = _run(tmp_path / "fresh").table
    seen = []

    def interrupt(params, seed):
        seen.append((params, seed))
        if len(seen) == 5:
            raise KeyboardInterrupt

    part = _run(tmp_path / "r", on_point=interrupt)
    assert part.interrupted and 5 <= part.done < part.total
    assert len(list((tmp_path / "r" / "points").glob("*.json"))) == part.done
    rest = []
    full = _run(tmp_path / "r", on_point=lambda p, s: rest.append((p, s)))
    assert len(rest) == full.total - part.done
    assert not _key(full.table).duplicated().any()
    pd.testing.assert_frame_equal(full.table, reference)  # same seeds → same numbers


def test_sigkill_mid_run_then_rerun_completes_every_point_exactly_once(tmp_path):
    out = tmp_path / "r"
    args = [
        sys.executable,
        "-m",
        "galu.cli",
        "run",
        "memorization",
        "--preset",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "k=2,4",
        "--set",
        "repeats=3",
        "--set",
        "steps=1500",
        "--set",
        "models=galu-exact,relu,galu",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = len(list((out / "points").glob("*.json"))) if (out / "points").exists() else 0
        if n >= 3:  # the exact points are done; a gradient point is in flight
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "points").glob("*.json")))
    assert 3 <= done_before < 18, "the run should have been killed mid-way"
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    table = pd.read_csv(out / "results.csv")
    points = table[table["metric"] == "train_mse"]
    assert len(points) == 2 * 3 * 3  # k × models × seeds, each exactly once
    assert not _key(table).duplicated().any()
    assert len(list((out / "points").glob("*.json"))) == 18


def test_different_settings_in_the_same_directory_are_refused(tmp_path):
    _run(tmp_path / "r")
    with pytest.raises(RunDirError, match=r"holds a different run \(steps: 50 -> 60\)"):
        _run(tmp_path / "r", overrides=[*SMALL[:-2], "steps=60", SMALL[-1]])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match=r"exists, is not empty and is not a galu run directory"):
        _run(tmp_path / "other")


def test_plot_run_redraws_from_points(tmp_path):
    res = _run(tmp_path / "r")
    res.figures[0].unlink()
    (tmp_path / "r" / "results.csv").unlink()
    figures, summary = plot_run(tmp_path / "r")
    assert figures[0].exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "r" / "results.csv"), res.table)
    assert summary is not None and "1 - kd/m" in summary.columns


def test_a_damaged_point_file_is_moved_aside_and_redone(tmp_path):
    first = _run(tmp_path / "r")
    victim = sorted((tmp_path / "r" / "points").glob("*.json"))[0]
    victim.write_text('{"id": "trunc')  # damaged outside galu
    with pytest.warns(RuntimeWarning, match=r"is damaged .* moved to .*\.json\.corrupt"):
        again = _run(tmp_path / "r")
    assert (victim.parent / (victim.name + ".corrupt")).exists()
    pd.testing.assert_frame_equal(again.table, first.table)


def test_repeated_grid_values_run_once(tmp_path):
    res = _run(tmp_path / "r", overrides=["k=2,2", "repeats=1", "steps=5", "models=galu-exact"])
    assert res.total == res.done == 1
