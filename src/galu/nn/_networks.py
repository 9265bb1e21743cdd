"""GaLU networks and the matching ReLU baseline (Fiat, Malach & Shalev-Shwartz 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from galu import ops
from galu._validate import positive_int
from galu.gates import Gate
from galu.nn._init import (
    check_last_dim,
    fan_in_bound,
    sample_normal,
    sample_uniform,
)
from galu.nn._layer import GaLULayer

GatedBy = Literal["previous", "input"]
GATED_BY: tuple[str, ...] = ("previous", "input")


def _hidden_sizes(hidden_features: int | Sequence[int]) -> tuple[int, ...]:
    sizes = (hidden_features,) if isinstance(hidden_features, int) else tuple(hidden_features)
    if not sizes:
        raise ValueError("`hidden_features` (=()) must name at least one hidden layer width.")
    for i, h in enumerate(sizes):
        positive_int(f"hidden_features[{i}]", h)
    return sizes


def _as_2d(x: torch.Tensor, in_features: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(
            f"input of shape {tuple(x.shape)} must end in in_features (={in_features})."
        )
    return x.reshape(-1, in_features), x.shape[:-1]


class ShallowGaLU(nn.Module):
    """One hidden GaLU layer with the readout absorbed: ``f_o(x) = Σ_i <W_{o,i}, x> g_i(x)``.

    ``g_i(x) = gate(<u_i, x>)`` with fixed gate vectors ``u_i`` (buffer ``gate_vectors``,
    ``(hidden_features, in_features)``, shared by all outputs). The trained ``weight`` is
    ``(out_features, hidden_features, in_features)``; the model is linear in it, which is what
    makes the exact solvers in :mod:`galu.solvers` possible (the paper's scalar-output model; for
    ``out_features > 1`` each output has its own linear part on the shared gates).

    Output shape is ``(..., out_features)``.
    """

    gate_vectors: torch.Tensor

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int = 1,
        *,
        gate: Gate | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.hidden_features = positive_int("hidden_features", hidden_features)
        self.out_features = positive_int("out_features", out_features)
        self.gate = gate if gate is not None else Gate()
        kw: dict[str, Any] = dict(generator=generator, dtype=dtype, device=device)
        # Gates are drawn first so that, for a given generator state, the gates do not depend
        # on the number of outputs.
        self.register_buffer(
            "gate_vectors",
            sample_normal((hidden_features, in_features), fan_in_bound(in_features), **kw),
        )
        # Output variance O(1) at initialisation: about k/2 open units, each of variance ~b²d/3.
        bound = 1.0 / math.sqrt(hidden_features * in_features)
        self.weight = nn.Parameter(
            sample_uniform((out_features, hidden_features, in_features), bound, **kw)
        )

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        return ops.gate_matrix(x, self.gate_vectors, self.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2, lead = _as_2d(x, self.in_features)  # (m, d)
        out = ops.lifted_matvec(x2, self.gates(x2), self.weight)  # (m, o)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, hidden_features={self.hidden_features}, "
            f"out_features={self.out_features}, gate={self.gate}"
        )


class _Readout(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias: bool, **kw) -> None:
        super().__init__()
        bound = fan_in_bound(in_features)
        self.weight = nn.Parameter(sample_uniform((out_features, in_features), bound, **kw))
        self.bias = nn.Parameter(sample_uniform((out_features,), bound, **kw)) if bias else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = h @ self.weight.T
        return out if self.bias is None else out + self.bias


class DeepGaLU(nn.Module):
    """A stack of GaLU layers and a trained linear readout.

    ``gated_by="previous"`` (the authors' deep GaLU): layer ``t`` computes
    ``x_t = (W_t x_{t-1}) ⊙ gate(U_t x_{t-1})`` — its gate depends on the trained layer below.
    ``gated_by="input"`` (GaLU0): ``x_t = (W_t x_{t-1}) ⊙ gate(U_t x_0)`` — every gate is a fixed
    function of the input, so the network is multilinear in its weights.

    Args:
        in_features: input dimension ``d``.
        hidden_features: width of each hidden layer (an int is one hidden layer).
        out_features: number of outputs.
        gated_by: ``"previous"`` or ``"input"``.
        bias: trained biases on every linear part and the readout.
        gate: gate function (default hard step ``1[z >= 0]``).
        generator, dtype, device: explicit randomness and placement.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | Sequence[int],
        out_features: int = 1,
        *,
        gated_by: GatedBy = "previous",
        bias: bool = False,
        gate: Gate | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if gated_by not in GATED_BY:
            raise ValueError(f"`gated_by` (={gated_by!r}) must be one of {GATED_BY}.")
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.hidden_features = _hidden_sizes(hidden_features)
        self.gated_by = gated_by
        kw: dict[str, Any] = dict(generator=generator, dtype=dtype, device=device)
        layers = []
        fan_in = in_features
        for width in self.hidden_features:
            gate_features = in_features if gated_by == "input" else fan_in
            layers.append(
                GaLULayer(fan_in, width, gate_features=gate_features, bias=bias, gate=gate, **kw)
            )
            fan_in = width
        self.layers = nn.ModuleList(layers)
        self.readout = _Readout(fan_in, out_features, bias=bias, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_last_dim(
            f"{type(self).__name__}(in_features={self.in_features})", x, self.in_features
        )
        h = x
        for layer in self.layers:
            h = layer(h, gate_input=x if self.gated_by == "input" else None)
        return self.readout(h)


class GaLU0(DeepGaLU):
    """:class:`DeepGaLU` with every layer gated by the network input (``gated_by="input"``)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | Sequence[int],
        out_features: int = 1,
        *,
        bias: bool = False,
        gate: Gate | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            in_features,
            hidden_features,
            out_features,
            gated_by="input",
            bias=bias,
            gate=gate,
            generator=generator,
            dtype=dtype,
            device=device,
        )


class ReLUNet(nn.Module):
    """The ReLU baseline with :class:`DeepGaLU`'s constructor: ``x_t = relu(W_t x_{t-1} + b_t)``.

    A ReLU unit is a gated linear unit whose gate shares the weight vector:
    ``relu(<w, x>) = <w, x> · 1[<w, x> > 0]``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | Sequence[int],
        out_features: int = 1,
        *,
        bias: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.hidden_features = _hidden_sizes(hidden_features)
        kw: dict[str, Any] = dict(generator=generator, dtype=dtype, device=device)
        layers = []
        fan_in = in_features
        for width in self.hidden_features:
            layers.append(_Readout(fan_in, width, bias=bias, **kw))
            fan_in = width
        self.layers = nn.ModuleList(layers)
        self.readout = _Readout(fan_in, out_features, bias=bias, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_last_dim(f"ReLUNet(in_features={self.in_features})", x, self.in_features)
        h = x
        for layer in self.layers:
            h = torch.relu(layer(h))
        return self.readout(h)
