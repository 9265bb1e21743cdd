"""Sweeps: an experiment's grid × extra grid axes × seeds, on any backend, resumable.

``--grid key=v1,v2`` on a key the experiment already lists (``k``, ``d``, ``models``, …) replaces
that list; on a scalar key (``lr``, ``steps``, ``m`` of a one-size experiment, …) it adds an axis:
one *cell* per combination of scalar values, each with its own resolved config. The cell's
scalar values become columns of every row it produces.

Layout of the output directory (a :class:`RunDir` plus failures)::

    DIR/config.json          experiment, preset, base config, grid, backend, versions
    DIR/points/<id>.json     one finished (point, seed): rows and timing (atomic)
    DIR/failed/<id>.json     one failed (point, seed): error and traceback (atomic)
    DIR/results.csv          every finished row
    DIR/figures/[cell/]*.png the experiment's figures, per cell

Only this process writes files, each atomically, so a SIGKILL leaves whole points or nothing;
re-running the same command skips finished points (and, unless ``retry_failed``, failed ones),
so every point ends up exactly once.
"""

from __future__ import annotations

import itertools
import json
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from galu.experiments.base import Experiment, get_experiment
from galu.experiments.config import ConfigError, _field_types, coerce, parse_overrides, resolve
from galu.runner.backends import Task, make_backend
from galu.runner.run import _Bar
from galu.runner.rundir import RunDir, RunDirError, atomic_write_text, point_id


@dataclass(frozen=True)
class SweepResult:
    path: Path
    table: pd.DataFrame
    figures: list[Path]
    done: int
    failed: int
    total: int
    ran: int  # (point, seed) pairs computed by this call
    seconds: float
    backend: str
    workers: int


def parse_grid(items: list[str] | None) -> dict[str, str]:
    """``["k=1,2,4", "lr=0.1,0.01"]`` → ``{"k": "1,2,4", "lr": "0.1,0.01"}`` (no key twice)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[1].strip():
            raise ConfigError(f"--grid expects key=v1,v2,...; got {item!r}.")
        key, values = (s.strip() for s in item.split("=", 1))
        if key in out:
            raise ConfigError(f"--grid names {key!r} twice; give all its values once.")
        out[key] = values
    return out


def _is_list_field(tp: Any) -> bool:
    return typing.get_origin(tp) in (tuple, list)


def expand(
    cls: type[Experiment], preset: str, overrides: dict[str, Any], grid: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]]:
    """Resolve the base config and list ``(config, cell, params)`` for every point.

    ``params`` already contains the cell's scalar values, so point ids and rows carry them.
    """
    types_ = _field_types(cls.Config)
    list_over, axes = dict(overrides), {}
    for key, values in grid.items():
        if key not in types_:
            resolve(cls.Config, cls.presets, preset, {key: values})  # raises the usual error
        tp = types_[key]
        if _is_list_field(tp):
            list_over[key] = values
        else:
            parsed = coerce(key, tuple[tp, ...], values)  # type: ignore[valid-type]
            if not parsed:
                raise ConfigError(f"--grid {key}= lists no values.")
            axes[key] = list(dict.fromkeys(parsed))
    base = resolve(cls.Config, cls.presets, preset, list_over)
    points: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    seen: set[str] = set()
    for combo in itertools.product(*axes.values()) if axes else [()]:
        cell = dict(zip(axes, combo, strict=True))
        config = resolve(cls.Config, cls.presets, preset, {**list_over, **cell})
        for params in cls(config).points():
            full = {**cell, **params}
            key = json.dumps(full, sort_keys=True)
            if key not in seen:
                seen.add(key)
                points.append((config.to_dict(), cell, full))
    return {"base": base.to_dict(), "axes": axes}, points


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
) -> SweepResult:
    """Run (or resume) a sweep of experiment ``name`` into ``out`` on ``backend``.

    Rows are written as tasks finish. Every point runs with ``threads`` torch threads whatever
    the backend, so the same seeds give bit-identical rows on every backend.
    """
    cls = get_experiment(name)
    grid_d = parse_grid(grid) if isinstance(grid, list) else dict(grid or {})
    over = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`threads` (={threads!r}) must be a positive integer.")
    meta, points = expand(cls, preset, over, grid_d)
    rundir = RunDir(out)
    axes = {k: list(v) for k, v in meta["axes"].items()}
    resumed = rundir.start(name, preset, meta["base"], axes or None)
    failed_dir = rundir.path / "failed"

    done_ids = rundir.done_ids()
    failed_ids = {p.stem for p in failed_dir.glob("*.json")} if failed_dir.exists() else set()
    tasks: list[Task] = []
    full_of: dict[str, dict[str, Any]] = {}  # task key -> point params incl. the cell's values
    all_ids: set[str] = set()
    for config, cell, params in points:
        todo = []
        for s in _seeds(config):
            pid = point_id(params, s)
            all_ids.add(pid)
            if pid not in done_ids and (pid not in failed_ids or retry_failed):
                todo.append(s)
        if todo:
            own = {k: v for k, v in params.items() if k not in cell}
            task = Task(name, config, own, tuple(todo), threads)
            full_of[_task_key(task)] = params
            tasks.append(task)
    done_ids &= all_ids
    failed_ids = (failed_ids & all_ids) - done_ids

    t0 = time.perf_counter()
    ran = 0
    bar = _Bar(
        progress, len(all_ids), len(done_ids), name, failed=len(failed_ids) * (not retry_failed)
    )
    runner = make_backend(backend, workers, address) if tasks else None
    last_write = time.monotonic()
    try:
        if runner is not None:
            bar.describe({"backend": f"{runner.name} × {runner.workers}"})
            for outcome in runner.run(tasks):
                task = outcome.task
                full = full_of[_task_key(task)]
                per_seed = outcome.seconds / len(task.seeds)
                for s in task.seeds:
                    pid = point_id(full, s)
                    if outcome.rows is not None:
                        rundir.write_point(full, s, outcome.rows[s], per_seed)
                        if pid in failed_ids:
                            (failed_dir / f"{pid}.json").unlink(missing_ok=True)
                            failed_ids.discard(pid)
                        done_ids.add(pid)
                    else:
                        _write_failure(failed_dir, pid, full, s, outcome)
                        failed_ids.add(pid)
                    bar.advance(1, failed=outcome.rows is None)
                    ran += 1
                if time.monotonic() - last_write > 5.0:
                    rundir.write_results()
                    last_write = time.monotonic()
    finally:
        bar.close()
        if runner is not None:
            runner.close()
        table = rundir.write_results()
    seconds = time.perf_counter() - t0
    figures = plot_cells(cls, meta["base"], axes, table, rundir.fig_dir) if not table.empty else []
    _log_sweep(rundir, backend, runner, ran, seconds, resumed)
    return SweepResult(
        rundir.path,
        table,
        figures,
        len(done_ids),
        len(failed_ids),
        len(all_ids),
        ran,
        seconds,
        backend,
        runner.workers if runner is not None else 0,
    )


def _seeds(config: dict[str, Any]) -> list[int]:
    return [config["seed"] + r for r in range(config["repeats"])]


def _task_key(task: Task) -> str:
    return json.dumps([task.config, task.params], sort_keys=True)


def _write_failure(failed_dir: Path, pid: str, params: dict, seed: int, outcome) -> None:
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
    atomic_write_text(failed_dir / f"{pid}.json", json.dumps(record, indent=1) + "\n")


def read_failures(path: Path | str) -> list[dict[str, Any]]:
    """The failure records of a sweep directory (empty when none failed)."""
    folder = Path(path) / "failed"
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


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
    for combo in itertools.product(*axes.values()) if axes else [()]:
        cell = dict(zip(axes, combo, strict=True))
        part = table
        for k, v in cell.items():
            part = part[part[k] == v]
        if part.empty:
            continue
        folder = fig_dir / "_".join(f"{k}={v}" for k, v in cell.items()) if cell else fig_dir
        folder.mkdir(parents=True, exist_ok=True)
        exp = cls.from_saved({**base, **cell})
        figures += exp.plot(part.drop(columns=list(cell)).reset_index(drop=True), folder)
    return figures


def _log_sweep(rundir: RunDir, backend: str, runner, ran: int, seconds: float, resumed) -> None:
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "backend": backend,
        "workers": runner.workers if runner is not None else 0,
        "ran": ran,
        "seconds": round(seconds, 3),
        "resumed": resumed,
    }
    with open(rundir.path / "sweeps.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")


__all__ = [
    "RunDirError",
    "SweepResult",
    "expand",
    "parse_grid",
    "plot_cells",
    "read_failures",
    "run_sweep",
]
