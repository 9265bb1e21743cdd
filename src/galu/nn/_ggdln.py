"""Globally gated deep linear networks (GGDLN; Li & Sompolinsky 2022, ``science/ggdln.md``).

Every unit of a layer is multiplied by the same ``M`` *global* gates ``g_m(x)``, fixed functions
of the input that the supervised objective never changes::

    h^0 = x,    h^l_i = c_l^{1/2} Σ_m Σ_j g^l_m(x) W^l_{m,i,j} h^{l-1}_j        (l = 1..L)
    f(x) = c_{L+1}^{1/2} Σ_m Σ_i g^{L+1}_m(x) a_{m,i} h^L_i

The normalisation ``c_l`` is a parameter: ``"fan_in"`` (default) is ``1/(M_l N_{l-1})`` — every
term of the double sum counts — and ``"width"`` is ``1/N_{l-1}``. Both are written as a width
normalisation ``1/N_{l-1}`` with *scaled gates* ``ĝ^l = g^l (c_l N_{l-1})^{1/2}``
(:meth:`GGDLN.scaled_gates`); the theory and the samplers use the scaled gates, so they hold for
either choice. An ungated readout is ``M_{L+1} = 1, g ≡ 1``; with one all-ones gate everywhere
the model is a deep linear network (:meth:`GGDLN.deep_linear`).

Weights carry an i.i.d. Gaussian prior ``N(0, σ_l²)`` (``prior_var``; the initialisation draws
from it), the prior of the Bayesian posterior that :mod:`galu.theory` and the samplers in
:mod:`galu.train` describe.

The pure functions :func:`ggdln_forward` and :func:`ggdln_backward` compute the network and
``∂f/∂h^l`` for a *stack* of weight sets (leading "chain" dimension); the module's ``forward`` is
the one-chain case, and the samplers run many chains through the same code.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from galu import gates
from galu._validate import positive_int, renamed, required

GateFamily = Literal["halfspace", "sigmoid", "pca", "kmeans", "one"]
GATE_FAMILIES: tuple[str, ...] = ("halfspace", "sigmoid", "pca", "kmeans", "one")
# Spellings of galu 0.1, read with a DeprecationWarning until 0.3 ("one", as in galu.gates.Gate).
OLD_GATE_FAMILIES = {"ones": "one"}


def _gate_family(kind: Any) -> Any:
    if isinstance(kind, str) and kind in OLD_GATE_FAMILIES:
        warnings.warn(
            f"gate family {kind!r} is now {OLD_GATE_FAMILIES[kind]!r} (as in galu.gates.Gate); "
            "the old name goes in galu 0.3.",
            DeprecationWarning,
            stacklevel=3,
        )
        return OLD_GATE_FAMILIES[kind]
    return kind


NORMALIZATIONS: tuple[str, ...] = ("fan_in", "width")
Readout = Literal["gated", "ungated"]
READOUTS: tuple[str, ...] = ("gated", "ungated")


class GlobalGates(nn.Module):
    """``M`` global gate functions ``g_m(x) ∈ [0, 1]`` of ``in_features``-dimensional inputs.

    ``kind`` (validated):

    ``"halfspace"``  ``Θ(v_m·x/√N0 + b_m)``, random ``v_m ~ N(0, I)``, ``b_m ~ N(0, bias_std²)``
    ``"sigmoid"``    the soft version ``σ(scale (v_m·x/√N0 + b_m))``
    ``"pca"``        half-spaces through the data mean along the top ``M`` principal directions
                     of the inputs given to :meth:`fit` (learned without labels)
    ``"kmeans"``     ``g_m(x) = 1`` if ``x`` is nearest to the ``m``-th k-means centre of the
                     inputs given to :meth:`fit`, else 0 (a partition of input space)
    ``"one"``        ``g ≡ 1`` (with ``M = 1``: a deep linear layer; ``"ones"`` until 0.3)

    ``n_tasks > 1`` (``halfspace`` and ``sigmoid``) draws an independent gate set per task:
    ``forward(X, task)`` then gates sample ``p`` with the vectors of task ``task[p]`` — the
    task-dependent gating used for multi-task learning. Gate vectors are buffers.
    """

    vectors: torch.Tensor
    biases: torch.Tensor
    centres: torch.Tensor

    def __init__(
        self,
        in_features: int,
        n_gates: int,
        kind: GateFamily = "halfspace",
        *,
        bias_std: float = 0.0,
        scale: float = 4.0,
        n_tasks: int = 1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        positive_int("in_features", in_features)
        positive_int("n_gates", n_gates)
        positive_int("n_tasks", n_tasks)
        kind = _gate_family(kind)
        if kind not in GATE_FAMILIES:
            raise ValueError(f"`kind` (={kind!r}) must be one of {GATE_FAMILIES}.")
        if not bias_std >= 0:
            raise ValueError(f"`bias_std` (={bias_std!r}) must be >= 0.")
        if not scale > 0:
            raise ValueError(f"`scale` (={scale!r}) must be > 0.")
        if n_tasks > 1 and kind not in ("halfspace", "sigmoid"):
            raise ValueError(
                f"`n_tasks` (={n_tasks}) > 1 needs kind 'halfspace' or 'sigmoid'; got {kind!r}."
            )
        self.in_features, self.n_gates, self.kind = in_features, n_gates, kind
        self.scale, self.n_tasks = float(scale), n_tasks
        shape = (n_tasks, n_gates, in_features)
        kw: dict[str, Any] = dict(dtype=dtype, device=device)
        v = torch.randn(shape, generator=generator, dtype=dtype).to(device)
        b = torch.randn(shape[:2], generator=generator, dtype=dtype).to(device) * bias_std
        self.register_buffer("vectors", v if kind in ("halfspace", "sigmoid") else v * 0)
        self.register_buffer("biases", b if kind in ("halfspace", "sigmoid") else b * 0)
        self.register_buffer("centres", torch.zeros(n_gates, in_features, **kw))
        self.fitted = kind in ("halfspace", "sigmoid", "one")

    def fit(self, X: torch.Tensor, *, seed: int = 0) -> GlobalGates:
        """Learn ``pca`` / ``kmeans`` gates from inputs ``X`` (no labels); a no-op otherwise."""
        X = _check_inputs(X, self.in_features)
        if self.kind == "pca":
            mu = X.mean(0)
            _, _, Vh = torch.linalg.svd(X - mu, full_matrices=False)
            if Vh.shape[0] < self.n_gates:
                raise ValueError(
                    f"`pca` gates need at least n_gates={self.n_gates} principal directions; "
                    f"X has rank at most {Vh.shape[0]}."
                )
            v = Vh[: self.n_gates] * math.sqrt(self.in_features)
            self.vectors.copy_(v[None].to(self.vectors))
            self.biases.copy_(-(v @ mu)[None].to(self.biases) / math.sqrt(self.in_features))
        elif self.kind == "kmeans":
            from sklearn.cluster import KMeans

            if X.shape[0] < self.n_gates:
                raise ValueError(
                    f"`kmeans` gates need at least n_gates={self.n_gates} inputs; got {X.shape[0]}."
                )
            km = KMeans(self.n_gates, n_init=4, random_state=seed % 2**31).fit(X.cpu().numpy())
            self.centres.copy_(torch.as_tensor(km.cluster_centers_).to(self.centres))
        self.fitted = True
        return self

    def forward(self, X: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """Gate values, shape ``(P, M)``."""
        X = _check_inputs(X, self.in_features)
        if not self.fitted:
            raise RuntimeError(f"{self.kind!r} gates are learned from data: call .fit(X) first.")
        if self.kind == "one":
            return X.new_ones(X.shape[0], self.n_gates)
        if self.kind == "kmeans":
            nearest = torch.cdist(X, self.centres.to(X)).argmin(1)
            return nn.functional.one_hot(nearest, self.n_gates).to(X.dtype)
        v, b = self.vectors.to(X), self.biases.to(X)
        if task is None:
            if self.n_tasks > 1:
                raise ValueError(f"these gates have n_tasks={self.n_tasks}: pass `task`.")
            z = X @ v[0].T / math.sqrt(self.in_features) + b[0]
        else:
            task = torch.as_tensor(task, device=X.device).long()
            if task.shape != (X.shape[0],) or task.min() < 0 or task.max() >= self.n_tasks:
                raise ValueError(
                    f"`task` must hold one task index in [0, {self.n_tasks}) per sample "
                    f"(shape ({X.shape[0]},)); got shape {tuple(task.shape)}."
                )
            z = torch.einsum("pj,pmj->pm", X, v[task]) / math.sqrt(self.in_features) + b[task]
        if self.kind == "sigmoid":
            return gates.sigmoid(z, self.scale)
        return gates.step(z, at_zero=0.0)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_gates={self.n_gates}, kind={self.kind!r}"


def _check_inputs(X: torch.Tensor, in_features: int) -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[1] != in_features:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"`X` must be a (P, {in_features}) tensor; got {shape}.")
    return X


class GGDLN(nn.Module):
    """A globally gated deep linear network with ``depth`` gated layers of ``hidden_features``
    units.

    Args:
        in_features: input dimension ``N0``.
        hidden_features: ``N_l`` — one int for every layer, or one per layer (``width`` is its
            old name, accepted with a DeprecationWarning until galu 0.3).
        depth: number of gated hidden layers ``L`` (>= 1).
        n_gates: ``M``, global gates per layer.
        gates: the gate family (see :class:`GlobalGates`), or a ``GlobalGates`` instance to use.
        shared_gates: one gate set for every hidden layer (as the paper does), and for a gated
            readout too; or one set per layer (and one for a gated readout). Whether the paper
            gates its readout, and with which set, is not known here (see docs/ggdln.md).
        readout: ``"gated"`` (the readout is gated like a layer) or ``"ungated"`` (``f = a·h/√N``).
        normalization: ``"fan_in"`` (``1/(M N)``) or ``"width"`` (``1/N``); see module doc.
        prior_var: ``σ_l²`` for layers ``1..L`` and the readout: one float or ``depth + 1``.
        n_tasks, bias_std, scale: passed to :class:`GlobalGates`.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | Sequence[int] | None = None,
        depth: int | None = None,
        n_gates: int | None = None,
        *,
        gates: GateFamily | GlobalGates = "halfspace",
        shared_gates: bool = True,
        readout: Readout = "gated",
        normalization: Literal["fan_in", "width"] = "fan_in",
        prior_var: float | Sequence[float] = 1.0,
        n_tasks: int = 1,
        bias_std: float = 0.0,
        scale: float = 4.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        width: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        # None defaults only so that the old keyword `width` still works.
        hidden = renamed("GGDLN", "hidden_features", hidden_features, "width", width, needed=True)
        depth, n_gates = required("GGDLN", "depth", depth), required("GGDLN", "n_gates", n_gates)
        positive_int("in_features", in_features)
        positive_int("depth", depth)
        positive_int("n_gates", n_gates)
        gates = _gate_family(gates)
        widths = (hidden,) * depth if isinstance(hidden, int) else tuple(hidden)
        if len(widths) != depth:
            raise ValueError(
                f"`hidden_features` (={hidden!r}) must be an int or a list of {depth} widths."
            )
        for w in widths:
            positive_int("hidden_features", w)
        if readout not in READOUTS:
            raise ValueError(f"`readout` (={readout!r}) must be one of {READOUTS}.")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` (={normalization!r}) must be one of {NORMALIZATIONS}."
            )
        pv = (prior_var,) * (depth + 1) if isinstance(prior_var, int | float) else tuple(prior_var)
        if len(pv) != depth + 1 or not all(float(s) > 0 for s in pv):
            raise ValueError(
                f"`prior_var` (={prior_var!r}) must be a positive float or {depth + 1} of them "
                "(one per layer and the readout)."
            )
        self.in_features, self.widths, self.depth = in_features, widths, depth
        self.readout, self.normalization = readout, normalization
        self.prior_var = tuple(float(s) for s in pv)
        gk: dict[str, Any] = dict(
            n_tasks=n_tasks,
            bias_std=bias_std,
            scale=scale,
            generator=generator,
            dtype=dtype,
            device=device,
        )
        n_sets = 1 if shared_gates else depth + (readout == "gated")
        if isinstance(gates, GlobalGates):
            if not shared_gates or gates.in_features != in_features or gates.n_gates != n_gates:
                raise ValueError(
                    "a GlobalGates instance as `gates` needs shared_gates=True and matching "
                    f"in_features={in_features}, n_gates={n_gates}."
                )
            self.gate_sets = nn.ModuleList([gates])
        else:
            self.gate_sets = nn.ModuleList(
                [GlobalGates(in_features, n_gates, gates, **gk) for _ in range(n_sets)]
            )
        self.n_gates = n_gates
        fans = (in_features, *widths)
        self.weights = nn.ParameterList(
            [
                nn.Parameter(
                    torch.randn(n_gates, fans[l + 1], fans[l], generator=generator, dtype=dtype)
                    .mul(math.sqrt(self.prior_var[l]))
                    .to(device)
                )
                for l in range(depth)
            ]
        )
        m_out = n_gates if readout == "gated" else 1
        self.readout_weight = nn.Parameter(
            torch.randn(m_out, widths[-1], generator=generator, dtype=dtype)
            .mul(math.sqrt(self.prior_var[-1]))
            .to(device)
        )

    @classmethod
    def deep_linear(
        cls,
        in_features: int,
        hidden_features: int | Sequence[int] | None = None,
        depth: int | None = None,
        *,
        width: int | Sequence[int] | None = None,
        **kw: Any,
    ) -> GGDLN:
        """The deep linear network: one all-ones gate per layer, ungated readout (``width`` is
        the old name of ``hidden_features``, read with a DeprecationWarning until galu 0.3)."""
        hidden = renamed("GGDLN.deep_linear", "hidden_features", hidden_features, "width", width)
        return cls(in_features, hidden, depth, 1, gates="one", readout="ungated", **kw)

    @property
    def hidden_features(self) -> tuple[int, ...]:
        """``N_l`` of every gated layer (the same tuple as ``widths``, the paper's name)."""
        return self.widths

    @property
    def gate_counts(self) -> tuple[int, ...]:
        """``(M_1, ..., M_L, M_{L+1})``."""
        return (self.n_gates,) * self.depth + ((self.n_gates if self.readout == "gated" else 1),)

    def fit_gates(self, X: torch.Tensor, *, seed: int = 0) -> GGDLN:
        """Learn data-dependent (``pca`` / ``kmeans``) gates from inputs, without labels."""
        for s in self.gate_sets:
            assert isinstance(s, GlobalGates)
            s.fit(X, seed=seed)
        return self

    def scaled_gates(self, X: torch.Tensor, task: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``[ĝ^1, ..., ĝ^{L+1}]``, each ``(P, M_l)``: the gates with the normalisation folded in
        (``ĝ = g/√M`` for ``"fan_in"``, ``g`` for ``"width"``); the readout's is all ones when
        it is ungated."""
        raw = [s(X, task) for s in self.gate_sets]
        n_gated = self.depth + (self.readout == "gated")
        out = [raw[0] if len(raw) == 1 else raw[l] for l in range(n_gated)]
        if self.normalization == "fan_in":
            out = [g / math.sqrt(g.shape[1]) for g in out]
        if self.readout == "ungated":
            out.append(X.new_ones(X.shape[0], 1))
        return out

    def stacked_weights(self) -> list[torch.Tensor]:
        """The weights with a leading chain dimension of 1, as :func:`ggdln_forward` takes them."""
        return [w[None] for w in self.weights] + [self.readout_weight[None]]

    def forward(self, X: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """``f(X)``, shape ``(P,)``."""
        return ggdln_forward(self.stacked_weights(), self.scaled_gates(X, task), X)[0][0]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, widths={self.widths}, n_gates={self.n_gates}, "
            f"readout={self.readout!r}, normalization={self.normalization!r}, "
            f"prior_var={self.prior_var}"
        )


def ggdln_forward(
    weights: Sequence[torch.Tensor], gates: Sequence[torch.Tensor], X: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Outputs and hidden layers of ``C`` stacked networks.

    ``weights``: ``[W^1 (C, M_1, N_1, N_0), ..., W^L, a (C, M_{L+1}, N_L)]``; ``gates``: the
    scaled gates ``[ĝ^1 (P, M_1), ..., ĝ^{L+1}]``; ``X``: ``(P, N_0)``.
    Returns ``f`` of shape ``(C, P)`` and ``[h^0, ..., h^L]`` with ``h^l`` of shape
    ``(C, P, N_l)`` (``h^0`` broadcast from ``X``).
    """
    C = weights[0].shape[0]
    h = X.expand(C, *X.shape)
    hidden = [h]
    for W, g in zip(weights[:-1], gates[:-1], strict=True):
        # Σ_m ĝ_m(p) (W_m h_p): contract the input index first, then the gate index.
        h = torch.einsum("cmij,cpj,pm->cpi", W, h, g) / math.sqrt(h.shape[-1])
        hidden.append(h)
    f = torch.einsum("cmi,cpi,pm->cp", weights[-1], h, gates[-1]) / math.sqrt(h.shape[-1])
    return f, hidden


def ggdln_backward(
    weights: Sequence[torch.Tensor], gates: Sequence[torch.Tensor], layer: int
) -> torch.Tensor:
    """``β^l = ∂f/∂h^l`` for ``l = layer`` (1..L), shape ``(C, P, N_l)``; it depends only on the
    weights above layer ``l``."""
    a, g = weights[-1], gates[-1]
    beta = torch.einsum("cmi,pm->cpi", a, g) / math.sqrt(a.shape[-1])
    for l in range(len(weights) - 1, layer, -1):  # weights[l - 1] is W^l
        W = weights[l - 1]
        beta = torch.einsum("cpi,pm,cmij->cpj", beta, gates[l - 1], W) / math.sqrt(W.shape[-1])
    return beta
