"""The gated linear unit at the end of a channel, and the jump procedure.

A channel's neurons ``i ∈ S`` (input vectors ``w_i = w + δ_i``, output weights ``a_i``) compute

    Σ_i a_i σ(w_i·x̃) = c σ(w·x̃) + (v·x̃) σ'(w·x̃) + ½ x̃ᵀM x̃ σ''(w·x̃) + …      (Taylor, derived)

with ``c = Σ a_i``, ``v = Σ a_i δ_i`` and ``M = Σ a_i δ_i δ_iᵀ``. Along a channel of two neurons
``c`` and ``v`` converge while ``ε = ‖δ_i‖ → 0``, and ``M = c ε² ΔΔᵀ → 0``: the limit is the
gated linear unit ``c σ(w·x̃) + (v·x̃) σ'(w·x̃)`` — a linear function gated by ``σ'`` (for softplus,
the logistic sigmoid: Dauphin's GLU). For three or more neurons ``M`` can stay finite (second
derivatives appear, as the paper notes), so :func:`glu_limit` keeps it for groups larger than a
pair.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from galu.channels._activations import Activation, activation
from galu.channels._activations import activation as to_activation
from galu.channels._detect import Channel, oriented
from galu.channels._mlp import pack, unpack


@dataclass(frozen=True)
class LimitUnit:
    """``c σ(w·x̃) + (v·x̃) σ'(w·x̃) [+ ½ x̃ᵀMx̃ σ''(w·x̃)]``; ``w``, ``v`` ``(D,)``."""

    c: torch.Tensor
    w: torch.Tensor
    v: torch.Tensor
    M: torch.Tensor | None = None

    def __call__(self, Xa: torch.Tensor, sigma: Activation) -> torch.Tensor:
        z = Xa @ self.w
        out = self.c * sigma.f(z) + (Xa @ self.v) * sigma.d1(z)
        if self.M is not None:
            out = out + 0.5 * ((Xa @ self.M) * Xa).sum(-1) * sigma.d2(z)
        return out


@dataclass(frozen=True)
class LimitNetwork:
    """A one-hidden-layer network whose channels are replaced by their limit units.

    Attributes:
        W: input weights of the ordinary units ``(r', D)``.
        a: their output weights ``(r',)``.
        units: the limit units, one per converted channel.
        activation: the activation's name.
    """

    W: torch.Tensor
    a: torch.Tensor
    units: tuple[LimitUnit, ...]
    activation: str

    def forward(self, Xa: torch.Tensor) -> torch.Tensor:
        """Outputs ``(n,)`` for inputs ``(n, D)`` as the network sees them."""
        sigma = activation(self.activation)
        out = sigma.f(Xa @ self.W.T) @ self.a
        for unit in self.units:
            out = out + unit(Xa, sigma)
        return out

    def loss(self, Xa: torch.Tensor, y: torch.Tensor) -> float:
        """``½·mean (f − y)²``."""
        return float(0.5 * ((self.forward(Xa) - y) ** 2).mean())


def _one_network(theta: torch.Tensor, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, a)`` of a single network given as ``(P,)`` or ``(1, P)``."""
    if not (theta.ndim == 1 or (theta.ndim == 2 and theta.shape[0] == 1)):
        raise ValueError(
            f"`theta` must be one network, shape (P,) or (1, P); got {tuple(theta.shape)} "
            "(index a batch first, e.g. `theta[e]`)."
        )
    W, a = unpack(theta.reshape(1, -1).clone(), D)
    return W[0], a[0]


def _check_neurons(channels, r: int) -> list[int]:
    seen: dict[int, int] = {}
    for k, ch in enumerate(channels):
        if len(ch.neurons) < 2:
            raise ValueError(f"channel {k} has neurons {ch.neurons}; a channel needs at least two.")
        for i in ch.neurons:
            if not 0 <= i < r:
                raise ValueError(
                    f"channel {k} names neuron {i}, but the network has {r} hidden units "
                    f"(valid: 0..{r - 1})."
                )
            if i in seen:
                raise ValueError(
                    f"`channels` overlap: neuron {i} is in channel {seen[i]} and channel {k}; "
                    "each neuron can belong to one channel only."
                )
            seen[i] = k
    return sorted(seen)


def glu_limit(
    theta: torch.Tensor, D: int, act: str | Activation, channels: tuple[Channel, ...] | list
) -> LimitNetwork:
    """Replace each channel's neurons in the network ``theta`` ``(P,)`` by its limit unit
    (``M`` kept for groups of three or more neurons)."""
    W, a = _one_network(theta, D)
    taken = _check_neurons(channels, W.shape[0])
    units = []
    odd = activation(act).odd
    for ch in channels:
        Wg, ai, _ = oriented(W, a, ch.neurons, odd=odd)  # as detect_channels forms them
        centre = Wg.mean(0)
        offsets = Wg - centre
        M = (ai[:, None, None] * offsets[:, :, None] * offsets[:, None, :]).sum(0)
        units.append(
            LimitUnit(
                ai.sum(), centre, (ai[:, None] * offsets).sum(0), M if len(ch.neurons) > 2 else None
            )
        )
    keep = [i for i in range(W.shape[0]) if i not in taken]
    name = act if isinstance(act, str) else act.name
    return LimitNetwork(W[keep].clone(), a[keep].clone(), tuple(units), name)


def jump(
    theta: torch.Tensor,
    D: int,
    channel: Channel,
    factor: float = 0.5,
    *,
    activation: str | Activation | None = None,
) -> torch.Tensor:
    """The network ``theta`` ``(P,)`` with the pair's offsets ``δ_i`` scaled by ``factor``
    (``ε → factor·ε``) and its output weights set so that ``c = Σ a_i`` and ``v = Σ a_i δ_i`` are
    unchanged: one step of the paper's jump procedure, ``a_{i,j} = c/2 ± ‖v‖/(2·factor·ε)``. For
    an odd ``activation`` members are compared in the first one's orientation (as in
    :func:`detect_channels`).

    Only pairs: for three or more neurons keeping ``c`` and ``v`` does not keep the finite
    second-order term ``M = Σ a_i δ_i δ_iᵀ``, so the function would change at order one."""
    if not 0 < factor < 1:
        raise ValueError(f"`factor` (={factor!r}) must be in (0, 1).")
    W, a = _one_network(theta, D)
    _check_neurons([channel], W.shape[0])
    if len(channel.neurons) != 2:
        raise ValueError(
            f"`jump` moves a pair of neurons; the channel has {len(channel.neurons)} "
            f"({channel.neurons}), whose second-order term M it could not keep."
        )
    idx = torch.tensor(channel.neurons)
    odd = activation is not None and to_activation(activation).odd
    Wg, ag, sign = oriented(W, a, channel.neurons, odd=odd)
    centre = Wg.mean(0)
    offsets = (Wg - centre) * factor
    # Constraints B a' = b: Σ a' = c and Σ a'_k δ'_k = v (δ' the scaled offsets).
    B = torch.cat([torch.ones(1, len(idx), dtype=W.dtype), offsets.T], dim=0)
    b = torch.cat([ag.sum()[None], (ag[:, None] * (Wg - centre)).sum(0)])
    a_new = ag + torch.linalg.pinv(B) @ (b - B @ ag)
    W[idx] = (centre + offsets) * sign[:, None]
    a[idx] = a_new * sign
    return pack(W[None], a[None])[0]


def refine(
    net: LimitNetwork, Xa: torch.Tensor, y: torch.Tensor, *, steps: int = 200
) -> tuple[LimitNetwork, list[float]]:
    """Train every parameter of the limit network (ordinary units and limit units) by full-batch
    L-BFGS with a strong-Wolfe line search, which never increases the loss. Returns the refined
    network and the loss after each L-BFGS iteration (starting with the initial loss)."""
    params = [net.W.clone(), net.a.clone()]
    for unit in net.units:
        params += [unit.c.clone(), unit.w.clone(), unit.v.clone()]
        if unit.M is not None:
            params.append(unit.M.clone())
    for p in params:
        p.requires_grad_(True)

    def rebuild() -> LimitNetwork:
        units, k = [], 2
        for unit in net.units:
            M = params[k + 3] if unit.M is not None else None
            units.append(LimitUnit(params[k], params[k + 1], params[k + 2], M))
            k += 4 if unit.M is not None else 3
        return replace(net, W=params[0], a=params[1], units=tuple(units))

    opt = torch.optim.LBFGS(
        params,
        max_iter=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = 0.5 * ((rebuild().forward(Xa) - y) ** 2).mean()
        value.backward()
        return value

    history = [net.loss(Xa, y)]
    for _ in range(max(1, steps // 20)):
        opt.step(closure)
        with torch.no_grad():
            history.append(rebuild().loss(Xa, y))
    with torch.no_grad():
        out = rebuild()
        out = replace(
            out,
            W=out.W.detach().clone(),
            a=out.a.detach().clone(),
            units=tuple(
                LimitUnit(
                    u.c.detach().clone(),
                    u.w.detach().clone(),
                    u.v.detach().clone(),
                    None if u.M is None else u.M.detach().clone(),
                )
                for u in out.units
            ),
        )
    return out, history
