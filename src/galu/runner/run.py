"""``galu run``: one experiment at one preset — a plan with no grid axes, run in this process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from galu.experiments.base import get_experiment
from galu.runner.engine import RunResult, execute, plot_cells, summarize_cells
from galu.runner.plan import make_plan
from galu.runner.rundir import RunDir


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
    progress_every: float = 30.0,
    threads: int | None = None,
    retry_failed: bool = False,
    on_point: Callable[[dict[str, Any], int], None] | None = None,
) -> RunResult:
    """Run (or resume) experiment ``name`` with ``preset`` and ``overrides`` into ``out``.

    Finished (point, seed) pairs found in ``out`` are skipped. Work is grouped by point so an
    experiment can vectorise across seeds (:meth:`Experiment.run_seeds`). A point that raises is
    recorded in ``out/failed/`` and the others still run (``RunResult.failed`` counts them; a
    re-run skips them unless ``retry_failed``). On
    Ctrl-C the rows of every finished point are kept and ``results.csv`` is written before
    returning. ``threads=None`` leaves torch's thread count as it is (all cores by default).
    """
    plan = make_plan(name, preset, overrides, seed=seed)
    return execute(
        plan,
        out if out is not None else default_out(name),
        threads=threads,
        retry_failed=retry_failed,
        progress=progress,
        progress_every=progress_every,
        on_point=on_point,
    )


def plot_run(path: Path | str) -> tuple[list[Path], pd.DataFrame | None]:
    """Redraw the figures of a run directory from its points; returns (figures, summary).

    A sweep's figures and summary are drawn per cell of its grid, as the sweep drew them."""
    rundir = RunDir(path)
    record = rundir.read_config()
    cls = get_experiment(record["experiment"])
    axes = record.get("grid") or {}
    table = rundir.write_results()
    if table.empty:
        return [], None
    figures = plot_cells(cls, record["config"], axes, table, rundir.fig_dir)
    return figures, summarize_cells(cls, record["config"], axes, table)
