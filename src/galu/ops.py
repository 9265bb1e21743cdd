"""Gated products and the lifted GaLU design, as pure tensor functions.

Notation (Fiat et al. 2019; ``science/galu.md``): ``X`` is ``(m, d)``, gate vectors ``U`` are
``(k, d)``, the gate matrix ``G = gate(X Uᵀ)`` is ``(m, k)``, the weights ``W`` are ``(k, d)``.
The lifted design ``Ψ = [X ⊙ g_1, …, X ⊙ g_k]`` is ``(m, k·d)`` with column index ``i·d + j``
(neuron ``i``, input feature ``j``), so ``Ψ vec(W) = f(X)`` with ``vec`` the row-major flatten.

Every function here is the single implementation of its formula: modules, solvers and tests call
these rather than re-deriving them.
"""

from __future__ import annotations

import torch

from galu.gates import Gate


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
    """``Ψ vec(W)`` without forming ``Ψ``: ``rowsum(G ⊙ (X Wᵀ))``.

    ``x`` ``(m, d)``, ``g`` ``(m, k)``, ``weight`` ``(k, d)`` or ``(o, k, d)`` for ``o`` outputs
    sharing the gates → ``(m,)`` or ``(m, o)``. Cost ``O(m k d)`` per output.
    """
    if weight.ndim == 2:
        return (gated_linear(x, weight, g)).sum(-1)  # (m,)
    z = torch.einsum("md,okd->mok", x, weight)  # (m, o, k)
    return (z * g[:, None, :]).sum(-1)  # (m, o)


def lifted_rmatvec(x: torch.Tensor, g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``Ψᵀ r`` without forming ``Ψ``: ``(G ⊙ r)ᵀ X``.

    ``r`` ``(m,)`` → ``(k, d)``; ``r`` ``(m, o)`` → ``(o, k, d)``.
    """
    if r.ndim == 1:
        return (g * r[:, None]).T @ x  # (k, d)
    return torch.einsum("mk,mo,md->okd", g, r, x)


def lift(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The lifted design ``Ψ`` ``(m, k·d)``.

    Memory ``m·k·d``: use the matvecs for large problems.
    """
    m, d = x.shape
    return (g[:, :, None] * x[:, None, :]).reshape(m, g.shape[1] * d)


def galu_kernel(
    x1: torch.Tensor,
    g1: torch.Tensor,
    x2: torch.Tensor | None = None,
    g2: torch.Tensor | None = None,
) -> torch.Tensor:
    """The GaLU dual kernel ``K = (X₁X₂ᵀ) ⊙ (G₁G₂ᵀ) = Ψ₁Ψ₂ᵀ`` ``(m₁, m₂)``.

    The same "input Gram ⊙ gate overlap" Hadamard structure as the neural path kernel.
    """
    if x2 is None or g2 is None:
        x2, g2 = x1, g1
    return (x1 @ x2.T) * (g1 @ g2.T)
