"""Dendritic gated networks: each neuron has ``B`` branches, each gated by its own half-space;
the neuron's effective weight vector is the sum of its active branches' weights, and its local
gradient is applied to every active branch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from galu.gln._bernoulli import BernoulliGLN
from galu.gln._scan import SKIP_CODE, step_torch


class DendriticGLN(BernoulliGLN):
    """A Bernoulli GLN whose neurons are dendritic (the later DeepMind variant).

    Takes :class:`BernoulliGLN`'s arguments, with ``branches`` (``B``, one hyperplane each) in
    place of ``context_dim``. Weights are ``(A, K_i, B, n_i)`` — linear in ``B`` where a GLN's
    table doubles with every hyperplane. ``init="mean"`` starts every branch at ``1/(n·B)``.
    Only ``batch_mode="sequential"`` is offered.

    Example:
        >>> import torch
        >>> from galu.gln import DendriticGLN
        >>> net = DendriticGLN(3, 3, (4, 1), branches=6, generator=torch.Generator().manual_seed(0))
        >>> tuple(net.weights[0].shape)     # (A, K, B, n): n = 3 inputs + bias
        (1, 4, 6, 4)
    """

    _kind = "dendritic"

    def __init__(
        self,
        in_features: int,
        side_features: int,
        layer_sizes: Any = (16, 16, 1),
        *,
        branches: int = 4,
        **kwargs: Any,
    ) -> None:
        if "context_dim" in kwargs:
            raise TypeError("DendriticGLN takes `branches`, not `context_dim`.")
        if kwargs.get("batch_mode", "sequential") != "sequential":
            raise ValueError(
                f"`batch_mode` (={kwargs['batch_mode']!r}): DendriticGLN learns sequentially only."
            )
        if isinstance(branches, bool) or not isinstance(branches, int) or branches < 1:
            raise ValueError(f"`branches` (={branches!r}) must be an integer >= 1.")
        if kwargs.get("engine", "auto") == "triton":
            raise ValueError("`engine` (='triton'): the fused kernel covers Bernoulli GLNs only.")
        super().__init__(in_features, side_features, layer_sizes, context_dim=branches, **kwargs)
        if self.init == "mean":
            for W in self.weights:
                W.fill_(1.0 / (W.shape[-1] * branches)).clamp_(-self.beta, self.beta)

    @property
    def branches(self) -> int:
        return self.context_dim

    def _tables(self) -> int:
        return self.context_dim

    def _table_word(self) -> str:
        return f"B={self.context_dim} branches"

    def _reduce_hint(self) -> str:
        f32 = ", use dtype=torch.float32" if self._dtype == torch.float64 else ""
        return f"Reduce branches, the layer sizes or num_outputs{f32}, or raise memory_limit."

    def _gating(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, each branch's gate: ``(T, A, K_i, B)`` booleans."""
        return self._split(self.contexts.bits(z))

    def _forward_layer(self, W: torch.Tensor, gate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        A, K, B, n = W.shape
        if x.shape[1] == 1:
            P = (x[:, 0] @ W.reshape(A * K * B, n).T).view(-1, A, K, B)
        else:
            P = torch.einsum("akbn,tan->takb", W, x)
        return (P * gate).sum(-1)

    def _walk(
        self,
        W: torch.Tensor,
        gate: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        eta: Any,
        engine: str,
    ) -> torch.Tensor:
        rule = SKIP_CODE[self.skip_rule]
        if engine == "numba":
            from galu.gln._numba import dendritic_scan, dendritic_scan_serial, pick

            out = np.empty(gate.shape[:3], dtype=W.numpy().dtype)
            walk = pick(dendritic_scan, dendritic_scan_serial, gate.shape[0], W.shape)
            walk(
                W.numpy(),
                gate.numpy(),
                x.numpy(),
                y.numpy(),
                eta.numpy(),
                self.eps,
                self.beta,
                rule,
                out,
            )
            return torch.from_numpy(out)
        return self._walk_torch(W, gate, x, y, eta, rule)

    def _walk_torch(
        self,
        W: torch.Tensor,
        gate: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        eta: torch.Tensor,
        rule: int,
    ) -> torch.Tensor:
        A, K, _B, n = W.shape
        T = gate.shape[0]
        lo = math.log(self.eps / (1 - self.eps))
        g = gate.to(W.dtype)
        xb = x.expand(T, A, n)
        out = torch.empty(T, A, K, dtype=W.dtype, device=W.device)
        for t in range(T):
            w = torch.einsum("akb,akbn->akn", g[t], W)
            u = torch.einsum("akn,an->ak", w, xb[t])
            uc, step = step_torch(u, y[t][:, None], eta[t], lo, self.eps, rule)
            out[t] = uc
            new = (W - step[:, :, None, None] * xb[t][:, None, None, :]).clamp(
                -self.beta, self.beta
            )
            W.copy_(torch.where(gate[t][..., None], new, W))
        return out
