"""Depth with fixed gates: helps, then hurts (Lakshminarayanan & Singh 2020, ``science/dgn.md``).

A deep gated network with fixed random gates (FRNPF-II, i.e. deep GaLU) of depth ``L`` and width
``w`` fits ``m`` random ±1 labels on inputs drawn uniformly on the unit sphere. Its squared-loss
gradient dynamics are governed by the neural path kernel ``H = (XXᵀ) ⊙ Π_l G_l G_lᵀ``; per depth
and seed we record, for the normalised kernel ``Ĥ = H / mean(diag H)``:

``eig_min``, ``eig_max``, ``cond``   its extreme eigenvalues and condition number;
``offdiag``                          the mean |Ĥ_ij| off the diagonal (inputs look more alike
                                     when it is large: bad conditioning);
``diag_cv``                          the coefficient of variation of diag H across samples
                                     (its growth with depth is the "variance" that hurts);
``train_loss``                       the training MSE of the value network after a fixed
                                     budget of full-batch Adam steps, gates frozen.

The paper's claim: more depth first makes ``Ĥ`` better conditioned (``offdiag`` falls, since
each layer multiplies by ``G_l G_lᵀ/w``, whose entries are below 1 off the diagonal) and training
faster; beyond a point the diagonal's spread grows and training gets worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from galu.experiments.base import Experiment, Row, plot_mean_sd, register, save_figure
from galu.experiments.config import BaseConfig, Count, Counts, Positive
from galu.nn import DGN
from galu.paths import model_path_kernel
from galu.seeding import derive_seed, generator
from galu.train import train

METRICS = ("eig_min", "eig_max", "cond", "offdiag", "diag_cv", "train_loss")


@dataclass(frozen=True)
class DGNDepthConfig(BaseConfig):
    """Data size, widths and depths, and the training budget."""

    m: Count = 256  # training samples
    d: Count = 16  # input dimension
    width: Count = 32  # units per gated layer
    depths: Counts = (1, 2, 4, 8, 16, 32, 48)
    steps: Count = 100  # full-batch Adam steps on the value network
    lr: Positive = 1e-3
    repeats: Count = 3


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(m=32, d=8, width=16, depths=(1, 2, 4), steps=50, repeats=2),
    # ~10 s (one thread); a budget short enough that depth changes how far training gets.
    "quick": dict(m=256, d=16, width=32, depths=(1, 2, 4, 8, 16, 32, 48), steps=100, repeats=3),
    "paper": dict(
        m=256,
        d=32,
        width=128,
        depths=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20),
        steps=5000,
        repeats=5,
    ),
}


@register
class DGNDepth(Experiment):
    name = "dgn-depth"
    summary = "Fixed random gates: path-kernel conditioning and training loss vs depth"
    Config = DGNDepthConfig
    presets = PRESETS
    config: DGNDepthConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(m=c.m, d=c.d, width=c.width, depth=L) for L in c.depths]

    def _data(self, m: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator(seed, "data", m, d)
        X = torch.randn(m, d, generator=g, dtype=torch.float64)
        X = X / X.norm(dim=1, keepdim=True)
        y = torch.randint(0, 2, (m,), generator=g).double() * 2 - 1
        return X, y

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        m, d, w, L = params["m"], params["d"], params["width"], params["depth"]
        X, y = self._data(m, d, seed)
        net = DGN(d, (w,) * L, 1, variant="frnpf-ii", dtype=torch.float64,
                  generator=generator(seed, "init", m, d, w, L))  # fmt: skip
        H = model_path_kernel(net, X)
        diag = H.diagonal()
        Hn = H / diag.mean()
        eig = torch.linalg.eigvalsh(Hn)
        off = (Hn - torch.diag(Hn.diagonal())).abs().sum() / (m * (m - 1))
        res = train(net, X, y, seed=derive_seed(seed, "batches", m, d, w, L), steps=c.steps,
                    lr=c.lr, batch_size=m, eval_every=max(1, c.steps // 10))  # fmt: skip
        values = dict(
            eig_min=float(eig[0]),
            eig_max=float(eig[-1]),
            cond=float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf"),
            offdiag=float(off),
            diag_cv=float(diag.std() / diag.mean()),
            train_loss=res.final_loss,
        )
        return [dict(metric=k, value=v) for k, v in values.items()]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Mean of each metric per depth."""
        wide = table.pivot_table(index="depth", columns="metric", values="value", aggfunc="mean")
        return wide[[k for k in METRICS if k in wide.columns]].reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=120)
        panels = [
            (("cond",), "condition number of Ĥ", True),
            (("offdiag", "diag_cv"), "kernel shape", False),
            (("train_loss",), f"training MSE after {c.steps} Adam steps", True),
        ]
        for ax, (metrics, title, log) in zip(axes, panels, strict=True):
            for i, metric in enumerate(metrics):
                part = table[table.metric == metric]
                plot_mean_sd(ax, part, "depth", "value", marker="os"[i], color=f"C{i}",
                             label=metric)  # fmt: skip
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("depth L (gated layers)")
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(
            f"Fixed random gates (FRNPF-II), m={c.m}, d={c.d}, width {c.width}, "
            f"{c.repeats} seeds", fontsize=9,
        )  # fmt: skip
        return [save_figure(fig, fig_dir / "dgn_depth.png")]
