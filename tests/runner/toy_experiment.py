"""A tiny registered experiment for sweep tests (loaded through GALU_EXPERIMENTS).

Rows are a deterministic function of (params, seed) computed with torch, so any backend must
reproduce them bit for bit. ``sleep`` slows each point down (for the kill test); a point with
``x == fail_on`` raises while the file named by ``GALU_TOY_FAIL_FILE`` exists (a transient
failure that ``--retry-failed`` can then clear), with ``fail_text`` appended to its message; a
point with ``x == crash_on`` kills its own process (a worker dying in native code or of OOM).
``GALU_TOY_PID_DIR``, when set, names a folder where each point leaves a file named after the
pid of the process that ran it (so a test can find the workers).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from galu.experiments.base import Experiment, register, save_figure
from galu.experiments.config import BaseConfig


@dataclasses.dataclass(frozen=True)
class ToyConfig(BaseConfig):
    x: tuple[int, ...] = (1, 2, 3)
    scale: float = 1.0
    sleep: float = 0.0
    fail_on: int = -1
    fail_text: str = ""
    crash_on: int = -1
    repeats: int = 2


@register
class Toy(Experiment):
    name = "toy"
    summary = "test-only experiment"
    Config = ToyConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "quick": {}}

    def points(self) -> list[dict[str, Any]]:
        return [dict(x=x) for x in self.config.x]

    def run_point(self, params: dict[str, Any], seed: int) -> list[dict[str, Any]]:
        if (
            params["x"] == self.config.fail_on
            and Path(os.environ.get("GALU_TOY_FAIL_FILE", "/nonexistent")).exists()
        ):
            raise ValueError(f"toy failure at x={params['x']}{self.config.fail_text}")
        if params["x"] == self.config.crash_on:
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("GALU_TOY_PID_DIR"):
            (Path(os.environ["GALU_TOY_PID_DIR"]) / str(os.getpid())).touch()
        time.sleep(self.config.sleep)
        g = torch.Generator().manual_seed(seed * 1000 + params["x"])
        a = torch.randn(64, 64, generator=g, dtype=torch.float64)
        value = float((a @ a.T).trace()) * self.config.scale
        return [
            dict(metric="trace", value=value),
            dict(metric="x2", value=params["x"] ** 2 * self.config.scale),
        ]

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(3, 2))
        part = table[table.metric == "x2"].groupby("x")["value"].mean()
        ax.plot(part.index, part.values, "o-")
        return [save_figure(fig, fig_dir / "toy.png")]
