"""Issue 15: one engine, locked run directories, robust pools, clean errors, readable outputs."""

import errno
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from galu.cli import app
from galu.runner import RunDirError, run_experiment
from galu.runner.lock import LOCK_NAME, RunDirLocked, RunLock
from galu.runner.progress import RunProgress
from galu.runner.sweep import read_failures, run_sweep

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


@pytest.fixture
def toy_env(monkeypatch, tmp_path):
    """The test-only `toy` experiment, visible here and in every worker process."""
    monkeypatch.setenv("GALU_EXPERIMENTS", "tests.runner.toy_experiment")
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))
    monkeypatch.setenv("GALU_TOY_FAIL_FILE", str(tmp_path / "fail-now"))
    return tmp_path


def _text(res) -> str:
    return " ".join(res.output.split())


def _galu(*args: str) -> list[str]:
    return [sys.executable, "-m", "galu", *args]


def _wait_for(predicate, timeout: float = 120.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process ended early (code {proc.returncode})")
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (this container's init may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


# ------------------------------------------------------------------ 1. one engine
def test_run_records_a_failing_point_like_a_sweep_and_runs_the_rest(tmp_path, toy_env):
    (toy_env / "fail-now").touch()
    res = run_experiment(
        "toy", preset="smoke", out=tmp_path / "r", overrides=["fail_on=2"], progress=False
    )
    assert (res.done, res.failed, res.total) == (4, 2, 6)
    assert {f["params"]["x"] for f in read_failures(tmp_path / "r")} == {2}
    # The CLI says so and exits 1 (not a traceback, not 0).
    out = cli.invoke(
        app,
        [
            "run",
            "toy",
            "--preset",
            "smoke",
            "--out",
            str(tmp_path / "c"),
            "--set",
            "fail_on=2",
            "--no-progress",
        ],
    )
    assert out.exit_code == 1, out.output
    assert "4/6 (point, seed) pairs done, 2 failed" in _text(out)
    assert "toy failure at x=2" in _text(out)


def test_run_and_sweep_without_axes_write_the_same_rows_and_log_their_threads(tmp_path, toy_env):
    a = run_experiment("toy", preset="smoke", out=tmp_path / "a", threads=1, progress=False)
    b = run_sweep("toy", out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    for d in ("a", "b"):
        call = json.loads((tmp_path / d / "sweeps.jsonl").read_text().splitlines()[-1])
        assert call["threads"] == 1 and call["ran"] == 6


# ------------------------------------------------------------------ 2. the lock
def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path, toy_env):
    out = tmp_path / "s"
    first = subprocess.Popen(
        _galu(
            "sweep",
            "toy",
            "--out",
            str(out),
            "--grid",
            "x=1,2,3,4",
            "--set",
            "sleep=3",
            "--set",
            "seed=0",
            "--backend",
            "process",
            "--workers",
            "2",
            "--no-progress",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: (out / "points").exists(), proc=first)
        t0 = time.monotonic()
        second = subprocess.run(
            _galu(
                "sweep",
                "toy",
                "--out",
                str(out),
                "--grid",
                "x=1,2,3,4",
                "--set",
                "sleep=3",
                "--set",
                "seed=5",
                "--no-progress",
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        refused_in = time.monotonic() - t0
        first.wait(timeout=120)
    finally:
        first.kill()
    assert second.returncode == 2, second.stderr
    message = " ".join(second.stderr.split())
    assert f"is in use by another galu run: pid {first.pid} on {socket.gethostname()}" in message
    assert "started 20" in message and refused_in < 30
    assert first.returncode == 0
    # Nothing mixed: one seed in the config and in the rows.
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 0
    assert set(pd.read_csv(out / "results.csv")["seed"]) == {0, 1}
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_the_lock_is_per_open_file_and_a_stale_lock_is_taken_over(tmp_path, toy_env):
    with RunLock(tmp_path / "d"), pytest.raises(RunDirLocked, match=f"pid {os.getpid()} on"):
        RunLock(tmp_path / "d").acquire()
    # A run killed with -9 leaves its lock file behind; its flock died with it.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = tmp_path / "r"
    out.mkdir()
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "yesterday"}
    (out / LOCK_NAME).write_text(json.dumps(stale))
    res = run_experiment("toy", preset="smoke", out=out, progress=False)
    assert res.done == 6 and res.took_over == stale
    assert not (out / LOCK_NAME).exists()


def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    d = tmp_path / "d"
    d.mkdir()
    alive = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    (d / LOCK_NAME).write_text(json.dumps(alive))
    with pytest.raises(RunDirLocked, match="Wait for it to finish"):
        RunLock(d).acquire()
    (d / LOCK_NAME).write_text(json.dumps({**alive, "host": "elsewhere.example"}))
    with pytest.raises(RunDirLocked, match=f"delete {d / LOCK_NAME}"):
        RunLock(d).acquire()


def test_the_lock_is_held_while_ray_workers_compute(tmp_path, toy_env):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'galu[ray]'")
    from galu.runner.engine import execute
    from galu.runner.plan import make_plan

    seen = []

    def try_second_writer(params, seed):
        with pytest.raises(RunDirLocked, match=f"pid {os.getpid()} on"):
            RunLock(tmp_path / "r").acquire()
        seen.append(seed)

    plan = make_plan("toy", "smoke", grid=["x=1,2"])
    res = execute(plan, tmp_path / "r", backend="ray", workers=2, on_point=try_second_writer)
    assert res.done == 4 and len(seen) == 4 and res.backend == "ray"
    assert not (tmp_path / "r" / LOCK_NAME).exists()


# ------------------------------------------------------------------ 3. the process pool
def test_workers_exit_when_the_sweep_is_killed_alone(tmp_path, toy_env, monkeypatch):
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("GALU_TOY_PID_DIR", str(pids))
    proc = subprocess.Popen(
        _galu(
            "sweep",
            "toy",
            "--out",
            str(tmp_path / "s"),
            "--grid",
            "x=1,2,3,4,5,6",
            "--set",
            "sleep=30",
            "--backend",
            "process",
            "--workers",
            "2",
            "--no-progress",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: len(list(pids.iterdir())) >= 2, proc=proc)
        workers = [int(p.name) for p in pids.iterdir()]
        assert all(_alive(w) for w in workers)
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, not its group
        proc.wait()
        _wait_for(lambda: not any(_alive(w) for w in workers), timeout=15)
    finally:
        for w in [int(p.name) for p in pids.iterdir()]:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_a_crashed_worker_fails_only_its_own_point(tmp_path, toy_env):
    res = run_sweep(
        "toy",
        grid=["x=1,2,3,4"],
        overrides=["crash_on=2"],
        out=tmp_path / "s",
        backend="process",
        workers=2,
        progress=False,
    )
    assert (res.done, res.failed, res.total) == (6, 2, 8)
    failures = read_failures(tmp_path / "s")
    assert {f["params"]["x"] for f in failures} == {2}
    assert "killed by SIGKILL" in failures[0]["error"]


# ------------------------------------------------------------------ 5. errors, not tracebacks
def test_output_directory_errors_are_messages(tmp_path, toy_env, monkeypatch):
    file = tmp_path / "afile"
    file.write_text("x")
    res = cli.invoke(app, ["run", "toy", "--preset", "smoke", "--out", str(file)])
    assert res.exit_code == 2 and "is a file, not a directory" in _text(res), res.output

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    res = cli.invoke(app, ["run", "toy", "--preset", "smoke", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2, res.output
    assert f"{tmp_path / 'bad' / 'config.json'} is damaged" in _text(res)
    assert "restore the file" in _text(res) and "points" in _text(res)

    res = cli.invoke(app, ["sweep", "toy", "--out", str(tmp_path / "nb"), "--backend", "foo"])
    assert res.exit_code == 2 and "`backend` (='foo') must be one of" in _text(res)
    assert not (tmp_path / "nb").exists()  # validated before anything was created

    res = cli.invoke(app, ["sweep", "toy", "--out", str(tmp_path / "ng"), "--grid", "nokey=1,2"])
    assert res.exit_code == 2 and "unknown config key 'nokey' (from --grid)" in _text(res)
    assert not (tmp_path / "ng").exists()


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "not writable"),
    ],
)
def test_a_write_failure_mid_run_is_a_message_and_keeps_finished_points(
    tmp_path, toy_env, monkeypatch, code, hint
):
    import galu.runner.rundir as rundir

    real = rundir.tempfile.mkstemp
    calls = {"n": 0}

    def mkstemp(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:  # config.json and two points get written, then the disk "fills"
            raise OSError(code, os.strerror(code), kwargs.get("dir"))
        return real(*args, **kwargs)

    monkeypatch.setattr(rundir.tempfile, "mkstemp", mkstemp)
    out = tmp_path / "r"
    res = cli.invoke(app, ["run", "toy", "--preset", "smoke", "--out", str(out), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "cannot write" in _text(res) and hint in _text(res)
    assert res.exception is None or isinstance(res.exception, SystemExit)
    monkeypatch.setattr(rundir.tempfile, "mkstemp", real)
    kept = len(list((out / "points").glob("*.json")))
    assert kept == 2
    again = run_experiment("toy", preset="smoke", out=out, progress=False)
    assert again.resumed and again.done == 6 and again.ran == 4


# ------------------------------------------------------------------ 6. rich markup
def test_bracketed_text_in_errors_and_help_prints_as_written(tmp_path, toy_env):
    (toy_env / "fail-now").touch()
    res = cli.invoke(
        app,
        [
            "sweep",
            "toy",
            "--out",
            str(tmp_path / "s"),
            "--grid",
            "x=1,2",
            "--set",
            "fail_on=2",
            "--set",
            "fail_text=: [/dev/sda] [bold]",
            "--no-progress",
        ],
    )
    assert res.exit_code == 1, res.output
    assert "toy failure at x=2: [/dev/sda] [bold]" in _text(res)
    res = cli.invoke(app, ["bench", "--help"])
    assert "'.[bench]'" in res.output
    res = cli.invoke(app, ["run", "toy", "--set", "scale=[oops]"])
    assert res.exit_code == 2 and "[oops]" in res.output


# ------------------------------------------------------------------ 8. the umask
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_respect_the_umask(tmp_path, toy_env, umask, mode):
    from galu.report import build_report

    old = os.umask(umask)
    try:
        out = tmp_path / "r"
        run_experiment("toy", preset="smoke", out=out, progress=False)
        report = build_report([out], tmp_path / "report.html")
    finally:
        os.umask(old)
    files = [
        out / "config.json",
        out / "results.csv",
        report,
        out / "log.txt",
        *(out / "points").glob("*.json"),
        *(out / "figures").glob("*.png"),
    ]
    assert len(files) > 8
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == mode, (f, oct(f.stat().st_mode))


# ------------------------------------------------------------------ 9. progress
def test_progress_keeps_count_and_eta_visible_at_80_columns():
    buf = io.StringIO()
    bar = RunProgress("generalization", 480, 17, 2, stream=buf, width=80, force_terminal=True)
    bar.describe("task=regression sigma=0.2 model=galu-exact-ridge " + "k=30 " * 20)
    bar.advance(3)
    bar.close()
    last = buf.getvalue().split("\r")[-1]
    assert "22/480" in last and "2 failed" in last and "eta" in last and "generalization" in last


def test_progress_prints_plain_lines_when_not_a_terminal(tmp_path, toy_env):
    res = subprocess.run(
        _galu(
            "run",
            "toy",
            "--preset",
            "smoke",
            "--out",
            str(tmp_path / "r"),
            "--set",
            "sleep=0.3",
            "--progress-every",
            "0.2",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("toy: ")]
    counts = [int(ln.split()[1].split("/")[0]) for ln in lines]
    assert len(lines) >= 3 and counts == sorted(counts) and counts[-1] == 6, res.stderr
    assert "eta" in lines[0] and lines[-1].endswith("finished")


def test_progress_rejects_a_bad_interval():
    with pytest.raises(ValueError, match=r"`every` \(=0\) must be a positive"):
        RunProgress("x", 1, every=0)


# ------------------------------------------------------------------ 10. packaging
def test_version_and_show_config(toy_env):
    import galu

    res = cli.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"galu {galu.__version__}"
    res = cli.invoke(app, ["run", "memorization", "--preset", "smoke", "--show-config"])
    assert res.exit_code == 0, res.output
    assert "k: list of int = 2,4,8 (default 2,4,8,12,16)" in _text(res)
    assert "hidden width" in res.output and "steps: int = 300" in _text(res)
    res = cli.invoke(app, ["run", "nosuch", "--show-config"])
    assert res.exit_code == 2 and "unknown experiment 'nosuch'" in _text(res)


def test_write_error_names_the_file(tmp_path):
    from galu.runner.rundir import atomic_write_text

    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match=r"cannot write .*afile.*a path component is a file"):
        atomic_write_text(tmp_path / "afile" / "x.txt", "hi")
