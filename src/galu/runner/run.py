"""Execute an experiment's grid into a run directory, with progress and resumption."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from galu.experiments.base import Experiment, get_experiment
from galu.experiments.config import parse_overrides, resolve
from galu.runner.rundir import RunDir, point_id


@dataclass(frozen=True)
class RunResult:
    """What a finished (or interrupted) run produced."""

    path: Path
    table: pd.DataFrame
    figures: list[Path]
    done: int
    total: int
    resumed: bool
    interrupted: bool
    summary: pd.DataFrame | None = None


def default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_experiment(
    name: str,
    *,
    preset: str = "quick",
    out: Path | str | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    progress: bool = True,
    on_point: Callable[[dict[str, Any], int], None] | None = None,
) -> RunResult:
    """Run (or resume) experiment ``name`` with ``preset`` and ``overrides`` into ``out``.

    Finished (point, seed) pairs found in ``out`` are skipped. Work is grouped by point so an
    experiment can vectorise across seeds (:meth:`Experiment.run_seeds`). On Ctrl-C the rows of
    every finished point are kept and ``results.csv`` is written before returning.
    """
    cls = get_experiment(name)
    over: dict[str, Any] = (
        parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    )
    if seed is not None:
        over["seed"] = seed
    config = resolve(cls.Config, cls.presets, preset, over)
    exp: Experiment = cls(config)
    rundir = RunDir(out if out is not None else default_out(name))
    resumed = rundir.start(name, preset, config.to_dict())

    points = _unique(exp.points())
    seeds = config.seeds()
    done_ids = rundir.done_ids()
    pending: list[tuple[dict[str, Any], list[int]]] = []
    for params in points:
        todo = [s for s in seeds if point_id(params, s) not in done_ids]
        if todo:
            pending.append((params, todo))
    total = len(points) * len(seeds)
    done = total - sum(len(s) for _, s in pending)

    interrupted = False
    bar = _Bar(progress, total, done, name)
    last_write = time.monotonic()
    try:
        for params, todo in pending:
            bar.describe(params)
            t0 = time.perf_counter()
            rows_by_seed = exp.run_seeds(params, todo)
            seconds = (time.perf_counter() - t0) / len(todo)
            for s in todo:
                rundir.write_point(params, s, rows_by_seed[s], seconds)
                done += 1
                bar.advance(1)
                if on_point is not None:
                    on_point(params, s)
            if time.monotonic() - last_write > 5.0:
                rundir.write_results()
                last_write = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        table = rundir.write_results()

    figures: list[Path] = []
    summary = None
    if not table.empty:
        rundir.fig_dir.mkdir(parents=True, exist_ok=True)
        figures = exp.plot(table, rundir.fig_dir)
        summary = exp.summarize(table)
    return RunResult(rundir.path, table, figures, done, total, resumed, interrupted, summary)


def plot_run(path: Path | str) -> tuple[list[Path], pd.DataFrame | None]:
    """Redraw the figures of a run directory from its points; returns (figures, summary)."""
    rundir = RunDir(path)
    record = rundir.read_config()
    cls = get_experiment(record["experiment"])
    exp = cls.from_saved(record["config"])
    table = rundir.write_results()
    if table.empty:
        return [], None
    if record.get("grid"):  # a sweep: one figure set per cell, as the sweep drew them
        from galu.runner.sweep import plot_cells

        figures = plot_cells(cls, record["config"], record["grid"], table, rundir.fig_dir)
        return figures, exp.summarize(table)
    rundir.fig_dir.mkdir(parents=True, exist_ok=True)
    return exp.plot(table, rundir.fig_dir), exp.summarize(table)


def _unique(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeated points (e.g. ``--set k=2,2``), keeping the first occurrence's order."""
    seen: set[str] = set()
    out = []
    for params in points:
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


class _Bar:
    """Overall progress over (point, seed) pairs with ETA, or nothing when disabled; with
    ``failed`` (a count, sweeps) failed pairs are shown and count towards the total."""

    def __init__(
        self, enabled: bool, total: int, done: int, name: str, failed: int | None = None
    ) -> None:
        self._p = None
        self.failed = failed
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn(f"[bold]{name}"),
            BarColumn(),
            MofNCompleteColumn(),
            *([TextColumn("[red]{task.fields[failed]} failed")] if failed is not None else []),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
        )
        self._task = self._p.add_task(
            "", total=total, completed=done + (failed or 0), failed=failed or 0
        )
        self._p.start()

    def describe(self, params: dict[str, Any]) -> None:
        if self._p is not None:
            text = " ".join(f"{k}={v}" for k, v in params.items())
            self._p.update(self._task, description=text)

    def advance(self, n: int, failed: bool = False) -> None:
        if failed and self.failed is not None:
            self.failed += n
        if self._p is not None:
            self._p.update(self._task, advance=n, failed=self.failed or 0)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
