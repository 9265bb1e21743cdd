"""Bernoulli Gated Linear Networks (Veness et al.): geometric-mixing neurons gated by half-space
contexts, each trained online by its own convex log loss — and the dendritic variant."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from galu._validate import int_at_least, one_of
from galu.gln._contexts import RULES, HalfSpaces
from galu.gln._math import LearningRate, active_mix, as_learning_rate, bernoulli_loss, logit
from galu.gln._scan import ENGINES, SKIP_RULES, batch_layer, resolve_engine, scan_layer
from galu.solvers._memory import InsufficientMemoryError, format_bytes, memory_budget

BATCH_MODES = ("sequential", "sum", "mean")
INITS = ("mean", "zeros")


@dataclass(frozen=True)
class GLNUpdate:
    """What :meth:`BernoulliGLN.update` returns: the network's predictions for the examples made
    *before* learning from them (test-then-train), ``(T, A)``, and each neuron's local loss on
    them, one ``(T, A, K_i)`` tensor per layer."""

    predictions: torch.Tensor
    losses: tuple[torch.Tensor, ...]


def table_bytes(
    num_outputs: int, layer_sizes: Sequence[int], inputs: Sequence[int], tables: int, itemsize: int
) -> int:
    """Bytes of a GLN's weights: ``itemsize · A · Σ_i K_i · tables · n_i`` (``tables = 2^C``, or
    the number of branches of a dendritic network)."""
    return (
        itemsize
        * num_outputs
        * tables
        * sum(k * n for k, n in zip(layer_sizes, inputs, strict=False))
    )


def check_memory(
    name: str,
    num_outputs: int,
    sizes: Sequence[int],
    inputs: Sequence[int],
    tables: int,
    table_word: str,
    dtype: torch.dtype,
    device: torch.device,
    memory_limit: int | None,
    hint: str,
) -> int:
    """The weight table's bytes; raises :class:`InsufficientMemoryError` (the bytes, the terms,
    what to reduce) before anything is allocated when they exceed the budget."""
    itemsize = dtype.itemsize
    needed = table_bytes(num_outputs, sizes, inputs, tables, itemsize)
    budget = memory_budget(device, memory_limit)
    if needed > budget.total:
        layers = " + ".join(f"{k}·{n}" for k, n in zip(sizes, inputs, strict=True))
        terms = (
            f"A={num_outputs} outputs × Σ_i K_i·n_i = {layers} × {table_word} × {itemsize} bytes"
        )
        raise InsufficientMemoryError(
            f"a {name} of this size needs {format_bytes(needed)} of weights ({terms}), but "
            f"{format_bytes(budget.total)} is available ({budget.source}). {hint}",
            needed=needed,
            available=budget.total,
            solver=name,
        )
    return needed


def check_layer_sizes(layer_sizes: Any) -> tuple[int, ...]:
    """``layer_sizes`` as a tuple of integers >= 1 ending with the single output neuron."""
    sizes = tuple(layer_sizes) if isinstance(layer_sizes, Sequence) else (layer_sizes,)
    if not sizes or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in sizes):
        raise ValueError(f"`layer_sizes` (={layer_sizes!r}) must list integers >= 1.")
    if sizes[-1] != 1:
        raise ValueError(
            f"`layer_sizes` (={layer_sizes!r}) must end with 1, the output neuron: e.g. "
            f"{(*sizes, 1)!r}."
        )
    return sizes


def make_halfspaces(hyperplanes: str | HalfSpaces, shape: tuple[int, int], side_features: int,
                    context_dim: int, offset_scale: float, generator: torch.Generator | None,
                    dtype: torch.dtype, device: torch.device) -> HalfSpaces:  # fmt: skip
    """A network's hyperplanes: drawn by a rule's name, or a copy of a given :class:`HalfSpaces`
    (so the caller's object is neither shared nor converted in place)."""
    if isinstance(hyperplanes, HalfSpaces):
        want = (*shape, context_dim, side_features)
        if tuple(hyperplanes.normals.shape) != want:
            raise ValueError(
                f"`hyperplanes` has normals of shape {tuple(hyperplanes.normals.shape)}; this "
                f"network needs {want} (num_outputs, Σ layer_sizes, context_dim, side_features)."
            )
        normals, offsets = hyperplanes.normals.detach(), hyperplanes.offsets.detach()
        return HalfSpaces(normals.clone(), offsets.clone()).to(dtype=dtype, device=device)
    if hyperplanes not in RULES:
        raise ValueError(
            f"`hyperplanes` (={hyperplanes!r}) must be one of {', '.join(RULES)} or a HalfSpaces."
        )
    if not (isinstance(offset_scale, int | float) and 0 <= offset_scale < math.inf):
        raise ValueError(f"`offset_scale` (={offset_scale!r}) must be a finite number >= 0.")
    return HalfSpaces.sample(shape, side_features, context_dim, rule=hyperplanes,
                             offset_scale=offset_scale, generator=generator, dtype=dtype,
                             device=device)  # fmt: skip


def as_input(name: str, value: Any, width: int, dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:  # fmt: skip
    """``value`` as a finite ``(T, width)`` tensor of ``dtype`` on ``device`` (a 1-D value is
    one column when ``width`` is 1)."""
    x = torch.as_tensor(value)
    if x.ndim == 1 and width == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"`{name}` must have shape (T, {width}); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        bad = x[~torch.isfinite(x)][0].item()
        raise ValueError(f"`{name}` contains a non-finite value ({bad}).")
    return x.to(dtype=dtype, device=device)


class TableNetwork(nn.Module):
    """What every GLN here shares: per-layer weight tables ``weight0``, ``weight1``, … (buffers,
    learned by local rules, not by autograd), hyperplanes ``contexts``, the update counter
    ``steps``, and input conversion to the tables' dtype and device."""

    steps: torch.Tensor
    weight0: torch.Tensor
    contexts: HalfSpaces
    layer_sizes: tuple[int, ...]

    @property
    def weights(self) -> list[torch.Tensor]:
        """The weight tables, one ``(A, K_i, tables, n_i)`` tensor per layer (bias inputs last)."""
        return [getattr(self, f"weight{i}") for i in range(len(self.layer_sizes))]

    @property
    def dtype(self) -> torch.dtype:
        return self.weight0.dtype

    @property
    def device(self) -> torch.device:
        return self.weight0.device

    def _tensor(self, name: str, value: Any, width: int) -> torch.Tensor:
        return as_input(name, value, width, self.dtype, self.device)


class BernoulliGLN(TableNetwork):
    """A Bernoulli Gated Linear Network: ``A`` one-vs-all binary networks in one batched object.

    Every neuron ``(i, k)`` of layer ``i`` owns ``C`` fixed hyperplanes on the side information
    ``z`` and ``2^C`` weight vectors; its context picks one, and it predicts
    ``σ(clip(w_c · ℓ, logit ε, logit(1−ε)))`` from its input logits ``ℓ`` (the geometric mixture
    of its input probabilities). Each neuron learns to predict the target itself by online
    projected gradient descent on its own log loss — no backpropagation.

    Args:
        in_features: number of base predictions ``n₀`` (probabilities in ``[0, 1]``).
        side_features: dimension ``d`` of the side information that chooses contexts.
        layer_sizes: neurons per layer, ending with the single output neuron: ``(16, 16, 1)``.
        num_outputs: ``A``; ``1`` for a binary target, the number of classes for one-vs-all.
        context_dim: ``C``, hyperplanes per neuron (``0``: no gating, a plain mixture network).
        hyperplanes: ``"deepmind"`` (unit-norm normals, ``N(0, 0.05²)`` offsets), ``"pygln"``
            (``N(0, I)`` normals, zero offsets) — drawn from ``generator`` — or a
            :class:`HalfSpaces` of shape ``(A, ΣK_i)`` of your own.
        offset_scale: the standard deviation of the ``"deepmind"`` rule's offsets. DeepMind's
            0.05 puts every hyperplane near the origin, which suits many standardised side
            features; for few (d ≲ 3) use ~1 so the hyperplanes split the data's range.
        eps: prediction clipping ``ε`` (every neuron's output and the base predictions).
        beta: weight box: weights are projected into ``[−β, β]`` after each update.
        bias: probability of the constant input appended to every layer (default ``σ(1)``, as
            DeepMind's code); ``None`` for none.
        init: ``"mean"`` (every weight ``1/n``: a neuron starts as the geometric mean of its
            inputs, pygln's choice) or ``"zeros"`` (every prediction starts at 1/2, DeepMind's).
        skip_rule: when a neuron does not update: ``"confident"`` (when ``|y − p| ≤ ε``, already
            right and sure: DeepMind's later dendritic code), ``"none"`` (never; pygln), or
            ``"deepmind"`` (whenever the unclipped prediction lies outside ``[ε, 1−ε]``, as the
            gradient through the clip in DeepMind's GLN code — it freezes confidently wrong
            neurons).
        lr: step size: a number (constant), a :class:`LearningRate` (``min(η_max, c/(t0 +
            slope·t))``), or ``"deepmind"`` / ``"pygln"`` for those codes' schedules. ``t`` counts
            examples in ``sequential`` mode and minibatches (``update`` calls) in ``sum`` /
            ``mean`` mode, as DeepMind's code does.
        batch_mode: ``"sequential"`` (exact online learning, example by example, however many
            examples one :meth:`update` call gets), ``"sum"`` or ``"mean"`` (one call is one
            minibatch: all its examples predicted with the same weights, updates summed —
            pygln's NumPy backend — or averaged — DeepMind's; approximations, see ``docs/gln.md``).
        engine: how the exact walk runs: ``"auto"`` (``"triton"`` on CUDA where available,
            ``"numba"`` on the CPU where installed, else ``"numpy"``; ``"torch"`` elsewhere), or
            one by name. All compute the same numbers (to rounding).
        chunk_size: examples whose contexts are computed together (one GEMM) before the layers
            walk over them.
        memory_limit: bytes the weight table may take (default: the free memory of ``device``);
            a larger table is refused before anything is allocated.
        generator, dtype, device: where the hyperplanes' randomness comes from, and the weights'
            dtype and device.

    Example:
        >>> import torch
        >>> from galu.gln import BernoulliGLN
        >>> g = torch.Generator().manual_seed(0)
        >>> z = torch.randn(500, 2, generator=g)
        >>> y = (z[:, 0] * z[:, 1] > 0).double()            # XOR: not linearly separable
        >>> net = BernoulliGLN(2, 2, (8, 1), context_dim=2, lr=0.1, dtype=torch.float64,
        ...                    generator=torch.Generator().manual_seed(1))
        >>> base = torch.full((500, 2), 0.5, dtype=torch.float64)   # uninformative base
        >>> first = net.update(base, z, y).predictions       # one online pass
        >>> bool((net.predict(base, z)[:, 0].round() == y).double().mean() > 0.9)
        True
    """

    _kind = "bernoulli"

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
        eps: float = 0.01,
        beta: float = 5.0,
        bias: float | None = 1 / (1 + math.exp(-1)),
        init: str = "mean",
        skip_rule: str = "confident",
        lr: float | str | LearningRate = 0.01,
        batch_mode: str = "sequential",
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
        if not (isinstance(eps, int | float) and 0 < eps < 0.5):
            raise ValueError(f"`eps` (={eps!r}) must be a number in (0, 0.5).")
        if isinstance(beta, bool) or not (isinstance(beta, int | float) and 0 < beta < math.inf):
            raise ValueError(f"`beta` (={beta!r}) must be a number > 0 (the weight box).")
        if bias is not None and not (isinstance(bias, int | float) and 0 < bias < 1):
            raise ValueError(f"`bias` (={bias!r}) must be a probability in (0, 1), or None.")
        self.eps, self.beta, self.bias = float(eps), float(beta), bias
        self.init = one_of("init", init, INITS)
        self.skip_rule = one_of("skip_rule", skip_rule, SKIP_RULES)
        self.lr = as_learning_rate(lr)
        self.batch_mode = one_of("batch_mode", batch_mode, BATCH_MODES)
        self.engine = one_of("engine", engine, ENGINES)
        self.chunk_size = int_at_least("chunk_size", chunk_size, 1)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"`dtype` (={dtype!r}) must be torch.float32 or torch.float64.")
        device = torch.device(device) if device is not None else torch.device("cpu")
        self._dtype = dtype
        nb = 0 if bias is None else 1
        self.inputs = (in_features + nb, *(k + nb for k in sizes[:-1]))
        check_memory(
            type(self).__name__,
            num_outputs,
            sizes,
            self.inputs,
            self._tables(),
            self._table_word(),
            dtype,
            device,
            memory_limit,
            self._reduce_hint(),
        )
        self.offset_scale = offset_scale
        self.contexts = self._hyperplanes(hyperplanes, generator, dtype, device)
        for i, (k, n) in enumerate(zip(sizes, self.inputs, strict=False)):
            shape = (num_outputs, k, self._tables(), n)
            w = (
                torch.full(shape, 1.0 / n, dtype=dtype, device=device)
                if init == "mean"
                else torch.zeros(shape, dtype=dtype, device=device)
            )
            self.register_buffer(f"weight{i}", w.clamp_(-self.beta, self.beta))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    # ------------------------------------------------------------------ structure

    def _tables(self) -> int:
        return 2**self.context_dim

    def _table_word(self) -> str:
        return f"2^C={self._tables()} contexts"

    def _reduce_hint(self) -> str:
        f32 = ", use dtype=torch.float32" if self._dtype == torch.float64 else ""
        return (
            "Reduce context_dim (each hyperplane doubles the table), the layer sizes or "
            f"num_outputs{f32}, or raise memory_limit."
        )

    def _hyperplanes(
        self,
        hyperplanes: str | HalfSpaces,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> HalfSpaces:
        shape = (self.num_outputs, sum(self.layer_sizes))
        return make_halfspaces(hyperplanes, shape, self.side_features, self.context_dim,
                               self.offset_scale, generator, dtype, device)  # fmt: skip

    def _engine(self) -> str:
        return resolve_engine(self.engine, self.device)

    # ------------------------------------------------------------------ inputs

    def _base_logits(self, base: Any) -> torch.Tensor:
        p = self._tensor("base", base, self.in_features)
        if bool(((p < 0) | (p > 1)).any()):
            bad = p[(p < 0) | (p > 1)][0].item()
            raise ValueError(
                f"`base` holds probabilities and must lie in [0, 1] (clipped to [eps, 1 − eps]); "
                f"found {bad}. Map real features with a sigmoid first."
            )
        x = logit(p, self.eps)
        if self.bias is not None:
            b = torch.full(
                (p.shape[0], 1),
                math.log(self.bias / (1 - self.bias)),
                dtype=self.dtype,
                device=self.device,
            )
            x = torch.cat([x, b], dim=1)
        return x[:, None, :]

    def _side(self, side: Any, T: int) -> torch.Tensor:
        z = self._tensor("side", side, self.side_features)
        if z.shape[0] != T:
            raise ValueError(f"`side` has {z.shape[0]} rows but `base` has {T}; they must match.")
        return z

    def _targets(self, target: Any, T: int) -> torch.Tensor:
        y = torch.as_tensor(target)
        given = tuple(y.shape)
        A = self.num_outputs
        if y.ndim == 1 and A > 1:
            if y.is_floating_point() and bool((y != y.round()).any()):
                raise ValueError("`target` of shape (T,) must hold integer class labels.")
            y = y.long()
            if bool(((y < 0) | (y >= A)).any()):
                bad = y[(y < 0) | (y >= A)][0].item()
                raise ValueError(f"`target` holds class {bad}; valid classes are 0..{A - 1}.")
            y = torch.nn.functional.one_hot(y, A)
        elif y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape != (T, A):
            raise ValueError(f"`target` must have shape ({T},) or ({T}, {A}); got {given}.")
        y = y.to(torch.float64)
        if not bool(((y == 0) | (y == 1)).all()):
            bad = y[(y != 0) & (y != 1)][0].item()
            raise ValueError(f"`target` must be binary (0 or 1); found {bad}.")
        return y.to(dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ prediction

    def _layer_inputs(self, out: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return out
        b = math.log(self.bias / (1 - self.bias))
        return torch.cat([out, torch.full_like(out[..., :1], b)], dim=-1)

    def _split(self, ctx: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(ctx, list(self.layer_sizes), dim=-1 if ctx.ndim == 3 else -2))

    def _gating(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, what chooses each neuron's weights: context indices ``(T, A, K_i)``."""
        return self._split(self.contexts(z))

    def _forward_layer(self, W: torch.Tensor, gate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Output logits ``(T, A, K)`` of a layer with its current weights (no update)."""
        return active_mix(W, gate, x)

    def _walk(
        self,
        W: torch.Tensor,
        gate: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        eta: Any,
        engine: str,
    ) -> torch.Tensor:
        if engine in ("sum", "mean"):
            return batch_layer(
                W,
                gate,
                x,
                y,
                eta,
                eps=self.eps,
                beta=self.beta,
                skip_rule=self.skip_rule,
                mode=engine,
            )
        return scan_layer(
            W,
            gate,
            x,
            y,
            eta,
            eps=self.eps,
            beta=self.beta,
            skip_rule=self.skip_rule,
            engine=engine,
        )

    @torch.no_grad()
    def logits(self, base: Any, side: Any, *, clip: bool = True) -> torch.Tensor:
        """Output logits ``(T, A)`` with the current weights. ``clip=False`` skips the clipping of
        every neuron's output (the base predictions are still clipped at ``ε``): the function a
        gated deep linear network computes (:meth:`to_module`)."""
        x = self._base_logits(base)
        z = self._side(side, x.shape[0])
        lo = math.log(self.eps / (1 - self.eps))
        outs = []
        rows = max(1, 2**24 // (self.num_outputs * sum(self.layer_sizes) * self._tables()))
        for s in range(0, x.shape[0], rows):
            h = x[s : s + rows]
            gates = self._gating(z[s : s + rows])
            for W, gate in zip(self.weights, gates, strict=False):
                u = self._forward_layer(W, gate, h)
                if clip:
                    u = u.clamp(lo, -lo)
                h = self._layer_inputs(u)
            outs.append(u[..., 0])
        return torch.cat(outs) if outs else x.new_zeros(0, self.num_outputs)

    @torch.no_grad()
    def predict(self, base: Any, side: Any) -> torch.Tensor:
        """Probabilities ``(T, A)`` for the examples with the current weights; no learning."""
        return torch.sigmoid(self.logits(base, side))

    def forward(self, base: Any, side: Any) -> torch.Tensor:
        return self.predict(base, side)

    # ------------------------------------------------------------------ learning

    @torch.no_grad()
    def update(self, base: Any, side: Any, target: Any) -> GLNUpdate:
        """Learn from ``T`` examples online and return the predictions made *before* learning
        from each (and every neuron's loss on it). ``target``: ``(T,)`` of 0/1 for a binary
        network, ``(T,)`` class labels or ``(T, A)`` 0/1 for one-vs-all."""
        x = self._base_logits(base)
        T = x.shape[0]
        z = self._side(side, T)
        y = self._targets(target, T)
        if T == 0:  # nothing to learn from; the step counter does not move
            return GLNUpdate(
                y.clone(), tuple(y.new_zeros(0, self.num_outputs, k) for k in self.layer_sizes)
            )
        losses: list[list[torch.Tensor]] = [[] for _ in self.layer_sizes]
        preds = []
        if self.batch_mode == "sequential":
            engine = self._engine()
            step = self.chunk_size
            for s in range(0, T, step):
                e = min(T, s + step)
                t = (self.steps + torch.arange(1, e - s + 1, device=self.steps.device)).to(
                    torch.float64
                )
                eta = self.lr(t).to(dtype=self.dtype, device=self.device)
                preds.append(self._learn(x[s:e], z[s:e], y[s:e], eta, engine, losses))
                self.steps += e - s
        else:
            rate = self.lr((self.steps + 1).to(torch.float64).reshape(1)).item()
            preds.append(self._learn(x, z, y, rate, self.batch_mode, losses))
            self.steps += 1
        return GLNUpdate(torch.cat(preds) if preds else y[:0], tuple(torch.cat(p) for p in losses))

    def _learn(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        y: torch.Tensor,
        eta: Any,
        engine: str,
        losses: list[list[torch.Tensor]],
    ) -> torch.Tensor:
        h = x
        for i, (W, gate) in enumerate(zip(self.weights, self._gating(z), strict=False)):
            uc = self._walk(W, gate.contiguous(), h.contiguous(), y.contiguous(), eta, engine)
            uc = uc.to(self.device)
            losses[i].append(bernoulli_loss(uc, y[:, :, None]))
            h = self._layer_inputs(uc)
        return torch.sigmoid(uc[..., 0])

    # ------------------------------------------------------------------ export

    def to_module(self) -> nn.Module:
        """The same architecture as a trainable ``nn.Module``: a gated deep linear network in
        logit space (:class:`galu.gln.LogitGatedNetwork`), the GLN's weights as parameters and
        its hyperplanes as fixed gates. Its forward equals :meth:`logits` with ``clip=False``."""
        from galu.gln._export import LogitGatedNetwork

        return LogitGatedNetwork.from_gln(self)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, side={self.side_features}, layers={self.layer_sizes}, "
            f"A={self.num_outputs}, C={self.context_dim}, eps={self.eps:g}, "
            f"beta={self.beta:g}, lr={self.lr.describe()}, skip={self.skip_rule!r}, "
            f"batch_mode={self.batch_mode!r}"
        )
