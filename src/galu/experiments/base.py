"""The experiment interface and the registry of experiments by name."""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from galu.experiments.config import BaseConfig, ConfigError, resolve, upgrade_keys

Row = dict[str, Any]


class Experiment(ABC):
    """One reproduced result.

    A subclass sets ``name``, ``summary``, ``Config`` (a frozen dataclass deriving from
    :class:`BaseConfig`) and ``presets``, and implements :meth:`points`, :meth:`run_point` and
    :meth:`plot`. Rows are tidy: one per point × seed × metric, with the point's parameters as
    columns plus ``seed``, ``metric`` and ``value``.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type[BaseConfig]]
    presets: ClassVar[dict[str, dict[str, Any]]]

    def __init__(self, config: BaseConfig) -> None:
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{self.name} needs a {self.Config.__name__}; got {type(config).__name__}."
            )
        self.config = config

    @classmethod
    def from_preset(cls, preset: str, overrides: dict[str, Any] | None = None) -> Experiment:
        return cls(resolve(cls.Config, cls.presets, preset, overrides))

    @classmethod
    def from_saved(cls, config: dict[str, Any]) -> Experiment:
        """The experiment for a config as stored in ``config.json`` (or a sweep task)."""
        saved = upgrade_keys(config, warn=False)
        return cls(resolve(cls.Config, {"saved": {}}, "saved", saved, check_paths=False))

    @abstractmethod
    def points(self) -> list[dict[str, Any]]:
        """The grid: one dict of JSON-serialisable parameters per point (seeds excluded)."""

    @abstractmethod
    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        """Rows for one point and one seed; every random choice flows from ``seed``."""

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        """Rows for several seeds of one point. Override to vectorise across seeds; the result
        for each seed must equal :meth:`run_point`'s."""
        return {s: self.run_point(params, s) for s in seeds}

    @abstractmethod
    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        """Draw figures from the results table into ``fig_dir``; return their paths."""

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """A small table for the terminal (default: mean of each metric per point)."""
        keys = [c for c in table.columns if c not in ("seed", "value")]
        return table.groupby(keys, as_index=False)["value"].mean()


def plot_mean_sd(ax: Any, frame: pd.DataFrame, x: str, y: str, **style: Any) -> None:
    """Mean of ``y`` per ``x`` with ±1 sd error bars (over seeds); nothing if ``frame`` is empty."""
    if frame.empty:
        return
    g = frame.groupby(x)[y]
    mean, std = g.mean(), g.std().fillna(0.0)
    ax.errorbar(mean.index, mean.values, yerr=std.values, capsize=2, **style)


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write and close a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


_REGISTRY: dict[str, type[Experiment]] = {}


class SeedBatched(Experiment):
    """An experiment that computes a point's seeds together: it implements :meth:`run_seeds`,
    and :meth:`run_point` is the one-seed case."""

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        return self.run_seeds(params, [seed])[seed]


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator adding an experiment to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"experiment name {cls.name!r} is registered twice.")
    _REGISTRY[cls.name] = cls
    return cls


ENTRY_POINT_GROUP = "galu.experiments"


def experiments() -> dict[str, type[Experiment]]:
    """All registered experiments by name.

    Besides galu's own, every entry point of the ``galu.experiments`` group is loaded: a package
    that declares, in its ``pyproject.toml``,

    .. code-block:: toml

        [project.entry-points."galu.experiments"]
        my-study = "my_pkg.experiments"

    and whose module uses :func:`register` makes its experiments run with ``galu run`` /
    ``galu sweep`` (and on every sweep worker, which sees the same installed packages). For
    modules that are not installed (a script directory during development), the
    ``GALU_EXPERIMENTS`` environment variable (comma-separated import paths) does the same.
    """
    importlib.import_module("galu.experiments.registered")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise ConfigError(
                f"the {ENTRY_POINT_GROUP!r} entry point {ep.name!r} = {ep.value!r} cannot be "
                f"loaded ({type(exc).__name__}: {exc}); fix or uninstall the package declaring it."
            ) from exc
    for module in filter(
        None, (m.strip() for m in os.environ.get("GALU_EXPERIMENTS", "").split(","))
    ):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"GALU_EXPERIMENTS names {module!r}, which cannot be imported ({exc}); "
                "check the module path and PYTHONPATH."
            ) from exc
    return dict(sorted(_REGISTRY.items()))


def get_experiment(name: str) -> type[Experiment]:
    known = experiments()
    if name not in known:
        raise ConfigError(f"unknown experiment {name!r}; valid experiments: {', '.join(known)}.")
    return known[name]
