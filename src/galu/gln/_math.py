"""The math of one GLN neuron, once: geometric mixing, product of Gaussians, their local losses,
gradients and the projections; and the learning-rate schedules.

Every function works on tensors of any leading shape (a neuron per trailing vector), so the
modules, the scans and the tests call the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def logit(p: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """``log(p / (1 − p))`` of ``p`` clipped into ``[eps, 1 − eps]``."""
    if eps > 0:
        p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def geometric_mix(w: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The geometric-mixing neuron's output logit ``w · logit(p_in)`` for input logits ``inputs``
    (``σ`` of it is the normalised weighted geometric mean ``Πpʷ / (Πpʷ + Π(1−p)ʷ)``)."""
    return (w * inputs).sum(-1)


def active_mix(W: torch.Tensor, ctx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A layer's mixing logits ``u[t, a, k] = W[a, k, ctx[t, a, k]] · x[t, a]`` for weight tables
    ``W`` ``(A, K, E, n)``, contexts ``(T, A, K)`` and input logits ``x`` ``(T, A or 1, n)``: every
    table row times every input (a GEMM), then the active row's value picked, so no ``(T, A, K,
    n)`` gather is materialised."""
    A, K, E, n = W.shape
    if x.shape[1] == 1:
        P = (x[:, 0] @ W.reshape(A * K * E, n).T).view(-1, A, K, E)
    else:
        P = torch.einsum("aken,tan->take", W, x)
    return P.gather(3, ctx.unsqueeze(-1)).squeeze(-1)


def bernoulli_loss(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Log loss of the prediction ``σ(u)`` for a binary target ``y``: ``softplus(−(2y − 1)u)``
    (``logaddexp`` form, exact where ``log(1 − σ(u))`` would lose digits)."""
    return F.softplus(-(2 * y - 1) * u)


def bernoulli_grad(w: torch.Tensor, inputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``∂/∂w`` of :func:`bernoulli_loss` at ``u = w · inputs``: ``(σ(u) − y) · inputs``."""
    u = geometric_mix(w, inputs)
    return (torch.sigmoid(u) - y).unsqueeze(-1) * inputs


def bernoulli_hessian(w: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``σ(u)(1 − σ(u)) · inputs inputsᵀ`` — positive semi-definite: the local loss is convex."""
    s = torch.sigmoid(geometric_mix(w, inputs))
    return (s * (1 - s))[..., None, None] * inputs.unsqueeze(-1) * inputs.unsqueeze(-2)


def gaussian_product(
    w: torch.Tensor, mu: torch.Tensor, s2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted product of Gaussians ``(μ_j, σ²_j)``: ``σ² = 1/Σ w_j λ_j``,
    ``μ = σ² Σ w_j λ_j μ_j`` with precisions ``λ = 1/σ²``. Returns ``(μ, σ²)``."""
    lam = 1 / s2
    prec = (w * lam).sum(-1)
    return (w * lam * mu).sum(-1) / prec, 1 / prec


def project_precision(
    w: torch.Tensor, s2: torch.Tensor, s2_min: float, s2_max: float
) -> torch.Tensor:
    """``w`` projected (Euclidean) onto the hyperplane ``w · λ = Λ*`` where ``Λ = w · λ`` lies
    outside ``[1/s2_max, 1/s2_min]`` (``Λ*`` the nearer end); ``w`` itself where it is inside."""
    lam = 1 / s2
    prec = (w * lam).sum(-1, keepdim=True)
    target = prec.clamp(1 / s2_max, 1 / s2_min)
    return w + (target - prec) * lam / (lam * lam).sum(-1, keepdim=True)


def gaussian_loss(mu: torch.Tensor, s2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood ``½ log(2πσ²) + (y − μ)²/(2σ²)``."""
    return 0.5 * torch.log(2 * math.pi * s2) + (y - mu) ** 2 / (2 * s2)


def gaussian_grad(
    w: torch.Tensor, mu: torch.Tensor, s2: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """``∂/∂w`` of :func:`gaussian_loss` of :func:`gaussian_product`:
    ``(λ_j/2)[(y − μ)² − σ² + 2(y − μ)(μ − μ_j)]``."""
    m, v = gaussian_product(w, mu, s2)
    r = (y - m).unsqueeze(-1)
    return (0.5 / s2) * (r**2 - v.unsqueeze(-1) + 2 * r * (m.unsqueeze(-1) - mu))


@dataclass(frozen=True)
class LearningRate:
    """Step sizes ``η_t = min(η_max, c / (t0 + slope · t))`` for the ``t``-th update (``t = 1, 2,
    …``), or the constant ``η_max`` when ``c`` is ``None``.

    ``LearningRate(0.01)`` is constant; DeepMind's MNIST example is
    ``LearningRate(0.003, c=1, t0=1, slope=0.1)``; pygln's ``LearningRate(0.01, c=100)``.
    """

    eta_max: float
    c: float | None = None
    t0: float = 0.0
    slope: float = 1.0

    def __post_init__(self) -> None:
        def ok(v: object) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        for key in ("eta_max", "c", "slope"):
            value = getattr(self, key)
            if value is not None and not (ok(value) and value > 0):
                raise ValueError(f"`lr` {key} (={value!r}) must be a finite number > 0.")
        if not (ok(self.t0) and self.t0 >= 0):
            raise ValueError(f"`lr` t0 (={self.t0!r}) must be a finite number >= 0.")

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """Step sizes for the (1-based, float) update counts ``t``."""
        if self.c is None:
            return torch.full_like(t, self.eta_max)
        return torch.clamp(self.c / (self.t0 + self.slope * t), max=self.eta_max)

    def describe(self) -> str:
        if self.c is None:
            return f"{self.eta_max:g}"
        return f"min({self.eta_max:g}, {self.c:g}/({self.t0:g} + {self.slope:g}t))"


SCHEDULES = {
    "deepmind": LearningRate(0.003, c=1.0, t0=1.0, slope=0.1),
    "pygln": LearningRate(0.01, c=100.0),
}


def as_learning_rate(lr: float | str | LearningRate) -> LearningRate:
    """``lr`` as a :class:`LearningRate`: a number > 0 (constant), a schedule, or the name of a
    reference schedule (``"deepmind"``, ``"pygln"``)."""
    if isinstance(lr, LearningRate):
        return lr
    if isinstance(lr, str):
        if lr not in SCHEDULES:
            raise ValueError(f"`lr` (={lr!r}) names no schedule; valid: {', '.join(SCHEDULES)}.")
        return SCHEDULES[lr]
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
        raise ValueError(
            f"`lr` (={lr!r}) must be a finite number > 0, a LearningRate or one of "
            f"{', '.join(SCHEDULES)}."
        )
    return LearningRate(float(lr))
