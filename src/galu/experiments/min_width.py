"""Minimal width for random vector targets (Fiat, Malach & Shalev-Shwartz 2019, experiment 2).

``X ~ N(0, I_d)`` (m × d), targets ``Y ~ N(0, I_{d'})`` independent of ``X``. For each output
dimension ``d'`` a binary search over the hidden width ``k ∈ [1, k_max]`` finds the smallest
one-hidden-layer network whose training MSE falls below ``threshold`` (0.3 in the paper):

``relu``   ``x ↦ B relu(Ax + a) + b`` trained by Adam;
``galu0``  ``x ↦ B ((Ax + a) ⊙ 1[Ux ≥ 0]) + b`` with fixed random gates from the input, the same
           trained parameters (first layer and readout, biases on).

The reference line counts parameters: ``k (d + d') = m d'`` (as many trainable weights as
target numbers), i.e. ``k = m d' / (d + d')``. The paper reports that the two models need
about the same width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from galu.data import random_regression
from galu.experiments.base import Row, SeedBatched, plot_mean_sd, register, save_figure
from galu.experiments.config import BaseConfig, Count, Counts, Positive, PositiveFinite, Some
from galu.nn import GaLU0, ReLUNet
from galu.seeding import derive_seed, generator
from galu.train import train_ensemble

Model = Literal["relu", "galu0"]
MODELS: tuple[str, ...] = ("relu", "galu0")


@dataclass(frozen=True)
class MinWidthConfig(BaseConfig):
    """Grid, search range and training budget of each trial network."""

    m: Count = 128  # training samples
    d: Count = 8  # input dimension
    d_out: Counts = (1, 2, 4, 8, 16)  # target dimensions d'
    models: Some[Model] = MODELS  # type: ignore[assignment]
    threshold: PositiveFinite = 0.3  # "memorized": training MSE below this
    k_max: Count = 64  # search k in [1, k_max]
    steps: Count = 1500  # Adam steps per trial network (stops early at the threshold)
    lr: Positive = 1e-2  # Adam learning rate
    batch_size: Count = 128  # minibatch size
    repeats: Count = 3  # seeds (the paper: 8)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(m=64, d=8, d_out=(1, 4), k_max=16, steps=300, repeats=2, batch_size=64),
    "quick": dict(),
    "paper": dict(
        m=1024,
        d=32,
        d_out=(1, 8, 16, 32, 64, 96, 128),
        k_max=512,
        steps=100_000,
        lr=1e-3,
        batch_size=128,
        repeats=8,
    ),
}


@register
class MinWidth(SeedBatched):
    name = "min-width"
    summary = "Smallest width reaching training MSE < 0.3 on random vector targets: ReLU vs GaLU0"
    Config = MinWidthConfig
    presets = PRESETS
    config: MinWidthConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(m=c.m, d=c.d, d_out=o, model=mo) for o in c.d_out for mo in c.models]

    def _data(self, m: int, d: int, d_out: int, seed: int):
        X, Y = random_regression(
            m, d, outputs=d_out, generator=generator(seed, "data", m, d, d_out)
        )
        return X.float(), Y.float()

    def _trial(self, params: dict[str, Any], k: int, seeds: list[int]) -> dict[int, bool]:
        """Train width-``k`` networks for ``seeds`` together; which reached the threshold."""
        c = self.config
        m, d, d_out, model = params["m"], params["d"], params["d_out"], params["model"]
        cls = ReLUNet if model == "relu" else GaLU0
        nets = [
            cls(d, k, d_out, bias=True, generator=generator(s, "init", model, m, d, d_out, k))
            for s in seeds
        ]
        data = [self._data(m, d, d_out, s) for s in seeds]
        results = train_ensemble(
            nets,
            torch.stack([x for x, _ in data]),
            torch.stack([y for _, y in data]),
            seeds=[derive_seed(s, "batches", model, m, d, d_out, k) for s in seeds],
            steps=c.steps,
            lr=c.lr,
            batch_size=c.batch_size,
            target_loss=c.threshold,
            eval_every=max(1, min(100, c.steps // 10)),
        )
        return {s: r.reached_target for s, r in zip(seeds, results, strict=True)}

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        """Binary searches for all seeds in lockstep; seeds probing the same width train in one
        vectorised pass (each exactly as it would alone)."""
        k_max = self.config.k_max
        lo = dict.fromkeys(seeds, 1)
        hi = dict.fromkeys(seeds, k_max)
        tried: dict[int, dict[int, bool]] = {s: {} for s in seeds}
        while True:
            probes: dict[int, list[int]] = {}
            for s in seeds:
                if lo[s] < hi[s]:
                    probes.setdefault((lo[s] + hi[s]) // 2, []).append(s)
                elif lo[s] not in tried[s]:  # the search ended at a width never trained
                    probes.setdefault(lo[s], []).append(s)
            if not probes:
                break
            for k, group in sorted(probes.items()):
                for s, ok in self._trial(params, k, group).items():
                    tried[s][k] = ok
                    if lo[s] < hi[s]:
                        if ok:
                            hi[s] = k
                        else:
                            lo[s] = k + 1
        out: dict[int, list[Row]] = {}
        for s in seeds:
            found = tried[s][lo[s]]
            out[s] = [
                dict(metric="min_k", value=float(lo[s]) if found else math.nan),
                dict(metric="trials", value=float(len(tried[s]))),
            ]
        return out

    # ----------------------------------------------------------------- outputs
    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        t = table[table["metric"] == "min_k"]
        wide = t.pivot_table(index="d_out", columns="model", values="value", aggfunc="mean")
        wide = wide[[mo for mo in MODELS if mo in wide.columns]]
        c = self.config
        wide.insert(0, "m·d'/(d+d')", [c.m * o / (c.d + o) for o in wide.index])
        return wide.reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        t = table[table["metric"] == "min_k"]
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=130)
        outs = sorted(t["d_out"].unique())
        grid = torch.linspace(min(outs), max(outs), 100).tolist()
        ax.plot(
            grid,
            [c.m * o / (c.d + o) for o in grid],
            "k--",
            lw=1.2,
            label="k = m·d′/(d + d′) (parameters = targets)",
        )
        for model, (color, marker) in {"relu": ("C3", "o"), "galu0": ("C0", "s")}.items():
            plot_mean_sd(
                ax,
                t[t["model"] == model],
                "d_out",
                "value",
                color=color,
                marker=marker,
                lw=1.2,
                ms=5,
                label=model,
            )
        ax.axhline(c.k_max, color="0.6", lw=0.8, ls=":", label=f"search limit k_max = {c.k_max}")
        ax.set_xlabel("target dimension d′")
        ax.set_ylabel(f"smallest k with training MSE < {c.threshold}")
        ax.set_title(
            f"Minimal width for random vector targets — m = {c.m}, d = {c.d}, {c.repeats} seeds",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return [save_figure(fig, fig_dir / "min_width.png")]
