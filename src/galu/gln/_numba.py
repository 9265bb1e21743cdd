"""Compiled CPU walks (numba): each neuron's scan over the examples, the neuron's weight table
kept hot in cache, neurons in parallel. Same numbers as the NumPy / torch walks of ``_scan.py``;
loaded only when numba is installed (``pip install galu[fast]``; ``make setup`` does)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

# Reassociation lets the compiler vectorise the dot products (a different, still deterministic,
# summation order); no flag that assumes away NaN or infinities.
FAST = {"reassoc", "contract"}


@njit(cache=True, inline="always")
def _sig(u: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * u))


@njit(cache=True, inline="always")
def _skip(u: float, y: float, lo: float, eps: float, rule: int) -> bool:
    if rule == 1:
        return abs(y - _sig(u)) <= eps
    if rule == 2:
        return u < lo or u > -lo
    return False


def _bernoulli_scan(W, ctx, X, Y, eta, eps, beta, rule, out):  # pragma: no cover - compiled
    """``W`` ``(A, K, E, n)`` in place; ``ctx`` ``(T, A, K)``; ``X`` ``(T, A or 1, n)``;
    ``Y`` ``(T, A)``; ``eta`` ``(T,)``; writes clipped output logits into ``out`` ``(T, A, K)``."""
    A, K, _E, n = W.shape
    T = ctx.shape[0]
    shared = X.shape[1] == 1
    lo = math.log(eps / (1.0 - eps))
    for j in prange(A * K):
        a = j // K
        k = j % K
        xa = 0 if shared else a
        for t in range(T):
            c = ctx[t, a, k]
            u = 0.0
            for i in range(n):
                u += W[a, k, c, i] * X[t, xa, i]
            uc = min(max(u, lo), -lo)
            out[t, a, k] = uc
            if not _skip(u, Y[t, a], lo, eps, rule):
                g = eta[t] * (_sig(uc) - Y[t, a])
                for i in range(n):
                    w = W[a, k, c, i] - g * X[t, xa, i]
                    W[a, k, c, i] = min(max(w, -beta), beta)


def _dendritic_scan(W, gates, X, Y, eta, eps, beta, rule, out):  # pragma: no cover - compiled
    """Dendritic neurons: ``W`` ``(A, K, B, n)``, ``gates`` ``(T, A, K, B)`` booleans; the
    effective weight is the sum of the active branches', and every active branch is updated."""
    A, K, B, n = W.shape
    T = gates.shape[0]
    shared = X.shape[1] == 1
    lo = math.log(eps / (1.0 - eps))
    for j in prange(A * K):
        a = j // K
        k = j % K
        xa = 0 if shared else a
        for t in range(T):
            u = 0.0
            for b in range(B):
                if gates[t, a, k, b]:
                    for i in range(n):
                        u += W[a, k, b, i] * X[t, xa, i]
            uc = min(max(u, lo), -lo)
            out[t, a, k] = uc
            if not _skip(u, Y[t, a], lo, eps, rule):
                g = eta[t] * (_sig(uc) - Y[t, a])
                for b in range(B):
                    if gates[t, a, k, b]:
                        for i in range(n):
                            w = W[a, k, b, i] - g * X[t, xa, i]
                            W[a, k, b, i] = min(max(w, -beta), beta)


def _gaussian_scan(
    W, ctx, MU, S2, Y, eta, s2_min, s2_max, beta, bound, out_mu, out_s2, guarded
):  # pragma: no cover - compiled
    """Product-of-Gaussians neurons: inputs ``MU``, ``S2`` ``(T, A or 1, n)``; writes the
    neurons' ``(μ, σ²)`` and whether the mean guard fired."""
    A, K, _E, n = W.shape
    T = ctx.shape[0]
    shared = MU.shape[1] == 1
    for j in prange(A * K):
        a = j // K
        k = j % K
        xa = 0 if shared else a
        w = np.empty(n)
        for t in range(T):
            c = ctx[t, a, k]
            prec = 0.0
            ll = 0.0
            for i in range(n):
                lam = 1.0 / S2[t, xa, i]
                prec += W[a, k, c, i] * lam
                ll += lam * lam
            target = min(max(prec, 1.0 / s2_max), 1.0 / s2_min)
            shift = (target - prec) / ll
            prec = 0.0
            h = 0.0
            for i in range(n):
                lam = 1.0 / S2[t, xa, i]
                w[i] = W[a, k, c, i] + shift * lam
                prec += w[i] * lam
                h += w[i] * lam * MU[t, xa, i]
            v = 1.0 / prec
            m = v * h
            out_s2[t, a, k] = v
            if abs(m) > bound:
                guarded[t, a, k] = True
                out_mu[t, a, k] = min(max(m, -bound), bound)
                continue
            out_mu[t, a, k] = m
            r = Y[t, a] - m
            for i in range(n):
                lam = 1.0 / S2[t, xa, i]
                grad = 0.5 * lam * (r * r - v + 2.0 * r * (m - MU[t, xa, i]))
                W[a, k, c, i] = min(max(w[i] - eta[t] * grad, -beta), beta)


# Each walk compiled twice: across threads, and on one. numba's worker threads keep spinning
# after a parallel region and slow the torch calls between walks; a walk too small to gain from
# threads (most layers at d ≤ 100) runs on one (measured in benchmarks/gln.py: 5× at d = 64).
PARALLEL_WORK = 5e7  # multiply-adds of a walk (T · A · K · n) above which threads pay
bernoulli_scan = njit(cache=True, parallel=True, fastmath=FAST)(_bernoulli_scan)
bernoulli_scan_serial = njit(cache=True, fastmath=FAST)(_bernoulli_scan)
dendritic_scan = njit(cache=True, parallel=True, fastmath=FAST)(_dendritic_scan)
dendritic_scan_serial = njit(cache=True, fastmath=FAST)(_dendritic_scan)
gaussian_scan = njit(cache=True, parallel=True, fastmath=FAST)(_gaussian_scan)
gaussian_scan_serial = njit(cache=True, fastmath=FAST)(_gaussian_scan)


def pick(parallel: Any, serial: Any, T: int, W_shape: tuple[int, ...]) -> Any:
    """The threaded walk for a large layer, the one-thread walk for a small one."""
    A, K, _, n = W_shape
    return parallel if T * A * K * n >= PARALLEL_WORK else serial
