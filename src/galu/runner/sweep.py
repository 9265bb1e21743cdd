"""``galu sweep``: an experiment's grid × extra grid axes × seeds, on any backend, resumable.

A sweep is a :class:`~galu.runner.plan.Plan` with axes run by the one engine,
:func:`galu.runner.engine.execute` (which documents the run directory's layout). Only the
sweep's own process writes files, each atomically, so a SIGKILL leaves whole points or nothing;
re-running the same command skips finished points (and, unless ``retry_failed``, failed ones),
so every point ends up exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from galu._validate import positive_int
from galu.runner.engine import RunResult, execute, plot_cells
from galu.runner.plan import expand, make_plan, parse_grid
from galu.runner.rundir import RunDir, RunDirError

SweepResult = RunResult  # one result type for runs and sweeps


def run_sweep(
    name: str,
    *,
    preset: str = "smoke",
    grid: dict[str, Any] | list[str] | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    out: Path | str,
    backend: str = "inline",
    workers: int | None = None,
    address: str | None = None,
    threads: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    progress_every: float = 30.0,
) -> RunResult:
    """Run (or resume) a sweep of experiment ``name`` into ``out`` on ``backend``.

    Rows are written as tasks finish. Every point runs with ``threads`` torch threads whatever
    the backend, so the same seeds give bit-identical rows on every backend.
    """
    positive_int("threads", threads)
    plan = make_plan(name, preset, overrides, grid)
    return execute(
        plan,
        out,
        backend=backend,
        workers=workers,
        address=address,
        threads=threads,
        retry_failed=retry_failed,
        progress=progress,
        progress_every=progress_every,
    )


def read_failures(path: Path | str) -> list[dict[str, Any]]:
    """The failure records of a run or sweep directory (empty when none failed)."""
    folder = RunDir(path).failed_dir
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


__all__ = [
    "RunDirError",
    "SweepResult",
    "expand",
    "parse_grid",
    "plot_cells",
    "read_failures",
    "run_sweep",
]
