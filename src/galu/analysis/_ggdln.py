"""The GGDLN evaluation: finite-width theory vs the GP limit vs a sampled posterior, as rows
``source ∈ {theory, gp, gibbs, langevin}`` × ``metric ∈ {error, bias, variance, seconds}`` with a
Monte-Carlo standard error ``se`` for sampled sources, the theory's saddle-point ``residual`` and
the samplers' convergence diagnostics."""

from __future__ import annotations

from typing import Any

import torch

from galu.nn import GGDLN
from galu.theory import ggdln_theory
from galu.train import PosteriorSamples, gibbs_ggdln, langevin_ggdln

METRICS = ("error", "bias", "variance")


def source_rows(source: str, stats: dict[str, float], seconds: float) -> list[dict[str, Any]]:
    """Rows ``metric ∈ METRICS`` (value, Monte-Carlo ``se``) and ``seconds`` of one source."""
    rows = [
        dict(source=source, metric=k, value=stats[k], se=stats.get(f"{k}_se", float("nan")))
        for k in METRICS
    ]
    rows.append(dict(source=source, metric="seconds", value=seconds, se=float("nan")))
    return rows


def evaluate_ggdln(
    net: GGDLN,
    X: torch.Tensor,
    y: torch.Tensor,
    Xt: torch.Tensor,
    yt: torch.Tensor,
    temperature: float,
    *,
    sampler: str,
    chains: int,
    sweeps: int,
    seed: int,
    task: Any = None,
    task_test: Any = None,
) -> list[dict[str, Any]]:
    """Rows for the theory, the GP limit and (unless ``sampler="none"``) the sampled network.
    Gates learned from data (``pca``, ``kmeans``) that are not fitted yet are fitted on the
    training inputs (no labels)."""
    if not all(s.fitted for s in net.gate_sets):
        net.fit_gates(X, seed=seed)
    th = ggdln_theory(net, X, y, temperature, task=task)
    gp = ggdln_theory(net, X, y, temperature, task=task, limit="gp")
    rows = source_rows("theory", th.generalization(Xt, yt, task=task_test), th.seconds)
    rows.append(dict(source="theory", metric="residual", value=th.residual, se=float("nan")))
    rows += source_rows("gp", gp.generalization(Xt, yt, task=task_test), gp.seconds)
    if sampler != "none":
        s: PosteriorSamples
        if sampler == "gibbs":
            s = gibbs_ggdln(
                net,
                X,
                y,
                temperature,
                Xt,
                chains=chains,
                sweeps=sweeps,
                seed=seed,
                task=task,
                task_test=task_test,
            )
        else:
            s = langevin_ggdln(
                net,
                X,
                y,
                temperature,
                Xt,
                chains=chains,
                steps=sweeps,
                seed=seed,
                task=task,
                task_test=task_test,
            )
        rows += source_rows(sampler, s.generalization(yt), s.seconds) + diagnostic_rows(sampler, s)
    return rows


def diagnostic_rows(source: str, samples: PosteriorSamples) -> list[dict[str, Any]]:
    """split-R̂, ESS and the ESS-based standard error of the sampled posterior mean (the
    sampler warns when R̂ > 1.01)."""
    return [
        dict(source=source, metric=k, value=v, se=float("nan"))
        for k, v in samples.diagnostics().items()
    ]
