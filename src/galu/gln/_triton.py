"""The fused CUDA walk of a Bernoulli GLN layer (Triton): one program per (output, neuron), which
scans the chunk's examples in order — load the context and the input logits, pick the active row
of its own ``2^C × n`` table, mix, clip, write the output, apply the rank-1 update to that row.
Small tables live in registers for the whole chunk (``_bernoulli_walk_on_chip``); larger ones
are read and written row by row through the cache (``_bernoulli_walk``). A program touches only
its own table, so no two programs race; parallelism is across the ``A · K`` neurons of a layer.
Tested on the CPU under ``TRITON_INTERPRET=1`` against the NumPy walk and the float64 reference."""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _neuron_step(w, x, y, eta, lo, eps, beta, RULE: tl.constexpr):  # pragma: no cover - compiled
    """One neuron, one example: the clipped output logit and the updated (boxed) active row."""
    u = tl.sum(w * x, axis=0)
    uc = tl.minimum(tl.maximum(u, lo), -lo)
    step = eta * (1.0 / (1.0 + tl.exp(-uc)) - y)
    if RULE == 1:
        q = 1.0 / (1.0 + tl.exp(-u))
        step = tl.where(tl.abs(y - q) <= eps, 0.0, step)
    if RULE == 2:
        step = tl.where((u < lo) | (u > -lo), 0.0, step)
    return uc, tl.minimum(tl.maximum(w - step * x, -beta), beta)


@triton.jit
def _bernoulli_walk_on_chip(
    W,
    CTX,
    X,
    Y,
    ETA,
    OUT,
    P,
    T,
    A,
    K,
    E,
    n,
    x_t,
    x_a,
    SHARED: tl.constexpr,
    RULE: tl.constexpr,
    BLOCK: tl.constexpr,
    EB: tl.constexpr,
):  # pragma: no cover - compiled
    """Small tables (2^C · n within a few thousand entries): the whole ``(E, n)`` table is loaded
    into registers once, the active row is selected and updated there, and the table is written
    back after the chunk — no memory traffic for weights inside the walk."""
    j = tl.program_id(0)
    a = j // K
    # ε, β and logit ε in the weights' dtype (Python floats would reach the compiled kernel as
    # fp32 and move float64 results by ~1e-7)
    lo = tl.load(P)
    eps = tl.load(P + 1)
    beta = tl.load(P + 2)
    base = j.to(tl.int64) * E * n  # int64: tables of 2^31 entries and more
    xa = a * (1 - SHARED)
    offs = tl.arange(0, BLOCK)
    rows = tl.arange(0, EB)
    mask = offs < n
    tmask = (rows[:, None] < E) & mask[None, :]
    ptrs = W + base + rows[:, None] * n + offs[None, :]
    table = tl.load(ptrs, mask=tmask, other=0.0)
    for t in range(T):
        c = tl.load(CTX + t * A * K + j)
        x = tl.load(X + t * x_t + xa * x_a + offs, mask=mask, other=0.0)
        hit = rows[:, None] == c
        w = tl.sum(tl.where(hit, table, 0.0), axis=0)
        uc, new = _neuron_step(w, x, tl.load(Y + t * A + a), tl.load(ETA + t), lo, eps, beta, RULE)
        tl.store(OUT + t * A * K + j, uc)
        table = tl.where(hit, new[None, :], table)
    tl.store(ptrs, table, mask=tmask)


@triton.jit
def _bernoulli_walk(
    W,
    CTX,
    X,
    Y,
    ETA,
    OUT,
    P,
    T,
    A,
    K,
    E,
    n,
    x_t,
    x_a,
    SHARED: tl.constexpr,
    RULE: tl.constexpr,
    BLOCK: tl.constexpr,
):  # pragma: no cover - compiled
    j = tl.program_id(0)
    a = j // K
    # ε, β and logit ε in the weights' dtype (Python floats would reach the compiled kernel as
    # fp32 and move float64 results by ~1e-7)
    lo = tl.load(P)
    eps = tl.load(P + 1)
    beta = tl.load(P + 2)
    base = j.to(tl.int64) * E * n  # int64: tables of 2^31 entries and more
    xa = a * (1 - SHARED)
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    table = W + base
    for t in range(T):
        c = tl.load(CTX + t * A * K + j)
        x = tl.load(X + t * x_t + xa * x_a + offs, mask=mask, other=0.0)
        w = tl.load(table + c * n + offs, mask=mask, other=0.0)
        uc, new = _neuron_step(w, x, tl.load(Y + t * A + a), tl.load(ETA + t), lo, eps, beta, RULE)
        tl.store(OUT + t * A * K + j, uc)
        tl.store(table + c * n + offs, new, mask=mask)


ON_CHIP_ENTRIES = 8192  # tables up to this many (padded) entries are held in registers


def triton_scan(
    W: torch.Tensor,
    ctx: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    eta: torch.Tensor,
    *,
    eps: float,
    beta: float,
    rule: int,
    on_chip: bool | None = None,
) -> torch.Tensor:
    """Same contract as :func:`galu.gln._scan.direct_np`, on torch tensors (CUDA, or CPU under
    ``TRITON_INTERPRET=1``); ``W`` is updated in place. ``on_chip`` (default: when the padded
    table has at most :data:`ON_CHIP_ENTRIES` entries) keeps each neuron's table in registers
    for the whole chunk; otherwise the active row is read and written through the cache."""
    A, K, E, n = W.shape
    T = ctx.shape[0]
    out = torch.empty(T, A, K, dtype=W.dtype, device=W.device)
    if T == 0:
        return out
    X = X.contiguous()
    block = max(16, triton.next_power_of_2(n))
    eb = max(2, triton.next_power_of_2(E))
    if on_chip is None:
        on_chip = eb * block <= ON_CHIP_ENTRIES
    scalars = torch.tensor([math.log(eps / (1 - eps)), eps, beta], dtype=W.dtype, device=W.device)
    args = (W, ctx.contiguous(), X, Y.contiguous(), eta.contiguous(), out, scalars, T, A, K, E,
            n, X.stride(0), X.stride(1))  # fmt: skip
    common = dict(SHARED=int(X.shape[1] == 1), RULE=rule, BLOCK=block)
    if on_chip:
        _bernoulli_walk_on_chip[(A * K,)](*args, EB=eb, num_warps=4 if eb * block >= 2048 else 1,
                                          **common)  # fmt: skip
    else:
        _bernoulli_walk[(A * K,)](*args, num_warps=4 if block >= 512 else 1, **common)
    return out
