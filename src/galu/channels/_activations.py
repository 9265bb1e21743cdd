"""Smooth activations with their first and second derivatives (one source of truth).

The channel analysis needs ``σ``, ``σ'`` (the gate of the GLU limit) and ``σ''`` (the Hessian,
and higher-order channels). All are written with differentiable torch ops, so autograd can take
further derivatives where a test or the refinement of a limit network needs them.

``softplus``            ``σ(z) = log(1 + eᶻ)``, ``σ' = sigmoid``: its GLU limit is Dauphin's GLU.
``erf``                 ``σ(z) = erf(z/√2)``, the convention of the paper's erf toy target
                        ``erf((5x ± 2.5)/√2)``; ``σ'(z) = √(2/π) e^{−z²/2}``.
``sigmoid4-softplus``   ``σ(z) = sigmoid(4z) + softplus(z)``, the paper's 2-D toy activation.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]

_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class Activation:
    """``σ`` with ``σ'`` and ``σ''``, by name."""

    name: str
    f: Fn
    d1: Fn
    d2: Fn
    odd: bool = False  # σ(−z) = −σ(z): (w, a) and (−w, −a) are the same unit
    both: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.f(z)

    def f_d1(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(σ(z), σ'(z))``, sharing work where the activation allows."""
        return self.both(z) if self.both is not None else (self.f(z), self.d1(z))


def _softplus_d2(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def _erf_d1(z: torch.Tensor) -> torch.Tensor:
    return _SQRT_2_OVER_PI * torch.exp(-0.5 * z * z)


def _toy_f(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(4 * z) + _softplus(z)


def _toy_d1(z: torch.Tensor) -> torch.Tensor:
    s4 = torch.sigmoid(4 * z)
    return 4 * s4 * (1 - s4) + torch.sigmoid(z)


def _toy_d2(z: torch.Tensor) -> torch.Tensor:
    s4 = torch.sigmoid(4 * z)
    return 16 * s4 * (1 - s4) * (1 - 2 * s4) + _softplus_d2(z)


def _softplus(z: torch.Tensor) -> torch.Tensor:
    # max(z, 0) + log1p(e^{−|z|}): accurate everywhere (torch's softplus returns z itself above
    # its threshold 20, 2e-9 relative off there, which the loss gaps along a channel can reach).
    return z.clamp(min=0) + torch.log1p(torch.exp(-z.abs()))


def _softplus_both(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # One exp for both: with t = e^{−|z|}, softplus = max(z, 0) + log1p(t) and
    # sigmoid = 1/(1 + t) for z ≥ 0, t/(1 + t) otherwise (no overflow either way).
    t = torch.exp(-z.abs())
    inv = 1.0 / (1.0 + t)
    return z.clamp(min=0) + torch.log1p(t), torch.where(z >= 0, inv, t * inv)


ActivationName = Literal["softplus", "erf", "sigmoid4-softplus"]
ACTIVATIONS: dict[str, Activation] = {
    "softplus": Activation("softplus", _softplus, torch.sigmoid, _softplus_d2, both=_softplus_both),
    "erf": Activation(
        "erf", lambda z: torch.erf(z / _SQRT2), _erf_d1, lambda z: -z * _erf_d1(z), odd=True
    ),
    "sigmoid4-softplus": Activation("sigmoid4-softplus", _toy_f, _toy_d1, _toy_d2),
}


def activation(name: str | Activation) -> Activation:
    """The activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    if isinstance(name, Activation):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"`activation` (={name!r}) must be one of {tuple(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


assert set(ACTIVATIONS) == set(typing.get_args(ActivationName))
