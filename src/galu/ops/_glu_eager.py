"""The elementwise part of GLU-family feed-forward blocks, in eager PyTorch with float32 math:
the reference every fused kernel is tested against (variants: ``galu.nn._glu``'s docstring)."""

from __future__ import annotations

import math

import torch

NON_GATED = ("relu", "gelu", "gelu-tanh", "swish", "xatlu", "xgelu", "xsilu")
GATED = (
    "glu", "bilinear", "reglu", "geglu", "geglu-tanh", "swiglu",
    "xglu-atlu", "xglu-gelu", "xglu-silu", "xglu2-atlu", "xglu2-gelu", "xglu2-silu",
)  # fmt: skip
FFN_VARIANTS: tuple[str, ...] = NON_GATED + GATED
EXPANDED = tuple(v for v in FFN_VARIANTS if v.startswith("x"))


def _base_gate(name: str, z: torch.Tensor) -> torch.Tensor:
    """A gate with range (0, 1), written to keep full relative accuracy as it tends to 0
    (``1 + erf`` and ``arctan + π/2`` cancel catastrophically for negative ``z``)."""
    if name == "atlu":
        # arctan(z) + π/2 = arctan(−1/z) for z < 0
        neg = torch.atan(-1.0 / z.clamp_max(-1e-30)) / math.pi
        return torch.where(z < 0, neg, torch.atan(z) / math.pi + 0.5)
    if name == "gelu":
        return _phi(z)
    return torch.sigmoid(z)  # silu


def _phi(z: torch.Tensor) -> torch.Tensor:
    """The standard normal CDF, ``erfc(−z/√2)/2`` (accurate in the lower tail)."""
    return 0.5 * torch.special.erfc(-z / math.sqrt(2.0))


def expanded_gate(name: str, z: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """``g_α(z) = g(z)(1 + 2α) − α`` for ``g`` in ``atlu``, ``gelu``, ``silu``."""
    return _base_gate(name, z) * (1 + 2 * alpha) - alpha


def ffn_activation(
    variant: str, a: torch.Tensor, b: torch.Tensor | None = None, *,
    alpha: torch.Tensor | float = 0.0, beta: float = 1.0,
) -> torch.Tensor:  # fmt: skip
    """The elementwise part of a feed-forward block: ``act(a)`` for non-gated variants, the gate
    ``act(a) ⊙ b`` for gated ones. Computed in at least float32 (bf16/fp16 inputs are upcast and
    the result cast back), the reference every fused kernel is tested against."""
    if variant not in FFN_VARIANTS:
        raise ValueError(f"`variant` (={variant!r}) must be one of {FFN_VARIANTS}.")
    if (variant in GATED) != (b is not None):
        raise ValueError(
            f"variant {variant!r} {'needs' if variant in GATED else 'takes no'} second input `b`."
        )
    out_dtype = a.dtype
    work = torch.promote_types(a.dtype, torch.float32)
    a = a.to(work)
    if variant in ("relu", "reglu"):
        h = torch.relu(a)
    elif variant in ("gelu", "geglu"):
        h = a * _phi(a)
    elif variant in ("gelu-tanh", "geglu-tanh"):
        # ½(1 + tanh u) = σ(2u): the tanh approximation without cancellation for a < 0
        h = a * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (a + 0.044715 * a**3))
    elif variant in ("swish", "swiglu"):
        h = a * torch.sigmoid(beta * a)
    elif variant == "glu":
        h = torch.sigmoid(a)
    elif variant == "bilinear":
        h = a
    elif variant.startswith("xglu2-"):
        h = a * expanded_gate(variant[6:], a, alpha)
    elif variant.startswith("xglu-"):
        h = expanded_gate(variant[5:], a, alpha)
    else:  # xatlu, xgelu, xsilu
        h = a * expanded_gate(variant[1:], a, alpha)
    if b is not None:
        h = h * b.to(work)
    return h.to(out_dtype)
