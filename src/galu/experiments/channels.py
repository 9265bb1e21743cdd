"""Flat channels to infinity in MLP loss landscapes (Martinelli et al. 2025,
``science/channels.md``; ``docs/channels.md``).

Four experiments share the training and the row format here:

``channels-toy``     the 2-D log-Rosenbrock toy: widths r, the activation sigmoid(4x) + softplus(x),
                     many initialisations each; the fraction of runs ending in a channel.
``channels-sweep``   input dimension × width × activation (softplus, erf) × target (Rosenbrock,
                     Matérn-3/2 Gaussian-process samples of several length scales); the fraction
                     of runs ending in channels, with Wilson 95% intervals.
``channels-erf``     two erf neurons without biases and a target whose optimum is at infinity:
                     gradient flow runs into a channel and its GLU limit beats every finite point.
``channels-jump``    the jump procedure on an 8-D Rosenbrock network of softplus units: halve ε,
                     re-integrate; the loss gap scales as ε² and the sharpness as 1/ε².

Every network is trained by full-batch gradient flow (``galu.channels.gradient_flow``: a stiff
Rosenbrock integrator, all initialisations of a point in one vectorised pass) until its parameter
norm reaches ``norm_bound`` or its gradient vanishes, then analysed with the paper's three
criteria (``detect_channels``). Per network the rows are ``metric ∈ {channel, diverged, loss,
norm, steps, flow_time, channels, sharpness, glu, pair, min_cos_distance, epsilon, undecided,
loss_limit, loss_refined, loss_gap}`` (``sharpness``: the top Hessian eigenvalue at the end):
``epsilon`` is the smallest ``ε`` among the network's near-parallel groups (NaN if none);
``channel`` is 1 when the three criteria hold, ``glu`` when moreover a channel's input vectors
have merged (``ε/‖w‖ < 0.05``: the GLU limit applies), ``pair`` when criteria 2 and 3 hold
whatever the norm (finite-step optimisers stall at a channel's entrance, below the norm bound;
a pair of duplicated units also qualifies), ``undecided`` when the flow stopped at ``max_steps`` or
``t_max`` before reaching the norm bound or a critical point; for networks with
``glu = 1``, ``loss_limit`` is the loss after replacing each merged channel by its limit unit
``c σ(w·x̃) + (v·x̃) σ'(w·x̃)``, ``loss_refined`` the loss after training that limit network
(L-BFGS, ``refine_steps``), and ``loss_gap = loss − loss_refined``.
Optimisers with finite steps (``optimizer=gd|adam``) can replace the flow for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch

from galu import analysis
from galu.analysis import channel_fractions, wilson_interval  # noqa: F401  (re-exported)
from galu.channels import (
    augment,
    detect_channels,
    forward,
    glorot_init,
    glu_limit,
)
from galu.channels._activations import ActivationName
from galu.channels._flow import FlowResult
from galu.data import erf_toy, parse_target, rosenbrock, rosenbrock_grid, standardize, target_task
from galu.experiments.base import Experiment, Row, SeedBatched, register, save_figure
from galu.experiments.config import (
    AtLeast2,
    BaseConfig,
    Count,
    Counts,
    NonEmpty,
    NonNegativeInt,
    Positive,
    PositiveFinite,
)
from galu.seeding import generator

Optimizer = Literal["flow", "gd", "adam"]
OPTIMIZERS: tuple[str, ...] = ("flow", "gd", "adam")
ACTIVATION_NAMES: tuple[str, ...] = ("softplus", "erf")


@dataclass(frozen=True)
class FlowSettings(BaseConfig):
    """Training shared by the channel experiments."""

    optimizer: Optimizer = "flow"  # gradient flow, or full-batch gd / adam for comparison
    norm_bound: PositiveFinite = 1e3  # stop the flow (and detection criterion 1) at this norm
    gtol: PositiveFinite = 1e-12  # stop the flow below this gradient norm
    t_max: PositiveFinite = 1e14  # flow-time limit per network
    max_steps: Count = 20_000  # integrator steps per network
    rtol: PositiveFinite = 1e-5  # local error tolerance of the adaptive step
    lr: PositiveFinite = 1e-2  # gd / adam step size
    opt_steps: Count = 50_000  # gd / adam steps
    refine_steps: NonNegativeInt = 100  # L-BFGS iterations per GLU-limit network

    def flow_kwargs(self, **overrides: float) -> dict[str, Any]:
        """The ``gradient_flow`` settings of this config (``overrides`` replace some)."""
        kw: dict[str, Any] = dict(
            norm_bound=self.norm_bound,
            gtol=self.gtol,
            t_max=self.t_max,
            max_steps=self.max_steps,
            rtol=self.rtol,
        )
        return kw | overrides


def train_networks(c: FlowSettings, theta0, Xa, y, act: str) -> FlowResult:
    """Gradient flow (or gd / adam) of all networks of ``theta0`` on one data set."""
    return analysis.train_networks(theta0, Xa, y, act, optimizer=c.optimizer,
                                   flow=c.flow_kwargs(), lr=c.lr, steps=c.opt_steps)  # fmt: skip


def network_rows(c: FlowSettings, res: FlowResult, Xa, y, act: str) -> list[list[Row]]:
    """Per network, the rows of the module docstring (without the point's parameters)."""
    return analysis.network_rows(res, Xa, y, act, norm_bound=c.norm_bound,
                                 refine_steps=c.refine_steps)  # fmt: skip


def _batch_seeds(config: BaseConfig, seeds: list[int]) -> list[int]:
    """The seeds integrated together: the point's whole seed list (plus any extra asked for).
    A batch sums in another order than a single network (agreement to ~1e-10, tested), so
    integrating the same batch whatever subset is pending keeps resumed runs bit-identical."""
    full = config.seeds()
    return full + [s for s in seeds if s not in full]


def _train_seeds(
    c: FlowSettings,
    params: dict[str, Any],
    seeds: list[int],
    init: Callable[[int], torch.Tensor],
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str,
) -> dict[int, list[Row]]:
    """Train the point's whole seed batch (``init(seed)`` gives each ``(1, P)`` start) on one data
    set and return the rows of the seeds asked for."""
    batch = _batch_seeds(c, seeds)
    res = train_networks(c, torch.cat([init(s) for s in batch]), Xa, y, act)
    per_net = dict(zip(batch, network_rows(c, res, Xa, y, act), strict=True))
    return {s: [dict(params, **row) for row in per_net[s]] for s in seeds}


# --------------------------------------------------------------------------- 2-D toy


@dataclass(frozen=True)
class ToyConfig(FlowSettings):
    """The paper's 2-D toy (log-Rosenbrock target on a grid)."""

    grid_side: AtLeast2 = 30  # grid points per axis (the paper: 100, i.e. 10⁴ points)
    widths: Counts = (1, 2, 3, 4, 5)  # hidden units r
    activation: ActivationName = "sigmoid4-softplus"  # σ of the toy: σ(4x) + softplus(x)
    repeats: Count = 24  # initialisations per width (the paper: 50·2^r)
    max_steps: Count = 5_000  # a network still moving after this many steps is "undecided"


def toy_data(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Xa (side², 3), y (side²,))``: the standardised log-Rosenbrock target on the grid."""
    X = rosenbrock_grid(side)
    return augment(X), standardize(rosenbrock(X))


@register
class ChannelsToy(SeedBatched):
    name = "channels-toy"
    summary = "2-D log-Rosenbrock toy: how often gradient flow ends in a channel, per width"
    Config = ToyConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(grid_side=12, widths=(2, 3), repeats=4, max_steps=2000),
        "quick": dict(),
        "paper": dict(grid_side=100, repeats=400, max_steps=100_000),
    }
    config: ToyConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(r=r, activation=c.activation, optimizer=c.optimizer) for r in c.widths]

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        r = params["r"]
        Xa, y = toy_data(self.config.grid_side)

        def init(s: int) -> torch.Tensor:
            return glorot_init(1, r, 3, generator=generator(s, "channels-toy-init", r))

        return _train_seeds(self.config, params, seeds, init, Xa, y, params["activation"])

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return channel_fractions(table, ["r"])

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        frac = channel_fractions(table, ["r"])
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=130)
        ax = axes[0]
        ax.errorbar(
            frac["r"],
            frac["fraction"],
            yerr=[frac["fraction"] - frac["low"], frac["high"] - frac["fraction"]],
            fmt="o-",
            capsize=3,
        )
        ax.set_xticks(sorted(frac["r"].unique()))
        ax.set(
            xlabel="hidden units r",
            ylabel="fraction ending in a channel",
            title="2-D log-Rosenbrock toy (Wilson 95%)",
            ylim=(-0.02, 1.02),
        )
        wide = table.pivot_table(index=["r", "seed"], columns="metric", values="value")
        ax = axes[1]
        for flag, style, label in ((0.0, "o", "finite end point"), (1.0, "x", "channel")):
            part = wide[wide["channel"] == flag].reset_index()
            jitter = (part["seed"] % 7 - 3) * 0.04
            ax.scatter(part["r"] + jitter, part["loss"], marker=style, s=14, label=label)
        ax.set(
            xlabel="hidden units r",
            ylabel="final loss",
            yscale="log",
            title="losses of channels vs finite end points",
        )
        ax.legend()
        return [save_figure(fig, fig_dir / "channels_toy.png")]


# --------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class SweepConfig(FlowSettings):
    """The paper's sweep over input dimension, width, activation and target roughness."""

    dims: Annotated[tuple[AtLeast2, ...], NonEmpty] = (2, 4)  # input dimensions d
    widths: Counts = (2, 4)  # hidden units r
    activations: tuple[str, ...] = ACTIVATION_NAMES
    targets: tuple[str, ...] = ("rosenbrock", "matern-0.1", "matern-0.5", "matern-2", "matern-10")
    n: AtLeast2 = 256  # training inputs, uniform in [−2, 2]^d
    repeats: Count = 10  # initialisations per configuration (the paper: 50)
    max_steps: Count = 10_000  # a network still moving after this many steps is "undecided"

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [a for a in self.activations if a not in ACTIVATION_NAMES]
        if bad or not self.activations:
            raise ValueError(
                f"`activations` (={self.activations!r}) must be from {ACTIVATION_NAMES}."
            )
        for t in self.targets:
            parse_target(t)


def sweep_data(d: int, n: int, target: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Xa (n, d + 1), y (n,))``: :func:`galu.data.target_task` with the bias column. One
    target per configuration and base seed, shared by its initialisations."""
    X, y = target_task(d, n, target, seed)
    return augment(X), y


@register
class ChannelsSweep(SeedBatched):
    name = "channels-sweep"
    summary = "Fraction of gradient-flow runs ending in channels over d, r, activation, target"
    Config = SweepConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            dims=(2,),
            widths=(2, 4),
            activations=("softplus",),
            targets=("rosenbrock", "matern-0.5"),
            n=64,
            repeats=4,
            max_steps=2000,
        ),
        "quick": dict(),
        "paper": dict(
            dims=(2, 4, 8, 16), widths=(2, 4, 8, 16), n=1024, repeats=50, max_steps=100_000
        ),
    }
    config: SweepConfig

    def points(self) -> list[dict[str, Any]]:
        """One point per (d, r, activation): its targets and seeds share one batched flow (each
        network with its own data), and rows carry a ``target`` column."""
        c = self.config
        return [
            dict(d=d, r=r, activation=a, optimizer=c.optimizer)
            for d in c.dims
            for r in c.widths
            for a in c.activations
        ]

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        c = self.config
        d, r, act = params["d"], params["r"], params["activation"]
        batch = _batch_seeds(c, seeds)
        data = {t: sweep_data(d, c.n, t, c.seed) for t in c.targets}
        nets = [(t, s) for t in c.targets for s in batch]
        theta0 = torch.cat(
            [
                glorot_init(1, r, d + 1, generator=generator(s, "channels-sweep-init", d, r))
                for _, s in nets
            ]
        )
        Xa = torch.stack([data[t][0] for t, _ in nets])  # (E, n, d + 1)
        y = torch.stack([data[t][1] for t, _ in nets])  # (E, n)
        res = train_networks(c, theta0, Xa, y, act)
        rows = network_rows(c, res, Xa, y, act)
        out: dict[int, list[Row]] = {s: [] for s in seeds}
        for (t, s), net_rows in zip(nets, rows, strict=True):
            if s in out:
                out[s] += [dict(params, target=t, **row) for row in net_rows]
        return out

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        return channel_fractions(table, ["activation", "target"])

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        order = sorted(set(table["target"]), key=_roughness_order)
        frac = channel_fractions(table, ["activation", "target"])
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), dpi=130)
        ax = axes[0]
        acts = sorted(frac["activation"].unique())
        for k, act in enumerate(acts):
            part = frac[frac.activation == act].set_index("target").reindex(order)
            x = np.arange(len(order)) + (k - (len(acts) - 1) / 2) * 0.12
            ax.errorbar(
                x,
                part["fraction"],
                yerr=[part["fraction"] - part["low"], part["high"] - part["fraction"]],
                fmt="o-",
                capsize=3,
                label=act,
            )
        ax.set_xticks(range(len(order)), order, rotation=20)
        ax.set(
            ylabel="fraction ending in a channel",
            ylim=(-0.02, 1.02),
            title="rougher targets to the left (Wilson 95%)",
        )
        ax.legend()
        ax = axes[1]  # where every run ended
        wide = table.pivot_table(
            index=["activation", "target", "d", "r", "seed"], columns="metric", values="value"
        ).reset_index()
        wide["finite"] = 1 - wide["diverged"] - wide["undecided"]
        wide["escaped"] = wide["diverged"] - wide["channel"]
        parts = wide.groupby(["activation", "target"])[
            ["channel", "escaped", "finite", "undecided"]
        ].mean()
        labels, bottom = [], np.zeros(len(parts))
        idx = sorted(parts.index, key=lambda k: (k[0], _roughness_order(k[1])))
        parts = parts.loc[idx]
        for col, label in (
            ("channel", "channel (3 criteria)"),
            ("escaped", "norm bound, no channel"),
            ("finite", "finite critical point"),
            ("undecided", "undecided"),
        ):
            ax.bar(range(len(parts)), parts[col], bottom=bottom, label=label)
            bottom += parts[col].to_numpy()
        labels = [f"{a[:4]} {t}" for a, t in parts.index]
        ax.set_xticks(range(len(parts)), labels, rotation=60, fontsize=7)
        ax.set(ylabel="fraction of runs", title="where gradient flow ended")
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=2)
        ax = axes[2]
        by = channel_fractions(table, ["d", "r"])
        for d, part in by.groupby("d"):
            ax.errorbar(
                part["r"],
                part["fraction"],
                yerr=[part["fraction"] - part["low"], part["high"] - part["fraction"]],
                fmt="o-",
                capsize=3,
                label=f"d = {d}",
            )
        ax.set_xticks(sorted(by["r"].unique()))
        ax.set(
            xlabel="hidden units r",
            ylabel="fraction ending in a channel",
            ylim=(-0.02, 1.02),
            title="per input dimension (targets pooled)",
        )
        ax.legend()
        return [save_figure(fig, fig_dir / "channels_sweep.png")]


def _roughness_order(target: str) -> tuple[int, float]:
    """Matérn targets by length scale (roughest first), then Rosenbrock."""
    kind, s = parse_target(target)
    return (1, 0.0) if kind == "rosenbrock" else (0, s)


# --------------------------------------------------------------------------- erf toy


@dataclass(frozen=True)
class ErfConfig(FlowSettings):
    """Two erf neurons without biases; the target's optimum lies at infinity."""

    n: AtLeast2 = 201  # inputs on a uniform grid over [−3, 3]
    repeats: Count = 8


def erf_init(seed: int) -> torch.Tensor:
    """The erf toy's Glorot-normal start ``(1, 4)`` for ``seed``: two units, no bias."""
    return glorot_init(1, 2, 1, generator=generator(seed, "channels-erf-init"))


@register
class ChannelsErf(SeedBatched):
    name = "channels-erf"
    summary = "Two erf neurons, optimum at infinity: the flow runs into a channel; its GLU limit"
    Config = ErfConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(n=61, repeats=2),
        "quick": dict(),
        "paper": dict(n=1001, repeats=50),
    }
    config: ErfConfig
    CURVE_POINTS: ClassVar[int] = 100  # points per drawn curve (trace and fits) in the rows

    def points(self) -> list[dict[str, Any]]:
        return [dict(r=2, activation="erf", optimizer=self.config.optimizer)]

    def run_seeds(self, params: dict[str, Any], seeds: list[int]) -> dict[int, list[Row]]:
        """The network rows, plus what the figure draws, per seed: the loss and norm along the
        flow (``trace_loss`` / ``trace_norm`` at ≤ ``CURVE_POINTS`` log-spaced steps, column
        ``step``), the end fit (``fit``, column ``x``) and, for a channel, its GLU limit's fit
        (``fit_limit``). The trace is recorded by the same integration (it does not change it)."""
        c = self.config
        X, y = erf_toy(c.n)
        batch = _batch_seeds(c, seeds)
        res = analysis.train_networks(
            torch.cat([erf_init(s) for s in batch]), X, y, "erf", optimizer=c.optimizer,
            flow=c.flow_kwargs(trace_every=1), lr=c.lr, steps=c.opt_steps,
        )  # fmt: skip
        per_net = network_rows(c, res, X, y, "erf")
        reports = detect_channels(res.theta, 1, res.update, norm_threshold=c.norm_bound,
                                  activation="erf")  # fmt: skip
        grid = torch.linspace(0, c.n - 1, min(c.n, self.CURVE_POINTS)).round().long().unique()
        xs = X[grid, 0]
        out: dict[int, list[Row]] = {}
        for e, s in enumerate(batch):
            if s not in seeds:
                continue
            rows = list(per_net[e])
            trace = res.trace[e] if res.trace else []
            keep = sorted({round(v) for v in np.geomspace(1, len(trace), self.CURVE_POINTS)}
                          if trace else set())  # fmt: skip
            for i in keep:
                _, L, norm = trace[i - 1]
                rows += [dict(metric="trace_loss", step=i, value=L),
                         dict(metric="trace_norm", step=i, value=norm)]  # fmt: skip
            fit = forward(res.theta[e : e + 1], X, "erf")[0][grid]
            rows += [
                dict(metric="fit", x=float(x), value=float(v)) for x, v in zip(xs, fit, strict=True)
            ]
            rep = reports[e]
            if rep.at_channel and rep.glu_channels:
                limit = glu_limit(res.theta[e], 1, "erf", rep.glu_channels)
                lim = limit.forward(X).detach()[grid]
                rows += [dict(metric="fit_limit", x=float(x), value=float(v))
                         for x, v in zip(xs, lim, strict=True)]  # fmt: skip
            out[s] = [dict(params, **row) for row in rows]
        return out

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Per seed: where the flow ended, its loss and, for channels, the GLU limit's loss."""
        wide = table.pivot_table(index="seed", columns="metric", values="value")
        names = ("channel", "glu", "diverged", "norm", "loss", "loss_limit", "loss_refined")
        cols = [c for c in names if c in wide]
        return wide[cols].reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        X, y = erf_toy(self.config.n)
        end = table[~table.metric.isin(("trace_loss", "trace_norm", "fit", "fit_limit"))]
        wide = end.pivot_table(index="seed", columns="metric", values="value")
        # One run of each outcome: the first seed ending in a channel and the first ending at a
        # finite critical point (two units duplicating one), drawn from their rows.
        picks: dict[str, int] = {}
        for seed, row in wide.iterrows():
            kind = "channel" if row["channel"] else "finite"
            picks.setdefault(kind, int(seed))
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=130)
        axes[1].plot(X[:, 0], y, "k-", lw=2.5, label="target")
        styles = {"channel": "C0", "finite": "C1"}
        for kind, seed in sorted(picks.items()):
            mine = table[table.seed == seed]
            label = f"seed {seed}: " + ("channel" if kind == "channel" else "duplicate units")
            tr_loss = mine[mine.metric == "trace_loss"].sort_values("step")
            tr_norm = mine[mine.metric == "trace_norm"].sort_values("step")
            if len(tr_loss):
                axes[0].loglog(tr_norm["value"], tr_loss["value"], "-", color=styles[kind],
                               label=label)  # fmt: skip
            fit = mine[mine.metric == "fit"].sort_values("x")
            axes[1].plot(fit["x"], fit["value"], "--", color=styles[kind], label=f"{label}, end")
            lim = mine[mine.metric == "fit_limit"].sort_values("x")
            if kind == "channel" and len(lim):
                L_limit = float(wide.loc[seed, "loss_limit"])
                axes[0].axhline(L_limit, color="k", ls=":", lw=1, label=f"GLU limit: {L_limit:.6f}")
                axes[1].plot(lim["x"], lim["value"], ":", color="C2", lw=2,
                             label="GLU limit c·σ(wx) + (vx)·σ'(wx)")  # fmt: skip
        axes[0].set(
            xlabel="parameter norm ‖θ‖", ylabel="loss", title="erf toy: loss along the flow"
        )
        axes[0].legend(fontsize=8)
        axes[1].set(xlabel="x", title="fits at the end of the flow")
        axes[1].legend(fontsize=8)
        return [save_figure(fig, fig_dir / "channels_erf.png")]


# --------------------------------------------------------------------------- jump procedure


@dataclass(frozen=True)
class JumpConfig(FlowSettings):
    """The jump procedure on a Rosenbrock network of softplus units."""

    d: Count = 8  # input dimension (the paper: 8)
    r: Count = 8  # hidden units (the paper: 8)
    n: Count = 256  # training inputs, uniform in [−2, 2]^d
    jumps: Count = 6  # halvings of ε
    jump_time: Positive = 1e4  # flow time after each halving (transients relax; ε barely moves)
    search: Count = 32  # initialisations tried to find a network ending in a channel
    repeats: Count = 1


@register
class ChannelsJump(Experiment):
    name = "channels-jump"
    summary = "Jump procedure along a channel: loss gap ∝ ε², sharpness ∝ 1/ε²"
    Config = JumpConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(d=2, r=3, n=64, jumps=2, search=8, max_steps=4000),
        "quick": dict(),
        "paper": dict(n=1024, jumps=10, search=64, max_steps=100_000),
    }
    config: JumpConfig

    def points(self) -> list[dict[str, Any]]:
        c = self.config
        return [dict(d=c.d, r=c.r, activation="softplus", target="rosenbrock")]

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        d, r = params["d"], params["r"]
        Xa, y = sweep_data(d, c.n, "rosenbrock", seed)
        g = generator(seed, "channels-jump-init", d, r)
        theta0 = glorot_init(c.search, r, d + 1, generator=g)
        res = train_networks(c, theta0, Xa, y, "softplus")
        reports = detect_channels(res.theta, d + 1, res.update, norm_threshold=c.norm_bound)
        # Networks ending in a merged pair channel (the jump moves pairs; see galu.channels.jump).
        found = [
            e
            for e, rep in enumerate(reports)
            if any(len(ch.neurons) == 2 for ch in rep.glu_channels)
        ]
        rows: list[Row] = [
            dict(params, step=-1, metric="searched", value=float(c.search)),
            dict(params, step=-1, metric="found", value=float(len(found))),
        ]
        if not found:
            return rows
        e = found[0]
        channel = next(ch for ch in reports[e].glu_channels if len(ch.neurons) == 2)
        series = analysis.jump_series(res.theta[e], channel, Xa, y, "softplus", jumps=c.jumps,
                                      jump_time=c.jump_time, flow=c.flow_kwargs())  # fmt: skip
        rows += [dict(params, **row) for row in series]
        return rows

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        t = table[table.step >= 0]
        return t.pivot_table(index=["seed", "step"], columns="metric", values="value").reset_index()

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        wide = self.summarize(table)
        fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=130)
        if wide.empty:
            for ax in axes:
                ax.text(0.5, 0.5, "no channel found", ha="center", transform=ax.transAxes)
            return [save_figure(fig, fig_dir / "channels_jump.png")]
        eps = wide["epsilon"].to_numpy()
        for ax, col, slope, label in (
            (axes[0], "loss_gap", 2, "loss − GLU-limit loss"),
            (axes[1], "sharpness", -2, "top Hessian eigenvalue"),
        ):
            vals = wide[col].to_numpy()
            ok = vals > 0
            ax.loglog(eps[ok], vals[ok], "o-", label="measured")
            if ok.any():
                ref = vals[ok][0] * (eps[ok] / eps[ok][0]) ** slope
                ax.loglog(eps[ok], ref, "k--", lw=1, label=f"∝ ε^{slope}")
                fit = (
                    np.polyfit(np.log(eps[ok]), np.log(vals[ok]), 1)[0]
                    if ok.sum() > 1
                    else math.nan
                )
                ax.set_title(f"{label}: fitted slope {fit:.2f}")
            ax.set(xlabel="ε")
            ax.legend()
        ax = axes[2]
        for col, color in (("a", "C1"), ("cos_direction_centre", "C2")):
            ax.semilogx(eps, wide[col], "o-", color=color, label=col)
        ax.set(
            xlabel="ε", ylabel="a, cos(direction, centre)", title="limit quantities along the jumps"
        )
        # c drifts by a factor of a few while a and the cosine stay O(1): its own axis shows it.
        ax_c = ax.twinx()
        ax_c.semilogx(eps, wide["c"], "s--", color="C0", label="c (right axis)")
        ax_c.set_ylabel("c", color="C0")
        ax_c.tick_params(axis="y", colors="C0")
        handles = ax.get_legend_handles_labels()
        handles_c = ax_c.get_legend_handles_labels()
        ax.legend(handles[0] + handles_c[0], handles[1] + handles_c[1], fontsize=8)
        return [save_figure(fig, fig_dir / "channels_jump.png")]
