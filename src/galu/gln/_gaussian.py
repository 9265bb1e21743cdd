"""Gaussian Gated Linear Networks (Budden et al.): product-of-Gaussians neurons for regression,
gated by half-space contexts, each trained online by its own Gaussian log-likelihood."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from galu._validate import int_at_least, one_of
from galu.gln._bernoulli import (
    INITS,
    TableNetwork,
    check_layer_sizes,
    check_memory,
    make_halfspaces,
)
from galu.gln._contexts import HalfSpaces
from galu.gln._math import (
    LearningRate,
    as_learning_rate,
    gaussian_grad,
    gaussian_loss,
    gaussian_product,
    project_precision,
)
from galu.gln._scan import ENGINES, resolve_engine


@dataclass(frozen=True)
class GaussianUpdate:
    """What :meth:`GaussianGLN.update` returns: the predicted means and variances ``(T, A)``
    made *before* learning from each example, every neuron's negative log-likelihood (one
    ``(T, A, K_i)`` tensor per layer), and how many neuron updates the mean guard skipped."""

    mean: torch.Tensor
    variance: torch.Tensor
    losses: tuple[torch.Tensor, ...]
    guarded: int


class GaussianGLN(TableNetwork):
    """A Gaussian Gated Linear Network for real targets (``A`` independent outputs).

    Every neuron multiplies its input Gaussians, each raised to a weight:
    ``σ² = 1/Σ_j w_j λ_j``, ``μ = σ² Σ_j w_j λ_j μ_j`` (``λ = 1/σ²_in``), with the weight vector
    chosen by its half-space context, and learns online by projected gradient descent on its own
    Gaussian negative log-likelihood (convex in ``w`` where the precision is positive).

    Args:
        in_features, side_features, layer_sizes, num_outputs, context_dim, hyperplanes,
            offset_scale, lr, init, engine, chunk_size, memory_limit, generator, dtype, device: as
            :class:`galu.gln.BernoulliGLN`.
        bias_means: means of the constant unit-variance Gaussians appended to every layer's
            inputs (DeepMind's: ``(−1, 0, 1)``).
        base_variance: the variance given to base predictions passed as means only.
        s2_min, s2_max: every neuron's variance is kept in ``[s2_min, s2_max]`` by projecting
            its weights onto the hyperplane ``w·λ = 1/σ²`` at the nearer end.
        beta: weight box ``[−β, β]``.
        mean_bound: the guard against exploding means: a neuron whose mean leaves
            ``[−bound, bound]`` outputs the clipped mean and does not update (mixed-sign weights
            can keep the precision valid while ``μ`` runs away; standardise targets so that the
            bound is generous).

    Example:
        >>> import torch
        >>> from galu.gln import GaussianGLN
        >>> g = torch.Generator().manual_seed(0)
        >>> z = torch.rand(2000, 1, generator=g) * 2 - 1
        >>> y = torch.sin(3 * z[:, 0]) + 0.1 * torch.randn(2000, generator=g)
        >>> net = GaussianGLN(1, 1, (16, 1), context_dim=4, lr=0.05,
        ...                   generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> out = net.update(torch.zeros(2000, 1, dtype=torch.float64), z, y)
        >>> mu, s2 = net.predict(torch.zeros(2000, 1, dtype=torch.float64), z)
        >>> bool(((mu[:, 0] - torch.sin(3 * z[:, 0])) ** 2).mean() < 0.1)  # var(sin 3z) ≈ 0.5
        True
    """

    def __init__(
        self,
        in_features: int,
        side_features: int,
        layer_sizes: Sequence[int] = (16, 16, 1),
        *,
        num_outputs: int = 1,
        context_dim: int = 4,
        hyperplanes: str | HalfSpaces = "deepmind",
        offset_scale: float = 0.05,
        bias_means: Sequence[float] = (-1.0, 0.0, 1.0),
        base_variance: float = 1.0,
        s2_min: float = 1e-3,
        s2_max: float = 1e3,
        beta: float = 1e3,
        mean_bound: float = 1e3,
        init: str = "mean",
        lr: float | str | LearningRate = 0.01,
        engine: str = "auto",
        chunk_size: int = 2048,
        memory_limit: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = int_at_least("in_features", in_features, 1)
        self.side_features = int_at_least("side_features", side_features, 1)
        self.layer_sizes = sizes = check_layer_sizes(layer_sizes)
        self.num_outputs = int_at_least("num_outputs", num_outputs, 1)
        self.context_dim = int_at_least("context_dim", context_dim, 0)
        for key, value in (
            ("base_variance", base_variance),
            ("s2_min", s2_min),
            ("s2_max", s2_max),
            ("beta", beta),
            ("mean_bound", mean_bound),
        ):
            if isinstance(value, bool) or not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"`{key}` (={value!r}) must be a number > 0.")
        if not s2_min < s2_max:
            raise ValueError(f"`s2_min` (={s2_min!r}) must be below `s2_max` (={s2_max!r}).")
        try:
            self.bias_means = tuple(float(m) for m in bias_means)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`bias_means` (={bias_means!r}) must be numbers.") from exc
        if not all(math.isfinite(m) for m in self.bias_means):
            raise ValueError(f"`bias_means` (={bias_means!r}) must be finite.")
        self.base_variance, self.s2_min, self.s2_max = base_variance, s2_min, s2_max
        self.beta, self.mean_bound = float(beta), float(mean_bound)
        self.init = one_of("init", init, INITS)
        self.lr = as_learning_rate(lr)
        self.engine = one_of("engine", engine, ENGINES)
        if engine in ("triton",):
            raise ValueError("`engine` (='triton'): the fused kernel covers Bernoulli GLNs only.")
        self.chunk_size = int_at_least("chunk_size", chunk_size, 1)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"`dtype` (={dtype!r}) must be torch.float32 or torch.float64.")
        device = torch.device(device) if device is not None else torch.device("cpu")
        nb = len(self.bias_means)
        self.inputs = (in_features + nb, *(k + nb for k in sizes[:-1]))
        check_memory(
            "GaussianGLN",
            num_outputs,
            sizes,
            self.inputs,
            2**context_dim,
            f"2^C={2**context_dim} contexts",
            dtype,
            device,
            memory_limit,
            "Reduce context_dim, the layer sizes or num_outputs, use "
            "dtype=torch.float32, or raise memory_limit.",
        )
        self.contexts = make_halfspaces(
            hyperplanes,
            (num_outputs, sum(sizes)),
            side_features,
            context_dim,
            offset_scale,
            generator,
            dtype,
            device,
        )
        for i, (k, n) in enumerate(zip(sizes, self.inputs, strict=False)):
            w = torch.full(
                (num_outputs, k, 2**context_dim, n),
                1.0 / n if init == "mean" else 0.0,
                dtype=dtype,
                device=device,
            )
            self.register_buffer(f"weight{i}", w.clamp_(-self.beta, self.beta))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    # ------------------------------------------------------------------ inputs

    def _base(self, base: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(base, tuple):
            if len(base) != 2:
                raise ValueError("`base` as a tuple must be (means, variances).")
            mu = self._tensor("base means", base[0], self.in_features)
            s2 = self._tensor("base variances", base[1], self.in_features)
            if s2.shape != mu.shape:
                raise ValueError("`base` means and variances must have the same shape.")
            if bool((s2 <= 0).any()):
                raise ValueError(f"`base` variances must be > 0; found {s2.min().item()}.")
        else:
            mu = self._tensor("base", base, self.in_features)
            s2 = torch.full_like(mu, self.base_variance)
        return self._append_bias(mu[:, None, :], s2[:, None, :])

    def _append_bias(self, mu: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.bias_means:
            return mu, s2
        bm = torch.tensor(self.bias_means, dtype=mu.dtype, device=mu.device)
        shape = (*mu.shape[:-1], len(self.bias_means))
        return (
            torch.cat([mu, bm.expand(shape)], -1),
            torch.cat([s2, torch.ones(shape, dtype=mu.dtype, device=mu.device)], -1),
        )

    def _targets(self, target: Any, T: int) -> torch.Tensor:
        y = torch.as_tensor(target)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape != (T, self.num_outputs):
            raise ValueError(
                f"`target` must have shape ({T},) or ({T}, {self.num_outputs}); got "
                f"{tuple(torch.as_tensor(target).shape)}."
            )
        y = y.to(torch.float64)
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"`target` contains a non-finite value ({y[~torch.isfinite(y)][0]}).")
        return y.to(dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ the neuron

    def _neuron(
        self, w: torch.Tensor, mu: torch.Tensor, s2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected weights, mean, variance and the guard mask for active weights ``w``."""
        w = project_precision(w, s2, self.s2_min, self.s2_max)
        m, v = gaussian_product(w, mu, s2)
        return w, m, v, m.abs() > self.mean_bound

    # ------------------------------------------------------------------ prediction

    @torch.no_grad()
    def predict(self, base: Any, side: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted means and variances ``(T, A)`` with the current weights; no learning."""
        mu, s2 = self._base(base)
        z = self._tensor("side", side, self.side_features)
        if z.shape[0] != mu.shape[0]:
            raise ValueError(f"`side` has {z.shape[0]} rows but `base` has {mu.shape[0]}.")
        A = self.num_outputs
        ctxs = torch.split(self.contexts(z), list(self.layer_sizes), dim=-1)
        for W, ctx in zip(self.weights, ctxs, strict=False):
            K = W.shape[1]
            w = W[
                torch.arange(A, device=W.device)[None, :, None],
                torch.arange(K, device=W.device)[None, None, :],
                ctx,
            ]
            _, m, v, _ = self._neuron(w, mu[:, :, None, :], s2[:, :, None, :])
            m = m.clamp(-self.mean_bound, self.mean_bound)
            mu, s2 = self._append_bias(m, v)
        return m[..., 0], v[..., 0]

    def forward(self, base: Any, side: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predict(base, side)

    # ------------------------------------------------------------------ learning

    @torch.no_grad()
    def update(self, base: Any, side: Any, target: Any) -> GaussianUpdate:
        """Learn from ``T`` examples online (in order); returns the pre-update predictions."""
        mu, s2 = self._base(base)
        T = mu.shape[0]
        z = self._tensor("side", side, self.side_features)
        if z.shape[0] != T:
            raise ValueError(f"`side` has {z.shape[0]} rows but `base` has {T}; they must match.")
        y = self._targets(target, T)
        if T == 0:
            empty = y.new_zeros(0, self.num_outputs)
            return GaussianUpdate(
                empty,
                empty.clone(),
                tuple(y.new_zeros(0, self.num_outputs, k) for k in self.layer_sizes),
                0,
            )
        engine = resolve_engine(self.engine, self.device)
        means, variances, guarded = [], [], 0
        losses: list[list[torch.Tensor]] = [[] for _ in self.layer_sizes]
        for s in range(0, T, self.chunk_size):
            e = min(T, s + self.chunk_size)
            t = (self.steps + torch.arange(1, e - s + 1, device=self.steps.device)).double()
            eta = self.lr(t).to(dtype=self.dtype, device=self.device)
            m, v = mu[s:e], s2[s:e]
            ctxs = torch.split(self.contexts(z[s:e]), list(self.layer_sizes), dim=-1)
            for i, (W, ctx) in enumerate(zip(self.weights, ctxs, strict=False)):
                om, ov, g = self._walk(
                    W,
                    ctx.contiguous(),
                    m.contiguous(),
                    v.contiguous(),
                    y[s:e].contiguous(),
                    eta,
                    engine,
                )
                guarded += int(g.sum())
                losses[i].append(gaussian_loss(om, ov, y[s:e, :, None]))
                m, v = self._append_bias(om, ov)
            means.append(om[..., 0])
            variances.append(ov[..., 0])
            self.steps += e - s
        return GaussianUpdate(
            torch.cat(means), torch.cat(variances), tuple(torch.cat(p) for p in losses), guarded
        )

    def _walk(
        self,
        W: torch.Tensor,
        ctx: torch.Tensor,
        mu: torch.Tensor,
        s2: torch.Tensor,
        y: torch.Tensor,
        eta: torch.Tensor,
        engine: str,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = ctx.shape[0]
        A, K = W.shape[:2]
        if engine == "numba":
            from galu.gln._numba import gaussian_scan, gaussian_scan_serial, pick

            dt = W.numpy().dtype
            m_np, v_np = np.empty((T, A, K), dtype=dt), np.empty((T, A, K), dtype=dt)
            g_np = np.zeros((T, A, K), dtype=np.bool_)
            walk = pick(gaussian_scan, gaussian_scan_serial, T, W.shape)
            walk(
                W.numpy(),
                ctx.numpy(),
                mu.numpy(),
                s2.numpy(),
                y.numpy(),
                eta.numpy(),
                self.s2_min,
                self.s2_max,
                self.beta,
                self.mean_bound,
                m_np,
                v_np,
                g_np,
            )
            return torch.from_numpy(m_np), torch.from_numpy(v_np), torch.from_numpy(g_np)
        n = W.shape[-1]
        flat = W.view(A * K * W.shape[2], n)
        rows = ctx.reshape(T, A * K) + torch.arange(A * K, device=W.device) * W.shape[2]
        mu_b, s2_b = mu.expand(T, A, n), s2.expand(T, A, n)
        om = torch.empty(T, A, K, dtype=W.dtype, device=W.device)
        ov, g = torch.empty_like(om), torch.empty(T, A, K, dtype=torch.bool, device=W.device)
        for t in range(T):
            r = rows[t]
            w0 = flat.index_select(0, r).view(A, K, n)
            mi, si = mu_b[t][:, None, :], s2_b[t][:, None, :]
            w, m, v, guard = self._neuron(w0, mi, si)
            om[t], ov[t], g[t] = m.clamp(-self.mean_bound, self.mean_bound), v, guard
            grad = gaussian_grad(w, mi, si, y[t][:, None])
            new = (w - eta[t] * grad).clamp(-self.beta, self.beta)
            flat.index_copy_(0, r, torch.where(guard[..., None], w0, new).view(A * K, n))
        return om, ov, g

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, side={self.side_features}, layers={self.layer_sizes}, "
            f"A={self.num_outputs}, C={self.context_dim}, s2=[{self.s2_min:g}, "
            f"{self.s2_max:g}], beta={self.beta:g}, lr={self.lr.describe()}"
        )
