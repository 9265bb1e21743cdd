"""GLU-family feed-forward layers (Dauphin et al. 2017; Shazeer 2020; Huang 2024;
``science/glu.md``).

One class, :class:`FeedForward`, whose ``variant`` is one validated argument::

    non-gated   relu, gelu, gelu-tanh, swish       y = act(x W1) W2
    gated       glu, bilinear, reglu, geglu,       y = (act(x W_gate) ⊙ x W_up) W2
                geglu-tanh, swiglu
    expanded    xatlu, xgelu, xsilu                act(z) = z · g_α(z)
    activations
    expanded    xglu-atlu, xglu-gelu, xglu-silu    y = (g_α(a) ⊙ b) W2          (first order)
    GLUs        xglu2-atlu, xglu2-gelu, xglu2-silu y = (a g_α(a) ⊙ b) W2        (second order)

with ``a = x W_gate (+ bias)``, ``b = x W_up (+ bias)``. Expanded gates (Huang 2024) stretch a
gate ``g`` with range (0, 1) to ``g_α = g (1 + 2α) − α`` with range (−α, 1 + α), one trainable
scalar ``α`` per module initialised to 0 (so at initialisation an expanded variant equals its
base: ``xsilu`` is ``swish``, ``xglu2-silu`` is ``swiglu``). The base gates are
``atlu: (arctan z + π/2)/π``, ``gelu: Φ(z)``, ``silu: σ(z)``.

**Packed layout.** Gated variants hold one ``gate_up`` projection of shape ``(2F, d)`` with the
**gate first**: rows ``[0, F)`` compute ``a`` (the branch the activation is applied to), rows
``[F, 2F)`` compute ``b``. This is Liger's and Megatron's order. ``torch.nn.functional.glu``
uses the other order (``glu(h) = h[:F] ⊙ σ(h[F:])``, gate second); Hugging Face LLaMA MLPs keep
separate ``gate_proj``, ``up_proj`` and ``down_proj``. :func:`pack_gate_up`,
:func:`from_torch_glu`, :func:`from_llama_mlp` and :func:`to_llama_mlp` convert between them.

The 2/3 rule: a gated FFN of hidden size ``2/3 · d_ff`` has the parameters and FLOPs of a
non-gated FFN of hidden size ``d_ff`` (:func:`gated_hidden_size`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from galu._validate import positive_int, renamed
from galu.nn._init import check_last_dim
from galu.ops import glu_gate
from galu.ops._glu_eager import (  # noqa: F401  (re-exported)
    EXPANDED,
    FFN_VARIANTS,
    GATED,
    NON_GATED,
    expanded_gate,
    ffn_activation,
)


def gated_hidden_size(d_ff: int, multiple_of: int = 1) -> int:
    """``round(2/3 · d_ff)`` rounded up to a multiple of ``multiple_of``: the hidden size at which
    a gated FFN (three ``d × F`` matrices) matches a non-gated one of hidden size ``d_ff`` (two)."""
    positive_int("d_ff", d_ff)
    positive_int("multiple_of", multiple_of)
    F = round(2 * d_ff / 3)
    return max(multiple_of, -(-F // multiple_of) * multiple_of)


class FeedForward(nn.Module):
    """A transformer feed-forward block; ``variant`` selects the activation / gate (module doc).

    Args:
        in_features: input and output width ``d`` (``d_model`` of a transformer).
        hidden_features: hidden width ``F`` (use :func:`gated_hidden_size` for equal budgets).
        variant: one of :data:`FFN_VARIANTS`.
        bias: biases on the projections (T5 and LLaMA use none).
        scale: the gate slope ``β`` of ``swish``/``swiglu`` (``z σ(βz)``; 1 is SiLU).
        impl: how the gate ``act(a) ⊙ b`` runs: ``"auto"`` (the fused Triton kernel on CUDA
            where available, else eager), ``"eager"``, ``"compile"``, ``"triton"``
            (:func:`galu.ops.glu_gate`).
        generator, dtype, device: explicit randomness and placement.

    ``d_model``, ``d_hidden`` and ``beta`` are the old names of ``in_features``,
    ``hidden_features`` and ``scale`` (accepted with a DeprecationWarning until galu 0.3; the
    attributes stay readable).
    """

    def __init__(
        self,
        in_features: int | None = None,
        hidden_features: int | None = None,
        variant: str = "swiglu",
        *,
        bias: bool = False,
        scale: float | None = None,
        impl: str = "auto",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        d_model: int | None = None,
        d_hidden: int | None = None,
        beta: float | None = None,
    ) -> None:
        super().__init__()
        # None defaults only so that the old keywords still work.
        in_features = renamed(
            "FeedForward", "in_features", in_features, "d_model", d_model, needed=True
        )
        hidden_features = renamed(
            "FeedForward", "hidden_features", hidden_features, "d_hidden", d_hidden, needed=True
        )
        scale = renamed("FeedForward", "scale", scale, "beta", beta)
        scale = 1.0 if scale is None else scale
        positive_int("in_features", in_features)
        positive_int("hidden_features", hidden_features)
        if variant not in FFN_VARIANTS:
            raise ValueError(f"`variant` (={variant!r}) must be one of {FFN_VARIANTS}.")
        if not scale > 0:
            raise ValueError(f"`scale` (={scale!r}) must be > 0.")
        from galu.ops import IMPLS

        if impl not in IMPLS:
            raise ValueError(f"`impl` (={impl!r}) must be one of {IMPLS}.")
        self.in_features = self.out_features = in_features
        self.hidden_features, self.variant, self.scale = hidden_features, variant, scale
        self.impl = impl
        self.gated = variant in GATED
        kw: dict[str, Any] = dict(bias=bias, dtype=dtype, device=device)
        width = 2 * hidden_features if self.gated else hidden_features
        # gated: rows [0, F) are the gate branch a, rows [F, 2F) the value branch b
        self.gate_up = nn.Linear(in_features, width, **kw)
        self.down = nn.Linear(hidden_features, in_features, **kw)
        self.alpha = (
            nn.Parameter(torch.zeros((), dtype=dtype, device=device))
            if variant in EXPANDED
            else None
        )
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Uniform ``±1/√fan_in`` (PyTorch's ``nn.Linear`` default), from ``generator``."""
        with torch.no_grad():
            for lin in (self.gate_up, self.down):
                bound = 1 / math.sqrt(lin.in_features)
                for p in (lin.weight, lin.bias):
                    if p is not None:
                        u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                        p.copy_(((2 * u - 1) * bound).to(p))
            if self.alpha is not None:
                self.alpha.zero_()

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(..., F)`` activations fed to the down projection."""
        check_last_dim(f"FeedForward(in_features={self.in_features})", x, self.in_features)
        h = self.gate_up(x)
        alpha = self.alpha if self.alpha is not None else 0.0
        if self.gated:
            a, b = h.split(self.hidden_features, dim=-1)
            return glu_gate(a, b, self.variant, alpha=alpha, beta=self.scale, impl=self.impl)
        return ffn_activation(self.variant, h, alpha=alpha, beta=self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.hidden(x))

    # The old attribute names, readable until galu 0.3.
    @property
    def d_model(self) -> int:
        return self.in_features

    @property
    def d_hidden(self) -> int:
        return self.hidden_features

    @property
    def beta(self) -> float:
        return self.scale

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, hidden_features={self.hidden_features}, "
            f"variant={self.variant!r}"
        )


def pack_gate_up(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``(F, d)`` gate and up weights (or ``(F,)`` biases) → galu's packed ``(2F, d)``."""
    if gate.shape != up.shape:
        raise ValueError(f"gate {tuple(gate.shape)} and up {tuple(up.shape)} shapes differ.")
    return torch.cat([gate, up], dim=0)


def from_torch_glu(weight: torch.Tensor) -> torch.Tensor:
    """A packed weight used as ``F.glu(x @ Wᵀ)`` (value first, gate second) → galu's order
    (gate first), so that ``FeedForward(variant="glu")`` computes the same hidden layer."""
    if weight.shape[0] % 2:
        raise ValueError(f"a packed GLU weight needs an even first dimension; got {weight.shape}.")
    value, gate = weight.chunk(2, dim=0)
    return torch.cat([gate, value], dim=0)


def from_llama_mlp(mlp: nn.Module, *, variant: str = "swiglu") -> FeedForward:
    """A :class:`FeedForward` with the weights of a Hugging Face LLaMA-style MLP (or anything
    with ``gate_proj``, ``up_proj``, ``down_proj`` linears, e.g. Liger's ``LigerSwiGLUMLP``):
    ``down(act(gate(x)) ⊙ up(x))``."""
    gate, up, down = (getattr(mlp, k, None) for k in ("gate_proj", "up_proj", "down_proj"))
    if not all(isinstance(m, nn.Linear) for m in (gate, up, down)):
        raise ValueError("`mlp` needs nn.Linear attributes gate_proj, up_proj and down_proj.")
    if len({m.bias is None for m in (gate, up, down)}) != 1:  # type: ignore[union-attr]
        raise ValueError("gate_proj, up_proj and down_proj must all have biases or none.")
    assert isinstance(gate, nn.Linear) and isinstance(up, nn.Linear)
    assert isinstance(down, nn.Linear)
    ffn = FeedForward(
        gate.in_features,
        gate.out_features,
        variant,
        bias=gate.bias is not None,
        dtype=gate.weight.dtype,
        device=gate.weight.device,
    )
    with torch.no_grad():
        ffn.gate_up.weight.copy_(pack_gate_up(gate.weight, up.weight))
        ffn.down.weight.copy_(down.weight)
        if gate.bias is not None and up.bias is not None and down.bias is not None:
            ffn.gate_up.bias.copy_(pack_gate_up(gate.bias, up.bias))
            ffn.down.bias.copy_(down.bias)
    return ffn


def to_llama_mlp(ffn: FeedForward) -> dict[str, torch.Tensor]:
    """The state dict of a LLaMA-style MLP (``gate_proj.weight``, ``up_proj.weight``,
    ``down_proj.weight``, plus biases) holding this gated FFN's weights."""
    if not ffn.gated:
        raise ValueError(f"variant {ffn.variant!r} has no gate/up split.")
    g, u = ffn.gate_up.weight.detach().split(ffn.hidden_features, dim=0)
    out = {"gate_proj.weight": g, "up_proj.weight": u, "down_proj.weight": ffn.down.weight.detach()}
    if ffn.gate_up.bias is not None:
        gb, ub = ffn.gate_up.bias.detach().split(ffn.hidden_features)
        out |= {"gate_proj.bias": gb, "up_proj.bias": ub, "down_proj.bias": ffn.down.bias.detach()}
    return out
