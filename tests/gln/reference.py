"""Independent plain-NumPy float64 reference for galu's Gated Linear Networks.

Implements /tmp/gln_spec.md literally, one example at a time, with explicit Python
loops over examples, layers, outputs ``a`` and neurons ``k``.  Clarity over speed: this
is what the real implementation is tested against, so it deliberately shares no code
with ``galu``.

Layout (lists indexed by layer i = 0..L-1):
  V[i] (A, K_i, C, d), bvec[i] (A, K_i, C), W[i] (A, K_i, 2**C, n_i); the bias input(s)
  are appended LAST to every layer's input vector.
"""

from __future__ import annotations

import math

import numpy as np

SKIP_RULES = ("none", "deepmind", "confident")


def _sigmoid(u: float) -> float:
    if u >= 0.0:
        return 1.0 / (1.0 + math.exp(-u))
    e = math.exp(u)
    return e / (1.0 + e)


def _log_loss(y: float, uc: float) -> float:
    """log(1 + exp(-(2y - 1) * uc)), computed stably."""
    return float(np.logaddexp(0.0, -(2.0 * y - 1.0) * uc))


def contexts(V, bvec, z) -> np.ndarray:
    """Context index c = sum_j 2**j [V_j . z > b_j] of every neuron (a, k) of one layer."""
    V = np.asarray(V, dtype=np.float64)
    bvec = np.asarray(bvec, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    A, K, C, _ = V.shape
    out = np.zeros((A, K), dtype=np.int64)
    for a in range(A):
        for k in range(K):
            c = 0
            for j in range(C):
                if float(np.dot(V[a, k, j], z)) > float(bvec[a, k, j]):
                    c += 2**j
            out[a, k] = c
    return out


def _skipped(rule: str, u: float, q: float, y: float, lo: float, hi: float, eps: float) -> bool:
    if rule == "none":
        return False
    if rule == "deepmind":
        return u < lo or u > hi
    if rule == "confident":
        return abs(y - q) <= eps
    raise ValueError(f"unknown skip_rule {rule!r}; expected one of {SKIP_RULES}")


def _bernoulli_example(W, V, bvec, p0, z, y, *, eps, bias_logit, skip_rule):
    """Forward one example with the given (pre-update) weights.

    Returns (pred (A,), losses [ (A, K_i) ], updates) where updates is a list of
    (i, a, k, c, g) with g = (p - y_a) * x_a, for the rows that are not skipped.
    """
    lo = math.log(eps / (1.0 - eps))
    hi = -lo
    A = W[0].shape[0]
    pc = np.clip(np.asarray(p0, dtype=np.float64), eps, 1.0 - eps)
    x0 = np.concatenate([np.log(pc / (1.0 - pc)), [float(bias_logit)]])
    xs = [x0.copy() for _ in range(A)]  # this layer's input, per output a
    losses, updates = [], []
    pred = np.zeros(A)
    for i in range(len(W)):
        ctx = contexts(V[i], bvec[i], z)
        K = W[i].shape[1]
        loss_i = np.zeros((A, K))
        new_xs = []
        for a in range(A):
            ya = float(y[a])
            ucs = []
            for k in range(K):
                c = int(ctx[a, k])
                w = W[i][a, k, c]
                u = float(np.dot(w, xs[a]))
                q = _sigmoid(u)
                uc = min(max(u, lo), hi)
                p = _sigmoid(uc)
                loss_i[a, k] = _log_loss(ya, uc)
                if not _skipped(skip_rule, u, q, ya, lo, hi, eps):
                    updates.append((i, a, k, c, (p - ya) * xs[a]))
                ucs.append(uc)
                pred[a] = p  # the last layer has a single neuron
            new_xs.append(np.array([*ucs, float(bias_logit)]))
        xs = new_xs
        losses.append(loss_i)
    return pred, losses, updates


def bernoulli_sequential(
    W, V, bvec, base, side, targets, etas, *, eps, beta, bias_logit, skip_rule
):
    W = [np.array(w, dtype=np.float64, copy=True) for w in W]
    T, A = len(base), W[0].shape[0]
    preds = np.zeros((T, A))
    losses = [np.zeros((T, A, w.shape[1])) for w in W]
    for t in range(T):
        pred, loss_t, updates = _bernoulli_example(
            W,
            V,
            bvec,
            base[t],
            side[t],
            targets[t],
            eps=eps,
            bias_logit=bias_logit,
            skip_rule=skip_rule,
        )
        preds[t] = pred
        for i in range(len(W)):
            losses[i][t] = loss_t[i]
        for i, a, k, c, g in updates:  # each row is hit once: w here is the pre-update row
            W[i][a, k, c] = np.clip(W[i][a, k, c] - float(etas[t]) * g, -beta, beta)
    return preds, losses, W


def bernoulli_batch(
    W, V, bvec, base, side, targets, eta, *, eps, beta, bias_logit, skip_rule, mode
):
    if mode not in ("sum", "mean"):
        raise ValueError(f"unknown mode {mode!r}")
    W0 = [np.array(w, dtype=np.float64, copy=True) for w in W]  # pre-batch weights
    B, A = len(base), W0[0].shape[0]
    preds = np.zeros((B, A))
    losses = [np.zeros((B, A, w.shape[1])) for w in W0]
    total = [np.zeros_like(w) for w in W0]
    hit = [np.zeros(w.shape[:3], dtype=bool) for w in W0]
    for t in range(B):
        pred, loss_t, updates = _bernoulli_example(
            W0,
            V,
            bvec,
            base[t],
            side[t],
            targets[t],
            eps=eps,
            bias_logit=bias_logit,
            skip_rule=skip_rule,
        )
        preds[t] = pred
        for i in range(len(W0)):
            losses[i][t] = loss_t[i]
        for i, a, k, c, g in updates:
            total[i][a, k, c] += -float(eta) * g
            hit[i][a, k, c] = True
    W_new = [w.copy() for w in W0]
    for i in range(len(W0)):
        A_, K, E, _ = W0[i].shape
        for a in range(A_):
            for k in range(K):
                for c in range(E):
                    if hit[i][a, k, c]:
                        d = total[i][a, k, c] if mode == "sum" else total[i][a, k, c] / B
                        W_new[i][a, k, c] = np.clip(W0[i][a, k, c] + d, -beta, beta)
    return preds, losses, W_new


def dendritic_sequential(
    W, V, bvec, base, side, targets, etas, *, eps, beta, bias_logit, skip_rule
):
    W = [np.array(w, dtype=np.float64, copy=True) for w in W]
    lo = math.log(eps / (1.0 - eps))
    hi = -lo
    T, A = len(base), W[0].shape[0]
    preds = np.zeros((T, A))
    losses = [np.zeros((T, A, w.shape[1])) for w in W]
    for t in range(T):
        z = np.asarray(side[t], dtype=np.float64)
        pc = np.clip(np.asarray(base[t], dtype=np.float64), eps, 1.0 - eps)
        x0 = np.concatenate([np.log(pc / (1.0 - pc)), [float(bias_logit)]])
        xs = [x0.copy() for _ in range(A)]
        pending = []  # (i, a, k, b, g): applied after the forward (pre-update semantics)
        for i in range(len(W)):
            _, K, NB, _ = W[i].shape
            new_xs = []
            for a in range(A):
                ya = float(targets[t][a])
                ucs = []
                for k in range(K):
                    gates = [
                        float(np.dot(V[i][a, k, b], z)) > float(bvec[i][a, k, b]) for b in range(NB)
                    ]
                    w = np.zeros(W[i].shape[3])
                    for b in range(NB):
                        if gates[b]:
                            w = w + W[i][a, k, b]
                    u = float(np.dot(w, xs[a]))
                    q = _sigmoid(u)
                    uc = min(max(u, lo), hi)
                    p = _sigmoid(uc)
                    losses[i][t, a, k] = _log_loss(ya, uc)
                    if not _skipped(skip_rule, u, q, ya, lo, hi, eps):
                        for b in range(NB):
                            if gates[b]:
                                pending.append((i, a, k, b, (p - ya) * xs[a]))
                    ucs.append(uc)
                    preds[t, a] = p
                new_xs.append(np.array([*ucs, float(bias_logit)]))
            xs = new_xs
        for i, a, k, b, g in pending:
            W[i][a, k, b] = np.clip(W[i][a, k, b] - float(etas[t]) * g, -beta, beta)
    return preds, losses, W


def _gaussian_neuron(w, mu, s2, y, *, s2_min, s2_max, mean_bound):
    """Returns (mu_out, s2_out, loss, projected w, grad or None); None: guarded, no update."""
    lam = 1.0 / s2
    Lam = float(np.dot(w, lam))
    if Lam < 1.0 / s2_max or Lam > 1.0 / s2_min:
        Lstar = min(max(Lam, 1.0 / s2_max), 1.0 / s2_min)
        w = w + (Lstar - Lam) * lam / float(np.dot(lam, lam))
        Lam = float(np.dot(w, lam))
    s2_out = 1.0 / Lam
    m = s2_out * float(np.dot(w, lam * mu))
    guarded = abs(m) > mean_bound
    mu_out = min(max(m, -mean_bound), mean_bound)
    loss = 0.5 * math.log(2.0 * math.pi * s2_out) + (y - mu_out) ** 2 / (2.0 * s2_out)
    grad = None
    if not guarded:
        grad = (lam / 2.0) * ((y - m) ** 2 - s2_out + 2.0 * (y - m) * (m - mu))
    return mu_out, s2_out, loss, w, grad


def gaussian_sequential(
    W,
    V,
    bvec,
    base_mu,
    base_s2,
    side,
    targets,
    etas,
    *,
    s2_min,
    s2_max,
    beta,
    mean_bound,
    bias_means,
):
    W = [np.array(w, dtype=np.float64, copy=True) for w in W]
    bm = np.asarray(bias_means, dtype=np.float64)
    T, A = len(base_mu), W[0].shape[0]
    mu_pred, s2_pred = np.zeros((T, A)), np.zeros((T, A))
    losses = [np.zeros((T, A, w.shape[1])) for w in W]
    for t in range(T):
        z = np.asarray(side[t], dtype=np.float64)
        mu0 = np.concatenate([np.asarray(base_mu[t], dtype=np.float64), bm])
        s20 = np.concatenate([np.asarray(base_s2[t], dtype=np.float64), np.ones(len(bm))])
        ins = [(mu0.copy(), s20.copy()) for _ in range(A)]
        pending = []  # (i, a, k, c, new_row)
        for i in range(len(W)):
            ctx = contexts(V[i], bvec[i], z)
            K = W[i].shape[1]
            new_ins = []
            for a in range(A):
                ya = float(targets[t][a])
                mus, s2s = [], []
                for k in range(K):
                    c = int(ctx[a, k])
                    mu_o, s2_o, loss, w_proj, grad = _gaussian_neuron(
                        W[i][a, k, c].copy(),
                        ins[a][0],
                        ins[a][1],
                        ya,
                        s2_min=s2_min,
                        s2_max=s2_max,
                        mean_bound=mean_bound,
                    )
                    losses[i][t, a, k] = loss
                    if grad is not None:
                        row = np.clip(w_proj - float(etas[t]) * grad, -beta, beta)
                        pending.append((i, a, k, c, row))
                    mus.append(mu_o)
                    s2s.append(s2_o)
                    mu_pred[t, a], s2_pred[t, a] = mu_o, s2_o
                new_ins.append((np.concatenate([mus, bm]), np.concatenate([s2s, np.ones(len(bm))])))
            ins = new_ins
        for i, a, k, c, row in pending:
            W[i][a, k, c] = row
    return mu_pred, s2_pred, losses, W
