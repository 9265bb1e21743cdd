"""The GaLU layer: trained linear weights times a gate from fixed random gate vectors."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from galu import ops
from galu._validate import positive_int
from galu.gates import Gate
from galu.nn._init import fan_in_bound, sample_normal, sample_uniform


class GaLULayer(nn.Module):
    """``y = (x Wᵀ + b) ⊙ gate(z Uᵀ)`` with ``z = x`` unless a separate ``gate_input`` is given.

    ``W`` (``weight``, ``(out_features, in_features)``) is trained; the gate vectors ``U``
    (``gate_vectors``, ``(out_features, gate_features)``) are a fixed buffer drawn
    ``N(0, I/gate_features)`` — for the step gate only their direction matters, so this gives the
    same gates as the paper's ``N(0, I)``; for the sigmoid gate it keeps ``<u, x>`` of order one.

    Args:
        in_features: size of the linear input ``x``.
        out_features: number of gated units.
        gate_features: size of the gate input (default ``in_features``; GaLU0 gates every layer
            by the network input, so its layers pass the input dimension here).
        bias: add a trained bias to the linear part.
        gate: the gate function (default: hard step, ``1[z >= 0]``).
        generator, dtype, device: explicit randomness and placement.
    """

    gate_vectors: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        gate_features: int | None = None,
        bias: bool = False,
        gate: Gate | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.gate_features = positive_int(
            "gate_features", in_features if gate_features is None else gate_features
        )
        self.gate = gate if gate is not None else Gate()
        kw: dict[str, Any] = dict(generator=generator, dtype=dtype, device=device)
        bound = fan_in_bound(in_features)
        self.weight = nn.Parameter(sample_uniform((out_features, in_features), bound, **kw))
        self.bias = nn.Parameter(sample_uniform((out_features,), bound, **kw)) if bias else None
        std = fan_in_bound(self.gate_features)
        self.register_buffer(
            "gate_vectors", sample_normal((out_features, self.gate_features), std, **kw)
        )

    def gates(self, z: torch.Tensor) -> torch.Tensor:
        """Gate values ``(..., out_features)`` for gate inputs ``z`` ``(..., gate_features)``."""
        return ops.gate_matrix(z, self.gate_vectors, self.gate)

    def forward(self, x: torch.Tensor, gate_input: torch.Tensor | None = None) -> torch.Tensor:
        g = self.gates(x if gate_input is None else gate_input)  # (..., out)
        return ops.gated_linear(x, self.weight, g, self.bias)  # (..., out)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"gate_features={self.gate_features}, bias={self.bias is not None}, gate={self.gate}"
        )
