"""Gate adaptation: how a ReLU network's gates change while it trains, and what they are worth
(Lakshminarayanan & Singh 2020, ``science/dgn.md``, claim 2).

A fully connected ReLU network (no biases, so every output is a sum over paths) trains with Adam
on a classification data set. At epochs ``0, every, 2·every, …`` we record:

``flipped``     per layer, the fraction of gates ``1[a_l(x) > 0]`` on a fixed probe set (the
                validation inputs) that differ from the gates at initialisation;
``alignment``   the kernel–target alignment ``<H, YYᵀ>_F / (‖H‖_F ‖YYᵀ‖_F)`` of the neural path
                kernel ``H`` on ``probe`` training points (``Y`` the centred one-hot labels);
``relu_test``   the ReLU network's test accuracy at that epoch;
``npf_test``    **continuous NPF learning**: a fresh value network trained from scratch on the
                gates frozen at that epoch (FLNPF; validation-selected, as in ``dgn-variants``).

The claim: gates keep changing during training, the path kernel aligns with the labels, and the
later the frozen gates, the better a value network trained on them generalises — epoch-0 gates
are FRNPF-DI, fixed random gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from galu.analysis import flipped_fraction, kernel_alignment, label_kernel
from galu.data import DatasetName, load_dataset
from galu.experiments.base import Experiment, Row, plot_mean_sd, register, save_figure
from galu.experiments.config import BaseConfig, Count, Counts, Fraction, Positive
from galu.kernels import path_kernel
from galu.nn import DGN
from galu.seeding import generator
from galu.train import accuracy, fit_classifier, minibatch_epochs


@dataclass(frozen=True)
class GateAdaptationConfig(BaseConfig):
    dataset: DatasetName = "digits"
    data_dir: str | None = None  # directory of local MNIST / Fashion-MNIST IDX files
    widths: Counts = (128, 128, 128)
    epochs: Count = 30  # ReLU training epochs
    every: Count = 5  # checkpoint spacing (epochs)
    lr: Positive = 1e-3
    batch_size: Count = 32
    probe: Count = 500  # training points for the path-kernel alignment
    value_steps: Count = 1500  # steps to train each FLNPF value network
    value_lr: Positive = 3e-3
    val_fraction: Fraction = 0.1
    repeats: Count = 3


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(widths=(16, 16), epochs=2, every=1, probe=100, value_steps=40, repeats=1),
    "quick": dict(widths=(128, 128, 128), epochs=30, every=5, value_steps=1500, repeats=3),
    # The continuous-NPF-learning schedule of the paper (0, 10, …, 60 epochs).
    "paper": dict(widths=(128,) * 5, epochs=60, every=10, value_steps=20_000, repeats=5),
}


@register
class GateAdaptation(Experiment):
    name = "gate-adaptation"
    summary = "Gates flipped during ReLU training, path-kernel alignment, continuous NPF learning"
    Config = GateAdaptationConfig
    presets = PRESETS
    config: GateAdaptationConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(dataset=c.dataset, epochs=c.epochs)]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        ds = load_dataset(c.dataset, root=c.data_dir, val_fraction=c.val_fraction, seed=seed)
        splits = {
            "train": (ds.X_train, ds.y_train),
            "val": (ds.X_val, ds.y_val),
            "test": (ds.X_test, ds.y_test),
        }
        d = ds.X_train.shape[1]
        net = DGN(d, c.widths, ds.n_classes, variant="relu", generator=generator(seed, "init"))
        probe = ds.X_train[: c.probe]
        target = label_kernel(ds.y_train[: c.probe], ds.n_classes)
        gates0 = [g.clone() for g in net.gates(ds.X_val)]
        rows: list[Row] = []

        def checkpoint(epoch: int) -> None:
            with torch.no_grad():
                for layer, (g, g0) in enumerate(zip(net.gates(ds.X_val), gates0, strict=True)):
                    rows.append(dict(epoch=epoch, layer=layer + 1, metric="flipped",
                                     value=flipped_fraction(g, g0)))  # fmt: skip
                H = path_kernel(probe.double(), [g.double() for g in net.gates(probe)])
                align = kernel_alignment(H, target)
            rows.append(dict(epoch=epoch, layer=0, metric="alignment", value=align))
            rows.append(dict(epoch=epoch, layer=0, metric="relu_test",
                             value=accuracy(net, ds.X_test, ds.y_test)))  # fmt: skip
            frozen = DGN(d, c.widths, ds.n_classes, variant="flnpf", gating_from=net,
                         generator=generator(seed, "value-init", epoch))  # fmt: skip
            metrics = fit_classifier(frozen, splits, lr=c.value_lr, steps=c.value_steps,
                                     batch_size=c.batch_size, seed=seed,
                                     eval_every=max(1, c.value_steps // 15))  # fmt: skip
            rows.append(dict(epoch=epoch, layer=0, metric="npf_test", value=metrics["test_acc"]))

        def after_epoch(epoch: int) -> None:
            if epoch % c.every == 0 or epoch == c.epochs:
                checkpoint(epoch)

        checkpoint(0)
        minibatch_epochs(
            torch.optim.Adam(net.parameters(), lr=c.lr),
            lambda idx: torch.nn.functional.cross_entropy(net(ds.X_train[idx]), ds.y_train[idx]),
            ds.X_train.shape[0],
            epochs=c.epochs,
            batch_size=c.batch_size,
            generator=generator(seed, "batches"),
            after_epoch=after_epoch,
        )
        return rows

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Per checkpoint epoch: mean flipped fraction (over layers), alignment, accuracies."""
        t = table.groupby(["epoch", "metric"])["value"].mean().unstack("metric")
        order = [k for k in ("flipped", "alignment", "relu_test", "npf_test") if k in t.columns]
        return t[order].reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=120)
        flips = table[table.metric == "flipped"]
        for i, layer in enumerate(sorted(flips.layer.unique())):
            part = flips[flips.layer == layer]
            plot_mean_sd(axes[0], part, "epoch", "value", marker="o", color=f"C{i}",
                         label=f"layer {layer}")  # fmt: skip
        axes[0].set_title("fraction of gates flipped since init", fontsize=9)
        plot_mean_sd(axes[1], table[table.metric == "alignment"], "epoch", "value", marker="o")
        axes[1].set_title("path kernel–label alignment", fontsize=9)
        curves = (
            ("relu_test", "C3", "ReLU network at that epoch"),
            ("npf_test", "C0", "value net retrained on those gates"),
        )
        for metric, color, label in curves:
            plot_mean_sd(axes[2], table[table.metric == metric], "epoch", "value", marker="o",
                         color=color, label=label)  # fmt: skip
        axes[2].set_title("test accuracy (continuous NPF learning)", fontsize=9)
        for ax in axes:
            ax.set_xlabel("ReLU training epoch")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        axes[2].legend(fontsize=7)
        fig.suptitle(f"Gate adaptation on {c.dataset}, widths {list(c.widths)}, {c.repeats} seeds",
                     fontsize=9)  # fmt: skip
        return [save_figure(fig, fig_dir / "gate_adaptation.png")]
