"""The one loop behind ``galu run``, ``galu sweep`` and ``galu reproduce``.

:func:`execute` takes a :class:`~galu.runner.plan.Plan`, locks the run directory (one writer at
a time), skips the (point, seed) pairs already finished, hands the rest to a backend and writes
each outcome as it arrives: a finished pair to ``points/<id>.json``, a failed one to
``failed/<id>.json``. A failing point costs that point only. ``results.csv`` is rebuilt every
few seconds and at the end, also after Ctrl-C or a write error, so a re-run resumes exactly.

Layout of a run directory (see :mod:`galu.runner.rundir`)::

    DIR/config.json          experiment, preset, base config, grid axes, versions
    DIR/.galu.lock           held while a process writes here (pid, host, start time)
    DIR/points/<id>.json     one finished (point, seed): rows and timing (atomic)
    DIR/failed/<id>.json     one failed (point, seed): error and traceback (atomic)
    DIR/results.csv          every finished row
    DIR/figures/[cell/]*.png the experiment's figures, per cell of the grid
    DIR/sweeps.jsonl         one line per call: backend, workers, threads, pairs run, seconds
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from galu._validate import positive_int
from galu.experiments.base import Experiment
from galu.runner.backends import Outcome, check_backend, make_backend
from galu.runner.lock import RunLock
from galu.runner.plan import Plan, cells
from galu.runner.progress import RunProgress, describe_params
from galu.runner.rundir import RunDir, RunDirError, atomic_write_text, point_id, write_error


@dataclass(frozen=True)
class RunResult:
    """What a finished (or interrupted) run produced."""

    path: Path
    table: pd.DataFrame
    figures: list[Path]
    done: int  # finished (point, seed) pairs in the directory
    total: int
    resumed: bool
    interrupted: bool
    summary: pd.DataFrame | None = None
    failed: int = 0
    ran: int = 0  # pairs computed (finished or failed) by this call
    seconds: float = 0.0
    backend: str = "inline"
    workers: int = 0
    took_over: dict[str, Any] | None = None  # the stale lock's holder, if one was replaced


def execute(
    plan: Plan,
    out: Path | str,
    *,
    backend: str = "inline",
    workers: int | None = None,
    address: str | None = None,
    threads: int | None = 1,
    retry_failed: bool = False,
    progress: bool = True,
    progress_every: float = 30.0,
    on_point: Callable[[dict[str, Any], int], None] | None = None,
) -> RunResult:
    """Run (or resume) ``plan`` into ``out`` on ``backend``.

    ``threads`` torch threads run each point (``None``: leave torch's setting alone). The same
    seeds and ``threads`` give bit-identical rows on every backend. ``on_point(params, seed)`` is
    called after each finished pair is written (a ``KeyboardInterrupt`` raised there interrupts
    the run like Ctrl-C).
    """
    check_backend(backend, workers, address)
    positive_int("threads", threads, none_ok=True)
    rundir = RunDir(out)
    rundir.check_target()
    with RunLock(rundir.path) as lock:
        result = _execute_locked(
            plan,
            rundir,
            backend,
            workers,
            address,
            threads,
            retry_failed=retry_failed,
            progress=progress,
            progress_every=progress_every,
            on_point=on_point,
        )
    if lock.took_over is not None:
        result = _replace(result, took_over=lock.took_over)
    return result


def _replace(result: RunResult, **changes: Any) -> RunResult:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _execute_locked(
    plan: Plan,
    rundir: RunDir,
    backend: str,
    workers: int | None,
    address: str | None,
    threads: int | None,
    *,
    retry_failed: bool,
    progress: bool,
    progress_every: float,
    on_point: Callable[[dict[str, Any], int], None] | None,
) -> RunResult:
    resumed = rundir.start(plan.experiment, plan.preset, plan.base, plan.axes or None)
    all_ids = plan.pair_ids()
    done_ids = rundir.done_ids() & all_ids
    failed_ids = (rundir.failed_ids() & all_ids) - done_ids
    skip = done_ids | (set() if retry_failed else failed_ids)
    tasks = plan.tasks(skip, threads)

    t0 = time.perf_counter()
    ran = 0
    interrupted = False
    bar = RunProgress(
        plan.experiment,
        len(all_ids),
        len(done_ids),
        0 if retry_failed else len(failed_ids),
        enabled=progress,
        every=progress_every,
    )
    runner = make_backend(backend, workers, address) if tasks else None
    full_of = {_task_key(t): params for t, params in tasks}
    last_write = time.monotonic()
    try:
        if runner is not None:
            if runner.workers > 1:
                bar.describe(f"{runner.name} × {runner.workers}")
            for outcome in runner.run(
                [t for t, _ in tasks],
                on_start=lambda t: bar.describe(describe_params(full_of[_task_key(t)])),
            ):
                full = full_of[_task_key(outcome.task)]
                for s in outcome.task.seeds:
                    _write_outcome(rundir, full, s, outcome, done_ids, failed_ids)
                    bar.advance(1, failed=outcome.rows is None)
                    ran += 1
                    if on_point is not None and outcome.rows is not None:
                        on_point(full, s)
                if time.monotonic() - last_write > 5.0:
                    rundir.write_results()
                    last_write = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if runner is not None:
            runner.close()
        table = rundir.write_results()
    seconds = time.perf_counter() - t0
    _log_call(rundir, backend, runner, threads, ran, seconds, resumed=resumed)
    figures: list[Path] = []
    summary = None
    if not table.empty:
        figures = plot_cells(plan.cls, plan.base, plan.axes, table, rundir.fig_dir)
        summary = summarize_cells(plan.cls, plan.base, plan.axes, table)
    return RunResult(
        rundir.path,
        table,
        figures,
        len(done_ids),
        len(all_ids),
        resumed,
        interrupted,
        summary,
        failed=len(failed_ids),
        ran=ran,
        seconds=seconds,
        backend=backend,
        workers=runner.workers if runner is not None else 0,
    )


def _write_outcome(
    rundir: RunDir,
    params: dict[str, Any],
    seed: int,
    outcome: Outcome,
    done_ids: set[str],
    failed_ids: set[str],
) -> None:
    pid = point_id(params, seed)
    if outcome.rows is not None:
        rundir.write_point(
            params, seed, outcome.rows[seed], outcome.seconds / len(outcome.task.seeds)
        )
        if pid in failed_ids:
            (rundir.failed_dir / f"{pid}.json").unlink(missing_ok=True)
            failed_ids.discard(pid)
        done_ids.add(pid)
        return
    record = {
        "id": pid,
        "params": params,
        "seed": seed,
        "error": outcome.error,
        "traceback": outcome.traceback,
        "worker": outcome.worker,
        "seconds": outcome.seconds,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with write_error(rundir.failed_dir / f"{pid}.json"):
        atomic_write_text(rundir.failed_dir / f"{pid}.json", json.dumps(record, indent=1) + "\n")
    failed_ids.add(pid)


def _task_key(task: Any) -> str:
    return json.dumps([task.config, task.params], sort_keys=True)


def _log_call(
    rundir: RunDir,
    backend: str,
    runner: Any,
    threads: int | None,
    ran: int,
    seconds: float,
    *,
    resumed: bool,
) -> None:
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "backend": backend,
        "workers": runner.workers if runner is not None else 0,
        "threads": threads,
        "ran": ran,
        "seconds": round(seconds, 3),
        "resumed": resumed,
    }
    path = rundir.path / "sweeps.jsonl"
    with write_error(path), open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def _cell_part(table: pd.DataFrame, cell: dict[str, Any]) -> pd.DataFrame:
    part = table
    for k, v in cell.items():
        part = part[part[k] == v]
    return part.drop(columns=list(cell)).reset_index(drop=True)


def plot_cells(
    cls: type[Experiment],
    base: dict[str, Any],
    axes: dict[str, list[Any]],
    table: pd.DataFrame,
    fig_dir: Path,
) -> list[Path]:
    """The experiment's own figures, once per cell of ``axes`` (a sub-folder per cell; none
    without axes). A cell's config is ``base`` with the cell's values."""
    figures: list[Path] = []
    for cell in cells(axes):
        part = _cell_part(table, cell)
        if part.empty:
            continue
        folder = fig_dir / "_".join(f"{k}={v}" for k, v in cell.items()) if cell else fig_dir
        with write_error(folder):
            folder.mkdir(parents=True, exist_ok=True)
            figures += cls.from_saved({**base, **cell}).plot(part, folder)
    return figures


def summarize_cells(
    cls: type[Experiment], base: dict[str, Any], axes: dict[str, list[Any]], table: pd.DataFrame
) -> pd.DataFrame | None:
    """The experiment's summary per cell of ``axes``, with the cell's values as leading
    columns: a summary never averages over a grid axis."""
    frames = []
    for cell in cells(axes):
        part = _cell_part(table, cell)
        if part.empty:
            continue
        summary = cls.from_saved({**base, **cell}).summarize(part)
        for i, (k, v) in enumerate(cell.items()):
            summary.insert(i, k, v)
        frames.append(summary)
    return pd.concat(frames, ignore_index=True) if frames else None


def summary_title(axes: dict[str, list[Any]] | None) -> str:
    return "mean over seeds" + (f", per {', '.join(axes)}" if axes else "")


__all__ = ["RunDirError", "RunResult", "execute", "plot_cells", "summarize_cells"]
