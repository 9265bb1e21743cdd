"""Sampling the Gibbs posterior ``P(Θ) ∝ exp(−½‖f(X) − y‖²/T) · Π_l N(0, σ_l²)`` of real networks.

Two samplers, both vectorised over independent chains (a leading chain dimension on every
weight tensor):

- :func:`gibbs_ggdln` — exact blocked Gibbs sampling of a :class:`galu.nn.GGDLN`. Given every
  other layer the output is linear in layer ``l``'s weights, ``f = Z w`` with
  ``Z[p, (m, i, j)] = ĝ^l_m(x_p) β^l_i(x_p) h^{l−1}_j(x_p) / √N_{l−1}`` (``β^l = ∂f/∂h^l``), so
  the conditional is Gaussian. It is drawn by Matheron's rule,
  ``w = w₀ + σ² Zᵀ(σ² ZZᵀ + T I)⁻¹(y − Z w₀ − ε)``, ``w₀ ~ N(0, σ²)``, ``ε ~ N(0, T I)``, where
  ``ZZᵀ = (ĜĜᵀ) ⊙ (ββᵀ) ⊙ (hhᵀ) / N_{l−1}`` is ``P × P``: only ``P × P`` solves, never the
  weight-space covariance. One sweep updates the readout, then ``W^L, …, W^1``.
- :func:`langevin` — unadjusted Langevin dynamics ``θ ← θ − η ∇E + √(2ηT) ξ`` with
  ``E = ½‖f − y‖² + (T/2σ²)‖θ‖²``: gradient descent with weight decay and noise, the way a user
  would train. It approximates the posterior (its bias shrinks with ``η``); it works for any
  network written as ``forward(weights, X) -> (C, P)``, e.g. :func:`ggdln_forward` or
  :func:`relu_forward`.

Both return :class:`PosteriorSamples`: per-chain averages of ``f`` and ``f²`` on test points,
from which the posterior mean and variance and their Monte-Carlo standard errors follow
(chains are independent, so the errors come from the spread across chains and need no
autocorrelation model).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from galu._linalg import cho_solve
from galu._validate import int_at_least
from galu.nn._ggdln import ggdln_backward, ggdln_forward
from galu.progress import Progress
from galu.seeding import derive_seed
from galu.train._diagnostics import effective_sample_size, split_rhat

TRACE_POINTS = 64  # test points whose every kept draw is stored for the diagnostics

Forward = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PosteriorSamples:
    """Per-chain sample averages after burn-in.

    ``chain_mean[c, p]`` and ``chain_sq[c, p]``: averages of ``f(x_p)`` and ``f(x_p)²`` over
    chain ``c``'s kept samples at the test points; ``readout_gram``: the per-chain average of
    ``a aᵀ / N_L`` (the top order parameter, for GGDLNs; else ``None``).
    """

    chain_mean: torch.Tensor
    chain_sq: torch.Tensor
    n_kept: int
    seconds: float
    method: str
    readout_gram: torch.Tensor | None = None
    trace: torch.Tensor | None = None  # (n_kept, chains, p): f at the first p ≤ 64 test points

    def mean_se_ess(self) -> torch.Tensor:
        """Standard error of the posterior mean at each traced test point from its effective
        sample size, ``sd_p / sqrt(ESS_p)`` (``(p,)``); it accounts for autocorrelation within
        chains, where :attr:`mean_se` relies on the chains' spread alone."""
        if self.trace is None or self.trace.shape[0] < 4:
            raise ValueError("no trace of at least 4 kept draws to compute an ESS from.")
        return self._se_from(effective_sample_size(self.trace))

    def _se_from(self, ess: torch.Tensor) -> torch.Tensor:
        """``sd_p / sqrt(ESS_p)`` for the traced points, from their ESS (the first ``p`` values)."""
        assert self.trace is not None
        p = self.trace.shape[-1]
        return self.trace.reshape(-1, p).std(0) / ess[:p].sqrt()

    def diagnostics(self, warn: bool = True) -> dict[str, float]:  # noqa: FBT001, FBT002 (public since 0.1)
        """Convergence of the traced test points (:mod:`galu.train._diagnostics`).

        ``rhat_max``: the largest split-R̂ of ``f(x_p)`` and ``f(x_p)²`` over the traced points;
        ``ess_min`` / ``ess_median``: their effective sample sizes (all chains together);
        ``mean_se_ess``: the largest standard error of a posterior mean, ``sd_p / sqrt(ESS_p)``.
        Warns (``RuntimeWarning``) when ``rhat_max > 1.01``: the chains have not mixed, and the
        estimates and their error bars should not be trusted.
        """
        if self.trace is None or self.trace.shape[0] < 4:
            nan = float("nan")
            return dict(rhat_max=nan, ess_min=nan, ess_median=nan, mean_se_ess=nan)
        both = torch.cat([self.trace, self.trace**2], dim=-1)
        rhat = split_rhat(both)
        ess = effective_sample_size(both)
        out = dict(
            rhat_max=float(rhat.max()),
            ess_min=float(ess.min()),
            ess_median=float(ess.median()),
            mean_se_ess=float(self._se_from(ess).max()),  # ess[:p] is the ESS of f itself
        )
        if warn and out["rhat_max"] > 1.01:
            warnings.warn(
                f"{self.method}: split-R̂ reaches {out['rhat_max']:.3f} (> 1.01) with "
                f"{self.chains} chains × {self.n_kept} kept draws; the chains have not mixed. "
                "Run more sweeps / steps or a longer burn-in.",
                RuntimeWarning,
                stacklevel=2,
            )
        return out

    @property
    def chains(self) -> int:
        return int(self.chain_mean.shape[0])

    @property
    def mean(self) -> torch.Tensor:
        """Posterior mean of ``f`` at the test points."""
        return self.chain_mean.mean(0)

    @property
    def variance(self) -> torch.Tensor:
        """Posterior variance of ``f`` at the test points."""
        return (self.chain_sq.mean(0) - self.mean**2).clamp_min(0.0)

    @property
    def mean_se(self) -> torch.Tensor:
        """Standard error of :attr:`mean` (spread of the independent chains)."""
        return self.chain_mean.std(0) / math.sqrt(self.chains)

    def samples_per_second(self) -> float:
        return self.chains * self.n_kept / self.seconds if self.seconds > 0 else float("nan")

    def generalization(self, y: torch.Tensor) -> dict[str, float]:
        """``bias``, ``variance`` and ``error = bias + variance`` against test targets ``y``,
        each with a jackknife-over-chains standard error (``*_se``)."""
        y = torch.as_tensor(y, dtype=self.chain_mean.dtype, device=self.chain_mean.device)
        y = y.reshape(-1)
        if y.shape[0] != self.chain_mean.shape[1]:
            raise ValueError(
                f"`y` has {y.shape[0]} targets for {self.chain_mean.shape[1]} test points."
            )

        def stats(m: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            mean = m.mean(0)
            bias = ((mean - y) ** 2).mean()
            var = (q.mean(0) - mean**2).clamp_min(0.0).mean()
            return torch.stack([bias, var, bias + var])

        full = stats(self.chain_mean, self.chain_sq)
        C = self.chains
        if C > 1:
            loo = torch.stack(
                [
                    stats(
                        torch.cat([self.chain_mean[:c], self.chain_mean[c + 1 :]]),
                        torch.cat([self.chain_sq[:c], self.chain_sq[c + 1 :]]),
                    )
                    for c in range(C)
                ]
            )
            se = ((C - 1) / C * ((loo - loo.mean(0)) ** 2).sum(0)).sqrt()
        else:
            se = torch.full_like(full, float("nan"))
        names = ("bias", "variance", "error")
        out = {k: float(v) for k, v in zip(names, full, strict=True)}
        out.update({f"{k}_se": float(v) for k, v in zip(names, se, strict=True)})
        return out


def _check_run(chains: int, steps: int, burn_in: int, thin: int, temperature: float) -> None:
    for name, v in (("chains", chains), ("steps", steps), ("thin", thin)):
        int_at_least(name, v, 1)
    if not isinstance(burn_in, int) or not 0 <= burn_in < steps:
        raise ValueError(f"`burn_in` (={burn_in!r}) must be an integer in [0, steps={steps}).")
    if not temperature > 0:
        raise ValueError(f"`temperature` (={temperature!r}) must be > 0.")


def _prior_draw(model: Any, chains: int, gen: torch.Generator) -> list[torch.Tensor]:
    out = []
    for W, s2 in zip(model.stacked_weights(), model.prior_var, strict=True):
        shape = (chains, *W.shape[1:])
        out.append(torch.randn(shape, generator=gen, dtype=W.dtype).to(W.device) * math.sqrt(s2))
    return out


def _matheron(
    W: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    s2: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """One exact draw of ``W (C, M, I, J)`` from its Gaussian conditional (``f = Z w``)."""
    C, P = beta.shape[:2]
    root = math.sqrt(h.shape[-1])
    K = (g @ g.T) * (beta @ beta.transpose(1, 2)) * (h @ h.transpose(1, 2)) / h.shape[-1]
    w0 = torch.randn(W.shape, generator=gen, dtype=W.dtype).to(W.device) * math.sqrt(s2)
    eps = torch.randn((C, P), generator=gen, dtype=W.dtype).to(W.device) * math.sqrt(temperature)
    Zw0 = torch.einsum("cmij,cpj,cpi,pm->cp", w0, h, beta, g) / root
    A = s2 * K + temperature * torch.eye(P, dtype=W.dtype, device=W.device)
    alpha = cho_solve((y - Zw0 - eps)[..., None], torch.linalg.cholesky(A))[..., 0]
    return w0 + s2 * torch.einsum("cp,pm,cpi,cpj->cmij", alpha, g, beta, h) / root


def gibbs_ggdln(
    model: Any,
    X: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    X_test: torch.Tensor,
    *,
    chains: int = 16,
    sweeps: int = 1000,
    burn_in: int | None = None,
    thin: int = 1,
    seed: int = 0,
    task: Any = None,
    task_test: Any = None,
    progress: bool = False,
) -> PosteriorSamples:
    """Exact blocked Gibbs sampling of a :class:`galu.nn.GGDLN`'s posterior (module docstring).

    Chains start from independent prior draws (from ``seed``); the first ``burn_in`` sweeps
    (default ``sweeps // 4``) are dropped and every ``thin``-th later sweep is kept.
    """
    burn_in = sweeps // 4 if burn_in is None else burn_in
    _check_run(chains, sweeps, burn_in, thin, temperature)
    y = torch.as_tensor(y, dtype=X.dtype, device=X.device).reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        g_tr, g_te = model.scaled_gates(X, task), model.scaled_gates(X_test, task_test)
    L = model.depth
    Ws = _prior_draw(model, chains, gen)
    acc_m = torch.zeros(chains, X_test.shape[0], dtype=X.dtype, device=X.device)
    acc_q, kept = torch.zeros_like(acc_m), 0
    M_out = model.gate_counts[-1]
    gram = torch.zeros(chains, M_out, M_out, dtype=X.dtype, device=X.device)
    trace: list[torch.Tensor] = []
    bar = Progress("Gibbs sweeps", sweeps, enabled=progress)
    t0 = time.perf_counter()
    with torch.no_grad():
        for sweep in range(sweeps):
            _, hidden = ggdln_forward(Ws, g_tr, X)
            ones = torch.ones(chains, X.shape[0], 1, dtype=X.dtype, device=X.device)
            Ws[L] = _matheron(
                Ws[L][:, :, None], g_tr[L], ones, hidden[L], y, temperature, model.prior_var[L], gen
            )[:, :, 0]
            for l in range(L, 0, -1):  # W^l is Ws[l - 1]
                beta = ggdln_backward(Ws, g_tr, l)
                Ws[l - 1] = _matheron(
                    Ws[l - 1],
                    g_tr[l - 1],
                    beta,
                    hidden[l - 1],
                    y,
                    temperature,
                    model.prior_var[l - 1],
                    gen,
                )
            if sweep >= burn_in and (sweep - burn_in) % thin == 0:
                f, _ = ggdln_forward(Ws, g_te, X_test)
                acc_m += f
                acc_q += f**2
                trace.append(f[:, :TRACE_POINTS].clone())
                a = Ws[L]
                gram = gram + torch.einsum("cmi,cni->cmn", a, a) / a.shape[-1]
                kept += 1
            bar.advance()
    bar.close()
    return PosteriorSamples(
        chain_mean=acc_m / kept,
        chain_sq=acc_q / kept,
        n_kept=kept,
        seconds=time.perf_counter() - t0,
        method="gibbs",
        readout_gram=gram / kept,
        trace=torch.stack(trace),
    )


def langevin(
    forward: Forward,
    weights: Sequence[torch.Tensor],
    prior_var: Sequence[float],
    X: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    X_test: torch.Tensor,
    *,
    lr: float,
    steps: int = 10000,
    burn_in: int | None = None,
    thin: int = 10,
    seed: int = 0,
    forward_test: Forward | None = None,
    progress: bool = False,
) -> PosteriorSamples:
    """Langevin dynamics for ``C`` chains at once (module docstring).

    ``forward(weights, X) -> (C, P)``; ``weights`` carry the chain dimension first and are the
    starting point; ``prior_var`` has one variance per weight tensor. ``forward_test`` (default
    ``forward``) evaluates the test points (e.g. with the test inputs' gates).
    """
    burn_in = steps // 4 if burn_in is None else burn_in
    _check_run(weights[0].shape[0], steps, burn_in, thin, temperature)
    if not lr > 0:
        raise ValueError(f"`lr` (={lr!r}) must be > 0.")
    if len(prior_var) != len(weights):
        raise ValueError(f"`prior_var` needs one value per weight tensor ({len(weights)}).")
    forward_test = forward if forward_test is None else forward_test
    y = torch.as_tensor(y, dtype=X.dtype, device=X.device).reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    Ws = [w.detach().clone().requires_grad_(True) for w in weights]
    C = Ws[0].shape[0]
    acc_m = torch.zeros(C, X_test.shape[0], dtype=X.dtype, device=X.device)
    acc_q, kept = torch.zeros_like(acc_m), 0
    noise = math.sqrt(2 * lr * temperature)
    trace: list[torch.Tensor] = []
    bar = Progress("Langevin steps", steps, enabled=progress)
    t0 = time.perf_counter()
    for step in range(steps):
        f = forward(Ws, X)
        energy = 0.5 * ((f - y) ** 2).sum()
        energy = energy + sum(
            (temperature / (2 * s2)) * (w**2).sum() for w, s2 in zip(Ws, prior_var, strict=True)
        )
        grads = torch.autograd.grad(energy, Ws)
        with torch.no_grad():
            for w, gw in zip(Ws, grads, strict=True):
                w -= lr * gw
                w += noise * torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device)
            if step >= burn_in and (step - burn_in) % thin == 0:
                ft = forward_test(Ws, X_test)
                acc_m += ft
                acc_q += ft**2
                trace.append(ft[:, :TRACE_POINTS].detach().clone())
                kept += 1
        bar.advance()
    bar.close()
    return PosteriorSamples(
        chain_mean=acc_m / kept,
        chain_sq=acc_q / kept,
        n_kept=kept,
        seconds=time.perf_counter() - t0,
        method="langevin",
        trace=torch.stack(trace),
    )


def langevin_ggdln(
    model: Any,
    X: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    X_test: torch.Tensor,
    *,
    chains: int = 16,
    lr: float | None = None,
    seed: int = 0,
    task: Any = None,
    task_test: Any = None,
    **kw: Any,
) -> PosteriorSamples:
    """:func:`langevin` for a :class:`galu.nn.GGDLN`, chains started from prior draws.
    ``lr`` defaults to :func:`default_langevin_lr` of the GP kernel."""
    with torch.no_grad():
        g_tr, g_te = model.scaled_gates(X, task), model.scaled_gates(X_test, task_test)
    if lr is None:
        from galu.theory import ggdln_problem, solve_ggdln

        K = solve_ggdln(ggdln_problem(model, X, y, temperature, task), limit="gp").kernel
        lr = default_langevin_lr(K, model.depth, temperature, min(model.prior_var))
    gen = torch.Generator().manual_seed(derive_seed(seed, "langevin-prior"))
    return langevin(
        lambda W, Xa: ggdln_forward(W, g_tr, Xa)[0],
        _prior_draw(model, chains, gen),
        model.prior_var,
        X,
        y,
        temperature,
        X_test,
        lr=lr,
        seed=derive_seed(seed, "langevin-noise"),
        forward_test=lambda W, Xa: ggdln_forward(W, g_te, Xa)[0],
        **kw,
    )


def default_langevin_lr(K: torch.Tensor, depth: int, temperature: float, min_var: float) -> float:
    """A step well inside the stability limit, from the GP kernel ``K`` (which carries a factor
    ``σ²`` per layer): ``0.1 σ²_min / ((L + 1) λ_max(K) + T)``. The loss Hessian at prior-sized
    weights is about the NTK, a sum of ``L + 1`` layer terms each near ``K / σ²``."""
    lam = float(torch.linalg.eigvalsh(K)[-1])
    return 0.1 * min_var / ((depth + 1) * lam + temperature)


def relu_forward(weights: Sequence[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """A fully connected ReLU network in the same parametrisation as a GGDLN with an ungated
    readout, for ``C`` stacked weight sets: ``h^l = relu(W^l h^{l−1} / √N_{l−1})``,
    ``f = a·h^L / √N_L``; ``weights = [W^1 (C, N_1, N_0), ..., a (C, N_L)]``."""
    h = X.expand(weights[0].shape[0], *X.shape)
    for W in weights[:-1]:
        h = torch.relu(torch.einsum("cij,cpj->cpi", W, h) / math.sqrt(h.shape[-1]))
    return torch.einsum("ci,cpi->cp", weights[-1], h) / math.sqrt(h.shape[-1])
