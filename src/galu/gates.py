"""Gate functions: the nonlinearity of a gated linear network, as pure tensor functions.

A gate maps a pre-activation ``z = <u, x>`` to a value in ``[0, 1]`` that multiplies a linear
computation (Fiat, Malach & Shalev-Shwartz 2019, "Decoupling Gating from Linearity",
arXiv 1906.05032, eq. of the GaLU neuron ``<w, x> · 1[<u, x> ≥ 0]``).

The value of the hard step at exactly ``z = 0`` is a convention that differs between codebases:

========== ==================== ==========================================
``at_zero`` step                 used by
========== ==================== ==========================================
``1.0``    ``1[z >= 0]``        galu's default (the natural mathematical choice)
``0.0``    ``1[z > 0]``         scnn
``0.5``    ``0.5`` at ``z = 0`` the GaLU authors' code
========== ==================== ==========================================

With continuous data ``z = 0`` has probability zero, so the choice matters only for inputs that
lie exactly on a gate hyperplane (e.g. the all-zero input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from galu._validate import positive_number

GateKind = Literal["step", "sigmoid", "one"]
GATE_KINDS: tuple[str, ...] = ("step", "sigmoid", "one")
AT_ZERO_VALUES: tuple[float, ...] = (1.0, 0.0, 0.5)


def _check_at_zero(at_zero: float) -> float:
    if at_zero not in AT_ZERO_VALUES:
        raise ValueError(
            f"`at_zero` (={at_zero!r}) must be one of {AT_ZERO_VALUES}: 1.0 for 1[z >= 0], "
            "0.0 for 1[z > 0], 0.5 for the GaLU authors' convention."
        )
    return float(at_zero)


def step(z: torch.Tensor, at_zero: float = 1.0) -> torch.Tensor:
    """Hard gate ``1[z > 0]`` with value ``at_zero`` at ``z == 0``, in ``z``'s dtype.

    The result carries no gradient with respect to ``z`` (the step is flat almost everywhere).
    """
    at_zero = _check_at_zero(at_zero)
    g = (z > 0).to(z.dtype)
    if at_zero != 0.0:  # in place: no second (m, k) array (the solvers' gate matrix can be GBs)
        g.masked_fill_(z == 0, at_zero)
    return g


def sigmoid(z: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Soft gate ``σ(scale · z)``; tends to the step gate (with value 0.5 at 0) as ``scale → ∞``."""
    positive_number("scale", scale)
    return torch.sigmoid(scale * z)


@dataclass(frozen=True)
class Gate:
    """A validated gate choice, callable on pre-activations.

    Args:
        kind: ``"step"`` (hard, default), ``"sigmoid"`` (soft) or ``"one"`` (always open: a
            gated network with all-ones gates is a deep linear network).
        at_zero: value of the step gate at ``z == 0`` (``1.0``, ``0.0`` or ``0.5``; see module doc).
            Ignored by the sigmoid gate.
        scale: slope of the sigmoid gate, ``σ(scale · z)``. Ignored by the step gate.
    """

    kind: GateKind = "step"
    at_zero: float = 1.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in GATE_KINDS:
            raise ValueError(f"`kind` (={self.kind!r}) must be one of {GATE_KINDS}.")
        _check_at_zero(self.at_zero)
        positive_number("scale", self.scale)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "step":
            return step(z, self.at_zero)
        if self.kind == "one":
            return torch.ones_like(z)
        return sigmoid(z, self.scale)

    @property
    def is_hard(self) -> bool:
        return self.kind == "step"
