"""Channel measurements on trained MLPs (Martinelli et al. 2025, ``science/channels.md``): the
per-network rows of the channel experiments, the fraction ending in a channel with Wilson
intervals, and the jump procedure along a channel.

Per network the rows are ``metric ∈ {channel, pair, min_cos_distance, epsilon, diverged,
undecided, loss, norm, steps, flow_time, channels, sharpness, glu}`` and, for networks with
``glu = 1``, ``loss_limit``, ``loss_refined`` and ``loss_gap`` (``galu.experiments.channels``
documents each).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
import torch

from galu.analysis._intervals import wilson_interval
from galu.channels import (
    descend,
    detect_channels,
    glu_limit,
    gradient_flow,
    jump,
    loss,
    refine,
    top_eigenvalue,
)
from galu.channels._detect import Channel
from galu.channels._flow import FlowResult

Row = dict[str, Any]


def train_networks(
    theta0: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str,
    *,
    optimizer: Literal["flow", "gd", "adam"] = "flow",
    flow: dict[str, Any] | None = None,
    lr: float = 1e-2,
    steps: int = 50_000,
) -> FlowResult:
    """Gradient flow (``optimizer="flow"``, settings ``flow``) or full-batch gd / adam (``lr``,
    ``steps``) of all networks of ``theta0`` on one data set."""
    if optimizer == "flow":
        return gradient_flow(theta0, Xa, y, act, **(flow or {}))
    return descend(theta0, Xa, y, act, optimizer=optimizer, lr=lr, steps=steps)


def network_rows(
    res: FlowResult,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str,
    *,
    norm_bound: float,
    refine_steps: int,
) -> list[list[Row]]:
    """Per network of ``res``, its rows (module docstring) without the point's parameters."""
    D = Xa.shape[-1]
    reports = detect_channels(
        res.theta, D, res.update, norm_threshold=norm_bound, activation=act, data=(Xa, y, act)
    )
    out = []
    for e, rep in enumerate(reports):
        rows = dict(
            channel=float(rep.at_channel),
            pair=float(any(ch.pair for ch in rep.channels)),  # criteria 2 and 3, any norm
            min_cos_distance=min((ch.cosine_distance for ch in rep.channels), default=math.nan),
            epsilon=min((ch.epsilon for ch in rep.channels), default=math.nan),
            diverged=float(res.status[e] == "diverged"),
            undecided=float(res.status[e] in ("max_steps", "max_time")),
            loss=float(res.loss[e]),
            norm=rep.norm,
            steps=float(res.steps[e]),
            flow_time=float(res.time[e]),
            channels=float(len(rep.detected)),
            sharpness=float(rep.sharpness) if rep.sharpness is not None else math.nan,
        )
        rows["glu"] = float(bool(rep.glu_channels))
        if rep.glu_channels:
            limit = glu_limit(res.theta[e], D, act, rep.glu_channels)
            Xe, ye = (Xa[e] if Xa.ndim == 3 else Xa), (y[e] if y.ndim == 2 else y)
            history = refine(limit, Xe, ye, steps=refine_steps)[1]  # starts at limit's loss
            rows["loss_limit"], rows["loss_refined"] = history[0], history[-1]
            rows["loss_gap"] = rows["loss"] - rows["loss_refined"]
        out.append([dict(metric=k, value=v) for k, v in rows.items()])
    return out


def channel_fractions(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Fraction of networks ending in a channel per ``keys`` (from rows with ``metric`` /
    ``value`` columns), with Wilson 95% intervals (``low``, ``high``) and the mean of the
    ``diverged`` and ``undecided`` flags."""
    t = table[table.metric == "channel"]
    g = t.groupby(keys)["value"].agg(["sum", "count"]).reset_index()
    lo_hi = [wilson_interval(k, n) for k, n in zip(g["sum"], g["count"], strict=True)]
    g["fraction"] = g["sum"] / g["count"]
    g["low"] = [a for a, _ in lo_hi]
    g["high"] = [b for _, b in lo_hi]
    for metric in ("diverged", "undecided"):
        part = table[table.metric == metric].groupby(keys)["value"].mean()
        g[metric] = g.set_index(keys).index.map(part).to_numpy() if len(part) else math.nan
    return g.rename(columns={"sum": "channels", "count": "networks"})


def jump_series(
    theta: torch.Tensor,
    channel: Channel,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str,
    *,
    jumps: int,
    jump_time: float,
    flow: dict[str, Any],
) -> list[Row]:
    """The jump procedure along a merged pair ``channel`` of the network ``theta``: ``jumps``
    times halve ``ε`` (``galu.channels.jump``) and integrate the flow for ``jump_time`` more.

    Rows per step ``0..jumps`` (``step``, ``metric``, ``value``): ``epsilon``, ``loss``,
    ``loss_limit`` (the GLU limit's loss), ``loss_gap``, ``sharpness``, the limit quantities
    ``c``, ``a``, ``cos_direction_centre`` and ``norm``. If the pair leaves the channel (or a
    third unit joins it) the series stops with a row ``step = -1, metric = left_channel_at``.
    """
    D = Xa.shape[-1]
    rows: list[Row] = []
    for step in range(jumps + 1):
        if step:
            theta = jump(theta, D, channel, 0.5)
            again = gradient_flow(
                theta[None], Xa, y, act, **(flow | dict(norm_bound=1e300, t_max=jump_time))
            )
            theta = again.theta[0]
            rep = detect_channels(
                again.theta, D, again.update, norm_threshold=0.0, update_threshold=0.0
            )[0]
            match = [ch for ch in rep.channels if set(ch.neurons) == set(channel.neurons)]
            if not match:  # the pair left the channel or a third unit joined it: stop, say so
                rows.append(dict(step=-1, metric="left_channel_at", value=float(step)))
                break
            channel = match[0]
        L_limit = glu_limit(theta, D, act, (channel,)).loss(Xa, y)
        L = float(loss(theta[None], Xa, y, act)[0])
        sharp = float(top_eigenvalue(theta[None], Xa, y, act)[0])
        values = dict(
            epsilon=channel.epsilon,
            loss=L,
            loss_limit=L_limit,
            loss_gap=L - L_limit,
            sharpness=sharp,
            c=channel.c,
            a=channel.a,
            cos_direction_centre=channel.cos_direction_centre(),
            norm=float(torch.linalg.vector_norm(theta)),
        )
        rows += [dict(step=step, metric=k, value=v) for k, v in values.items()]
    return rows
