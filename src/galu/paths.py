"""Neural path quantities of deep gated networks (``science/dgn.md``).

For a fully connected :class:`~galu.nn.DGN` without biases, a path ``p = (i_0, …, i_L)`` picks an
input coordinate and one unit per gated layer:

- neural path feature ``φ_x(p) = x(i_0) · Π_l G_l(x)[i_l]``,
- neural path value ``v(p) = Π`` of the path's weights (readout included),
- output ``ŷ(x) = <φ_x, v>``,
- neural path kernel ``H(x, x') = <φ_x, φ_x'> = <x, x'> · Π_l <G_l(x), G_l(x')>``, i.e.
  ``H = (XXᵀ) ⊙ Π_l G_l G_lᵀ`` — computed in ``O(m² Σ_l w_l)`` without enumerating paths.

:func:`path_features` and :func:`path_values` enumerate paths explicitly (small networks only):
they are the test oracle for the closed form. :func:`ntk` is the empirical neural tangent kernel
split into its value part (gradients of the value network and readout, gates held as they are)
and its gate part (gradients of a trained gating network), computed with ``torch.func``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call, jacrev, vmap

from galu.kernels import path_kernel
from galu.nn import DGN

_MAX_PATHS = 2_000_000


def model_path_kernel(model: DGN, X: torch.Tensor) -> torch.Tensor:
    """The path kernel of a fully connected DGN at ``X`` (its own gates and value input)."""
    _check_fc(model, "model_path_kernel")
    with torch.no_grad():
        return path_kernel(model.value_input(X), model.gates(X))


def _check_dgn(model: object, what: str) -> None:
    if not isinstance(model, DGN):
        raise TypeError(
            f"{what} supports galu.nn.DGN (any variant, arch='fc'); got {type(model).__name__}. "
            "Build the network as a DGN (variant='relu' is the ReLU network, 'galu' fixed random "
            "gates), or, for a ShallowGaLU, use galu.kernels.galu_kernel(X, model.gates(X))."
        )


def _check_fc(model: DGN, what: str, *, no_bias: bool = False) -> None:
    _check_dgn(model, what)
    if model.arch != "fc":
        raise ValueError(
            f"{what} is defined here for fully connected DGNs; got arch={model.arch!r}."
        )
    if no_bias and model.bias:
        raise ValueError(f"{what} needs a DGN without biases (a bias is a path with no input).")


def _n_paths(model: DGN) -> int:
    n = model.in_features * math.prod(model.hidden_features)
    if n > _MAX_PATHS:
        raise ValueError(
            f"the network has {n} paths (> {_MAX_PATHS}); enumerate paths only for small "
            "networks and use path_kernel for the kernel."
        )
    return n


def path_features(model: DGN, X: torch.Tensor) -> torch.Tensor:
    """``φ_x(p)`` for every input row and path, ``(m, d·Π w_l)``, paths in ``(i_0, …, i_L)``
    row-major order."""
    _check_fc(model, "path_features", no_bias=True)
    _n_paths(model)
    with torch.no_grad():
        phi = model.value_input(X)
        for G in model.gates(X):
            phi = (phi[:, :, None] * G[:, None, :]).reshape(X.shape[0], -1)
    return phi


def path_values(model: DGN) -> torch.Tensor:
    """``v(p)`` for every path and output, ``(d·Π w_l, out)``, in :func:`path_features`' order."""
    _check_fc(model, "path_values", no_bias=True)
    _n_paths(model)
    with torch.no_grad():
        layers: list[Any] = [*model.value, model.readout]
        v = layers[0].weight.T  # (d, w_1): v[i0, i1] = W_1[i1, i0]
        for layer in layers[1:]:
            W = layer.weight  # (w_next, w_prev)
            v = (v.reshape(-1, W.shape[1])[:, :, None] * W.T[None]).reshape(-1, W.shape[0])
    return v


@dataclass(frozen=True)
class NTK:
    """The empirical NTK ``value + gate`` at some inputs, for one output."""

    value: torch.Tensor  # (m, m): gradients w.r.t. the value network and readout
    gate: torch.Tensor  # (m, m): gradients w.r.t. the trained gating network (0 if frozen/none)

    @property
    def total(self) -> torch.Tensor:
        return self.value + self.gate


def ntk(model: DGN, X: torch.Tensor, *, output: int = 0) -> NTK:
    """Empirical NTK of ``model``'s output ``output`` at ``X``, split into value and gate parts.

    ``value`` uses every parameter of the value network and readout; ``gate`` every trainable
    parameter of a separate gating network (so it is zero for frozen gating networks and for
    ``relu``, whose hard gates pass no gradient). With hard gates ``value`` is the whole NTK.
    """
    _check_dgn(model, "ntk")
    if not 0 <= output < model.out_features:
        raise ValueError(f"`output` (={output!r}) must be in [0, {model.out_features}).")
    named = dict(model.named_parameters())
    params = {n: p.detach() for n, p in named.items()}
    buffers = dict(model.named_buffers())
    value = {n: p for n, p in params.items() if not n.startswith("feature.")}
    gate = {n: p for n, p in params.items() if n.startswith("feature.") and named[n].requires_grad}

    def f(pv, pg, x):
        out = functional_call(model, {**params, **pv, **pg, **buffers}, (x[None],))
        return out[0, output]

    def gram(argnums: int, chosen: dict) -> torch.Tensor:
        if not chosen:
            return torch.zeros(X.shape[0], X.shape[0], dtype=X.dtype, device=X.device)
        jac = vmap(jacrev(f, argnums=argnums), in_dims=(None, None, 0))(value, gate, X)
        J = torch.cat([j.reshape(X.shape[0], -1) for j in jac.values()], dim=1)
        return J @ J.T

    return NTK(gram(0, value), gram(1, gate))
