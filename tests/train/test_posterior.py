"""Posterior samplers: the exact Gibbs step against the closed-form Gaussian conditional, and the
samplers against the finite-width theory, within their Monte-Carlo errors."""

from __future__ import annotations

import math

import pytest
import torch

from galu.nn import GGDLN
from galu.theory import ggdln_theory
from galu.train import gibbs_ggdln, langevin_ggdln
from galu.train._posterior import _matheron

Z4 = 4.0  # |estimate − truth| <= 4 standard errors: fails by chance with probability < 1e-4


def _task(P: int, Pt: int, N0: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(P + Pt, N0, generator=g, dtype=torch.float64)
    y = torch.sign(X[:, 0] + 0.3 * X[:, 1])
    return X[:P], y[:P], X[P:], y[P:]


def test_matheron_step_draws_the_exact_gaussian_conditional():
    """One layer's conditional in weight space is N(μ, Σ), Σ = (I/σ² + ZᵀZ/T)⁻¹, μ = ΣZᵀy/T;
    40 000 independent draws of the P×P Matheron update must match both moments."""
    g = torch.Generator().manual_seed(0)
    P, M, I, J, C = 3, 2, 2, 2, 40_000
    gates = torch.rand(P, M, generator=g, dtype=torch.float64)
    beta = torch.randn(1, P, I, generator=g, dtype=torch.float64).expand(C, P, I)
    h = torch.randn(1, P, J, generator=g, dtype=torch.float64).expand(C, P, J)
    y = torch.randn(P, generator=g, dtype=torch.float64)
    T, s2 = 0.3, 0.7
    W = torch.zeros(C, M, I, J, dtype=torch.float64)
    draws = _matheron(W, gates, beta, h, y, T, s2, g).reshape(C, -1)
    Z = torch.einsum("pm,pi,pj->pmij", gates, beta[0], h[0]).reshape(P, -1) / math.sqrt(J)
    Sigma = torch.linalg.inv(torch.eye(M * I * J, dtype=torch.float64) / s2 + Z.T @ Z / T)
    mu = Sigma @ Z.T @ y / T
    se_mu = (Sigma.diagonal() / C).sqrt()
    assert ((draws.mean(0) - mu).abs() <= Z4 * se_mu).all()
    cov = torch.cov(draws.T)
    se_cov = ((Sigma.diagonal()[:, None] * Sigma.diagonal()[None] + Sigma**2) / C).sqrt()
    assert ((cov - Sigma).abs() <= Z4 * se_cov).all()


def _strong(P: int = 20, Pt: int = 20, N0: int = 30):
    """A regime with strong kernel renormalisation: a prior (σ² = 0.2) far too small for the
    targets at low temperature, so the posterior rescales and reshapes the kernel a lot."""
    return _task(P, Pt, N0), dict(prior_var=0.2), 0.01


@pytest.mark.parametrize(
    ("depth", "readout", "M"),
    [(1, "gated", 2), (2, "gated", 2), (2, "ungated", 3), (2, "ungated", 1)],
)
def test_gibbs_sampler_agrees_with_the_theory_and_not_with_the_gp(depth, readout, M):
    """Bias and variance of the sampled posterior (width 32) against the saddle-point theory.

    Tolerance: 4 Monte-Carlo standard errors (32 independent chains × 1125 kept sweeps) plus
    the theory's own finite-width error: the saddle point drops a Laplace correction of relative
    size O(1/N) per integrated order parameter to the renormalisation ``theory − GP``, allowed
    as ``L·|theory − GP|/N``. The theory must also close at least 90% of the gap between the GP
    limit and the sampler."""
    (X, y, Xt, yt), kw, T = _strong()
    N = 32
    net = GGDLN(
        30,
        N,
        depth,
        M,
        readout=readout,
        bias_std=0.5,
        gates="one" if M == 1 else "halfspace",
        generator=torch.Generator().manual_seed(1),
        **kw,
    )
    th = ggdln_theory(net, X, y, T).generalization(Xt, yt)
    gp = ggdln_theory(net, X, y, T, limit="gp").generalization(Xt, yt)
    s = gibbs_ggdln(net, X, y, T, Xt, chains=32, sweeps=1500, seed=3).generalization(yt)
    for key in ("bias", "variance", "error"):
        tol = Z4 * s[f"{key}_se"] + depth * abs(th[key] - gp[key]) / N
        assert abs(s[key] - th[key]) <= tol, (key, s, th)
    for key in ("variance", "error"):
        assert abs(s[key] - th[key]) <= 0.1 * abs(s[key] - gp[key]), (key, s, th, gp)


def test_gibbs_readout_gram_matches_the_top_order_parameter():
    X, y, Xt, _ = _task(12, 4)
    net = GGDLN(8, 32, 1, 2, bias_std=0.5, generator=torch.Generator().manual_seed(1))
    U = ggdln_theory(net, X, y, 0.05).order_parameters[-1]
    s = gibbs_ggdln(net, X, y, 0.05, Xt, chains=32, sweeps=1200, seed=4)
    gram = s.readout_gram
    se = gram.std(0) / math.sqrt(gram.shape[0])
    # the saddle point's O(1/N) offset from the posterior mean of a aᵀ/N is ~1/N² relative here
    assert ((gram.mean(0) - U).abs() <= Z4 * se + 2 / 32**2).all(), (gram.mean(0), U, se)


def test_langevin_agrees_with_exact_gibbs():
    X, y, Xt, yt = _task(12, 20)
    net = GGDLN(8, 16, 1, 2, bias_std=0.5, generator=torch.Generator().manual_seed(1))
    gibbs = gibbs_ggdln(net, X, y, 0.05, Xt, chains=32, sweeps=1500, seed=3).generalization(yt)
    lang = langevin_ggdln(net, X, y, 0.05, Xt, chains=32, steps=4000, thin=5, seed=4)
    out = lang.generalization(yt)
    for key in ("bias", "variance"):
        se = math.hypot(out[f"{key}_se"], gibbs[f"{key}_se"])
        assert abs(out[key] - gibbs[key]) <= Z4 * se, (key, out, gibbs)


def test_samplers_are_reproducible_from_their_seed():
    X, y, Xt, _ = _task(6, 3)
    net = GGDLN(8, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    a = gibbs_ggdln(net, X, y, 0.1, Xt, chains=3, sweeps=20, seed=7)
    b = gibbs_ggdln(net, X, y, 0.1, Xt, chains=3, sweeps=20, seed=7)
    c = gibbs_ggdln(net, X, y, 0.1, Xt, chains=3, sweeps=20, seed=8)
    assert torch.equal(a.chain_mean, b.chain_mean) and not torch.equal(a.chain_mean, c.chain_mean)
    la = langevin_ggdln(net, X, y, 0.1, Xt, chains=2, steps=20, seed=7)
    lb = langevin_ggdln(net, X, y, 0.1, Xt, chains=2, steps=20, seed=7)
    lc = langevin_ggdln(net, X, y, 0.1, Xt, chains=2, steps=20, seed=8)
    assert torch.equal(la.chain_mean, lb.chain_mean) and not torch.equal(
        la.chain_mean, lc.chain_mean
    )


def test_task_dependent_gates_theory_agrees_with_gibbs():
    """Two tasks with their own gate sets: the `task` plumbing of the model, theory and
    sampler (training and test points of both tasks)."""
    (X, y, Xt, yt), kw, T = _strong()
    task, task_t = torch.arange(20) % 2, torch.arange(20) % 2
    net = GGDLN(30, 32, 1, 2, n_tasks=2, bias_std=0.5, generator=torch.Generator().manual_seed(1),
                **kw)  # fmt: skip
    th = ggdln_theory(net, X, y, T, task=task).generalization(Xt, yt, task=task_t)
    gp = ggdln_theory(net, X, y, T, task=task, limit="gp").generalization(Xt, yt, task=task_t)
    s = gibbs_ggdln(net, X, y, T, Xt, chains=32, sweeps=1500, seed=5, task=task,
                    task_test=task_t).generalization(yt)  # fmt: skip
    for key in ("bias", "variance"):
        tol = Z4 * s[f"{key}_se"] + abs(th[key] - gp[key]) / 32
        assert abs(s[key] - th[key]) <= tol, (key, s, th)
    # the gates really depend on the task: swapping the task labels changes the prediction
    swapped = ggdln_theory(net, X, y, T, task=1 - task).generalization(Xt, yt, task=1 - task_t)
    assert abs(swapped["error"] - th["error"]) > 1e-3


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(chains=0), "`chains`"),
        (dict(sweeps=10, burn_in=10), "`burn_in`"),
        (dict(thin=0), "`thin`"),
    ],
)
def test_bad_sampler_arguments_are_named(kw, match):
    X, y, Xt, _ = _task(5, 2)
    net = GGDLN(8, 4, 1, 2, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=match):
        gibbs_ggdln(net, X, y, 0.1, Xt, **kw)
    with pytest.raises(ValueError, match="`temperature`"):
        gibbs_ggdln(net, X, y, 0.0, Xt)


def test_ess_error_bars_of_short_gibbs_runs_cover_the_long_chain_value():
    """L = 2, M = 3, width 20: posterior means from short runs (4 chains × 150 kept sweeps)
    against a long run (16 chains × 1500 kept sweeps, its own error ~6× smaller); the
    ±2 SE(ESS) intervals must cover about 95% of (run, test point) pairs."""
    X, y, Xt, _ = _task(16, 24, seed=2)
    net = GGDLN(8, 20, 2, 3, bias_std=0.5, generator=torch.Generator().manual_seed(5))
    long = gibbs_ggdln(net, X, y, 0.1, Xt, chains=16, sweeps=2000, seed=100)
    assert long.diagnostics()["rhat_max"] < 1.01
    truth = long.mean
    hits = total = 0
    for seed in range(6):
        short = gibbs_ggdln(net, X, y, 0.1, Xt, chains=4, sweeps=200, seed=seed)
        se = short.mean_se_ess()
        hits += int(((short.mean - truth).abs() <= 2 * se).sum())
        total += se.numel()
    coverage = hits / total
    # 144 pairs: a binomial sd of 1.8% around 95%; the long chain's own error lowers it a bit.
    assert 0.88 <= coverage <= 0.995, coverage


def test_unmixed_chains_warn_and_report_rhat():
    X, y, Xt, _ = _task(16, 8, seed=2)
    net = GGDLN(8, 20, 2, 3, bias_std=0.5, generator=torch.Generator().manual_seed(5))
    s = gibbs_ggdln(net, X, y, 0.1, Xt, chains=4, sweeps=200, seed=0)
    stuck = s.trace.clone()
    stuck[:, :2] += 10 * stuck.std()  # two chains in another mode
    from dataclasses import replace

    with pytest.warns(RuntimeWarning, match=r"split-R̂ reaches .* \(> 1.01\)"):
        d = replace(s, trace=stuck).diagnostics()
    assert d["rhat_max"] > 1.5
