"""What a run will compute: the resolved config, the grid axes and every (point, seed).

``galu run`` is a plan with no axes; ``galu sweep --grid key=v1,v2`` adds axes. ``--grid`` on a
key the experiment already lists (``k``, ``d``, ``models``, …) replaces that list; on a scalar
key (``lr``, ``steps``, ``m`` of a one-size experiment, …) it adds an axis: one *cell* per
combination of scalar values, each with its own resolved config. The cell's scalar values
become part of every point's parameters, so point ids and rows carry them.

A plan is built — and every argument checked — before anything is written to disk.
"""

from __future__ import annotations

import itertools
import json
import typing
from dataclasses import dataclass
from typing import Any

from galu.experiments.base import Experiment, get_experiment
from galu.experiments.config import (
    ConfigError,
    _field_types,
    coerce,
    parse_overrides,
    resolve,
    upgrade_grid,
)
from galu.runner.backends import Task
from galu.runner.rundir import point_id


@dataclass(frozen=True)
class PlannedPoint:
    """One point of the grid: its cell's resolved config, the cell's values and its params
    (which include the cell's values)."""

    config: dict[str, Any]
    cell: dict[str, Any]
    params: dict[str, Any]

    def seeds(self) -> list[int]:
        return [self.config["seed"] + r for r in range(self.config["repeats"])]


@dataclass(frozen=True)
class Plan:
    experiment: str
    preset: str
    base: dict[str, Any]  # the resolved config without the axes' values (config.json)
    axes: dict[str, list[Any]]  # scalar grid axes (empty for `galu run`)
    points: list[PlannedPoint]

    @property
    def cls(self) -> type[Experiment]:
        return get_experiment(self.experiment)

    def pair_ids(self) -> set[str]:
        return {point_id(p.params, s) for p in self.points for s in p.seeds()}

    def tasks(self, skip: set[str], threads: int | None) -> list[tuple[Task, dict[str, Any]]]:
        """One task per point with its seeds not in ``skip``, and the point's full params."""
        out = []
        for p in self.points:
            todo = tuple(s for s in p.seeds() if point_id(p.params, s) not in skip)
            if todo:
                own = {k: v for k, v in p.params.items() if k not in p.cell}
                out.append((Task(self.experiment, p.config, own, todo, threads), p.params))
        return out


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
    """Resolve the base config and list ``(config, cell, params)`` for every point."""
    types_ = _field_types(cls.Config)
    resolve(cls.Config, cls.presets, preset, overrides)  # --set errors name --set
    list_over, axes = dict(overrides), {}
    for key, values in grid.items():
        if key not in types_:
            resolve(cls.Config, cls.presets, preset, {key: values}, source="--grid")
        tp = types_[key]
        if _is_list_field(tp):
            list_over[key] = values
        else:
            parsed = coerce(key, tuple[tp, ...], values)  # type: ignore[valid-type]
            if not parsed:
                raise ConfigError(f"--grid {key}= lists no values.")
            axes[key] = list(dict.fromkeys(parsed))
    base = resolve(cls.Config, cls.presets, preset, list_over, source="--set/--grid")
    points: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    seen: set[str] = set()
    for combo in itertools.product(*axes.values()) if axes else [()]:
        cell = dict(zip(axes, combo, strict=True))
        config = resolve(
            cls.Config, cls.presets, preset, {**list_over, **cell}, source="--set/--grid"
        )
        for params in cls(config).points():
            full = {**cell, **params}
            key = json.dumps(full, sort_keys=True)
            if key not in seen:  # e.g. `--set k=2,2`: each point once, first occurrence's order
                seen.add(key)
                points.append((config.to_dict(), cell, full))
    return {"base": base.to_dict(), "axes": axes}, points


def make_plan(
    name: str,
    preset: str,
    overrides: dict[str, Any] | list[str] | None = None,
    grid: dict[str, Any] | list[str] | None = None,
    seed: int | None = None,
) -> Plan:
    """The plan of experiment ``name`` at ``preset``, ``--set`` overrides and ``--grid`` axes."""
    cls = get_experiment(name)
    over: dict[str, Any] = (
        parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    )
    if seed is not None:
        over["seed"] = seed
    grid_d = upgrade_grid(parse_grid(grid) if isinstance(grid, list) else dict(grid or {}))
    meta, points = expand(cls, preset, over, grid_d)
    return Plan(
        name,
        preset,
        meta["base"],
        {k: list(v) for k, v in meta["axes"].items()},
        [PlannedPoint(c, cell, p) for c, cell, p in points],
    )


def cells(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values (one empty cell without axes)."""
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
