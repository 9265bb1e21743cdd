"""Globally gated deep linear networks: finite-width theory vs sampled networks vs the GP limit
(Li & Sompolinsky 2022, ``science/ggdln.md``).

Three experiments share the tasks and the row format here:

``ggdln-curves``         generalisation error, bias and variance vs width N, depth L, prior
                         variance σ² (the L2 strength) and number of gates M (next to a ReLU
                         network of the same width sampled by Langevin dynamics);
``ggdln-gate-learning``  random half-space gates vs gates learned from the inputs without labels
                         (principal directions, k-means cells), vs training-set size P;
``ggdln-multitask``      several tasks made by permuting the inputs, learned by one network with
                         shared gates or with task-dependent gates, vs the number of tasks.

Every point and seed writes rows ``source ∈ {theory, gp, gibbs, langevin, relu}`` ×
``metric ∈ {error, bias, variance}`` with a Monte-Carlo standard error ``se`` for sampled
sources (jackknife over independent chains), plus the theory's saddle-point ``residual`` and
each source's ``seconds``.

Tasks (``task=``): ``teacher`` — the template task: ``P`` templates ``x ~ N(0, I)``, labels
``y = w·x/√N0 + σ₀ξ``, test inputs ``√(1−γ) x_template + √γ ξ`` labelled by the teacher;
``digits``, ``mnist1d``, ``mnist`` — even vs odd digits (±1), inputs PCA-whitened to ``N0``
dimensions with the statistics of the whole training split (no labels used; ``mnist`` reads the
IDX files from ``data_dir``), then ``P`` training and ``P_test`` test examples drawn per seed.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from galu.analysis import evaluate_ggdln as evaluate
from galu.analysis._ggdln import METRICS, diagnostic_rows, source_rows
from galu.data.tasks import TASKS as TASKS  # re-exported until galu 0.3
from galu.data.tasks import TaskName, ggdln_task
from galu.experiments.base import Experiment, Row, register, save_figure
from galu.experiments.config import (
    BaseConfig,
    Count,
    Counts,
    NonNegativeFinite,
    Positive,
    Positives,
    Probability,
)
from galu.nn import GGDLN
from galu.nn._ggdln import GateFamily, Readout
from galu.seeding import derive_seed, generator
from galu.train import (
    default_langevin_lr,
    langevin,
    relu_forward,
)

Sampler = Literal["gibbs", "langevin", "none"]
SAMPLERS: tuple[str, ...] = typing.get_args(Sampler)


@dataclass(frozen=True)
class GGDLNBaseConfig(BaseConfig):
    """Task, network, posterior and sampler settings shared by the GGDLN experiments."""

    task: TaskName = "teacher"
    data_dir: str | None = None  # IDX files for task=mnist
    P: Count = 40  # training examples
    P_test: Count = 200
    N0: Count = 30  # input dimension (teacher) or PCA components (real data)
    noise: NonNegativeFinite = 0.1  # teacher label noise σ₀
    gamma: Probability = 0.5  # template task: test-input noise level γ
    width: Count = 32
    depth: Count = 2
    n_gates: Count = 4
    gates: GateFamily = "halfspace"
    readout: Readout = "gated"
    prior_var: Positive = 0.2  # σ² for every layer (the L2 strength is T/σ²)
    temperature: Positive = 0.01
    sampler: Sampler = "gibbs"
    chains: Count = 16
    sweeps: Count = 400  # Gibbs sweeps (Langevin steps for sampler=langevin)

    def data(self, seed: int, P: int | None = None, teacher_seed: int | None = None):
        return ggdln_task(
            self.task,
            P or self.P,
            self.P_test,
            self.N0,
            seed,
            noise=self.noise,
            gamma=self.gamma,
            data_dir=self.data_dir,
            teacher_seed=teacher_seed,
        )


def _net(c: GGDLNBaseConfig, seed: int, *keys: Any, **kw: Any) -> GGDLN:
    args: dict[str, Any] = dict(
        hidden_features=c.width,
        depth=c.depth,
        n_gates=c.n_gates,
        gates=c.gates,
        readout=c.readout,
        prior_var=c.prior_var,
    )
    args.update(kw)
    return GGDLN(c.N0, generator=generator(seed, "ggdln-net", *keys), **args)


def _plot_sources(
    ax: Any,
    table: pd.DataFrame,
    x: str,
    metric: str,
    sources: tuple[str, ...],
    label_prefix: str = "",
    color: str | None = None,
) -> None:
    """Mean over seeds per ``x``: lines for theory / GP, points with ±2 pooled MC errors for
    sampled sources."""
    styles: dict[str, dict[str, Any]] = {
        "theory": dict(ls="-", marker=None),
        "gp": dict(ls="--", marker=None),
        "gibbs": dict(ls="none", marker="o"),
        "langevin": dict(ls="none", marker="s"),
        "relu": dict(ls="none", marker="^"),
    }
    names = {
        "theory": "theory",
        "gp": "GP limit",
        "gibbs": "Gibbs",
        "langevin": "Langevin",
        "relu": "ReLU net (Langevin)",
    }
    for i, src in enumerate(sources):
        part = table[(table.source == src) & (table.metric == metric)]
        if part.empty:
            continue
        grp = part.groupby(x)
        mean = grp["value"].mean()
        col = color or f"C{i}"
        st = styles[src]
        if st["marker"] is None:
            ax.plot(
                mean.index, mean.values, ls=st["ls"], color=col, label=label_prefix + names[src]
            )
        else:
            se = grp["se"].apply(lambda s: float(np.sqrt((s**2).sum()) / len(s)))
            ax.errorbar(
                mean.index,
                mean.values,
                yerr=2 * se.values,
                ls="none",
                marker=st["marker"],
                color=col,
                capsize=2,
                ms=4,
                label=label_prefix + names[src],
            )


def _error_by_source(table: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Test error per point (mean over seeds), one column per source."""
    part = table[table.metric == "error"]
    return part.pivot_table(
        index=index, columns="source", values="value", aggfunc="mean"
    ).reset_index()


def _metric_panels(
    table: pd.DataFrame,
    column: str,
    groups: tuple[str, ...],
    x: str,
    sources: tuple[str, ...],
    log_base: int,
    xlabel: str,
    ylabel_suffix: str,
    title: str,
    path: Path,
) -> Path:
    """One panel per metric (error, bias, variance); one colour per value of ``column``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(12, 3.8), dpi=120)
    for ax, metric in zip(axs, METRICS, strict=True):
        for i, group in enumerate(groups):
            _plot_sources(
                ax, table[table[column] == group], x, metric, sources, f"{group}: ", color=f"C{i}"
            )
        ax.set_xscale("log", base=log_base)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {metric}{ylabel_suffix}")
        ax.grid(alpha=0.3)
    axs[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


AXES = ("width", "depth", "prior_var", "n_gates")
AXIS_LABEL = {
    "width": "width N",
    "depth": "depth L",
    "prior_var": "prior variance σ²",
    "n_gates": "gates per layer M",
}


@dataclass(frozen=True)
class GGDLNCurvesConfig(GGDLNBaseConfig):
    """One curve per axis, the other settings at their base values."""

    axes: tuple[str, ...] = AXES
    widths: Counts = (8, 16, 32, 64, 128)
    depths: Counts = (1, 2, 3, 4)
    prior_vars: Positives = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    gate_counts: Counts = (1, 2, 4, 8)
    relu: bool = True  # on the n_gates axis, sample a ReLU network of the same width too
    relu_steps: Count = 3000

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [a for a in self.axes if a not in AXES]
        if not self.axes or bad:
            raise ValueError(f"`axes` (={self.axes!r}) must list some of {AXES}.")


CURVES_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        P=10,
        P_test=20,
        N0=8,
        width=8,
        widths=(4, 16),
        depths=(1, 2),
        prior_vars=(0.2, 1.0),
        gate_counts=(1, 2),
        n_gates=2,
        chains=4,
        sweeps=40,
        relu_steps=60,
        repeats=1,
    ),
    # ~2 min (one thread)
    "quick": dict(
        widths=(8, 16, 32, 64),
        depths=(1, 2, 3),
        prior_vars=(0.05, 0.2, 1.0, 2.0),
        sweeps=300,
        relu_steps=2000,
        repeats=2,
    ),
    "paper": dict(
        P=100,
        P_test=500,
        widths=(8, 16, 32, 64, 128, 256),
        depths=(1, 2, 3, 4, 5),
        gate_counts=(1, 2, 4, 8, 16),
        chains=32,
        sweeps=2000,
        relu_steps=20000,
        repeats=5,
    ),
}


@register
class GGDLNCurves(Experiment):
    name = "ggdln-curves"
    summary = "GGDLN theory vs Gibbs-sampled networks vs GP: error vs width, depth, σ², gates"
    Config = GGDLNCurvesConfig
    presets = CURVES_PRESETS
    config: GGDLNCurvesConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        values = {
            "width": c.widths,
            "depth": c.depths,
            "prior_var": c.prior_vars,
            "n_gates": c.gate_counts,
        }
        return [dict(axis=a, x=v) for a in c.axes for v in values[a]]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        axis, x = params["axis"], params["x"]
        X, y, Xt, yt = c.data(seed)
        kw: dict[str, Any] = {"hidden_features" if axis == "width" else axis: x}
        net = _net(c, seed, **kw)  # same gate vectors along an axis: smooth curves
        rows = evaluate(
            net,
            X,
            y,
            Xt,
            yt,
            c.temperature,
            sampler=c.sampler,
            chains=c.chains,
            sweeps=c.sweeps,
            seed=derive_seed(seed, "sampler", axis, x),
        )
        if axis == "n_gates" and c.relu:
            rows += self._relu(X, y, Xt, yt, seed)
        return rows

    def _relu(
        self, X: torch.Tensor, y: torch.Tensor, Xt: torch.Tensor, yt: torch.Tensor, seed: int
    ) -> list[Row]:
        """A ReLU network of the same width, depth and prior, sampled by Langevin dynamics."""
        c = self.config
        g = generator(seed, "relu-init")
        fans = (c.N0,) + (c.width,) * c.depth
        Ws = [
            torch.randn(c.chains, fans[l + 1], fans[l], generator=g, dtype=torch.float64)
            * math.sqrt(c.prior_var)
            for l in range(c.depth)
        ]
        Ws.append(
            torch.randn(c.chains, c.width, generator=g, dtype=torch.float64)
            * math.sqrt(c.prior_var)
        )
        # step size from the linear network's GP kernel σ^{2(L+1)} XXᵀ/N0: the same scale as
        # the ReLU network's (within ~25% here); the default's factor 0.1 leaves the margin
        K = c.prior_var ** (c.depth + 1) * X @ X.T / c.N0
        lr = default_langevin_lr(K, c.depth, c.temperature, c.prior_var)
        s = langevin(
            relu_forward,
            Ws,
            [c.prior_var] * (c.depth + 1),
            X,
            y,
            c.temperature,
            Xt,
            lr=lr,
            steps=c.relu_steps,
            seed=derive_seed(seed, "relu-langevin"),
        )
        return source_rows("relu", s.generalization(yt), s.seconds) + diagnostic_rows("relu", s)

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        axes_present = [a for a in c.axes if (table.axis == a).any()]
        fig, axs = plt.subplots(
            3, len(axes_present), figsize=(3.6 * len(axes_present), 8.5), dpi=120, squeeze=False
        )
        sampled = ("theory", "gp", c.sampler) if c.sampler != "none" else ("theory", "gp")
        for j, axis in enumerate(axes_present):
            part = table[table.axis == axis]
            for i, metric in enumerate(METRICS):
                ax = axs[i, j]
                _plot_sources(ax, part, "x", metric, sampled)
                relu = part[(part.source == "relu") & (part.metric == metric)]
                if not relu.empty:
                    m = relu["value"].mean()
                    se = float(np.sqrt((relu["se"] ** 2).sum()) / len(relu))
                    ax.axhspan(
                        m - 2 * se, m + 2 * se, color="C3", alpha=0.25, label="ReLU net (Langevin)"
                    )
                if axis in ("width", "prior_var"):
                    ax.set_xscale("log")
                ax.set_xlabel(AXIS_LABEL[axis])
                ax.set_ylabel(f"test {metric}")
                ax.grid(alpha=0.3)
                if i == 0 and j == 0:
                    ax.legend(fontsize=7)
                if i == 0 and axis == "n_gates" and not relu.empty:
                    ax.legend(fontsize=7)
        fig.suptitle(
            f"GGDLN ({c.task}, P={c.P}, base N={c.width}, L={c.depth}, M={c.n_gates}, "
            f"σ²={c.prior_var}, T={c.temperature}); errors ±2 MC s.e.",
            fontsize=9,
        )
        return [save_figure(fig, fig_dir / "ggdln_curves.png")]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Test error per axis value and source (mean over seeds)."""
        part = table[table.metric == "error"]
        wide = part.pivot_table(
            index=["axis", "x"], columns="source", values="value", aggfunc="mean", dropna=False
        )
        return wide.dropna(how="all").reset_index()


GATE_KINDS = ("halfspace", "pca", "kmeans")


@dataclass(frozen=True)
class GateLearningConfig(GGDLNBaseConfig):
    """Random vs unsupervised-learned gates over training-set sizes."""

    task: TaskName = "digits"
    N0: Count = 20
    gate_kinds: tuple[str, ...] = GATE_KINDS
    sizes: Counts = (20, 40, 80)
    depth: Count = 1
    n_gates: Count = 4
    prior_var: Positive = 1.0
    temperature: Positive = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [k for k in self.gate_kinds if k not in GATE_KINDS]
        if not self.gate_kinds or bad:
            raise ValueError(f"`gate_kinds` (={self.gate_kinds!r}) must list some of {GATE_KINDS}.")


GATE_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(N0=8, sizes=(12, 24), P_test=30, width=8, chains=4, sweeps=30, repeats=1),
    "quick": dict(repeats=3),
    "paper": dict(
        sizes=(25, 50, 100, 200, 400), P_test=1000, n_gates=8, chains=32, sweeps=2000, repeats=5
    ),
}


@register
class GGDLNGateLearning(Experiment):
    name = "ggdln-gate-learning"
    summary = "GGDLN: random vs unsupervised-learned (PCA, k-means) gates, theory and Gibbs"
    Config = GateLearningConfig
    presets = GATE_PRESETS
    config: GateLearningConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(gates=k, P=P) for k in c.gate_kinds for P in c.sizes]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        kind, P = params["gates"], params["P"]
        X, y, Xt, yt = c.data(seed, P)
        net = _net(c, seed, gates=kind)
        # unlabelled inputs for the gates: the training inputs (their labels are never used)
        net.fit_gates(X, seed=derive_seed(seed, "gate-fit", kind, P))
        return evaluate(
            net,
            X,
            y,
            Xt,
            yt,
            c.temperature,
            sampler=c.sampler,
            chains=c.chains,
            sweeps=c.sweeps,
            seed=derive_seed(seed, "sampler", kind, P),
        )

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        c = self.config
        sources = ("theory", c.sampler) if c.sampler != "none" else ("theory",)
        title = (
            f"GGDLN on {c.task} (even vs odd, PCA {c.N0}), N={c.width}, L={c.depth}, "
            f"M={c.n_gates}: random vs learned gates"
        )
        return [
            _metric_panels(
                table,
                "gates",
                c.gate_kinds,
                "P",
                sources,
                10,
                "training examples P",
                "",
                title,
                fig_dir / "ggdln_gate_learning.png",
            )
        ]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return _error_by_source(table, ["gates", "P"])


@dataclass(frozen=True)
class MultitaskConfig(GGDLNBaseConfig):
    """Tasks = the base task with its inputs permuted; P examples per task."""

    task: TaskName = "teacher"
    N0: Count = 20
    P: Count = 30
    P_test: Count = 100
    task_counts: Counts = (1, 2, 4, 8)
    gatings: tuple[str, ...] = ("shared", "task")
    depth: Count = 1
    n_gates: Count = 8
    prior_var: Positive = 1.0
    temperature: Positive = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [g for g in self.gatings if g not in ("shared", "task")]
        if not self.gatings or bad:
            raise ValueError(f"`gatings` (={self.gatings!r}) must list 'shared' and/or 'task'.")


MULTI_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        N0=6, P=10, P_test=20, width=8, task_counts=(1, 2), chains=4, sweeps=30, repeats=1
    ),
    "quick": dict(sweeps=300, repeats=2),  # ~90 s (one thread)
    "paper": dict(
        P=50,
        P_test=500,
        task_counts=(1, 2, 4, 8, 16),
        n_gates=16,
        chains=32,
        sweeps=2000,
        repeats=5,
    ),
}


@register
class GGDLNMultitask(Experiment):
    name = "ggdln-multitask"
    summary = "GGDLN multi-task capacity: permuted-input tasks with shared vs task gates"
    Config = MultitaskConfig
    presets = MULTI_PRESETS
    config: MultitaskConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(gating=g, n_tasks=n) for g in c.gatings for n in c.task_counts]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        gating, n = params["gating"], params["n_tasks"]
        Xs, ys, Xts, yts = [], [], [], []
        for t in range(n):
            # own inputs per task, one teacher (digits: the same even/odd labelling)
            X, y, Xt, yt = c.data(derive_seed(seed, "multitask", t), teacher_seed=seed)
            perm = (
                torch.arange(c.N0)
                if t == 0
                else torch.randperm(c.N0, generator=generator(seed, "perm", t))
            )
            Xs.append(X[:, perm])
            ys.append(y)
            Xts.append(Xt[:, perm])
            yts.append(yt)
        task = torch.arange(n).repeat_interleave(c.P)
        task_test = torch.arange(n).repeat_interleave(c.P_test)
        X, y, Xt, yt = torch.cat(Xs), torch.cat(ys), torch.cat(Xts), torch.cat(yts)
        net = _net(c, seed, n, n_tasks=n if gating == "task" else 1)  # same gates at n = 1
        tk = dict(task=task, task_test=task_test) if gating == "task" else {}
        rows = evaluate(
            net,
            X,
            y,
            Xt,
            yt,
            c.temperature,
            sampler=c.sampler,
            chains=c.chains,
            sweeps=c.sweeps,
            seed=derive_seed(seed, "sampler", gating, n),
            **tk,
        )
        return rows

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        c = self.config
        sources = ("theory", "gp") + ((c.sampler,) if c.sampler != "none" else ())
        title = (
            f"Permuted-input {c.task} tasks, P={c.P} per task, N={c.width}, "
            f"M={c.n_gates}: shared vs task-dependent gates"
        )
        return [
            _metric_panels(
                table,
                "gating",
                c.gatings,
                "n_tasks",
                sources,
                2,
                "number of tasks",
                " (mean over tasks)",
                title,
                fig_dir / "ggdln_multitask.png",
            )
        ]

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return _error_by_source(table, ["gating", "n_tasks"])
