"""Training walks of one GLN layer over a chunk of examples.

A layer at step ``t`` needs only the previous layer's *pre-update* outputs at step ``t`` and its
own weights, so running layer 1 over a chunk, then layer 2 over the chunk, … is exactly the
example-by-example algorithm. Within a layer every (output, neuron) pair is an independent scan
over ``t``: gather the active row, mix, clip, update that row. The engines differ only in how
they walk:

``numba``    (CPU) compiled: neuron by neuron (in parallel), each scanning the chunk with its
             ``2^C × n`` table hot in cache (``_numba.py``);
``numpy``    (CPU) one vectorised step per example over all the layer's neurons (NumPy calls on
             views of the torch tensors: a fraction of a torch call's overhead);
``torch``    the same step in torch ops, for any device;
``triton``   (CUDA) one program per neuron, its table on chip (``_triton.py``);
``sum``/``mean``  the minibatch approximations: every example predicted with the weights before
             the batch, per-example updates summed (pygln's NumPy backend) or averaged over the
             batch (DeepMind's code).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

SKIP_RULES = ("none", "confident", "deepmind")
ENGINES = ("auto", "numba", "numpy", "torch", "triton")
SKIP_CODE = {"none": 0, "confident": 1, "deepmind": 2}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _skip_np(u: np.ndarray, y: np.ndarray, lo: float, eps: float, rule: int) -> np.ndarray | None:
    if rule == 1:
        return np.abs(y - _sigmoid(u)) <= eps
    if rule == 2:
        return (u < lo) | (u > -lo)
    return None


def step_torch(u: torch.Tensor, y: torch.Tensor, eta: torch.Tensor | float, lo: float,
               eps: float, rule: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One Bernoulli neuron step in torch ops: the clipped output logits ``uc`` and the scaled
    gradient coefficient ``η (σ(uc) − y)``, zero where the skip ``rule`` holds."""
    uc = u.clamp(lo, -lo)
    g = (torch.sigmoid(uc) - y) * eta
    if rule == 1:
        g = torch.where((y - torch.sigmoid(u)).abs() <= eps, 0.0, g)
    elif rule == 2:
        g = torch.where((u < lo) | (u > -lo), 0.0, g)
    return uc, g


def _as_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def direct_np(
    W: np.ndarray,
    ctx: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    eta: np.ndarray,
    eps: float,
    beta: float,
    rule: int,
) -> np.ndarray:
    """The plain walk. ``W`` ``(A, K, E, n)`` is updated in place; ``ctx`` ``(T, A, K)``; ``X``
    ``(T, A or 1, n)`` input logits; ``Y`` ``(T, A)``; ``eta`` ``(T,)``. Returns the clipped
    output logits ``(T, A, K)``."""
    A, K, E, n = W.shape
    T = ctx.shape[0]
    lo = math.log(eps / (1 - eps))
    flat = W.reshape(A * K * E, n)
    rows = ctx.reshape(T, A * K) + (np.arange(A * K) * E)
    out = np.empty((T, A, K), dtype=W.dtype)
    Xb = np.broadcast_to(X, (T, A, n))
    for t in range(T):
        r = rows[t]
        w = flat[r].reshape(A, K, n)
        x = Xb[t]
        u = np.matmul(w, x[:, :, None])[..., 0]
        uc = np.clip(u, lo, -lo)
        out[t] = uc
        g = (_sigmoid(uc) - Y[t][:, None]) * eta[t]
        skip = _skip_np(u, Y[t][:, None], lo, eps, rule)
        if skip is not None:
            g[skip] = 0.0
        new = w - g[..., None] * x[:, None, :]
        np.clip(new, -beta, beta, out=new)
        flat[r] = new.reshape(A * K, n)
    return out


def _active_values(W: np.ndarray, ctx: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``W[a, k, ctx[t,a,k]] · X[t, a]`` for every t, a, k: ``(T, A, K)`` (GEMMs over all rows,
    then the active one picked; fewer passes over the table than a gather for small E)."""
    A, K, E, n = W.shape
    T = ctx.shape[0]
    if X.shape[1] == 1:
        P = (W.reshape(A * K * E, n) @ X[:, 0].T).reshape(A, K, E, T)
    else:
        P = np.matmul(W.reshape(A, K * E, n), X.transpose(1, 2, 0)).reshape(A, K, E, T)
    idx = ctx.transpose(1, 2, 0)[:, :, None, :]
    return np.take_along_axis(P, idx, axis=2)[:, :, 0, :].transpose(2, 0, 1)


def _scatter(coef: np.ndarray, ctx: np.ndarray, E: int) -> np.ndarray:
    """``H[a, k, e, t] = coef[t, a, k]`` where ``ctx[t, a, k] = e`` (else 0): ``(A, K, E, T)``."""
    T, A, K = ctx.shape
    H = np.zeros((A, K, E, T), dtype=coef.dtype)
    a, k = np.meshgrid(np.arange(A), np.arange(K), indexing="ij")
    H[a[None], k[None], ctx, np.arange(T)[:, None, None]] = coef
    return H


def _apply(W: np.ndarray, H: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``Σ_t H[a,k,e,t] · X[t, a]``: ``(A, K, E, n)``."""
    A, K, E, T = H.shape
    Xa = X.transpose(1, 0, 2)  # (A or 1, T, n)
    return np.matmul(H.reshape(H.shape[0], K * E, T), Xa).reshape(A, K, E, -1)


def batch_np(
    W: np.ndarray,
    ctx: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    eta: float,
    eps: float,
    beta: float,
    rule: int,
    mode: str,
) -> np.ndarray:
    """One minibatch update (``mode`` ``"sum"`` or ``"mean"``) with pre-batch predictions."""
    _A, _K, E, _n = W.shape
    T = ctx.shape[0]
    lo = math.log(eps / (1 - eps))
    u = _active_values(W, ctx, X)
    uc = np.clip(u, lo, -lo)
    g = (_sigmoid(uc) - Y[:, :, None]) * eta
    skip = _skip_np(u, np.broadcast_to(Y[:, :, None], u.shape), lo, eps, rule)
    if skip is not None:
        g[skip] = 0.0
    delta = _apply(W, _scatter(g, ctx, E), X)
    if mode == "mean":
        delta /= T
    hit = _scatter(np.ones_like(g), ctx, E).any(-1)
    W[hit] = np.clip(W[hit] - delta[hit], -beta, beta)
    return uc


# ------------------------------------------------------------------ torch (any device) walk


def direct_torch(
    W: torch.Tensor,
    ctx: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    eta: torch.Tensor,
    eps: float,
    beta: float,
    rule: int,
) -> torch.Tensor:
    """:func:`direct_np` in torch ops, for devices without a fused kernel."""
    A, K, E, n = W.shape
    T = ctx.shape[0]
    lo = math.log(eps / (1 - eps))
    flat = W.view(A * K * E, n)
    rows = ctx.reshape(T, A * K) + torch.arange(A * K, device=W.device) * E
    out = torch.empty(T, A, K, dtype=W.dtype, device=W.device)
    Xb = X.expand(T, A, n)
    for t in range(T):
        r = rows[t]
        w = flat.index_select(0, r).view(A, K, n)
        x = Xb[t]
        u = torch.einsum("akn,an->ak", w, x)
        uc, g = step_torch(u, Y[t][:, None], eta[t], lo, eps, rule)
        out[t] = uc
        new = (w - g[..., None] * x[:, None, :]).clamp_(-beta, beta)
        flat.index_copy_(0, r, new.view(A * K, n))
    return out


def scan_layer(
    W: torch.Tensor,
    ctx: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    eta: torch.Tensor,
    *,
    eps: float,
    beta: float,
    skip_rule: str,
    engine: str,
) -> torch.Tensor:
    """Train one layer over a chunk with exact sequential semantics; ``W`` is updated in place.
    ``engine``: ``"gram"``, ``"direct"`` or ``"triton"`` (resolved by the caller)."""
    rule = SKIP_CODE[skip_rule]
    if engine == "triton":
        from galu.gln._triton import triton_scan

        return triton_scan(W, ctx, X, Y, eta, eps=eps, beta=beta, rule=rule)
    if engine == "torch":
        return direct_torch(W, ctx, X, Y, eta, eps, beta, rule)
    args = (_as_np(W), _as_np(ctx), _as_np(X), _as_np(Y), _as_np(eta), eps, beta, rule)
    if engine == "numba":
        from galu.gln._numba import bernoulli_scan, bernoulli_scan_serial, pick

        out = np.empty(ctx.shape, dtype=args[0].dtype)
        pick(bernoulli_scan, bernoulli_scan_serial, ctx.shape[0], W.shape)(*args, out)
        return torch.from_numpy(out)
    return torch.from_numpy(direct_np(*args))


def numba_status() -> str | None:
    """``None`` when the compiled CPU walks can run, else why not."""
    try:
        import galu.gln._numba  # noqa: F401
    except ImportError as exc:
        return f"numba is not installed ({exc}); pip install 'galu[fast]'"
    return None


def resolve_engine(engine: str, device: torch.device) -> str:
    """``"auto"`` → ``"triton"`` on CUDA where available, ``"numba"`` on the CPU where numba is
    installed, else ``"numpy"`` on the CPU and ``"torch"`` elsewhere; a named engine is checked
    against the device."""
    if engine == "auto":
        if device.type == "cuda":
            from galu.ops import triton_status

            return "triton" if triton_status() is None else "torch"
        if device.type == "cpu":
            return "numba" if numba_status() is None else "numpy"
        return "torch"
    if engine in ("numba", "numpy") and device.type != "cpu":
        raise ValueError(f"`engine` (={engine!r}) runs on the CPU; the weights are on {device}.")
    if engine == "numba" and (why := numba_status()) is not None:
        raise ValueError(f"`engine` (={engine!r}) is unavailable: {why}.")
    if engine == "triton":
        from galu.ops import triton_status

        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"`engine` (={engine!r}) needs CUDA (or TRITON_INTERPRET=1); the weights are on "
                f"{device}."
            )
        if (why := triton_status()) is not None:
            raise ValueError(f"`engine` (={engine!r}) is unavailable: {why}.")
    return engine


def batch_layer(
    W: torch.Tensor,
    ctx: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    eta: float,
    *,
    eps: float,
    beta: float,
    skip_rule: str,
    mode: str,
) -> torch.Tensor:
    """One ``sum``/``mean`` minibatch update of a layer (CPU NumPy; other devices via torch)."""
    rule = SKIP_CODE[skip_rule]
    if W.device.type == "cpu":
        return torch.from_numpy(
            batch_np(_as_np(W), _as_np(ctx), _as_np(X), _as_np(Y), eta, eps, beta, rule, mode)
        )
    A, K, E, n = W.shape
    T = ctx.shape[0]
    lo = math.log(eps / (1 - eps))
    w = W[
        torch.arange(A, device=W.device)[None, :, None],
        torch.arange(K, device=W.device)[None, None, :],
        ctx,
    ]
    x = X.expand(T, A, n)
    u = torch.einsum("takn,tan->tak", w, x)
    uc, g = step_torch(u, Y[:, :, None], eta, lo, eps, rule)
    rows = (ctx + torch.arange(A * K, device=W.device).view(A, K) * E).reshape(-1)
    delta = torch.zeros(A * K * E, n, dtype=W.dtype, device=W.device)
    delta.index_add_(0, rows, (g[..., None] * x[:, :, None, :]).reshape(-1, n))
    if mode == "mean":
        delta /= T
    flat = W.view(A * K * E, n)
    hit = torch.unique(rows)
    flat[hit] = (flat[hit] - delta[hit]).clamp(-beta, beta)
    return uc
