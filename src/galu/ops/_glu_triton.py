"""A fused Triton kernel for the GLU gate ``act(a) ⊙ b``, forward and backward, fp32 math.

Eager PyTorch reads ``a`` and ``b``, writes ``act(a)``, reads it back and writes the product
(and saves three tensors for backward); the fused forward reads ``a`` and ``b`` once and writes
``out`` once, the fused backward reads ``a``, ``b``, ``dout`` once and writes ``da``, ``db``.
Inputs of any float dtype are upcast to float32 in registers and results rounded once.

Layout: a 2-D grid over (rows, column blocks) of the flattened ``(R, F)`` views, with each
operand's own row stride (the two halves of a packed ``gate_up`` output are used in place) and
unit column stride. The expanded variants' ``dα`` is reduced per program and summed by torch.

Special functions: Triton's language has ``erf`` but neither ``erfc`` nor ``atan``. ``Φ(a)`` is
computed as ``erfc(−a/√2)/2`` with the classic Chebyshev-fitted ``erfc`` (fractional error below
1.2e-7 in exact arithmetic; in float32 the rounding of ``exp``'s large argument leaves ~2e-5
relative error for ``a`` in [−12, −8], where ``½(1 + erf)`` would lose every digit). ``arctan``
of a non-negative argument is reduced to ``|t| ≤ tan(π/12)`` (``arctan x = π/2 − arctan(1/x)``
for ``x > 1``, then ``arctan x = π/6 + arctan((√3x − 1)/(√3 + x))``) and summed as a Taylor
series to ``t¹¹`` (truncation below t¹²/13 ≈ 1.1e-8 relative); the ATLU gate uses
``arctan(−1/z)/π`` for ``z < 0``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from galu.ops._glu_eager import GATED

# The kernel's compile-time code of each gated variant (the branches of `_act`).
CODES = {
    "glu": 0,
    "bilinear": 1,
    "reglu": 2,
    "geglu": 3,
    "geglu-tanh": 4,
    "swiglu": 5,
    "xglu-gelu": 6,
    "xglu-silu": 7,
    "xglu2-gelu": 8,
    "xglu2-silu": 9,
    "xglu-atlu": 10,
    "xglu2-atlu": 11,
}
assert set(CODES) == set(GATED), "every gated variant needs a kernel code"
BLOCK = 128
_SQRT1_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_TANH_C = math.sqrt(2 / math.pi)


@triton.jit
def _erfc(x):
    z = tl.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    p = -0.82215223 + t * 0.17087277
    p = 1.48851587 + t * p
    p = -1.13520398 + t * p
    p = 0.27886807 + t * p
    p = -0.18628806 + t * p
    p = 0.09678418 + t * p
    p = 0.37409196 + t * p
    p = 1.00002368 + t * p
    r = t * tl.exp(-z * z - 1.26551223 + t * p)
    return tl.where(x >= 0, r, 2.0 - r)


@triton.jit
def _round_to(x, out_ty: tl.constexpr):
    """float32 → the output dtype with round-to-nearest-even. bfloat16 is rounded by hand (the
    same bias-and-shift the hardware conversion does), because Triton's CPU interpreter
    truncates when it converts float32 to bfloat16."""
    if out_ty == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return x.to(out_ty)


@triton.jit
def _atan_pos(x):
    """arctan(x) for x >= 0 in float32 (see the module docstring)."""
    big = x > 1.0
    y = tl.where(big, 1.0 / tl.maximum(x, 1e-30), x)
    shift = y > 0.2679491924311227  # tan(π/12)
    t = tl.where(shift, (1.7320508075688772 * y - 1.0) / (1.7320508075688772 + y), y)
    t2 = t * t
    p = 1.0 / 11.0
    p = 1.0 / 9.0 - t2 * p
    p = 1.0 / 7.0 - t2 * p
    p = 1.0 / 5.0 - t2 * p
    p = 1.0 / 3.0 - t2 * p
    p = 1.0 - t2 * p
    r = t * p + tl.where(shift, 0.5235987755982988, 0.0)
    return tl.where(big, 1.5707963267948966 - r, r)


@triton.jit
def _act(a, alpha, beta, VARIANT: tl.constexpr):
    """``h = act(a)``, ``dh/da`` and ``dh/dα`` in float32."""
    zero = a * 0.0
    if VARIANT == 0:  # glu
        s = tl.sigmoid(a)
        h, dh, dha = s, s * (1.0 - s), zero
    elif VARIANT == 1:  # bilinear
        h, dh, dha = a, zero + 1.0, zero
    elif VARIANT == 2:  # reglu
        pos = a > 0
        h, dh, dha = tl.where(pos, a, zero), tl.where(pos, zero + 1.0, zero), zero
    elif VARIANT == 3:  # geglu (exact)
        phi = 0.5 * _erfc(-a * 0.7071067811865476)
        dens = tl.exp(-0.5 * a * a) * 0.3989422804014327
        h, dh, dha = a * phi, phi + a * dens, zero
    elif VARIANT == 4:  # geglu-tanh: a σ(2u), u = c(a + 0.044715 a³)
        u = 0.7978845608028654 * (a + 0.044715 * a * a * a)
        s = tl.sigmoid(2.0 * u)
        du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * a * a)
        h, dh, dha = a * s, s + a * s * (1.0 - s) * 2.0 * du, zero
    elif VARIANT == 5:  # swiglu
        s = tl.sigmoid(beta * a)
        h, dh, dha = a * s, s + beta * a * s * (1.0 - s), zero
    else:  # expanded: g_α = g(1 + 2α) − α with g = Φ (gelu) or σ (silu)
        if VARIANT == 6 or VARIANT == 8:
            g = 0.5 * _erfc(-a * 0.7071067811865476)
            dg = tl.exp(-0.5 * a * a) * 0.3989422804014327
        elif VARIANT == 10 or VARIANT == 11:  # atlu: (arctan a + π/2)/π
            neg = a < 0
            at = tl.where(
                neg, _atan_pos(-1.0 / tl.minimum(a, -1e-30)), _atan_pos(tl.maximum(a, 0.0))
            )
            g = tl.where(neg, at * 0.3183098861837907, at * 0.3183098861837907 + 0.5)
            dg = 0.3183098861837907 / (1.0 + a * a)
        else:
            g = tl.sigmoid(a)
            dg = g * (1.0 - g)
        ga = g * (1.0 + 2.0 * alpha) - alpha
        dga = dg * (1.0 + 2.0 * alpha)
        if VARIANT == 6 or VARIANT == 7 or VARIANT == 10:  # first order
            h, dh, dha = ga, dga, 2.0 * g - 1.0
        else:  # second order
            h, dh, dha = a * ga, ga + a * dga, a * (2.0 * g - 1.0)
    return h, dh, dha


@triton.jit
def _fwd(
    a_ptr, b_ptr, o_ptr, alpha_ptr, sa, sb, so, F, beta, VARIANT: tl.constexpr, BLOCK: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)  # 64-bit offsets: rows × stride may exceed 2³¹
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = cols < F
    a = tl.load(a_ptr + row * sa + cols, mask=m, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + row * sb + cols, mask=m, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr).to(tl.float32)
    h, _dh, _dha = _act(a, alpha, beta, VARIANT)  # the derivatives are dead code here
    tl.store(o_ptr + row * so + cols, _round_to(h * b, o_ptr.dtype.element_ty), mask=m)


@triton.jit
def _bwd(
    a_ptr,
    b_ptr,
    g_ptr,
    da_ptr,
    db_ptr,
    dal_ptr,
    alpha_ptr,
    sa,
    sb,
    sg,
    F,
    n_blocks,
    beta,
    VARIANT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    blk = tl.program_id(1)
    cols = blk * BLOCK + tl.arange(0, BLOCK)
    m = cols < F
    a = tl.load(a_ptr + row * sa + cols, mask=m, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + row * sb + cols, mask=m, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + row * sg + cols, mask=m, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr).to(tl.float32)
    h, dh, dha = _act(a, alpha, beta, VARIANT)
    tl.store(da_ptr + row * F + cols, _round_to(g * b * dh, da_ptr.dtype.element_ty), mask=m)
    tl.store(db_ptr + row * F + cols, _round_to(g * h, db_ptr.dtype.element_ty), mask=m)
    tl.store(dal_ptr + row * n_blocks + blk, tl.sum(tl.where(m, g * b * dha, 0.0), axis=0))


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``(R, F)`` with unit column stride (a view where possible)."""
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


class FusedGate(torch.autograd.Function):
    """``act(a) ⊙ b`` with the Triton kernels above; ``alpha`` is a 0-dim tensor."""

    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, variant: str, beta: float
    ) -> torch.Tensor:
        a2, b2 = _rows(a), _rows(b)
        R, F = a2.shape
        out = torch.empty((R, F), dtype=a.dtype, device=a.device)
        grid = (R, triton.cdiv(F, BLOCK))
        _fwd[grid](
            a2,
            b2,
            out,
            alpha,
            a2.stride(0),
            b2.stride(0),
            out.stride(0),
            F,
            float(beta),
            VARIANT=CODES[variant],
            BLOCK=BLOCK,
        )
        ctx.save_for_backward(a2, b2, alpha)
        ctx.variant, ctx.beta, ctx.shape = variant, float(beta), a.shape
        return out.view(a.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[Any, ...]:
        a2, b2, alpha = ctx.saved_tensors
        g2 = _rows(dout)
        R, F = a2.shape
        n_blocks = triton.cdiv(F, BLOCK)
        da = torch.empty((R, F), dtype=a2.dtype, device=a2.device)
        db = torch.empty((R, F), dtype=b2.dtype, device=b2.device)
        dal = torch.empty((R, n_blocks), dtype=torch.float32, device=a2.device)
        _bwd[(R, n_blocks)](
            a2,
            b2,
            g2,
            da,
            db,
            dal,
            alpha,
            a2.stride(0),
            b2.stride(0),
            g2.stride(0),
            F,
            n_blocks,
            ctx.beta,
            VARIANT=CODES[ctx.variant],
            BLOCK=BLOCK,
        )
        dalpha = dal.sum().to(alpha.dtype) if ctx.needs_input_grad[2] else None
        return da.view(ctx.shape), db.view(ctx.shape), dalpha, None, None
