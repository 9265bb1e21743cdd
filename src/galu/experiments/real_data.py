"""GaLU vs ReLU vs linear networks on real data (Fiat, Malach & Shalev-Shwartz 2019, exp. 4).

Inputs are whitened by PCA fitted on the training split (``components`` directions, each scaled to
unit training variance; clamped to the data's numerical rank — 61 for 8×8 digits, 40 for
MNIST-1D). Two hidden layers of width ``k``, 10 logits, cross-entropy, Adam:

``relu``           ReLU network;
``galu0-step``     GaLU0: every layer gated by the input through fixed random hard gates;
``galu0-sigmoid``  GaLU0 with sigmoid gates ``σ(scale·<u, x>)`` (the authors' best runs used a
                   small scale, close to linear gating);
``linear``         the same stack with all-ones gates (a deep linear network).

Every (learning rate, gate scale) is a grid point; each seed reports validation and test
accuracy. :meth:`RealData.select` picks, per (dataset, k, model, seed), the hyper-parameters with
the best *validation* accuracy and reports their test accuracy — the test set never chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from galu.data import Dataset, DatasetName, PCAWhitener, load_dataset
from galu.experiments.base import Row, SeedBatched, plot_mean_sd, register, save_figure
from galu.experiments.config import BaseConfig, Count, Counts, Fraction, Positives, Some
from galu.gates import Gate
from galu.nn import GaLU0, ReLUNet
from galu.seeding import derive_seed, generator
from galu.train import train_ensemble

Model = Literal["relu", "galu0-step", "galu0-sigmoid", "linear"]
MODELS: tuple[str, ...] = ("relu", "galu0-step", "galu0-sigmoid", "linear")


@dataclass(frozen=True)
class RealDataConfig(BaseConfig):
    """Dataset, widths, models, hyper-parameter grid and training budget."""

    dataset: DatasetName = "digits"  # digits | mnist1d | mnist | fashion-mnist
    data_dir: str | None = None  # directory with the IDX files (mnist, fashion-mnist)
    components: Count = 64  # PCA directions (clamped to the numerical rank)
    k: Counts = (16, 64)  # hidden width of both layers
    models: Some[Model] = MODELS  # type: ignore[assignment]
    lrs: Positives = (3e-3, 1e-2)  # Adam learning rates (chosen on validation)
    scales: Positives = (0.5, 4.0)  # sigmoid gate scales (chosen on validation)
    val_fraction: Fraction = 0.1  # validation split carved from the training split
    steps: Count = 2000  # Adam steps
    batch_size: Count = 128  # minibatch size
    repeats: Count = 3  # seeds


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(k=(8,), lrs=(1e-2,), scales=(1.0,), steps=100, repeats=2, components=16),
    "quick": dict(),
    "paper": dict(
        dataset="mnist",
        k=(16, 32, 48, 64, 80, 96),
        lrs=(1e-4, 3e-4, 1e-3),
        scales=(0.1, 0.3, 1.0, 3.0),
        steps=100_000,
        repeats=5,
    ),
}


@register
class RealData(SeedBatched):
    name = "real-data"
    summary = "Test accuracy after PCA-64: ReLU vs GaLU0 (hard/sigmoid gates) vs linear network"
    Config = RealDataConfig
    presets = PRESETS
    config: RealDataConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        out = []
        for k in c.k:
            for model in c.models:
                for lr in c.lrs:
                    scales = c.scales if model == "galu0-sigmoid" else (None,)
                    for scale in scales:
                        out.append(dict(dataset=c.dataset, k=k, model=model, lr=lr, scale=scale))
        return out

    def data(self, seed: int) -> Dataset:
        """The seed's splits, whitened with statistics of its training split only."""
        c = self.config
        ds = load_dataset(c.dataset, root=c.data_dir, val_fraction=c.val_fraction, seed=seed)
        available = PCAWhitener(n_components=None).fit(ds.X_train).components_.shape[0]
        pca = PCAWhitener(n_components=min(c.components, available)).fit(ds.X_train)
        return Dataset(
            ds.name,
            pca.transform(ds.X_train),
            ds.y_train,
            pca.transform(ds.X_val),
            ds.y_val,
            pca.transform(ds.X_test),
            ds.y_test,
            ds.n_classes,
        )

    def _net(self, params: dict[str, Any], features: int, classes: int, seed: int):
        k, model = params["k"], params["model"]
        g = generator(seed, "init", model, k, features)
        if model == "relu":
            return ReLUNet(features, [k, k], classes, bias=True, generator=g)
        gate = {"galu0-step": Gate("step"), "linear": Gate("one")}.get(model) or Gate(
            "sigmoid", scale=params["scale"]
        )
        return GaLU0(features, [k, k], classes, bias=True, gate=gate, generator=g)

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        c = self.config
        data = {s: self.data(s) for s in seeds}
        features = data[seeds[0]].X_train.shape[1]
        classes = data[seeds[0]].n_classes
        nets = [self._net(params, features, classes, s) for s in seeds]
        results = train_ensemble(
            nets,
            torch.stack([data[s].X_train for s in seeds]),
            torch.stack([data[s].y_train for s in seeds]),
            seeds=[derive_seed(s, "batches", *params.values()) for s in seeds],
            steps=c.steps,
            lr=params["lr"],
            batch_size=c.batch_size,
            loss="cross_entropy",
            eval_every=max(1, c.steps // 10),
        )
        out: dict[int, list[Row]] = {}
        for s, net, res in zip(seeds, nets, results, strict=True):
            ds = data[s]
            with torch.no_grad():
                val = float((net(ds.X_val).argmax(-1) == ds.y_val).float().mean())
                test = float((net(ds.X_test).argmax(-1) == ds.y_test).float().mean())
            out[s] = [
                dict(metric="train_loss", value=res.final_loss),
                dict(metric="val_acc", value=val),
                dict(metric="test_acc", value=test),
            ]
        return out

    # ----------------------------------------------------------------- outputs
    @staticmethod
    def select(table: pd.DataFrame) -> pd.DataFrame:
        """Per (dataset, k, model, seed): the hyper-parameters with the best validation accuracy
        (ties: the first in grid order) and their test accuracy."""
        wide = table.pivot_table(
            index=["dataset", "k", "model", "lr", "scale", "seed"],
            columns="metric",
            values="value",
            dropna=False,
        ).reset_index()
        wide = wide.dropna(subset=["val_acc"])
        best = wide.loc[wide.groupby(["dataset", "k", "model", "seed"])["val_acc"].idxmax()]
        return best.reset_index(drop=True)

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Validation-selected test accuracy, mean over seeds, per width and model."""
        table = table.assign(scale=table["scale"].fillna(0.0))
        best = self.select(table)
        wide = best.pivot_table(
            index=["dataset", "k"], columns="model", values="test_acc", aggfunc="mean"
        )
        return wide[[mo for mo in MODELS if mo in wide.columns]].reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        best = self.select(table.assign(scale=table["scale"].fillna(0.0)))
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=130)
        styles = {
            "relu": ("C3", "o"),
            "galu0-step": ("C0", "s"),
            "galu0-sigmoid": ("C9", "^"),
            "linear": ("0.4", "x"),
        }
        for model, (color, marker) in styles.items():
            plot_mean_sd(
                ax,
                best[best["model"] == model],
                "k",
                "test_acc",
                color=color,
                marker=marker,
                lw=1.2,
                label=model,
            )
        ax.set_xlabel("hidden width k (two layers)")
        ax.set_ylabel("test accuracy (hyper-parameters chosen on validation)")
        ax.set_title(
            f"{c.dataset}, PCA to ≤ {c.components} whitened components, {c.repeats} seeds",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return [save_figure(fig, fig_dir / "real_data.png")]
