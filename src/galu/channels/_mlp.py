"""One-hidden-layer MLPs stacked along a batch of ``E`` networks, with analytic derivatives.

Model (Martinelli et al. 2025, ``science/channels.md``): ``f(x) = Σ_i a_i σ(w_i · x̃)`` with
``x̃ = (x, 1)`` (each input weight vector carries a bias), loss ``L = ½·mean_μ (f(x_μ) − y_μ)²``.
Network ``e``'s parameters are one flat row ``θ_e`` of ``theta`` ``(E, P)``, ``P = r(D + 1)``:
the input weights ``W`` ``(r, D)`` row-major, then the output weights ``a`` ``(r,)``, where ``D``
is the width of the inputs as given.

Inputs ``Xa`` are given as the network sees them: augmented, ``augment(X) = (X, 1)``
(``D = d + 1``), or raw for a network without biases (the paper's erf toy); ``(n, D)`` shared
by all networks or ``(E, n, D)`` one data set per network; targets ``(n,)`` or ``(E, n)``.

Derivatives (``e_μ = f(x_μ) − y_μ``, ``z_iμ = w_i · x̃_μ``):

    ∂L/∂a_i   = mean_μ e σ(z_i)              ∂L/∂w_i = mean_μ e a_i σ'(z_i) x̃
    H = mean_μ [J_μ J_μᵀ + e_μ ∇²f_μ],  J = (a_i σ'(z_i) x̃ ; σ(z_i)),
    ∇²f: ∂²f/∂w_i∂w_iᵀ = a_i σ''(z_i) x̃x̃ᵀ,  ∂²f/∂w_i∂a_i = σ'(z_i) x̃, every other block 0.
"""

from __future__ import annotations

import math

import torch

from galu._validate import positive_int
from galu.channels._activations import Activation, activation

# Largest (E, n, P) Jacobian formed at once by `derivatives(hessian=True)` (16M float64: 128 MB).
_JACOBIAN_ELEMENTS = 16 * 2**20


def n_params(r: int, D: int) -> int:
    """``P = r(D + 1)`` for width ``r`` and input rows of length ``D``."""
    return r * (D + 1)


def width(theta: torch.Tensor, D: int) -> int:
    """The width ``r`` of networks with input rows of length ``D`` and ``theta.shape[-1]``
    parameters."""
    P = theta.shape[-1]
    r, rem = divmod(P, D + 1)
    if rem or r < 1:
        raise ValueError(
            f"`theta` has {P} parameters per network, not r(D + 1) for inputs of width D = {D} "
            "and an integer width r >= 1."
        )
    return r


def unpack(theta: torch.Tensor, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W (E, r, D), a (E, r))`` views of ``theta`` ``(E, P)``."""
    r = width(theta, D)
    E = theta.shape[0]
    return theta[:, : r * D].reshape(E, r, D), theta[:, r * D :]


def pack(W: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``theta`` ``(E, P)`` from ``W`` ``(E, r, D)`` and ``a`` ``(E, r)``."""
    return torch.cat([W.reshape(W.shape[0], -1), a], dim=1)


def augment(X: torch.Tensor) -> torch.Tensor:
    """``(X, 1)``: append a constant input (``(..., n, d)`` → ``(..., n, d + 1)``), so each input
    weight vector carries a bias."""
    return torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)


def glorot_init(
    E: int,
    r: int,
    D: int,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``E`` networks with Glorot-normal weights: ``w ~ N(0, 2/(D + r))`` (a bias is an input
    like the others), ``a ~ N(0, 2/(r + 1))``."""
    W = torch.randn(E, r, D, generator=generator, dtype=dtype) * math.sqrt(2 / (D + r))
    a = torch.randn(E, r, generator=generator, dtype=dtype) * math.sqrt(2 / (r + 1))
    return pack(W, a)


def _pre(Xa: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``z = x̃ · w_i`` ``(E, n, r)`` for shared ``(n, D)`` or per-network inputs."""
    if Xa.ndim == 2:
        return torch.matmul(Xa, W.transpose(1, 2))  # (n, D) @ (E, D, r)
    return torch.bmm(Xa, W.transpose(1, 2))


def _xt(Xa: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``Σ_μ B_μ x̃_μ`` ``(E, r, D)`` for ``B`` ``(E, n, r)``."""
    if Xa.ndim == 2:
        return torch.matmul(B.transpose(1, 2), Xa)
    return torch.bmm(B.transpose(1, 2), Xa)


def forward(theta: torch.Tensor, Xa: torch.Tensor, act: str | Activation) -> torch.Tensor:
    """Network outputs ``(E, n)``."""
    W, a = unpack(theta, Xa.shape[-1])
    return (activation(act).f(_pre(Xa, W)) * a[:, None, :]).sum(-1)


def loss(theta: torch.Tensor, Xa: torch.Tensor, y: torch.Tensor, act: str | Activation):
    """``L = ½·mean (f − y)²`` per network ``(E,)``."""
    return 0.5 * ((forward(theta, Xa, act) - y) ** 2).mean(-1)


def derivatives(
    theta: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str | Activation,
    *,
    hessian: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(L (E,), ∇L (E, P), H (E, P, P) or None)`` in one pass over the data.

    The Hessian's Gauss–Newton part is a batched GEMM of the ``(E, n, P)`` Jacobian; networks are
    taken in chunks so that Jacobian stays below ``_JACOBIAN_ELEMENTS`` numbers.
    """
    if hessian:
        P = theta.shape[1]
        chunk = max(1, _JACOBIAN_ELEMENTS // max(1, Xa.shape[-2] * P))
        if theta.shape[0] > chunk:
            parts = [
                derivatives(
                    theta[i : i + chunk],
                    Xa if Xa.ndim == 2 else Xa[i : i + chunk],
                    y if y.ndim == 1 else y[i : i + chunk],
                    act,
                    hessian=True,
                )
                for i in range(0, theta.shape[0], chunk)
            ]
            Ls, gs, Hs = zip(*parts, strict=True)
            return torch.cat(Ls), torch.cat(gs), torch.cat([H for H in Hs if H is not None])
    sigma = activation(act)
    d1 = Xa.shape[-1]
    W, a = unpack(theta, d1)
    E, r = a.shape
    n = Xa.shape[-2]
    Z = _pre(Xa, W)  # (E, n, r)
    S, S1 = sigma.f_d1(Z)
    e = (S @ a[..., None])[..., 0] - y  # (E, n)
    L = 0.5 * (e**2).mean(-1)
    g_a = (S * e[..., None]).mean(1)  # (E, r)
    g_W = _xt(Xa, e[..., None] * S1 * a[:, None, :]) / n  # (E, r, D)
    g = pack(g_W, g_a)
    if not hessian:
        return L, g, None
    xa = Xa if Xa.ndim == 3 else Xa.expand(E, n, d1)
    J_W = (S1 * a[:, None, :])[..., None] * xa[:, :, None, :]  # (E, n, r, D)
    J = torch.cat([J_W.reshape(E, n, r * d1), S], dim=2)  # (E, n, P)
    H = J.transpose(1, 2) @ J / n  # Gauss–Newton part
    S2 = sigma.d2(Z)
    # e·a_i σ''(z_i) x̃x̃ᵀ on the diagonal W blocks; e σ'(z_i) x̃ between w_i and a_i.
    wts = e[..., None] * a[:, None, :] * S2  # (E, n, r)
    # Σ_μ wts_μi x̃_μ x̃_μᵀ per unit: one batched GEMM (E, r·D, n) @ (E, n, D).
    curv = (
        torch.bmm(
            (wts[..., None] * xa[:, :, None, :]).reshape(E, n, r * d1).transpose(1, 2), xa
        ).reshape(E, r, d1, d1)
        / n
    )
    cross = _xt(Xa, e[..., None] * S1) / n  # (E, r, D)
    for i in range(r):
        blk = slice(i * d1, (i + 1) * d1)
        H[:, blk, blk] += curv[:, i]
        H[:, blk, r * d1 + i] += cross[:, i]
        H[:, r * d1 + i, blk] += cross[:, i]
    return L, g, H


def hvp(
    theta: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str | Activation,
    v: torch.Tensor,
) -> torch.Tensor:
    """Hessian-vector products ``H_e v_e`` ``(E, P)`` without forming ``H`` (``O(n r d)`` each)."""
    return _hvp_at(_hvp_state(theta, Xa, y, act), Xa, v)


def _hvp_state(theta, Xa, y, act):
    """What the products at ``theta`` share: ``a``, ``σ(Z)``, ``σ'(Z)``, ``σ''(Z)``, residuals."""
    sigma = activation(act)
    W, a = unpack(theta, Xa.shape[-1])
    Z = _pre(Xa, W)
    S = sigma.f(Z)
    return a, S, sigma.d1(Z), sigma.d2(Z), (S * a[:, None, :]).sum(-1) - y


def _hvp_at(state, Xa: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    a, S, S1, S2, e = state
    vW, va = unpack(v, Xa.shape[-1])
    n = Xa.shape[-2]
    U = _pre(Xa, vW)  # x̃ · v_{w_i} (E, n, r)
    Jv = (a[:, None, :] * S1 * U + S * va[:, None, :]).sum(-1)  # (E, n)
    A = a[:, None, :]
    HW = _xt(Xa, Jv[..., None] * S1 * A + e[..., None] * (A * S2 * U + S1 * va[:, None, :])) / n
    Ha = (S * Jv[..., None] + e[..., None] * S1 * U).mean(1)
    return pack(HW, Ha)


def top_eigenvalue(
    theta: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str | Activation,
    *,
    steps: int = 40,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The largest Hessian eigenvalue of each network ``(E,)`` (the sharpness), by Lanczos with
    full reorthogonalisation on Hessian-vector products (:func:`hvp`); ``min(steps, P)``
    products per network. Every network starts from the same random vector (one ``(P,)`` draw
    from ``generator``, default seed 0), so a network's value does not depend on its position
    in the batch."""
    E, P = theta.shape
    k = min(positive_int("steps", steps), P)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    q = torch.randn(P, generator=gen, dtype=theta.dtype).to(theta.device).expand(E, P)
    q = q / torch.linalg.vector_norm(q, dim=1, keepdim=True)
    length = torch.full((E,), k, dtype=torch.long, device=theta.device)  # Krylov dimension
    state = _hvp_state(theta, Xa, y, act)  # θ is fixed: σ and the residuals once, not per step
    Q = torch.zeros(E, k, P, dtype=theta.dtype, device=theta.device)
    alpha = torch.zeros(E, k, dtype=theta.dtype, device=theta.device)
    beta = torch.zeros(E, k, dtype=theta.dtype, device=theta.device)
    for j in range(k):
        Q[:, j] = q
        w = _hvp_at(state, Xa, q)
        alpha[:, j] = (w * q).sum(1)
        # Full reorthogonalisation against every earlier Lanczos vector (twice, for stability).
        for _ in range(2):
            w = w - torch.einsum(
                "ejp,ej->ep", Q[:, : j + 1], torch.einsum("ejp,ep->ej", Q[:, : j + 1], w)
            )
        b = torch.linalg.vector_norm(w, dim=1)
        # Breakdown (an invariant subspace found): b at round-off relative to the entries of T.
        scale = alpha[:, : j + 1].abs().amax(1) + (beta[:, :j].abs().amax(1) if j else 0.0)
        broke = (b <= 1e-12 * scale) & (length == k)
        length = torch.where(broke, j + 1, length)
        b = torch.where(length <= j + 1, 0.0, b)
        beta[:, j] = b
        if j + 1 < k:
            q = torch.where(b[:, None] > 0, w / b.clamp(min=1e-300)[:, None], 0.0)
    # After a breakdown T is block diagonal; fill the unused diagonal with α₀, a Rayleigh
    # quotient (≤ the top eigenvalue), so the padding never raises or sets the maximum.
    pad = torch.arange(k, device=theta.device)[None, :] >= length[:, None]
    alpha = torch.where(pad, alpha[:, :1], alpha)
    T = (
        torch.diag_embed(alpha)
        + torch.diag_embed(beta[:, :-1], 1)
        + torch.diag_embed(beta[:, :-1], -1)
    )
    return torch.linalg.eigvalsh(T)[:, -1]
