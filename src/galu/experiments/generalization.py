"""Generalization under label noise (Fiat, Malach & Shalev-Shwartz 2019, experiment 3).

Clustered inputs (30 centres in R^30, spread 0.1), one label per centre, label noise ``σ_y``
(:func:`galu.data.synthetic.clustered_task`). One hidden layer of width ``k``:

``relu``        ReLU network trained by Adam (MSE for regression, hinge for classification);
``galu``        galu's folded shallow GaLU (fixed random gates, readout absorbed) trained by Adam,
                same losses;
``galu-readout`` the authors' Adam-trained GaLU: separate trained readout and biases on the same
                fixed gates (:class:`galu.nn.DeepGaLU` with one hidden layer, ``bias=True``);
``galu-exact``  regression only: the closed-form fit of that GaLU along a ridge path
                (:func:`galu.solvers.ridge_path`, one eigendecomposition for every ``λ``);
                ``λ = 0`` is the paper's minimum-norm solution.

Rows: ``train_loss``/``test_loss`` (MSE or hinge), ``test_error`` (classification, 0–1), and for
the exact fits ``weight_norm_sq`` and ``gap`` (test − train MSE), each with its ``ridge``. The
best possible test MSE is ``σ_y²``; the best possible test error is ``σ_y/2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import torch

from galu.data.synthetic import clustered_task
from galu.experiments.base import Row, SeedBatched, plot_mean_sd, register, save_figure
from galu.experiments.config import (
    BaseConfig,
    Bound,
    Count,
    NonNegativeFinite,
    Positive,
    Some,
)
from galu.nn import DeepGaLU, ReLUNet, ShallowGaLU
from galu.seeding import derive_seed, generator
from galu.solvers import ridge_path, sample_gate_vectors
from galu.train import train_ensemble
from galu.train._trainer import Loss

Task = Literal["regression", "classification"]
NoiseLevel = Annotated[float, Bound(ge=0, le=2)]
Model = Literal["relu", "galu", "galu-readout", "galu-exact"]
MODELS: tuple[str, ...] = ("relu", "galu", "galu-readout", "galu-exact")


@dataclass(frozen=True)
class GeneralizationConfig(BaseConfig):
    """Task, noise grid, width and training budget."""

    tasks: Some[Task] = ("regression", "classification")
    noise: Some[NoiseLevel] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # label noise σ_y
    models: Some[Model] = ("relu", "galu", "galu-exact")
    m_train: Count = 1000  # training samples
    m_test: Count = 9000  # test samples
    d: Count = 30  # input dimension
    centres: Count = 30  # cluster centres
    k: Count = 30  # hidden width
    steps: Count = 3000  # Adam steps
    lr: Positive = 1e-2  # Adam learning rate
    batch_size: Count = 128  # minibatch size
    ridges: Some[NonNegativeFinite] = (0.0, 1e-3, 1e-2, 0.1, 1.0, 10.0)  # ridge path of galu-exact
    repeats: Count = 3  # seeds


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        noise=(0.0, 0.5), m_train=200, m_test=400, steps=200, repeats=2, ridges=(0.0, 0.1)
    ),
    "quick": dict(),
    "paper": dict(
        noise=tuple(round(0.1 * i, 1) for i in range(11)),
        models=("relu", "galu-readout", "galu", "galu-exact"),
        steps=100_000,
        lr=1e-3,
        repeats=8,
    ),
}


@register
class Generalization(SeedBatched):
    name = "generalization"
    summary = "Train/test loss under label noise on clustered data; exact GaLU's gap vs ‖W‖²"
    Config = GeneralizationConfig
    presets = PRESETS
    config: GeneralizationConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [
            dict(task=t, noise=s, model=mo)
            for t in c.tasks
            for s in c.noise
            for mo in c.models
            if not (mo == "galu-exact" and t == "classification")  # squared loss only
        ]

    def _data(self, task: str, noise: float, seed: int):
        c = self.config
        return clustered_task(
            c.m_train,
            c.m_test,
            d=c.d,
            n_centres=c.centres,
            label_noise=noise,
            task=task,
            task_generator=generator(seed, "task", task, c.d, c.centres),
            sample_generator=generator(seed, "samples", task, noise, c.m_train, c.m_test),
        )

    def _gates(self, seed: int) -> torch.Tensor:
        c = self.config
        return sample_gate_vectors(c.k, c.d, generator=generator(seed, "gates", c.k, c.d))

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        c = self.config
        task, noise, model = params["task"], params["noise"], params["model"]
        data = {s: self._data(task, noise, s) for s in seeds}
        out: dict[int, list[Row]] = {}
        if model == "galu-exact":
            for s in seeds:
                X, y, Xt, yt = data[s]
                for fit in ridge_path(X, y, self._gates(s), list(c.ridges)):
                    test = float(((fit.predict(Xt) - yt) ** 2).mean())
                    values = dict(
                        train_loss=fit.train_mse,
                        test_loss=test,
                        gap=test - fit.train_mse,
                        weight_norm_sq=fit.weight_norm**2,
                    )
                    out.setdefault(s, []).extend(
                        dict(metric=k, value=v, ridge=fit.ridge) for k, v in values.items()
                    )
            return out
        nets: list[torch.nn.Module] = []
        for s in seeds:
            g = generator(s, "init", model, c.k, c.d)
            if model == "relu":
                nets.append(ReLUNet(c.d, c.k, 1, generator=g))
            elif model == "galu-readout":
                deep = DeepGaLU(c.d, c.k, 1, bias=True, generator=g)
                with torch.no_grad():
                    deep.get_buffer("layers.0.gate_vectors").copy_(self._gates(s))
                nets.append(deep)
            else:
                net = ShallowGaLU(c.d, c.k, 1, generator=g)
                with torch.no_grad():
                    net.gate_vectors.copy_(self._gates(s))
                nets.append(net)
        X = torch.stack([data[s][0] for s in seeds]).float()
        Y = torch.stack([data[s][1] for s in seeds]).float()[..., None]
        loss: Loss = "mse" if task == "regression" else "hinge"
        results = train_ensemble(
            nets,
            X,
            Y,
            seeds=[derive_seed(s, "batches", task, noise, model) for s in seeds],
            steps=c.steps,
            lr=c.lr,
            batch_size=c.batch_size,
            loss=loss,
            eval_every=max(1, c.steps // 10),
        )
        for s, trained, res in zip(seeds, nets, results, strict=True):
            Xt, yt = data[s][2].float(), data[s][3].float()
            with torch.no_grad():
                f = trained(Xt)[:, 0]
            rows: list[Row] = [dict(metric="train_loss", value=res.final_loss)]
            if task == "regression":
                rows.append(dict(metric="test_loss", value=float(((f - yt) ** 2).mean())))
            else:
                rows.append(dict(metric="test_loss", value=float(torch.relu(1 - yt * f).mean())))
                rows.append(
                    dict(metric="test_error", value=float((torch.sign(f) != yt).float().mean()))
                )
            out[s] = rows
        return out

    # ----------------------------------------------------------------- outputs
    @staticmethod
    def _unregularised(table: pd.DataFrame) -> pd.DataFrame:
        """Gradient rows and the λ = 0 exact rows (the paper's comparison)."""
        if "ridge" not in table.columns:
            return table
        return table[table["ridge"].isna() | (table["ridge"] == 0)]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Test MSE (regression) or test error (classification) per model, beside the optimum."""
        t = self._unregularised(table)
        wanted = ((t["task"] == "regression") & (t["metric"] == "test_loss")) | (
            (t["task"] == "classification") & (t["metric"] == "test_error")
        )
        wide = t[wanted].pivot_table(
            index=["task", "noise"], columns="model", values="value", aggfunc="mean"
        )
        wide = wide[[mo for mo in MODELS if mo in wide.columns]].reset_index()
        wide.insert(
            2,
            "optimum",
            [
                s**2 if task == "regression" else s / 2
                for task, s in zip(wide["task"], wide["noise"], strict=True)
            ],
        )
        return wide.rename(columns={"noise": "σ_y"})

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        paths = []
        t = self._unregularised(table)
        tasks = [task for task in c.tasks if task in set(t["task"])]
        fig, axes = plt.subplots(
            1, len(tasks), figsize=(6.0 * len(tasks), 4.2), dpi=120, squeeze=False
        )
        colors = {"relu": "C3", "galu-readout": "C4", "galu": "C0", "galu-exact": "C2"}
        for ax, task in zip(axes[0], tasks, strict=True):
            tt = t[t["task"] == task]
            noise = sorted(tt["noise"].unique())
            if task == "regression":
                ax.plot(noise, [s**2 for s in noise], "k--", lw=1.2, label="optimum σ_y²")
                shown = [("train_loss", ":"), ("test_loss", "-")]
                # The minimum-norm exact fit's test MSE is orders above the rest: log scale.
                ax.set_yscale("symlog", linthresh=1e-2)
                ax.set_ylabel("MSE (symlog)")
            else:
                ax.plot(noise, [s / 2 for s in noise], "k--", lw=1.2, label="optimum p = σ_y/2")
                shown = [("test_error", "-")]
                ax.set_ylabel("test error (0–1)")
            for model, color in colors.items():
                for metric, ls in shown:
                    rows = tt[(tt["model"] == model) & (tt["metric"] == metric)]
                    plot_mean_sd(
                        ax,
                        rows,
                        "noise",
                        "value",
                        color=color,
                        ls=ls,
                        marker="o",
                        ms=3,
                        label=f"{model} {metric}",
                    )
            ax.set_xlabel("label noise σ_y")
            ax.set_title(f"{task}: m = {c.m_train}, k = {c.k}, {c.repeats} seeds", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        paths.append(save_figure(fig, fig_dir / "generalization_loss.png"))

        ex = table[(table["model"] == "galu-exact")]
        if not ex.empty:
            wide = ex.pivot_table(
                index=["noise", "seed", "ridge"], columns="metric", values="value"
            ).reset_index()
            fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
            ridges = sorted(wide["ridge"].unique())
            cmap = plt.get_cmap("viridis", max(2, len(ridges)))
            for i, lam in enumerate(ridges):
                w = wide[wide["ridge"] == lam]
                ax.scatter(w["weight_norm_sq"], w["gap"], s=14, color=cmap(i), label=f"λ = {lam:g}")
            ax.set_xscale("log")
            ax.set_xlabel("‖W‖² of the exact fit")
            ax.set_ylabel("test − train MSE")
            ax.set_title(
                "Exact GaLU (regression): the gap grows with the weights' norm; ridge shrinks both",
                fontsize=9,
            )
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            paths.append(save_figure(fig, fig_dir / "generalization_gap.png"))
        return paths
