"""A Bernoulli GLN as the gated deep linear network it is in logit space, trainable by backprop.

Ignoring the clipping, ``h_i = W_i(z) [h_{i−1}; logit(bias)]``, where row ``k`` of ``W_i(z)`` is
the weight vector neuron ``k`` selects by its context: a per-unit-gated deep linear network with
fixed half-space gates on the side information. This module holds those weights as parameters,
so the same architecture can be trained by one global loss.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from galu.gln._contexts import HalfSpaces
from galu.gln._math import active_mix, logit

if TYPE_CHECKING:
    from galu.gln._bernoulli import BernoulliGLN


class LogitGatedNetwork(nn.Module):
    """``forward(base, side)`` → output logits ``(T, A)``: base probabilities clipped at ``eps``
    and mapped to logits, then per layer ``h ← [W[a, k, c_k(z)] · h]_k`` with the bias logit
    appended, no clipping in between. ``weights`` are parameters; the hyperplanes are buffers.

    Build one with :meth:`BernoulliGLN.to_module` (or :meth:`from_gln`); train it with any torch
    optimiser and a global loss such as ``binary_cross_entropy_with_logits``.
    """

    def __init__(
        self, contexts: HalfSpaces, weights: list[torch.Tensor], *, eps: float, bias: float | None
    ) -> None:
        super().__init__()
        self.contexts = contexts
        self.weights = nn.ParameterList([nn.Parameter(w.clone()) for w in weights])
        self.sizes = [w.shape[1] for w in weights]
        self.eps = eps
        self.bias_logit = None if bias is None else math.log(bias / (1 - bias))

    @classmethod
    def from_gln(cls, gln: BernoulliGLN) -> LogitGatedNetwork:
        if getattr(gln, "_kind", "") != "bernoulli":
            raise TypeError(f"only a BernoulliGLN exports; got a {type(gln).__name__}.")
        return cls(
            HalfSpaces(gln.contexts.normals.clone(), gln.contexts.offsets.clone()),
            gln.weights,
            eps=gln.eps,
            bias=gln.bias,
        )

    def _append(self, h: torch.Tensor) -> torch.Tensor:
        if self.bias_logit is None:
            return h
        return torch.cat([h, torch.full_like(h[..., :1], self.bias_logit)], dim=-1)

    def forward(self, base: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        h = self._append(logit(base.to(self.weights[0].dtype), self.eps))[:, None, :]
        ctxs = torch.split(self.contexts(side), self.sizes, dim=-1)
        for W, ctx in zip(self.weights, ctxs, strict=False):
            h = active_mix(W, ctx, h)
            out = h
            h = self._append(h)
        return out[..., 0]
