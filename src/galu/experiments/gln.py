"""Gated Linear Networks (Veness et al.; ``science/gln.md``): online learning with local losses.

Five registered experiments; the streams (:func:`galu.data.load_stream`, ``permuted_tasks``,
``bayes_probability``), online training and the Fisher diagonal (:func:`galu.train.train_online`,
``fisher_diagonal``) and the prequential curve (:func:`galu.analysis.prequential_curve`) are in
the library (and re-exported here until galu 0.3):

``gln-online``          one-pass test accuracy and prequential curves on digits / MNIST-1D /
                        MNIST / Fashion-MNIST, sweeping C, width and η, beside online logistic
                        regression, an MLP trained online at batch 1 and a converged logistic
                        regression, all on the same stream;
``gln-forgetting``      permuted tasks, one pass each: the accuracy matrix (task i after task j)
                        for GLNs of several C against an MLP (Adam) and an MLP with EWC;
``gln-regret``          a synthetic stream with a known Bayes predictor: excess log loss against
                        t for several C and step-size schedules;
``gln-capacity``        memorising random labels against size, beside an MLP with as many
                        parameters;
``gln-local-vs-global`` the same architecture trained by local losses online and, exported as a
                        gated deep linear network, by one global loss with backprop.

Features: inputs are standardised with the training split's statistics (a peek at the stream's
first two moments, which online learning in the papers also takes: MNIST pixels scaled to [0, 1]);
the standardised vector is the side information and its sigmoid the base predictions.
"""

from __future__ import annotations

import itertools
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from galu.analysis import prequential_curve
from galu.data import Stream, bayes_probability, load_stream, permuted_tasks
from galu.experiments.base import Experiment, Row, plot_mean_sd, register, save_figure
from galu.experiments.config import (
    AtLeast2,
    BaseConfig,
    Count,
    Counts,
    NonNegativeInt,
    Positive,
    Positives,
    Some,
)
from galu.gln import BernoulliGLN, LearningRate
from galu.seeding import derive_seed, generator
from galu.train import fisher_diagonal, minibatch_epochs, train_online

curve = prequential_curve  # the old name, until galu 0.3

GLNDataset = Literal["digits", "mnist1d", "mnist", "fashion-mnist"]
DATASETS: tuple[str, ...] = typing.get_args(GLNDataset)
BASELINES = ("logreg-online", "mlp-online", "logreg-converged")


# ---------------------------------------------------------------------------- shared helpers


def features(X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Base predictions ``σ(x)`` and side information ``x`` for standardised inputs."""
    z = torch.from_numpy(np.clip(X, -30, 30))
    return torch.sigmoid(z), z


def make_gln(
    d: int, A: int, sizes: tuple[int, ...], C: int, lr: Any, seed: int, **kw: Any
) -> BernoulliGLN:
    return BernoulliGLN(
        d,
        d,
        sizes,
        num_outputs=A,
        context_dim=C,
        lr=lr,
        dtype=torch.float64,
        generator=generator(seed, "gln-hyperplanes", d, A, sizes, C),
        **kw,
    )


def accuracy(net: BernoulliGLN, X: np.ndarray, y: np.ndarray) -> float:
    base, side = features(X)
    return float((net.predict(base, side).argmax(1).numpy() == y).mean())


def mlp(d: int, hidden: int, out: int, seed: int) -> nn.Sequential:
    torch.manual_seed(derive_seed(seed, "mlp-init", d, hidden, out))
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, out)).double()


def torch_accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(X)).argmax(1).numpy() == y).mean())


def _check_sizes(sizes: tuple[int, ...]) -> None:
    if sizes[-1] != 1:  # non-empty and every size >= 1: declared by the field's type
        raise ValueError(f"`layer_sizes` (={sizes!r}) must list sizes >= 1 ending with 1.")


def _hidden(sizes: tuple[int, ...], width: int) -> tuple[int, ...]:
    return (*(width for _ in sizes[:-1]), 1)


def _mean_table(table: pd.DataFrame, index: list[str], metrics: list[str]) -> pd.DataFrame:
    part = table[table.metric.isin(metrics)].copy()
    for col in index:
        part[col] = part[col].astype(object).where(part[col].notna(), "-")
    wide = part.pivot_table(index=index, columns="metric", values="value", aggfunc="mean")
    return wide[[m for m in metrics if m in wide.columns]].reset_index()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- gln-online


@dataclass(frozen=True)
class GLNOnlineConfig(BaseConfig):
    """Data sets, the GLN grid (C × width × η), baselines and their settings."""

    datasets: tuple[str, ...] = ("digits",)
    data_dir: str | None = None  # directory of MNIST / Fashion-MNIST IDX files
    limit: NonNegativeInt = 0  # first `limit` training examples of the stream (0: all)
    layer_sizes: Counts = (16, 16, 1)
    context_dims: Some[NonNegativeInt] = (0, 2, 4)
    widths: Counts = (16,)  # hidden-layer widths replacing layer_sizes[:-1]
    lrs: Positives = (0.03,)
    baselines: tuple[str, ...] = BASELINES
    # Ablations at one (C, width[0], η): each skip rule, and minibatch approximations written
    # "sum-16" / "mean-64" (mode-batch size); the main grid is confident + sequential.
    skip_rules: tuple[str, ...] = ()
    batch_variants: tuple[str, ...] = ()
    ablation_context_dim: NonNegativeInt = 2
    ablation_lr: Positive = 0.1
    logreg_lr: Positive = 0.05  # SGD step of the online logistic regression
    mlp_hidden: Count = 128
    mlp_lr: Positive = 1e-3  # Adam, batch 1
    curve_points: Count = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.datasets:
            if name not in DATASETS:
                raise ValueError(f"`datasets` has {name!r}; valid: {', '.join(DATASETS)}.")
        for name in self.baselines:
            if name not in BASELINES:
                raise ValueError(f"`baselines` has {name!r}; valid: {', '.join(BASELINES)}.")
        _check_sizes(self.layer_sizes)
        for rule in self.skip_rules:
            if rule not in ("none", "confident", "deepmind"):
                raise ValueError(f"`skip_rules` has {rule!r}; valid: none, confident, deepmind.")
        for b in self.batch_variants:
            mode, _, size = b.partition("-")
            if mode not in ("sum", "mean") or not size.isdigit() or int(size) < 1:
                raise ValueError(
                    f"`batch_variants` has {b!r}; write MODE-SIZE with MODE sum or mean, e.g. "
                    "'sum-16'."
                )


@register
class GLNOnline(Experiment):
    name = "gln-online"
    summary = "GLN one-pass accuracy and prequential curves vs online baselines (Veness et al.)"
    Config = GLNOnlineConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            limit=300,
            context_dims=(0, 2),
            widths=(8,),
            curve_points=5,
            baselines=("logreg-online", "logreg-converged"),
        ),
        # ~10 s (one thread): the target configuration on digits, 3 seeds.
        "quick": dict(
            datasets=("digits",),
            context_dims=(0, 1, 2, 4),
            widths=(16,),
            lrs=(0.03,),
            skip_rules=("none", "confident", "deepmind"),
            batch_variants=("sum-16", "mean-16", "sum-64", "mean-64"),
            repeats=3,
        ),
        # The published configurations: pygln's 10 × [16, 16, 1], C = 4 and DeepMind's
        # 10 × [100, 100, 1], C = 1 on MNIST (needs data_dir=DIR with the IDX files).
        "paper": dict(
            datasets=("digits", "mnist1d", "mnist", "fashion-mnist"),
            context_dims=(0, 1, 2, 4),
            widths=(16, 100),
            lrs=(0.01, 0.03),
            skip_rules=("none", "confident", "deepmind"),
            batch_variants=("sum-16", "mean-16", "sum-64", "mean-64"),
            repeats=3,
        ),
    }
    config: GLNOnlineConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        pts: list[dict[str, Any]] = []
        for ds in c.datasets:
            for C in c.context_dims:
                for w in c.widths:
                    for lr in c.lrs:
                        pts.append(
                            dict(
                                dataset=ds,
                                model="gln",
                                context_dim=C,
                                width=w,
                                lr=lr,
                                skip_rule="confident",
                                batch="sequential",
                            )
                        )
            ab = dict(
                dataset=ds,
                model="gln",
                context_dim=c.ablation_context_dim,
                width=c.widths[0],
                lr=c.ablation_lr,
            )
            pts += [dict(ab, skip_rule=r, batch="sequential") for r in c.skip_rules]
            pts += [dict(ab, skip_rule="confident", batch=b) for b in c.batch_variants]
            pts += [dict(dataset=ds, model=b) for b in c.baselines]
        return pts

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        s = load_stream(params["dataset"], seed, data_dir=c.data_dir, limit=c.limit)
        model = params["model"]
        t0 = time.perf_counter()
        if model == "gln":
            sizes = _hidden(c.layer_sizes, params["width"])
            batch = params.get("batch", "sequential")
            mode, _, size = batch.partition("-")
            net = make_gln(
                s.X.shape[1],
                s.n_classes,
                sizes,
                params["context_dim"],
                params["lr"],
                seed,
                skip_rule=params.get("skip_rule", "confident"),
                batch_mode=mode,
            )
            base, side = features(s.X)
            yt = torch.from_numpy(s.y)
            B = int(size) if size else len(s.y)
            pred = torch.cat(
                [
                    net.update(base[i : i + B], side[i : i + B], yt[i : i + B]).predictions
                    for i in range(0, len(s.y), B)
                ]
            )
            correct = pred.argmax(1).numpy() == s.y
            secs = time.perf_counter() - t0
            acc = accuracy(net, s.X_test, s.y_test)
        elif model == "logreg-converged":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(max_iter=2000).fit(s.X, s.y)
            secs = time.perf_counter() - t0
            return [
                dict(metric="test_acc", value=float(lr.score(s.X_test, s.y_test))),
                dict(metric="train_seconds", value=secs),
            ]
        else:
            d = s.X.shape[1]
            if model == "logreg-online":
                linear = nn.Linear(d, s.n_classes).double()
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)
                net_t: nn.Module = linear
                opt: torch.optim.Optimizer = torch.optim.SGD(net_t.parameters(), lr=c.logreg_lr)
            else:
                net_t = mlp(d, c.mlp_hidden, s.n_classes, seed)
                opt = torch.optim.Adam(net_t.parameters(), lr=c.mlp_lr)
            correct = train_online(net_t, s.X, s.y, opt)
            secs = time.perf_counter() - t0
            acc = torch_accuracy(net_t, s.X_test, s.y_test)
        rows: list[Row] = [
            dict(metric="test_acc", value=acc),
            dict(metric="prequential_acc", value=float(correct.mean())),
            dict(metric="train_seconds", value=secs),
            dict(metric="samples_per_s", value=len(s.y) / secs),
        ]
        rows += [
            dict(metric="curve", step=t, value=v)
            for t, v in prequential_curve(correct, c.curve_points)
        ]
        return rows

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Mean test and prequential accuracy per data set and model."""
        keys = [
            k
            for k in ("dataset", "model", "context_dim", "width", "lr", "skip_rule", "batch")
            if k in table
        ]
        return _mean_table(table, keys, ["test_acc", "prequential_acc", "samples_per_s"])

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        plt = _plt()
        paths = []
        for ds in sorted(table.dataset.unique()):
            part = table[(table.dataset == ds) & (table.metric == "curve")]
            if "batch" in part:  # the curves of the main grid and the baselines
                part = part[
                    part.batch.isna()
                    | ((part.batch == "sequential") & (part.skip_rule == "confident"))
                ]
            if part.empty:
                continue
            fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
            for i, (label, grp) in enumerate(_labelled(part)):
                plot_mean_sd(axes[0], grp, "step", "value", label=label, color=f"C{i % 10}")
            axes[0].set_xlabel("examples seen (one pass)")
            axes[0].set_ylabel("prequential accuracy (test-then-train)")
            axes[0].legend(fontsize=7)
            axes[0].grid(alpha=0.3)
            acc = table[(table.dataset == ds) & (table.metric == "test_acc")]
            labels, means, sds = [], [], []
            for label, grp in _labelled(acc):
                labels.append(label)
                means.append(grp.value.mean())
                sds.append(grp.value.std() if len(grp) > 1 else 0.0)
            axes[1].barh(range(len(labels)), means, xerr=sds, color="C0")
            axes[1].set_yticks(range(len(labels)), labels, fontsize=7)
            axes[1].set_xlim(0.0, 1.0)  # bars start at 0
            axes[1].set_xlabel("test accuracy after one pass")
            axes[1].grid(alpha=0.3, axis="x")
            fig.suptitle(f"gln-online: {ds}", fontsize=9)
            paths.append(save_figure(fig, fig_dir / f"gln_online_{ds}.png"))
        return paths


def _labelled(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    out = []
    for model, grp in frame.groupby("model", sort=False):
        if model == "gln":
            keys = [k for k in ("context_dim", "width", "lr", "skip_rule", "batch") if k in grp]
            for vals, sub in grp.groupby(keys):
                v = dict(zip(keys, vals, strict=False))
                label = f"GLN C={int(v['context_dim'])} w={int(v['width'])} η={v['lr']:g}"
                if v.get("skip_rule", "confident") != "confident":
                    label += f" skip={v['skip_rule']}"
                if v.get("batch", "sequential") != "sequential":
                    label += f" {v['batch']}"
                out.append((label, sub))
        else:
            out.append((str(model), grp))
    return out


# ---------------------------------------------------------------------------- gln-forgetting


@dataclass(frozen=True)
class GLNForgettingConfig(BaseConfig):
    """Permuted tasks, one pass each, for GLNs of several C and MLP baselines."""

    dataset: GLNDataset = "digits"
    data_dir: str | None = None  # directory of local MNIST / Fashion-MNIST IDX files
    tasks: AtLeast2 = 3
    limit: NonNegativeInt = 0
    layer_sizes: Counts = (16, 16, 1)
    context_dims: Some[NonNegativeInt] = (0, 2, 4)
    lr: Positive = 0.03
    models: tuple[str, ...] = ("mlp", "mlp-ewc")
    mlp_hidden: Count = 128
    mlp_lr: Positive = 1e-3
    ewc_lambda: Positive = 100.0  # EWC penalty weight (λ/2)·Σ F_i (θ_i − θ*_i)²

    def __post_init__(self) -> None:
        super().__post_init__()
        for m in self.models:
            if m not in ("mlp", "mlp-ewc"):
                raise ValueError(f"`models` has {m!r}; valid: 'mlp', 'mlp-ewc'.")
        _check_sizes(self.layer_sizes)


def _forgetting_labels(acc: pd.DataFrame) -> list[str]:
    dims = acc["context_dim"] if "context_dim" in acc else [np.nan] * len(acc)
    return [
        f"GLN C={int(C)}" if m == "gln" else str(m) for m, C in zip(acc.model, dims, strict=False)
    ]


@register
class GLNForgetting(Experiment):
    name = "gln-forgetting"
    summary = "Permuted tasks, one pass each: GLN forgetting vs MLP and MLP + EWC"
    Config = GLNForgettingConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(tasks=2, limit=200, context_dims=(0, 2), layer_sizes=(8, 1)),
        "quick": dict(tasks=3, context_dims=(0, 2, 4), repeats=3),
        "paper": dict(tasks=5, context_dims=(0, 2, 4, 6), repeats=5),
    }
    config: GLNForgettingConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(model="gln", context_dim=C) for C in c.context_dims] + [
            dict(model=m) for m in c.models
        ]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        tasks = permuted_tasks(
            load_stream(c.dataset, seed, data_dir=c.data_dir, limit=c.limit), c.tasks, seed
        )
        d, A = tasks[0].X.shape[1], tasks[0].n_classes
        rows: list[Row] = []
        if params["model"] == "gln":
            net = make_gln(d, A, c.layer_sizes, params["context_dim"], c.lr, seed)
            for j, task in enumerate(tasks):
                base, side = features(task.X)
                net.update(base, side, torch.from_numpy(task.y))
                for i, ev in enumerate(tasks):
                    rows.append(
                        dict(
                            metric="acc",
                            trained=j,
                            task=i,
                            value=accuracy(net, ev.X_test, ev.y_test),
                        )
                    )
            return rows
        model = mlp(d, c.mlp_hidden, A, seed)
        opt = torch.optim.Adam(model.parameters(), lr=c.mlp_lr)
        anchors: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

        def ewc() -> torch.Tensor:
            total = torch.zeros((), dtype=torch.float64)
            for fisher, star in anchors:
                for f, s, p in zip(fisher, star, model.parameters(), strict=False):
                    total = total + (f * (p - s) ** 2).sum()
            return 0.5 * c.ewc_lambda * total

        for j, task in enumerate(tasks):
            use = params["model"] == "mlp-ewc" and anchors
            train_online(model, task.X, task.y, opt, penalty=ewc if use else None)
            if params["model"] == "mlp-ewc":
                anchors.append(
                    (
                        fisher_diagonal(model, task.X, task.y),
                        [p.detach().clone() for p in model.parameters()],
                    )
                )
            for i, ev in enumerate(tasks):
                rows.append(
                    dict(
                        metric="acc",
                        trained=j,
                        task=i,
                        value=torch_accuracy(model, ev.X_test, ev.y_test),
                    )
                )
        return rows

    @staticmethod
    def forgetting(table: pd.DataFrame) -> pd.DataFrame:
        """Per model and seed: mean final accuracy over tasks, and mean forgetting (accuracy on
        task i right after learning it minus after the last task, over i < last)."""
        acc = table[table.metric == "acc"].copy()
        acc["label"] = _forgetting_labels(acc)
        last = acc.trained.max()
        out = []
        for (label, seed), grp in acc.groupby(["label", "seed"]):
            final = grp[grp.trained == last].set_index("task").value
            learnt = grp[grp.trained == grp.task].set_index("task").value
            drop = (learnt - final).drop(index=last, errors="ignore")
            out.append(dict(model=label, seed=seed, final_acc=final.mean(), forgetting=drop.mean()))
        return pd.DataFrame(out)

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        f = self.forgetting(table)
        return f.groupby("model", as_index=False)[["final_acc", "forgetting"]].mean()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        plt = _plt()
        acc = table[table.metric == "acc"].copy()
        acc["label"] = _forgetting_labels(acc)
        labels = list(dict.fromkeys(acc.label))
        fig, axes = plt.subplots(
            1, len(labels) + 1, figsize=(3.2 * (len(labels) + 1), 3.4), dpi=120
        )
        T = int(acc.trained.max()) + 1
        for ax, label in zip(axes, labels, strict=False):
            m = acc[acc.label == label].pivot_table(
                index="task", columns="trained", values="value", aggfunc="mean"
            )
            ax.imshow(m.values, vmin=0, vmax=1, cmap="viridis")
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    ax.text(
                        j,
                        i,
                        f"{m.values[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="w" if m.values[i, j] < 0.6 else "k",
                    )
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xlabel("after training task j")
            ax.set_ylabel("accuracy on task i")
            ax.set_title(label, fontsize=9)
        f = self.forgetting(table)
        g = f.groupby("model", sort=False)
        axes[-1].bar(
            range(len(g)),
            g.forgetting.mean().reindex(labels).values,
            yerr=g.forgetting.std().reindex(labels).fillna(0).values,
            color="C3",
        )
        axes[-1].set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
        axes[-1].set_ylabel("mean forgetting")
        axes[-1].grid(alpha=0.3, axis="y")
        fig.suptitle(
            f"gln-forgetting: permuted {self.config.dataset}, one pass per task", fontsize=9
        )
        return [save_figure(fig, fig_dir / "gln_forgetting.png")]


# ---------------------------------------------------------------------------- gln-regret


@dataclass(frozen=True)
class GLNRegretConfig(BaseConfig):
    """Stream length, the GLN and the schedules compared."""

    steps: Count = 20000
    layer_sizes: Counts = (16, 16, 1)
    context_dims: Some[NonNegativeInt] = (0, 2, 4, 8)
    schedules: tuple[str, ...] = ("decay", "constant")
    eta_max: Positive = 0.1  # decay: η_t = min(eta_max, decay_c / t)
    decay_c: Positive = 50.0
    eta_constant: Positive = 0.1
    bins: Count = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_sizes(self.layer_sizes)
        for s in self.schedules:
            if s not in ("decay", "constant"):
                raise ValueError(f"`schedules` has {s!r}; valid: 'decay', 'constant'.")


@register
class GLNRegret(Experiment):
    name = "gln-regret"
    summary = "Excess log loss over the Bayes predictor on a synthetic stream vs t, C, schedule"
    Config = GLNRegretConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(steps=2000, context_dims=(0, 4), layer_sizes=(8, 1), bins=5),
        "quick": dict(steps=20000, repeats=3),
        "paper": dict(steps=200000, context_dims=(0, 1, 2, 4, 6, 8), repeats=5),
    }
    config: GLNRegretConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(context_dim=C, schedule=s) for C in c.context_dims for s in c.schedules]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        rng = np.random.default_rng(derive_seed(seed, "regret-stream", c.steps))
        x = rng.uniform(-1, 1, size=(c.steps, 2))
        p = bayes_probability(x)
        y = (rng.uniform(size=c.steps) < p).astype(np.float64)
        lr: Any = (
            LearningRate(c.eta_max, c=c.decay_c)
            if params["schedule"] == "decay"
            else c.eta_constant
        )
        net = make_gln(2, 1, c.layer_sizes, params["context_dim"], lr, seed)
        base, side = features(x)
        q = net.update(base, side, torch.from_numpy(y)).predictions[:, 0].numpy()
        q = np.clip(q, 1e-12, 1 - 1e-12)
        loss = -(y * np.log(q) + (1 - y) * np.log1p(-q))
        bayes = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        excess = loss - bayes
        rows: list[Row] = [
            dict(metric="last_half_excess", value=float(excess[c.steps // 2 :].mean())),
            dict(metric="mean_excess", value=float(excess.mean())),
        ]
        edges = np.linspace(0, c.steps, c.bins + 1).astype(int)
        for a, b in itertools.pairwise(edges):
            rows.append(dict(metric="excess", step=int(b), value=float(excess[a:b].mean())))
        return rows

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return _mean_table(table, ["context_dim", "schedule"], ["last_half_excess", "mean_excess"])

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120, sharey=True)
        part = table[table.metric == "excess"]
        for ax, sched in zip(axes, ("decay", "constant"), strict=False):
            for i, (C, grp) in enumerate(part[part.schedule == sched].groupby("context_dim")):
                plot_mean_sd(ax, grp, "step", "value", label=f"C={int(C)}", color=f"C{i}")
            ax.axhline(0.1, color="k", lw=0.8, ls=":")
            ax.set_yscale("symlog", linthresh=0.01)
            ax.set_xlabel("t (examples)")
            ax.set_ylabel("excess log loss per example (nats, binned)")
            c = self.config
            what = (
                f"η_t = min({c.eta_max:g}, {c.decay_c:g}/t)"
                if sched == "decay"
                else f"constant η = {c.eta_constant:g}"
            )
            ax.set_title(what, fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.suptitle("gln-regret: P(y=1|x) = σ(3 sin 3x₁ + 4x₂² − 1.5), x ~ U[−1,1]²", fontsize=9)
        return [save_figure(fig, fig_dir / "gln_regret.png")]


# ---------------------------------------------------------------------------- gln-capacity


@dataclass(frozen=True)
class GLNCapacityConfig(BaseConfig):
    """Memorising random labels: sizes, passes and the matched MLP's budget."""

    m: Count = 1000  # examples to memorise
    inputs: tuple[str, ...] = ("digits-shuffled", "noise")
    widths: Counts = (2, 4, 8, 16, 32)
    context_dim: NonNegativeInt = 4
    lr: Positive = 0.03
    passes: Count = 10
    mlp_epochs: Count = 100
    mlp_lr: Positive = 3e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        for s in self.inputs:
            if s not in ("digits-shuffled", "noise"):
                raise ValueError(f"`inputs` has {s!r}; valid: 'digits-shuffled', 'noise'.")


def gln_parameters(A: int, sizes: tuple[int, ...], d: int, C: int) -> int:
    n = (d + 1, *(k + 1 for k in sizes[:-1]))
    return A * 2**C * sum(k * ni for k, ni in zip(sizes, n, strict=False))


@register
class GLNCapacity(Experiment):
    name = "gln-capacity"
    summary = "Memorising random labels vs size: GLN beside an MLP with as many parameters"
    Config = GLNCapacityConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(m=100, widths=(2, 4), passes=2, mlp_epochs=5, inputs=("noise",)),
        "quick": dict(m=1000, widths=(1, 2, 4, 8, 16), passes=5, mlp_epochs=100),
        "paper": dict(
            m=1797, widths=(1, 2, 4, 8, 16, 32, 64), passes=20, mlp_epochs=500, repeats=3
        ),
    }
    config: GLNCapacityConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [
            dict(inputs=s, model=m, width=w)
            for s in c.inputs
            for w in c.widths
            for m in ("gln", "mlp")
        ]

    def _data(self, inputs: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        rng = np.random.default_rng(derive_seed(seed, "capacity", inputs, c.m))
        if inputs == "noise":
            X = rng.uniform(size=(c.m, 64))
        else:
            from sklearn.datasets import load_digits

            X = load_digits().data[: c.m] / 16
        y = rng.integers(0, 10, size=len(X))
        mu, sd = X.mean(0), X.std(0)
        return (X - mu) / np.where(sd > 1e-8, sd, 1.0), y

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        X, y = self._data(params["inputs"], seed)
        sizes = (params["width"], params["width"], 1)
        n_params = gln_parameters(10, sizes, X.shape[1], c.context_dim)
        if params["model"] == "gln":
            net = make_gln(X.shape[1], 10, sizes, c.context_dim, c.lr, seed)
            base, side = features(X)
            for _ in range(c.passes):
                net.update(base, side, torch.from_numpy(y))
            acc = accuracy(net, X, y)
        else:
            hidden = max(1, round((n_params - 10) / (X.shape[1] + 11)))
            model = mlp(X.shape[1], hidden, 10, seed)
            n_params = sum(p.numel() for p in model.parameters())
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
            minibatch_epochs(
                torch.optim.Adam(model.parameters(), lr=c.mlp_lr),
                lambda idx: nn.functional.cross_entropy(model(Xt[idx]), yt[idx]),
                len(y),
                epochs=c.mlp_epochs,
                batch_size=32,
                generator=generator(seed, "capacity-batches"),
            )
            acc = torch_accuracy(model, X, y)
        return [dict(metric="train_acc", value=acc), dict(metric="params", value=n_params)]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return _mean_table(table, ["inputs", "width", "model"], ["train_acc", "params"])

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        plt = _plt()
        c = self.config
        inputs = list(dict.fromkeys(table.inputs))
        fig, axes = plt.subplots(
            1, len(inputs), figsize=(5.2 * len(inputs), 3.8), dpi=120, squeeze=False
        )
        for ax, s in zip(axes[0], inputs, strict=False):
            for i, model in enumerate(("gln", "mlp")):
                part = table[(table.inputs == s) & (table.model == model)]
                acc = part[part.metric == "train_acc"].copy()
                params = part[part.metric == "params"].groupby("width").value.mean()
                acc["params"] = acc.width.map(params)
                label = (
                    f"GLN 10×[w, w, 1], C={c.context_dim}, {c.passes} passes"
                    if model == "gln"
                    else f"MLP, same #params, {c.mlp_epochs} epochs Adam"
                )
                plot_mean_sd(ax, acc, "params", "value", marker="os"[i], label=label)
            ax.axhline(0.1, color="k", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.set_xlabel("parameters")
            ax.set_ylabel(f"training accuracy on {c.m} random labels")
            ax.set_title(s, fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        return [save_figure(fig, fig_dir / "gln_capacity.png")]


# ---------------------------------------------------------------------------- local vs global


@dataclass(frozen=True)
class GLNLocalGlobalConfig(BaseConfig):
    """One architecture, two ways of training it."""

    dataset: GLNDataset = "digits"
    data_dir: str | None = None  # directory of local MNIST / Fashion-MNIST IDX files
    limit: NonNegativeInt = 0
    layer_sizes: Counts = (16, 16, 1)
    context_dim: NonNegativeInt = 4
    lr: Positive = 0.03  # local (GLN) step size
    global_lr: Positive = 1e-3  # Adam on the exported network's global loss
    global_epochs: Count = 10  # for the multi-epoch global run (the online one makes 1 pass)
    batch_size: Count = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_sizes(self.layer_sizes)


def _global_train(
    net: nn.Module, tasks: list[Stream], epochs: int, batch: int, lr: float, seed: int
) -> tuple[list[list[float]], float]:
    """Adam on one-vs-all BCE over the exported network's logits, task after task; returns the
    accuracy matrix rows (after each task, on every task) and the training seconds."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = generator(seed, "global-batches")
    matrix, secs = [], 0.0
    for task in tasks:
        base, side = features(task.X)
        Y = nn.functional.one_hot(torch.from_numpy(task.y), task.n_classes).double()
        t0 = time.perf_counter()

        def batch_loss(idx: torch.Tensor, base=base, side=side, Y=Y) -> torch.Tensor:
            return nn.functional.binary_cross_entropy_with_logits(net(base[idx], side[idx]), Y[idx])

        minibatch_epochs(
            opt, batch_loss, len(Y), epochs=epochs, batch_size=batch, generator=g, shuffle=batch > 1
        )
        secs += time.perf_counter() - t0
        row = []
        with torch.no_grad():
            for ev in tasks:
                b, s = features(ev.X_test)
                row.append(float((net(b, s).argmax(1).numpy() == ev.y_test).mean()))
        matrix.append(row)
    return matrix, secs


@register
class GLNLocalGlobal(Experiment):
    name = "gln-local-vs-global"
    summary = "One gated architecture: local online losses (GLN) vs one global loss (backprop)"
    Config = GLNLocalGlobalConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(limit=200, layer_sizes=(8, 1), context_dim=2, global_epochs=2),
        "quick": dict(repeats=3),
        "paper": dict(repeats=5, global_epochs=30),
    }
    config: GLNLocalGlobalConfig

    def points(self) -> list[dict[str, Any]]:
        return [dict(method=m) for m in ("local-online", "global-online", "global-epochs")]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        s = load_stream(c.dataset, seed, data_dir=c.data_dir, limit=c.limit)
        tasks = permuted_tasks(s, 2, seed)
        net = make_gln(s.X.shape[1], s.n_classes, c.layer_sizes, c.context_dim, c.lr, seed)
        if params["method"] == "local-online":
            matrix, secs = [], 0.0
            for task in tasks:
                base, side = features(task.X)
                t0 = time.perf_counter()
                net.update(base, side, torch.from_numpy(task.y))
                secs += time.perf_counter() - t0
                matrix.append([accuracy(net, ev.X_test, ev.y_test) for ev in tasks])
        else:
            online = params["method"] == "global-online"
            matrix, secs = _global_train(
                net.to_module(),
                tasks,
                1 if online else c.global_epochs,
                1 if online else c.batch_size,
                c.global_lr,
                seed,
            )
        return [
            dict(metric="test_acc", value=matrix[0][0]),
            dict(metric="train_seconds", value=secs / len(tasks)),
            dict(metric="task0_after_task1", value=matrix[1][0]),
            dict(metric="forgetting", value=matrix[0][0] - matrix[1][0]),
            dict(metric="task1_acc", value=matrix[1][1]),
        ]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return _mean_table(
            table, ["method"], ["test_acc", "train_seconds", "forgetting", "task1_acc"]
        )

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        plt = _plt()
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=120)
        methods = list(dict.fromkeys(table.method))
        for ax, metric, title in zip(
            axes,
            ("test_acc", "train_seconds", "forgetting"),
            (
                "test accuracy (task 0)",
                "training seconds per task",
                "forgetting of task 0 after task 1",
            ),
            strict=False,
        ):
            g = table[table.metric == metric].groupby("method").value
            ax.bar(
                range(len(methods)),
                g.mean().reindex(methods).values,
                yerr=g.std().reindex(methods).fillna(0).values,
                color="C0",
            )
            ax.set_xticks(range(len(methods)), methods, fontsize=7)
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3, axis="y")
        c = self.config
        fig.suptitle(
            f"gln-local-vs-global: 10 × {list(c.layer_sizes)}, C={c.context_dim}, {c.dataset}",
            fontsize=9,
        )
        return [save_figure(fig, fig_dir / "gln_local_vs_global.png")]
