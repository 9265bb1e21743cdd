"""Test accuracy of every deep-gated-network variant (Lakshminarayanan & Singh 2020, NPF paper).

Each variant of :class:`~galu.nn.DGN` (relu, frnpf-ii, frnpf-di, flnpf, dnpfl, dlgn, dlgn-ones,
dlgn-sf) is trained with Adam and cross-entropy on a classification data set. Numbers are
**selected on a held-out validation split**: each training keeps the parameters of its best
validation evaluation (early stopping), and the learning rate is chosen per (variant, seed) by
validation accuracy; the test split only reports. ``test_acc_max`` — the maximum test accuracy
over evaluations, the number the authors' notebooks report — is recorded separately, labelled.

FLNPF needs a trained ReLU network: each FLNPF run first trains the ReLU network of the same seed
and learning rate (as the ``relu`` variant does), copies its best-validation hidden layers as the
frozen gating network, and trains a fresh value network.

``arch="fc"`` flattens inputs; ``arch="conv"`` reshapes image data sets to ``(C, H, W)`` and uses
3×3 convolutions with global average pooling (the papers' GCONV shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from galu.data import IMAGE_SHAPES, Dataset, DatasetName, load_dataset
from galu.experiments.base import Experiment, Row, register, save_figure
from galu.experiments.config import BaseConfig, Count, Counts, Fraction, Positives
from galu.nn import DGN
from galu.seeding import generator
from galu.train import fit_classifier

VARIANTS: tuple[str, ...] = (
    "relu", "frnpf-ii", "frnpf-di", "flnpf", "dnpfl", "dlgn", "dlgn-ones", "dlgn-sf"
)  # fmt: skip


@dataclass(frozen=True)
class DGNVariantsConfig(BaseConfig):
    """Data, architecture, variants and the training budget."""

    dataset: DatasetName = "digits"
    data_dir: str | None = None  # directory of local MNIST/Fashion-MNIST/CIFAR-10 files
    arch: Literal["fc", "conv"] = "fc"
    widths: Counts = (128, 128, 128)
    variants: tuple[str, ...] = VARIANTS
    lrs: Positives = (1e-3, 3e-3)
    steps: Count = 2000
    batch_size: Count = 32
    eval_every: Count = 100  # steps between validation evaluations
    val_fraction: Fraction = 0.1
    repeats: Count = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch == "conv" and IMAGE_SHAPES[self.dataset] is None:
            raise ValueError(f"`arch='conv'` needs an image data set; {self.dataset!r} is not one.")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise ValueError(f"`variants` (={self.variants!r}) must list some of {VARIANTS}.")


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(widths=(16, 16), steps=60, eval_every=20, lrs=(3e-3,), repeats=1),
    "quick": dict(widths=(128, 128, 128), steps=1500, lrs=(1e-3, 3e-3), repeats=5),
    # The NPF paper's FC network (5 × 128; Adam 1e-4 over 100 MNIST epochs ≈ 190k steps at
    # batch 32); use --set dataset=mnist --set data_dir=DIR for MNIST itself.
    "paper": dict(widths=(128,) * 5, steps=20_000, lrs=(1e-4, 3e-4, 1e-3), repeats=5),
    # The paper's convolutional shape (GCONV channels) on CIFAR-10 from local files.
    "paper-conv": dict(
        dataset="cifar10",
        arch="conv",
        widths=(64, 64, 128, 128),
        steps=20_000,
        lrs=(1e-4, 3e-4),
        repeats=5,
    ),
}


@register
class DGNVariants(Experiment):
    name = "dgn-variants"
    summary = "Validation-selected test accuracy of every deep gated network variant"
    Config = DGNVariantsConfig
    presets = PRESETS
    config: DGNVariantsConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [
            dict(dataset=c.dataset, arch=c.arch, variant=v, lr=lr)
            for v in c.variants
            for lr in c.lrs
        ]

    def data(self, seed: int) -> Dataset:
        """The seed's splits (inputs flat; :meth:`view` shapes them for the network)."""
        c = self.config
        return load_dataset(c.dataset, root=c.data_dir, val_fraction=c.val_fraction, seed=seed)

    def view(self, X: torch.Tensor) -> torch.Tensor:
        """Inputs as the network takes them: flat for ``fc``, ``(n, C, H, W)`` for ``conv``."""
        shape = IMAGE_SHAPES[self.config.dataset]
        return X if self.config.arch == "fc" or shape is None else X.reshape(len(X), *shape)

    def _net(self, variant: str, ds: Dataset, seed: int, lr: float, **kw: Any) -> DGN:
        c = self.config
        in_features = self.view(ds.X_train[:1]).shape[1]
        return DGN(in_features, c.widths, ds.n_classes, variant=variant, arch=c.arch,  # type: ignore[arg-type]
                   bias=True, generator=generator(seed, "init", variant, lr), **kw)  # fmt: skip

    def _fit(self, net: DGN, splits: dict, lr: float, seed: int) -> dict[str, float]:
        c = self.config
        return fit_classifier(net, splits, lr=lr, steps=c.steps, batch_size=c.batch_size,
                              eval_every=c.eval_every, seed=seed)  # fmt: skip

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        ds = self.data(seed)
        splits = {
            "train": (self.view(ds.X_train), ds.y_train),
            "val": (self.view(ds.X_val), ds.y_val),
            "test": (self.view(ds.X_test), ds.y_test),
        }
        variant, lr = params["variant"], params["lr"]
        kw: dict[str, Any] = {}
        if variant == "flnpf":
            relu = self._net("relu", ds, seed, lr)
            self._fit(relu, splits, lr, seed)
            kw["gating_from"] = relu
        net = self._net(variant, ds, seed, lr, **kw)
        metrics = self._fit(net, splits, lr, seed)
        return [dict(metric=k, value=v) for k, v in metrics.items()]

    # ----------------------------------------------------------------- outputs
    @staticmethod
    def select(table: pd.DataFrame) -> pd.DataFrame:
        """Per (variant, seed): the learning rate with the best validation accuracy."""
        wide = table.pivot_table(index=["dataset", "arch", "variant", "lr", "seed"],
                                 columns="metric", values="value").reset_index()  # fmt: skip
        best = wide.loc[wide.groupby(["dataset", "arch", "variant", "seed"])["val_acc"].idxmax()]
        return best.reset_index(drop=True)

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Validation-selected test accuracy per variant: mean, sd and n over seeds."""
        best = self.select(table)
        out = best.groupby(["dataset", "arch", "variant"], sort=False).agg(
            test_acc=("test_acc", "mean"),
            test_sd=("test_acc", "std"),
            seeds=("test_acc", "size"),
            test_acc_max=("test_acc_max", "mean"),
            train_acc=("train_acc", "mean"),
        )
        order = [v for v in VARIANTS if v in set(best.variant)]
        return out.reset_index().set_index("variant").loc[order].reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        best = self.select(table)
        order = [v for v in VARIANTS if v in set(best.variant)]
        fig, ax = plt.subplots(figsize=(7.5, 4), dpi=130)
        for i, v in enumerate(order):
            acc = best[best.variant == v]["test_acc"]
            ax.bar(i, acc.mean(), yerr=acc.std() if len(acc) > 1 else 0, capsize=3,
                   color="C3" if v == "relu" else "C0", alpha=0.8)  # fmt: skip
            ax.plot([i] * len(acc), acc, "k.", ms=4)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_ylim(0.0, 1.0)  # bars start at 0: their heights are comparable
        ax.set_ylabel("test accuracy (validation-selected)")
        ax.set_title(f"DGN variants on {c.dataset} ({c.arch}, widths {list(c.widths)}), "
                     f"{c.repeats} seeds: mean ± sd, dots = seeds", fontsize=9)  # fmt: skip
        ax.grid(axis="y", alpha=0.3)
        return [save_figure(fig, fig_dir / "dgn_variants.png")]
