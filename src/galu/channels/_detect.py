"""Detecting channels to infinity in trained one-hidden-layer MLPs (Martinelli et al. 2025).

A network is at a channel when (the paper's three criteria)

1. its parameter norm is at least ``norm_threshold`` (10³: the gradient flow's stop norm);
2. some pair of hidden neurons has input weight vectors ``w_i, w_j`` (bias included) with cosine
   distance ``1 − cos(w_i, w_j)`` below ``pair_threshold`` (10⁻³);
3. more than ``update_threshold`` (90%) of the last parameter update's squared norm lies in the
   channel subspace: the group's output-weight coordinates plus, for each member's input-weight
   update, its projection onto the span of the group's input vectors ``{w_i}``. (Counting the
   members' whole input-weight updates instead would make the criterion vacuous for two hidden
   units, where the pair owns every parameter.)

Neurons whose pairwise cosine distance is below ``group_threshold`` (10⁻²) are grouped (connected
components), so three or more neurons form one multi-neuron channel. For an odd activation
(``erf``) the units ``(w, a)`` and ``(−w, −a)`` compute the same function, so input vectors are
compared up to sign (cosine distance ``1 − |cos|``) and each member is flipped to the sign of the
group's first before the limit quantities are formed: on the paper's erf toy the flow reaches the
channel in either orientation. Each channel is summarised
around its centre ``w = mean_i w_i`` by the finite quantities that survive the limit

    c = Σ_i a_i,     v = Σ_i a_i (w_i − w),     ε = max_i ‖w_i − w‖,     Δ = v / ‖v‖,

so that ``Σ_i a_i σ(w_i·x̃) → c σ(w·x̃) + (v·x̃) σ'(w·x̃)`` for a pair, with ``ε = ‖w_i − w_j‖/2``
and ``‖v‖ = ε |a_i − a_j|`` (the paper's ``a``). For three or more neurons a second-order term
``½ x̃ᵀMx̃ σ''(w·x̃)`` can stay finite (see :mod:`galu.channels._limit`).

Criterion 2 measures angles only. The GLU limit needs the vectors themselves to merge, which
``Channel.merged`` checks (``ε/‖w‖ < 0.05``, our addition): on the sweep, erf networks reached
the norm bound with parallel input vectors of different lengths (``ε/‖w‖ ≈ 0.5``, a pair of units
cancelling in erf's linear regime), which pass the paper's criteria but have no GLU limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from galu.channels._activations import Activation
from galu.channels._activations import activation as to_activation
from galu.channels._mlp import top_eigenvalue, unpack

MERGED = 0.05  # ε/‖w‖ below which a channel's input vectors count as merged


@dataclass(frozen=True)
class Channel:
    """One channel (a group of merging neurons) in one network.

    Attributes:
        neurons: hidden-unit indices in the group.
        epsilon: ``max_i ‖w_i − w‖`` (half the pair's distance for two neurons).
        c: ``Σ_i a_i``, the output weight of ``σ(w·x̃)`` in the limit.
        a: ``‖v‖``, the size of the gated linear part.
        v: ``Σ_i a_i (w_i − w)`` ``(D,)``, the linear map gated by ``σ'(w·x̃)``.
        w: the centre ``mean_i w_i`` ``(D,)``.
        output_weights: the group's ``a_i``.
        cosine_distance: the smallest pairwise ``1 − cos(w_i, w_j)`` in the group.
        update_fraction: share of the last update's squared norm inside the channel subspace
            (output weights, and input-weight updates projected onto ``span{w_i}``).
        pair: criteria 2 and 3 hold, whatever the norm (finite-step optimisers stall at a
            channel's entrance, below the norm bound; duplicated units also qualify).
        is_channel: criteria 1–3 all hold.
    """

    neurons: tuple[int, ...]
    epsilon: float
    c: float
    a: float
    v: torch.Tensor
    w: torch.Tensor
    output_weights: tuple[float, ...]
    cosine_distance: float
    update_fraction: float
    pair: bool
    is_channel: bool

    @property
    def relative_epsilon(self) -> float:
        """``ε/‖w‖``: how far the merging input vectors still are, relative to their size."""
        return self.epsilon / max(float(torch.linalg.vector_norm(self.w)), 1e-300)

    @property
    def merged(self) -> bool:
        """The input vectors merge (``ε/‖w‖ < 0.05``), not only their directions: the GLU limit
        applies."""
        return self.relative_epsilon < MERGED

    @property
    def direction(self) -> torch.Tensor:
        """``Δ = v/‖v‖``."""
        return self.v / max(self.a, 1e-300)

    def cos_direction_centre(self) -> float:
        """``cos(Δ, w)``: the paper tracks it along the jump procedure."""
        return float(torch.nn.functional.cosine_similarity(self.direction, self.w, dim=0))


@dataclass(frozen=True)
class ChannelReport:
    """Channel analysis of one network.

    Attributes:
        norm: parameter norm ``‖θ‖``.
        channels: every group of near-parallel neurons (``is_channel`` says which pass all three
            criteria).
        sharpness: the top Hessian eigenvalue, when data were given.
    """

    norm: float
    channels: tuple[Channel, ...]
    sharpness: float | None = None

    @property
    def at_channel(self) -> bool:
        """Whether any group satisfies the paper's three criteria."""
        return any(ch.is_channel for ch in self.channels)

    @property
    def detected(self) -> tuple[Channel, ...]:
        """Groups passing the paper's three criteria."""
        return tuple(ch for ch in self.channels if ch.is_channel)

    @property
    def glu_channels(self) -> tuple[Channel, ...]:
        """Detected channels whose input vectors have merged: those with a GLU limit."""
        return tuple(ch for ch in self.detected if ch.merged)


def oriented(
    W: torch.Tensor, a: torch.Tensor, neurons, *, odd: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A group's input vectors ``(g, D)`` and output weights ``(g,)`` of one network (``W``
    ``(r, D)``, ``a`` ``(r,)``), with each member flipped ``(w, a) → (−w, −a)`` to the first
    one's orientation when ``odd`` (the same function for an odd σ); also the signs ``(g,)``."""
    idx = torch.as_tensor(neurons)
    sign = torch.sign(W[idx] @ W[idx[0]]) if odd else torch.ones(len(idx), dtype=W.dtype)
    sign = torch.where(sign == 0, 1.0, sign)
    return W[idx] * sign[:, None], a[idx] * sign, sign


def _groups(cos_dist: torch.Tensor, threshold: float) -> list[list[int]]:
    """Connected components of ``cos_dist < threshold`` with more than one member."""
    r = cos_dist.shape[0]
    parent = list(range(r))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(r):
        for j in range(i + 1, r):
            if cos_dist[i, j] < threshold:
                parent[find(i)] = find(j)
    comps: dict[int, list[int]] = {}
    for i in range(r):
        comps.setdefault(find(i), []).append(i)
    return [sorted(c) for c in comps.values() if len(c) > 1]


def detect_channels(
    theta: torch.Tensor,
    D: int,
    update: torch.Tensor,
    *,
    norm_threshold: float = 1e3,
    pair_threshold: float = 1e-3,
    group_threshold: float = 1e-2,
    update_threshold: float = 0.9,
    data: tuple[torch.Tensor, torch.Tensor, str | Activation] | None = None,
    activation: str | Activation | None = None,
) -> list[ChannelReport]:
    """Analyse each network of ``theta`` ``(E, P)`` (input rows of length ``D``) given its last
    update ``(E, P)``.

    ``data = (Xa, y, activation)`` adds each network's sharpness (top Hessian eigenvalue).
    ``activation`` (or the one in ``data``) decides whether units are compared up to sign (odd
    activations); without either they are not.
    """
    if theta.shape != update.shape:
        raise ValueError(
            f"`update` must have the shape of `theta` {tuple(theta.shape)}; got "
            f"{tuple(update.shape)}."
        )
    for name, value in (("pair_threshold", pair_threshold), ("group_threshold", group_threshold)):
        if not 0 < value < 2:
            raise ValueError(f"`{name}` (={value!r}) must be a cosine distance in (0, 2).")
    if not 0 <= update_threshold <= 1:
        raise ValueError(f"`update_threshold` (={update_threshold!r}) must be in [0, 1].")
    W, a = unpack(theta, D)
    dW, da = unpack(update, D)
    E = W.shape[0]
    sharp = None
    if data is not None:
        Xa, y, act = data
        sharp = top_eigenvalue(theta, Xa, y, act)
        activation = activation if activation is not None else act
    odd = activation is not None and to_activation(activation).odd
    Wn = W / torch.linalg.vector_norm(W, dim=2, keepdim=True).clamp(min=1e-300)
    cos = Wn @ Wn.transpose(1, 2)  # (E, r, r)
    cos_dist = 1.0 - (cos.abs() if odd else cos)
    norms = torch.linalg.vector_norm(theta, dim=1)
    total = (update**2).sum(1)
    reports = []
    for e in range(E):
        chans = []
        for group in _groups(cos_dist[e], group_threshold):
            idx = torch.tensor(group)
            sub = cos_dist[e][idx][:, idx]
            off = sub + torch.eye(len(group), dtype=sub.dtype) * 4.0  # ignore the diagonal
            closest = float(off.min())
            # Orthonormal basis of span{w_i : i in group} (rank-revealing: near-parallel
            # vectors still span their difference direction, down to round-off).
            basis, sv, _ = torch.linalg.svd(W[e, idx].T, full_matrices=False)
            basis = basis[:, sv > sv[0] * 1e-13]
            inside = float(((dW[e, idx] @ basis) ** 2).sum() + (da[e, idx] ** 2).sum())
            frac = inside / float(total[e]) if float(total[e]) > 0 else 0.0
            pair = closest < pair_threshold and frac > update_threshold
            Wg, ai, _ = oriented(W[e], a[e], group, odd=odd)
            centre = Wg.mean(0)
            offsets = Wg - centre
            v = (ai[:, None] * offsets).sum(0)
            chans.append(
                Channel(
                    neurons=tuple(group),
                    epsilon=float(torch.linalg.vector_norm(offsets, dim=1).max()),
                    c=float(ai.sum()),
                    a=float(torch.linalg.vector_norm(v)),
                    v=v.clone(),
                    w=centre.clone(),
                    output_weights=tuple(float(x) for x in ai),
                    cosine_distance=closest,
                    update_fraction=frac,
                    pair=pair,
                    is_channel=pair and bool(norms[e] >= norm_threshold),
                )
            )
        reports.append(
            ChannelReport(float(norms[e]), tuple(chans), None if sharp is None else float(sharp[e]))
        )
    return reports
