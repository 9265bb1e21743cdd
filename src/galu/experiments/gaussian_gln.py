"""Gaussian Gated Linear Networks (Budden et al. 2020; ``science/gln.md``): regression.

``ggln-regression`` runs three things on the same data:

* scikit-learn's diabetes (442 × 10; a seeded 80/20 split, features and target standardised
  with the training statistics): the GGLN after ``passes`` online passes beside ridge regression
  (its penalty chosen by leave-one-out) and an MLP (Adam, full batch, a fixed budget);
* a heteroscedastic stream ``y = sin(3x) + σ(x)·ε`` with ``σ(x) = 0.05 + 0.45·(x + 1)/2`` on
  ``x ~ U[−1, 1]``: test MSE and how the predicted variance tracks the true ``σ²(x)``;
* the step-size range where the GGLN diverges on diabetes, with the mean guard and without it
  (``mean_bound = 1e30``): final test MSE and whether the run diverged.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from galu.experiments.base import Experiment, Row, plot_mean_sd, register, save_figure
from galu.experiments.config import BaseConfig, Count, Counts, NonNegativeInt, Positive, Positives
from galu.experiments.gln import _check_sizes, _mean_table, _plt
from galu.gln import GaussianGLN, HalfSpaces
from galu.seeding import derive_seed, generator

UNGUARDED = 1e30


@dataclass(frozen=True)
class GGLNRegressionConfig(BaseConfig):
    """The GGLN, its step sizes, and the baselines' budgets."""

    layer_sizes: Counts = (32, 32, 1)
    context_dim: NonNegativeInt = 4
    lr: Positive = 0.003  # diabetes and the stream (0.01 diverges: see divergence_lrs)
    passes: Count = 10  # over diabetes' 353 training examples
    stream: Count = 20000  # heteroscedastic stream length
    offset_scale: Positive = 1.0  # hyperplane offsets ~ N(0, offset_scale²) (DeepMind: 0.05)
    divergence_lrs: Positives = (0.001, 0.003, 0.01, 0.03, 0.1)
    mlp_hidden: Count = 64
    mlp_steps: Count = 500  # full-batch Adam steps (weight decay 1e-3)
    mlp_lr: Positive = 1e-3
    mean_bound: Positive = 10.0  # the guard (targets are standardised)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_sizes(self.layer_sizes)


def diabetes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    perm = np.random.default_rng(derive_seed(seed, "diabetes-split")).permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = perm[:cut], perm[cut:]
    mu, sd = X[tr].mean(0), X[tr].std(0)
    ym, ys = y[tr].mean(), y[tr].std()
    return (X[tr] - mu) / sd, (y[tr] - ym) / ys, (X[te] - mu) / sd, (y[te] - ym) / ys


def noise_sd(x: np.ndarray) -> np.ndarray:
    return 0.05 + 0.45 * (x + 1) / 2


def hetero(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(derive_seed(seed, "hetero", n))
    x = rng.uniform(-1, 1, size=(n + 2000, 1))
    y = np.sin(3 * x[:, 0]) + noise_sd(x[:, 0]) * rng.standard_normal(len(x))
    return x[:n], y[:n], x[n:], y[n:]


@register
class GGLNRegression(Experiment):
    name = "ggln-regression"
    summary = "Gaussian GLN: diabetes, a heteroscedastic stream, and where it diverges"
    Config = GGLNRegressionConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            layer_sizes=(8, 1), passes=2, stream=2000, divergence_lrs=(0.01, 1.0), mlp_steps=100
        ),
        "quick": dict(repeats=3),
        "paper": dict(repeats=5, stream=100000, passes=40),
    }
    config: GGLNRegressionConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        pts: list[dict[str, Any]] = [
            dict(task="diabetes", model=m) for m in ("ggln", "ridge", "mlp")
        ]
        pts += [dict(task="hetero", model=m) for m in ("ggln", "ridge", "mlp")]
        pts += [
            dict(task="divergence", model="ggln", lr=lr, guard=g)
            for lr in c.divergence_lrs
            for g in (True, False)
        ]
        return pts

    def _ggln(self, d: int, seed: int, lr: float, bound: float) -> GaussianGLN:
        c = self.config
        # One-dimensional side information needs offsets spread over its range: with
        # DeepMind's N(0, 0.05²) every hyperplane of x ~ U[−1, 1] would sit near 0.
        hs = HalfSpaces.sample(
            (1, sum(c.layer_sizes)),
            d,
            c.context_dim,
            offset_scale=c.offset_scale,
            dtype=torch.float64,
            generator=generator(seed, "ggln-hyperplanes", d),
        )
        return GaussianGLN(
            d,
            d,
            c.layer_sizes,
            context_dim=c.context_dim,
            lr=lr,
            mean_bound=bound,
            hyperplanes=hs,
            dtype=torch.float64,
        )

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        task, model = params["task"], params["model"]
        if task == "hetero":
            X, y, Xt, yt = hetero(seed, c.stream)
            passes = 1
        else:
            X, y, Xt, yt = diabetes(seed)
            passes = c.passes
        if model == "ridge":
            from sklearn.linear_model import RidgeCV

            pred = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, y).predict(Xt)
            return [dict(metric="test_mse", value=float(((pred - yt) ** 2).mean()))]
        if model == "mlp":
            torch.manual_seed(derive_seed(seed, "ggln-mlp"))
            net = nn.Sequential(
                nn.Linear(X.shape[1], c.mlp_hidden), nn.ReLU(), nn.Linear(c.mlp_hidden, 1)
            ).double()
            opt = torch.optim.Adam(net.parameters(), lr=c.mlp_lr, weight_decay=1e-3)
            Xa, ya = torch.from_numpy(X), torch.from_numpy(y)
            for _ in range(c.mlp_steps):  # full batch
                opt.zero_grad()
                ((net(Xa)[:, 0] - ya) ** 2).mean().backward()
                opt.step()
            with torch.no_grad():
                pred = net(torch.from_numpy(Xt))[:, 0].numpy()
            return [dict(metric="test_mse", value=float(((pred - yt) ** 2).mean()))]
        lr = params.get("lr", c.lr)
        bound = c.mean_bound if params.get("guard", True) else UNGUARDED
        gg = self._ggln(X.shape[1], seed, lr, bound)
        Xa = torch.from_numpy(X)
        guarded = 0
        for _ in range(passes):
            guarded += gg.update(Xa, Xa, torch.from_numpy(y)).guarded
        mu, s2 = gg.predict(torch.from_numpy(Xt), torch.from_numpy(Xt))
        m, v = mu[:, 0].numpy(), s2[:, 0].numpy()
        mse = float(((m - yt) ** 2).mean())
        nll = float((0.5 * np.log(2 * np.pi * v) + (yt - m) ** 2 / (2 * v)).mean())
        rows: list[Row] = [
            dict(metric="test_mse", value=mse),
            dict(metric="test_nll", value=nll),
            dict(metric="guarded", value=guarded),
        ]
        if task == "divergence":
            diverged = not np.isfinite(mse) or mse > 10 * float(yt.var())
            rows.append(dict(metric="diverged", value=float(diverged)))
        if task == "hetero":
            true_var = noise_sd(Xt[:, 0]) ** 2
            rows.append(dict(metric="var_corr", value=float(np.corrcoef(v, true_var)[0, 1])))
            rows.append(dict(metric="var_ratio", value=float(np.median(v / true_var))))
            edges = np.linspace(-1, 1, 11)
            for a, b in itertools.pairwise(edges):
                sel = (Xt[:, 0] >= a) & (Xt[:, 0] < b)
                mid = float((a + b) / 2)
                rows.append(dict(metric="pred_var", x=mid, value=float(v[sel].mean())))
                rows.append(
                    dict(metric="true_var", x=mid, value=float(noise_sd(np.array(mid)) ** 2))
                )
        return rows

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        keys = [k for k in ("task", "model", "lr", "guard") if k in table]
        return _mean_table(table, keys, ["test_mse", "test_nll", "var_corr", "diverged", "guarded"])

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        plt = _plt()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=120)
        for ax, task in zip(axes[:2], ("diabetes", "hetero"), strict=False):
            part = table[(table.task == task) & (table.metric == "test_mse")]
            g = part.groupby("model").value
            models = [m for m in ("ggln", "ridge", "mlp") if m in g.groups]
            ax.bar(
                range(len(models)),
                g.mean().reindex(models).values,
                yerr=g.std().reindex(models).fillna(0).values,
                color="C0",
            )
            ax.set_xticks(range(len(models)), models)
            ax.set_ylabel("test MSE (standardised target)" if task == "diabetes" else "test MSE")
            ax.set_title(task, fontsize=9)
            ax.grid(alpha=0.3, axis="y")
        ax = axes[1].inset_axes([0.55, 0.5, 0.43, 0.45])
        for i, metric in enumerate(("pred_var", "true_var")):
            part = table[(table.task == "hetero") & (table.metric == metric)]
            plot_mean_sd(ax, part, "x", "value", label=metric, color=f"C{i + 1}", marker=".")
        ax.set_title("σ²(x)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
        ax = axes[2]
        div = table[(table.task == "divergence") & (table.metric == "test_mse")].copy()
        for i, (guard, grp) in enumerate(div.groupby("guard")):
            grp = grp.assign(value=grp.value.clip(upper=1e6).fillna(1e6))
            plot_mean_sd(
                ax,
                grp,
                "lr",
                "value",
                marker="os"[i],
                color=f"C{i}",
                label="mean guard on" if guard else "no guard",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("η")
        ax.set_ylabel("diabetes test MSE (capped at 1e6)")
        ax.set_title("divergence vs η", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        c = self.config
        fig.suptitle(
            f"ggln-regression: Gaussian GLN {list(c.layer_sizes)}, C={c.context_dim}, η={c.lr:g}",
            fontsize=9,
        )
        return [save_figure(fig, fig_dir / "ggln_regression.png")]
