"""Gated products and the lifted GaLU design, as pure tensor functions.

Notation (Fiat et al. 2019; ``science/galu.md``): ``X`` is ``(m, d)``, gate vectors ``U`` are
``(k, d)``, the gate matrix ``G = gate(X Uᵀ)`` is ``(m, k)``, the weights ``W`` are ``(k, d)``.
The lifted design ``Ψ = [X ⊙ g_1, …, X ⊙ g_k]`` is ``(m, k·d)`` with column index ``i·d + j``
(neuron ``i``, input feature ``j``), so ``Ψ vec(W) = f(X)`` with ``vec`` the row-major flatten.

Every function here is the single implementation of its formula: modules, solvers and tests call
these rather than re-deriving them. The GLU gate ``act(a) ⊙ b`` of gated feed-forward layers,
with its eager reference and fused Triton kernel, is :func:`glu_gate` (``_glu_gate.py``,
``_glu_eager.py``, ``_glu_triton.py``). The exact kernels built from these products (the GaLU
kernel, the neural path kernel) are in :mod:`galu.kernels`.
"""

from __future__ import annotations

import torch

from galu.gates import Gate
from galu.kernels import galu_kernel  # re-exported: ops.galu_kernel until 0.3
from galu.ops._glu_gate import (
    FUSED_VARIANTS,
    IMPLS,
    TRITON_MIN,
    glu_gate,
    triton_available,
    triton_status,
)


def gate_matrix(x: torch.Tensor, gate_vectors: torch.Tensor, gate: Gate) -> torch.Tensor:
    """``G = gate(x Uᵀ)``: ``x`` ``(..., d)``, ``gate_vectors`` ``(k, d)`` → ``(..., k)``."""
    return gate(x @ gate_vectors.T)


def gated_linear(
    x: torch.Tensor, weight: torch.Tensor, g: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``(x Wᵀ + b) ⊙ g``.

    ``x`` ``(..., d)``, ``weight`` ``(k, d)``, ``g`` ``(..., k)`` → ``(..., k)``.
    """
    z = x @ weight.T
    if bias is not None:
        z = z + bias
    return z * g


def lifted_matvec(x: torch.Tensor, g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``Ψ vec(W)`` without forming ``Ψ``: ``rowsum(X ⊙ (G W))`` = ``rowsum(G ⊙ (X Wᵀ))``.

    ``x`` ``(m, d)``, ``g`` ``(m, k)``, ``weight`` ``(k, d)`` or ``(o, k, d)`` for ``o`` outputs
    sharing the gates → ``(m,)`` or ``(m, o)``. One GEMM of ``m k d`` multiply-adds per output;
    the elementwise pass runs on the smaller of the ``(m, d)`` and ``(m, k)`` products (with
    ``k >= d`` the gates-first order was 1.4× faster per CG step at m = 8192, d = 64, k = 256).
    """
    k, d = weight.shape[-2], weight.shape[-1]
    if weight.ndim == 3 and weight.shape[0] == 1:  # one output: the plain GEMM path
        return lifted_matvec(x, g, weight[0])[:, None]
    if weight.ndim == 2:
        if k >= d:
            return (x * (g @ weight)).sum(-1)  # (m,)
        return gated_linear(x, weight, g).sum(-1)
    o = weight.shape[0]
    if k >= d:
        z = (g @ weight.transpose(0, 1).reshape(k, o * d)).reshape(-1, o, d)  # (m, o, d)
        return (z * x[:, None, :]).sum(-1)  # (m, o)
    z = torch.einsum("md,okd->mok", x, weight)  # (m, o, k)
    return (z * g[:, None, :]).sum(-1)  # (m, o)


def lifted_rmatvec(
    x: torch.Tensor, g: torch.Tensor, r: torch.Tensor, *, g_t: torch.Tensor | None = None
) -> torch.Tensor:
    """``Ψᵀ r`` without forming ``Ψ``: ``Gᵀ (r ⊙ X)`` = ``(G ⊙ r)ᵀ X``.

    ``r`` ``(m,)`` → ``(k, d)``; ``r`` ``(m, o)`` → ``(o, k, d)``. ``g_t``: an optional
    contiguous copy of ``gᵀ`` ``(k, m)`` for callers that apply ``Ψᵀ`` many times (about 10%
    faster on CPU than the transposed view).
    """
    m, d = x.shape
    k = g.shape[1]
    if r.ndim == 2 and r.shape[1] == 1:  # one output: the plain GEMM path
        return lifted_rmatvec(x, g, r[:, 0], g_t=g_t)[None]
    gt = g.T if g_t is None else g_t
    if r.ndim == 1:
        if k >= d:
            return gt @ (x * r[:, None])  # (k, d)
        return (g * r[:, None]).T @ x
    o = r.shape[1]
    if k >= d:
        xr = (r[:, :, None] * x[:, None, :]).reshape(m, o * d)  # (m, o·d)
        return (gt @ xr).reshape(k, o, d).transpose(0, 1).contiguous()  # (o, k, d)
    return torch.einsum("mk,mo,md->okd", g, r, x)


def lift(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The lifted design ``Ψ`` ``(m, k·d)``.

    Memory ``m·k·d``: use the matvecs for large problems.
    """
    m, d = x.shape
    return (g[:, :, None] * x[:, None, :]).reshape(m, g.shape[1] * d)


__all__ = [
    "FUSED_VARIANTS",
    "IMPLS",
    "TRITON_MIN",
    "galu_kernel",
    "gate_matrix",
    "gated_linear",
    "glu_gate",
    "lift",
    "lifted_matvec",
    "lifted_rmatvec",
    "triton_available",
    "triton_status",
]
