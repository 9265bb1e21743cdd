"""Memorization of random labels (Fiat, Malach & Shalev-Shwartz 2019, experiment 1).

``X ~ N(0, I_d)`` (m × d), ``y ~ N(0, 1)`` independent of ``X``. Four one-hidden-layer models of
width ``k`` fit the training set:

``relu``           ReLU network (no bias, trained readout) trained by minibatch Adam;
``galu-readout``   the authors' Adam-trained GaLU: ``Σ_i a_i (<w_i, x> + b_i) 1[<u_i, x> ≥ 0] + c``
                   with a separate trained readout ``a`` and biases (bilinear in ``(a, w)``);
``galu``           galu's folded GaLU ``Σ_i <W_i, x> 1[<u_i, x> ≥ 0]`` (readout absorbed, linear
                   in its weights) trained by Adam;
``galu-exact``     the closed-form minimum-norm least-squares fit of the folded GaLU;
``galu-exact-hc``  the closed form after hill climbing over the gates.

All GaLU models of one seed use the *same* random gates, so they are directly comparable.

For ``kd < m`` the exact fit leaves the projection of ``y`` on an ``(m − kd)``-dimensional
complement, so its expected training MSE is ``1 − kd/m``. At ``kd = m`` it interpolates unless a
training point has all ``k`` gates closed (its row of ``Ψ`` is zero, about ``m·2^−k`` such
points): the exact rows report that count as ``closed_points``.

With ``group_widths`` (on in the ``paper`` preset) the gradient-trained models of one ``m``
train every ``(d, k)`` of the grid and every seed in one vectorised pass: each network is
zero-padded to the largest ``(d, k)`` (:func:`galu.train.embed_zero_padded`), and its padded
weights stay exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import torch

from galu.data import random_regression
from galu.experiments.base import Row, SeedBatched, plot_mean_sd, register, save_figure
from galu.experiments.config import (
    BaseConfig,
    Count,
    Counts,
    NonEmpty,
    NonNegativeFinite,
    NonNegativeInt,
    Positive,
)
from galu.gates import Gate
from galu.nn import DeepGaLU, ReLUNet, ShallowGaLU
from galu.seeding import derive_seed, generator
from galu.solvers import fit_galu, hill_climb, sample_gate_vectors
from galu.train import embed_zero_padded, train_ensemble

Model = Literal["relu", "galu-readout", "galu", "galu-exact", "galu-exact-hc"]
MODELS: tuple[str, ...] = ("relu", "galu-readout", "galu", "galu-exact", "galu-exact-hc")
GRADIENT_MODELS = ("relu", "galu-readout", "galu")


@dataclass(frozen=True)
class MemorizationConfig(BaseConfig):
    """Grid and training budget; only points with ``k·d <= max_ratio·m`` are run."""

    m: Counts = (256,)  # training samples
    d: Counts = (16,)  # input dimension
    k: Counts = (2, 4, 8, 12, 16)  # hidden width
    models: Annotated[tuple[Model, ...], NonEmpty] = ("relu", "galu", "galu-exact", "galu-exact-hc")
    max_ratio: Positive = 1.0  # keep points with kd/m <= max_ratio (the paper: 1)
    steps: Count = 4000  # Adam steps for the gradient-trained models
    lr: Positive = 1e-2  # Adam learning rate
    batch_size: Count = 128  # minibatch size
    hill_climb_steps: NonNegativeInt = 64  # gate proposals for galu-exact-hc (the paper: 512)
    ridge: NonNegativeFinite = 0.0  # 0: minimum-norm least squares, as in the paper
    repeats: Count = 4  # seeds per point (the paper: 16)
    group_widths: bool = False  # train every (d, k) of one m together, zero-padded

    def __post_init__(self) -> None:
        super().__post_init__()
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
    # The authors' grid, budget and models (galu-readout is their Adam-trained GaLU).
    "paper": dict(
        m=(256, 512, 768, 1024),
        d=(8, 16, 24, 32),
        k=(8, 16, 24, 32),
        models=MODELS,
        group_widths=True,
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
        out: list[dict[str, Any]] = []
        for m in c.m:
            for model in c.models:
                if c.group_widths and model in GRADIENT_MODELS:
                    out.append(dict(m=m, model=model))  # rows carry each (d, k)
                    continue
                out.extend(dict(m=m, d=d, k=k, model=model) for d, k in self._widths(m))
        return out

    def _widths(self, m: int) -> list[tuple[int, int]]:
        c = self.config
        return [(d, k) for d in c.d for k in c.k if k * d <= c.max_ratio * m]

    # ----------------------------------------------------------------- one point
    def _data(self, m: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return random_regression(m, d, generator=generator(seed, "data", m, d))

    def _gates(self, k: int, d: int, seed: int, m: int) -> torch.Tensor:
        return sample_gate_vectors(k, d, generator=generator(seed, "gates", m, k, d))

    def _network(
        self, model: str, m: int, d: int, k: int, seed: int, *, closed: bool = False
    ) -> torch.nn.Module:
        """The network of one (model, m, d, k, seed), initialised from that seed alone.
        ``closed``: the folded GaLU's step gate gives 0 at ``z = 0`` (for padding, below)."""
        g = generator(seed, "init", model, m, k, d)
        if model == "relu":
            return ReLUNet(d, k, 1, generator=g)
        net: torch.nn.Module
        if model == "galu-readout":
            deep = DeepGaLU(d, k, 1, bias=True, generator=g)
            net, buffer = deep, deep.get_buffer("layers.0.gate_vectors")
        else:
            shallow = ShallowGaLU(d, k, 1, gate=Gate(at_zero=0.0) if closed else None, generator=g)
            net, buffer = shallow, shallow.gate_vectors
        with torch.no_grad():
            buffer.copy_(self._gates(k, d, seed, m))
        return net

    def _exact_rows(self, model: str, m: int, d: int, k: int, seed: int) -> list[Row]:
        c = self.config
        X, y = self._data(m, d, seed)
        U = self._gates(k, d, seed, m)
        extra: list[Row] = []
        if model == "galu-exact":
            fit = fit_galu(X, y, U, ridge=c.ridge)
            closed = int((Gate()(X.double() @ U.T).sum(dim=1) == 0).sum())
            extra = [dict(metric="closed_points", value=float(closed))]
        else:
            hc = hill_climb(
                X,
                y,
                U,
                steps=c.hill_climb_steps,
                ridge=c.ridge,
                generator=generator(seed, "hill-climb", m, k, d),
            )
            fit = hc.fit
            extra = [dict(metric="accepted", value=float(hc.accepted))]
        return [
            dict(metric="train_mse", value=fit.train_mse),
            dict(metric="weight_norm", value=fit.weight_norm),
            *extra,
        ]

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        m, model = params["m"], params["model"]
        if model not in GRADIENT_MODELS:
            d, k = params["d"], params["k"]
            return {s: self._exact_rows(model, m, d, k, s) for s in seeds}
        widths = self._widths(m) if "d" not in params else [(params["d"], params["k"])]
        return self._train(model, m, widths, seeds)

    def _train(
        self, model: str, m: int, widths: list[tuple[int, int]], seeds: list[int]
    ) -> dict[int, list[Row]]:
        """Adam on every (width, seed) in one vectorised pass. With more than one width, each
        network is zero-padded to the largest (d, k): inputs get zero features, and a padded
        hidden unit has zero weights, bias and readout (the folded GaLU's also a closed gate),
        so its gradients, and therefore its Adam steps, are exactly zero."""
        c = self.config
        d_max, k_max = max(d for d, _ in widths), max(k for _, k in widths)
        padded = len(widths) > 1
        members = [(d, k, s) for d, k in widths for s in seeds]
        nets, Xs, Ys = [], [], []
        for d, k, s in members:
            net = self._network(model, m, d, k, s, closed=padded)
            X, y = self._data(m, d, s)
            if padded:
                if model == "galu" and bool((X @ self._gates(k, d, s, m).T == 0).any()):
                    raise RuntimeError("a gate pre-activation is exactly 0; padding would move it")
                big = self._network(model, m, d_max, k_max, s, closed=True)
                net = embed_zero_padded(net, big)
                X = torch.nn.functional.pad(X, (0, d_max - d))
            nets.append(net)
            Xs.append(X)
            Ys.append(y)
        results = train_ensemble(
            nets,
            torch.stack(Xs).float(),
            torch.stack(Ys).float()[..., None],
            seeds=[derive_seed(s, "batches", model, m, k, d) for d, k, s in members],
            steps=c.steps,
            lr=c.lr,
            batch_size=c.batch_size,
            eval_every=max(1, c.steps // 10),
        )
        out: dict[int, list[Row]] = {s: [] for s in seeds}
        for (d, k, s), res in zip(members, results, strict=True):
            out[s].append(dict(d=d, k=k, metric="train_mse", value=res.final_loss))
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
            "galu-readout": ("C4", "v"),
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
