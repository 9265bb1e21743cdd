"""Memorization of random labels (Fiat, Malach & Shalev-Shwartz 2019, experiment 1).

``X ~ N(0, I_d)`` (m × d), ``y ~ N(0, 1)`` independent of ``X``. Four one-hidden-layer models of
width ``k`` fit the training set:

``relu``           ReLU network (no bias, trained readout) trained by minibatch Adam;
``galu``           shallow GaLU (readout absorbed, linear in its weights) trained by Adam, with
                   the *same* random gates as ``galu-exact`` so the two are directly comparable;
``galu-exact``     the closed-form minimum-norm least-squares fit of that GaLU;
``galu-exact-hc``  the closed form after hill climbing over the gates.

For ``kd < m`` the exact fit leaves the projection of ``y`` on an ``(m − kd)``-dimensional
complement, so its expected training MSE is ``1 − kd/m``; it interpolates at ``kd = m``.
ReLU networks adapt their gates during training and end below that line.
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
from galu.experiments.config import BaseConfig
from galu.nn import ReLUNet, ShallowGaLU
from galu.seeding import derive_seed, generator
from galu.solvers import fit_galu, hill_climb, sample_gate_vectors
from galu.train import train_ensemble

Model = Literal["relu", "galu", "galu-exact", "galu-exact-hc"]
MODELS: tuple[str, ...] = ("relu", "galu", "galu-exact", "galu-exact-hc")


@dataclass(frozen=True)
class MemorizationConfig(BaseConfig):
    """Grid and training budget; only points with ``k·d <= max_ratio·m`` are run."""

    m: tuple[int, ...] = (256,)  # training samples
    d: tuple[int, ...] = (16,)  # input dimension
    k: tuple[int, ...] = (2, 4, 8, 12, 16)  # hidden width
    models: tuple[Model, ...] = MODELS  # type: ignore[assignment]
    max_ratio: float = 1.0  # keep points with kd/m <= max_ratio (the paper: 1)
    steps: int = 4000  # Adam steps for the gradient-trained models
    lr: float = 1e-2  # Adam learning rate
    batch_size: int = 128  # minibatch size
    hill_climb_steps: int = 64  # gate proposals for galu-exact-hc (the paper: 512)
    ridge: float = 0.0  # 0: minimum-norm least squares, as in the paper
    repeats: int = 4  # seeds per point (the paper: 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("m", "d", "k"):
            values = getattr(self, key)
            if not values or any(v < 1 for v in values):
                raise ValueError(f"`{key}` (={values!r}) must list integers >= 1.")
        if not self.models:
            raise ValueError(f"`models` is empty; choose from {MODELS}.")
        for name, value in (("steps", self.steps), ("batch_size", self.batch_size)):
            if value < 1:
                raise ValueError(f"`{name}` (={value!r}) must be >= 1.")
        if self.hill_climb_steps < 0:
            raise ValueError(f"`hill_climb_steps` (={self.hill_climb_steps!r}) must be >= 0.")
        if not self.lr > 0:
            raise ValueError(f"`lr` (={self.lr!r}) must be > 0.")
        if not (math.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"`ridge` (={self.ridge!r}) must be a finite number >= 0.")
        if not self.max_ratio > 0:
            raise ValueError(f"`max_ratio` (={self.max_ratio!r}) must be > 0.")
        if not any(k * d <= self.max_ratio * m for m in self.m for d in self.d for k in self.k):
            raise ValueError(
                f"the grid is empty: no (m, d, k) has k·d <= max_ratio·m (={self.max_ratio!r}·m);"
                " lower `k` or `d`, or raise `max_ratio`."
            )


PRESETS: dict[str, dict[str, Any]] = {
    # Seconds: the test suite runs this end to end.
    "smoke": dict(m=(64,), d=(8,), k=(2, 4, 8), repeats=2, steps=300, hill_climb_steps=8),
    # The demo: under 3 minutes on 2 cores, and already shows the result.
    "quick": dict(
        m=(256,),
        d=(8, 16),
        k=(2, 4, 6, 8, 12, 16, 24, 32),
        repeats=4,
        steps=4000,
        lr=1e-2,
        hill_climb_steps=64,
    ),
    # The authors' grid and training budget (hours on a CPU).
    "paper": dict(
        m=(256, 512, 768, 1024),
        d=(8, 16, 24, 32),
        k=(8, 16, 24, 32),
        repeats=16,
        steps=100_000,
        lr=1e-3,
        batch_size=128,
        hill_climb_steps=512,
    ),
}


@register
class Memorization(SeedBatched):
    name = "memorization"
    summary = "Training MSE on random labels vs kd/m: ReLU, GaLU (Adam), exact GaLU, hill climbing"
    Config = MemorizationConfig
    presets = PRESETS
    config: MemorizationConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [
            dict(m=m, d=d, k=k, model=model)
            for m in c.m
            for d in c.d
            for k in c.k
            if k * d <= c.max_ratio * m
            for model in c.models
        ]

    # ----------------------------------------------------------------- one point
    def _data(self, m: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return random_regression(m, d, generator=generator(seed, "data", m, d))

    def _gates(self, k: int, d: int, seed: int, m: int) -> torch.Tensor:
        return sample_gate_vectors(k, d, generator=generator(seed, "gates", m, k, d))

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        m, d, k, model = params["m"], params["d"], params["k"], params["model"]
        c = self.config
        data = {s: self._data(m, d, s) for s in seeds}
        out: dict[int, list[Row]] = {}
        if model in ("galu-exact", "galu-exact-hc"):
            for s in seeds:
                X, y = data[s]
                U = self._gates(k, d, s, m)
                if model == "galu-exact":
                    fit = fit_galu(X, y, U, ridge=c.ridge)
                    extra = []
                else:
                    hc = hill_climb(
                        X,
                        y,
                        U,
                        steps=c.hill_climb_steps,
                        ridge=c.ridge,
                        generator=generator(s, "hill-climb", m, k, d),
                    )
                    fit = hc.fit
                    extra = [dict(metric="accepted", value=float(hc.accepted))]
                out[s] = [
                    dict(metric="train_mse", value=fit.train_mse),
                    dict(metric="weight_norm", value=fit.weight_norm),
                    *extra,
                ]
            return out
        # Gradient-trained models: every seed in one vectorised pass.
        nets: list[torch.nn.Module] = []
        for s in seeds:
            g = generator(s, "init", model, m, k, d)
            if model == "relu":
                nets.append(ReLUNet(d, k, 1, generator=g))
            else:
                net = ShallowGaLU(d, k, 1, generator=g)
                with torch.no_grad():
                    net.gate_vectors.copy_(self._gates(k, d, s, m))
                nets.append(net)
        X = torch.stack([data[s][0] for s in seeds]).float()  # (E, m, d)
        Y = torch.stack([data[s][1] for s in seeds]).float()[..., None]  # (E, m, 1)
        results = train_ensemble(
            nets,
            X,
            Y,
            seeds=[derive_seed(s, "batches", model, m, k, d) for s in seeds],
            steps=c.steps,
            lr=c.lr,
            batch_size=c.batch_size,
            eval_every=max(1, c.steps // 10),
        )
        for s, res in zip(seeds, results, strict=True):
            out[s] = [dict(metric="train_mse", value=res.final_loss)]
        return out

    # ----------------------------------------------------------------- outputs
    @staticmethod
    def _mse(table: pd.DataFrame) -> pd.DataFrame:
        t = table[table["metric"] == "train_mse"].copy()
        t["kd/m"] = (t["k"] * t["d"] / t["m"]).round(4)
        return t

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Mean training MSE per model against kd/m, next to the ``1 − kd/m`` line."""
        t = self._mse(table)
        wide = t.pivot_table(index="kd/m", columns="model", values="value", aggfunc="mean")
        order = [mo for mo in MODELS if mo in wide.columns]
        wide = wide[order]
        wide.insert(0, "1 - kd/m", [max(0.0, 1 - r) for r in wide.index])
        return wide.reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self._mse(table)
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=130)
        ratios = sorted(t["kd/m"].unique())
        line_x = [0.0, *ratios] if ratios else [0.0, 1.0]
        ax.plot(line_x, [max(0.0, 1 - r) for r in line_x], "k--", lw=1.2, label="1 − kd/m")
        styles = {
            "relu": ("C3", "o"),
            "galu": ("C0", "s"),
            "galu-exact": ("C2", "^"),
            "galu-exact-hc": ("C1", "D"),
        }
        for model in [mo for mo in MODELS if mo in set(t["model"])]:
            color, marker = styles[model]
            # Adam-trained GaLU sits on its closed form: draw it hollow and dotted to stay visible.
            hollow = dict(mfc="none", ls=":", ms=7) if model == "galu" else dict(ms=4)
            plot_mean_sd(
                ax,
                t[t["model"] == model],
                "kd/m",
                "value",
                color=color,
                marker=marker,
                lw=1.2,
                label=model,
                **hollow,
            )
        c = self.config
        ax.set_xlabel("kd / m  (trainable parameters / samples)")
        ax.set_ylabel("training MSE (labels ~ N(0, 1))")
        ax.set_title(
            f"Memorization of random labels — m ∈ {list(c.m)}, d ∈ {list(c.d)}, {c.repeats} seeds",
            fontsize=9,
        )
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0.0, top=max(1.05, float(t["value"].max()) * 1.05))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return [save_figure(fig, fig_dir / "memorization.png")]
