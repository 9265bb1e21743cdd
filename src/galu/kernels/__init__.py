"""The exact kernels of gated linear networks, as pure tensor functions.

=========================== ================================================ ==================
kernel                      formula                                          where it is used
=========================== ================================================ ==================
:func:`galu_kernel`         ``K = (X₁X₂ᵀ) ⊙ (G₁G₂ᵀ) = Ψ₁Ψ₂ᵀ`` (GaLU dual)     the dual solver,
                                                                             ``ridge_path``
:func:`path_kernel`         ``H = (XXᵀ) ⊙ Π_l G_l G_lᵀ`` (neural path kernel) ``galu.paths``,
                                                                             ``dgn-depth``
=========================== ================================================ ==================

Both have the same "input Gram ⊙ gate overlap" Hadamard structure. The finite-width
renormalised kernel of a GGDLN is theory (a saddle point), in :mod:`galu.theory`.

Until galu 0.3 this module also re-exports the GLU gate (``gate``, ``FUSED_VARIANTS``,
``IMPLS``, ``TRITON_MIN``, ``triton_available``, ``triton_status``), which moved to
:mod:`galu.ops` (``galu.ops.glu_gate``) in 0.2.
"""

from __future__ import annotations

import torch


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


def path_kernel(X: torch.Tensor, gates: list[torch.Tensor]) -> torch.Tensor:
    """``H = (XXᵀ) ⊙ Π_l G_l G_lᵀ`` for inputs ``X`` ``(m, d)`` and gates ``G_l`` ``(m, w_l)``."""
    H = X @ X.T
    for G in gates:
        H = H * (G @ G.T)
    return H


# Re-exported for one release (below the definitions: galu.ops imports galu_kernel from here).
from galu.ops._glu_gate import (  # noqa: E402
    FUSED_VARIANTS,
    IMPLS,
    TRITON_MIN,
    triton_available,
    triton_status,
)
from galu.ops._glu_gate import glu_gate as gate  # noqa: E402

__all__ = [  # the deprecated GLU-gate aliases are listed so that `import *` keeps them too
    "FUSED_VARIANTS",
    "IMPLS",
    "TRITON_MIN",
    "galu_kernel",
    "gate",
    "path_kernel",
    "triton_available",
    "triton_status",
]
