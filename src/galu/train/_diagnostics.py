"""Convergence diagnostics for MCMC traces: split-R̂ and effective sample size.

A trace is ``(draws, chains, ...)``; every trailing index is a separate quantity.

- **split-R̂** (Gelman et al., BDA3 §11.4): each chain is cut into halves, and the between-half
  variance ``B`` is compared with the mean within-half variance ``W``:
  ``R̂ = sqrt(((n−1)/n · W + B/n) / W)`` for half-length ``n``. Chains that have not mixed, or that
  still drift, give ``R̂ > 1``; the usual threshold is 1.01.
- **Effective sample size**: ``S / τ`` with the integrated autocorrelation time
  ``τ = 1 + 2 Σ_t ρ_t``. ``ρ_t`` combines the chains' autocovariances with the between-chain
  variance (BDA3 eq. 11.7), and the sum is truncated by Geyer's initial positive sequence: pairs
  ``ρ_{2t} + ρ_{2t+1}`` are summed while they stay positive, and made non-increasing.

The Monte-Carlo standard error of a posterior mean is ``sd / sqrt(ESS)``.
"""

from __future__ import annotations

import math

import torch


def _check(trace: torch.Tensor, min_draws: int) -> torch.Tensor:
    if trace.ndim < 2:
        raise ValueError(f"`trace` must be (draws, chains, ...); got shape {tuple(trace.shape)}.")
    if trace.shape[0] < min_draws:
        raise ValueError(f"`trace` has {trace.shape[0]} draws; at least {min_draws} are needed.")
    return trace.to(torch.float64)


def split_rhat(trace: torch.Tensor) -> torch.Tensor:
    """Split-R̂ of every quantity in ``trace`` ``(draws, chains, ...)`` → ``trace.shape[2:]``."""
    x = _check(trace, 4)
    n = x.shape[0] // 2
    halves = torch.cat([x[:n], x[x.shape[0] - n :]], dim=1)  # (n, 2C, ...)
    means = halves.mean(0)
    B = n * means.var(0, unbiased=True)
    W = halves.var(0, unbiased=True).mean(0)
    var_plus = (n - 1) / n * W + B / n
    rhat = torch.sqrt(var_plus / W)
    # A quantity that never moves within a half: R̂ = 1 if every half agrees, else ∞.
    constant = W == 0
    return torch.where(constant, torch.where(B == 0, 1.0, torch.inf).to(rhat.dtype), rhat)


def effective_sample_size(trace: torch.Tensor) -> torch.Tensor:
    """ESS of the mean of every quantity in ``trace`` ``(draws, chains, ...)``, all chains
    together → ``trace.shape[2:]``."""
    x = _check(trace, 4)
    S, C = x.shape[0], x.shape[1]
    centred = x - x.mean(0)
    # Autocovariance of each chain by FFT (zero-padded to avoid wrap-around), lag 0..S-1.
    size = 1 << (2 * S - 1).bit_length()
    spec = torch.fft.rfft(centred, n=size, dim=0)
    acov = torch.fft.irfft(spec * spec.conj(), n=size, dim=0)[:S] / S  # (S, C, ...)
    chain_var = acov[0] * S / (S - 1)
    W = chain_var.mean(0)
    var_plus = (S - 1) / S * W + (x.mean(0).var(0, unbiased=True) if C > 1 else 0.0)
    rho = 1 - (W - acov.mean(1)) / var_plus  # (S, ...)
    rho[0] = 1.0
    # Geyer: sum pairs Γ_t = ρ_{2t} + ρ_{2t+1} while positive, made monotone.
    T = (S - 1) // 2
    pairs = rho[0 : 2 * T : 2] + rho[1 : 2 * T + 1 : 2]  # (T, ...)
    positive = torch.cumprod((pairs > 0).to(pairs.dtype), dim=0)
    pairs = torch.cummin(torch.where(positive > 0, pairs, torch.zeros_like(pairs)), dim=0).values
    tau = -1 + 2 * pairs.sum(0)
    # Antithetic chains can make τ < 1; as Stan does, ESS is capped at S·C·log10(S·C).
    tau = tau.clamp_min(1.0 / math.log10(S * C))
    ess = S * C / tau
    return torch.where(var_plus == 0, float(S * C), ess)  # a constant: its mean has no error
