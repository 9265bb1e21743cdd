"""Exact finite-width theory of globally gated deep linear networks (``docs/ggdln.md``).

The Gibbs posterior ``P(Θ) ∝ exp(−½‖f − y‖²/T) · Π N(0, σ_l²)`` of a :class:`galu.nn.GGDLN`
(any normalisation, written with scaled gates ``ĝ``) is integrated layer by layer from the top.
Given everything below layer ``l``, the output depends on the weights above only through the
order parameter ``U_l = (1/N_l) Σ_i b_i b_iᵀ`` of the effective readout ``b`` of layer ``l``,
a matrix over the *gate paths* above ``l`` (size ``D_{l+1} = Π_{k>l} M_k``), whose law is
Wishart. This leaves the effective action, minimised over positive-definite ``U_1..U_L``::

    S(U) = yᵀA⁻¹y + log det A + Σ_l N_l [Tr(S_{l+1}⁻¹ U_l) − log det U_l + log det S_{l+1}]
    A = K_R + T I,   K_R = σ_1² [Γ_2 U_1 Γ_2ᵀ] ⊙ (Ĝ^1 Ĝ^1ᵀ) ⊙ (X Xᵀ / N_0)
    S_{L+1} = σ_{L+1}² I,   S_l = σ_l² (U_l ⊗ I_{M_l})                      (l = 2..L)

with path-gate matrices ``Γ_{L+1} = Ĝ^{L+1}`` and ``Γ_l = rowkron(Γ_{l+1}, Ĝ^l)``. The only
approximation is the saddle point (exact as ``N_l, P → ∞`` at fixed ``P/N_l``). At the minimum
``∂S/∂U_l = 0``::

    ∂S/∂U_1 = σ_1² Γ_2ᵀ[(A⁻¹ − v vᵀ) ⊙ H_1] Γ_2 + N_1 (S_2⁻¹ − U_1⁻¹),     v = A⁻¹y
    ∂S/∂U_l = N_l (S_{l+1}⁻¹ − U_l⁻¹) + N_{l−1} [M_l U_l⁻¹ − U_l⁻¹ ptr_l(U_{l−1}) U_l⁻¹ / σ_l²]

(``ptr_l`` sums over the layer-``l`` gate index). The predictor is the Gaussian process with
kernel ``K_R``: mean ``k_R(x)ᵀA⁻¹y``, variance ``K_R(x, x) − k_R(x)ᵀA⁻¹k_R(x)``. As ``N → ∞``,
``U_l → Π_{k>l} σ_k² I`` (the GP limit); for a deep linear network every ``U_l`` is a scalar
(back-propagating kernel renormalisation).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize

from galu._linalg import cho_solve

GateFn = Callable[[torch.Tensor], list[torch.Tensor]]


# Default stopping rule of the saddle-point search: the dimensionless residual and the iterations.
_TOL = 1e-6
_MAX_ITER = 500


class SaddlePointWarning(RuntimeWarning):
    """The minimisation of the effective action stopped before its residual reached ``tol``:
    the order parameters, kernel and predictions are those of an approximate saddle point."""


def path_gates(gates: Sequence[torch.Tensor], first: int) -> torch.Tensor:
    """``Γ_first``: the row-wise Kronecker product of the scaled gates of layers
    ``L+1, L, ..., first`` (``first`` is 1-based), shape ``(P, Π M)``; index
    ``(p_{L+1}, ..., p_first)`` in row-major order, matching ``U ⊗ I_M``."""
    G = gates[-1]
    for g in reversed(gates[first - 1 : -1]):
        G = (G[:, :, None] * g[:, None, :]).reshape(G.shape[0], -1)
    return G


def _partial_trace(U: torch.Tensor, m: int) -> torch.Tensor:
    """``ptr(U)[P, Q] = Σ_m U[(P, m), (Q, m)]`` for ``U`` of size ``(D·m, D·m)``."""
    D = U.shape[0] // m
    return U.reshape(D, m, D, m).diagonal(dim1=1, dim2=3).sum(-1)


@dataclass(frozen=True)
class GGDLNProblem:
    """A training set with its scaled gates, widths ``N_1..N_L``, prior variances
    ``σ_1²..σ_{L+1}²`` and temperature ``T`` (the likelihood variance)."""

    X: torch.Tensor
    y: torch.Tensor
    gates: tuple[torch.Tensor, ...]
    widths: tuple[float, ...]
    prior_var: tuple[float, ...]
    temperature: float

    def __post_init__(self) -> None:
        if self.X.ndim != 2:
            raise ValueError(f"`X` must be a (P, N0) matrix; got shape {tuple(self.X.shape)}.")
        P = self.X.shape[0]
        L = len(self.widths)
        if L < 1:
            raise ValueError("`widths` must list at least one hidden layer.")
        if self.y.shape != (P,):
            raise ValueError(f"`y` must have shape ({P},); got {tuple(self.y.shape)}.")
        if len(self.gates) != L + 1 or any(g.shape[0] != P for g in self.gates):
            raise ValueError(f"`gates` must be {L + 1} tensors of shape ({P}, M_l).")
        if len(self.prior_var) != L + 1 or not all(s > 0 for s in self.prior_var):
            raise ValueError(f"`prior_var` (={self.prior_var}) must be {L + 1} positive numbers.")
        if not all(n > 0 for n in self.widths):
            raise ValueError(f"`widths` (={self.widths}) must be positive.")
        if not self.temperature > 0:
            raise ValueError(f"`temperature` (={self.temperature!r}) must be > 0.")

    @property
    def depth(self) -> int:
        return len(self.widths)

    @functools.cached_property
    def input_kernel(self) -> torch.Tensor:
        """``H_1 = (Ĝ^1 Ĝ^1ᵀ) ⊙ (X Xᵀ / N_0)``, computed once."""
        return (self.gates[0] @ self.gates[0].T) * (self.X @ self.X.T / self.X.shape[1])

    @functools.cached_property
    def path_gates_above(self) -> torch.Tensor:
        """``Γ_2``, computed once."""
        return path_gates(self.gates, 2)

    @property
    def gate_counts(self) -> tuple[int, ...]:
        return tuple(g.shape[1] for g in self.gates)

    def path_sizes(self) -> tuple[int, ...]:
        """``D_{l+1}``: the size of ``U_l`` for ``l = 1..L``."""
        M = self.gate_counts
        return tuple(math.prod(M[l:]) for l in range(1, self.depth + 1))

    def gp_order_parameters(self) -> list[torch.Tensor]:
        """``U_l = Π_{k>l} σ_k² I``: the infinite-width values."""
        s = self.prior_var
        return [
            torch.eye(D, dtype=self.X.dtype, device=self.X.device) * math.prod(s[l + 1 :])
            for l, D in enumerate(self.path_sizes())
        ]


def renormalized_kernel(
    U1: torch.Tensor,
    sigma1: float,
    gates_a: Sequence[torch.Tensor],
    Xa: torch.Tensor,
    gates_b: Sequence[torch.Tensor] | None = None,
    Xb: torch.Tensor | None = None,
) -> torch.Tensor:
    """``K_R(a, b) = σ_1² [Γ_2(a) U_1 Γ_2(b)ᵀ] ⊙ (Ĝ^1(a) Ĝ^1(b)ᵀ) ⊙ (X_a X_bᵀ / N_0)``."""
    gates_b = gates_a if gates_b is None else gates_b
    Xb = Xa if Xb is None else Xb
    Ga, Gb = path_gates(gates_a, 2), path_gates(gates_b, 2)
    return sigma1 * ((Ga @ U1) @ Gb.T) * (gates_a[0] @ gates_b[0].T) * (Xa @ Xb.T / Xa.shape[1])


def _kernel_diag(U1: torch.Tensor, sigma1: float, gates: Sequence[torch.Tensor], X: torch.Tensor):
    G = path_gates(gates, 2)
    return sigma1 * ((G @ U1) * G).sum(1) * (gates[0] ** 2).sum(1) * (X**2).sum(1) / X.shape[1]


def _factor(pb: GGDLNProblem, U1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """Cholesky factor of ``A = K_R + T I``, ``v = A⁻¹y`` and the data term
    ``yᵀA⁻¹y + log det A``; ``None`` when ``A`` is not numerically positive definite."""
    H1, G2 = pb.input_kernel, pb.path_gates_above
    A = pb.prior_var[0] * ((G2 @ U1) @ G2.T) * H1
    A = A + pb.temperature * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    chol, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        return None
    v = cho_solve(pb.y[:, None], chol)[:, 0]
    return chol, v, float(pb.y @ v + 2 * chol.diagonal().log().sum())


def residuals_of(
    U: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], widths: Sequence[float]
) -> tuple[float, ...]:
    """``‖C_lᵀ (∂S/∂U_l) C_l‖_F / N_l`` with ``U_l = C_l C_lᵀ``: the dimensionless saddle-point
    residual of each layer."""
    out = []
    for u, g, n in zip(U, grads, widths, strict=True):
        C = torch.linalg.cholesky(u)
        out.append(float(torch.linalg.norm(C.T @ g @ C)) / n)
    return tuple(out)


def action_and_gradient(
    problem: GGDLNProblem, U: Sequence[torch.Tensor]
) -> tuple[float, list[torch.Tensor]]:
    """The effective action ``S(U)`` and its gradients ``∂S/∂U_l`` (the saddle-point equations),
    from the closed-form expressions in the module docstring."""
    pb, L = problem, problem.depth
    s, N, M = pb.prior_var, pb.widths, pb.gate_counts
    H1, G2 = pb.input_kernel, pb.path_gates_above
    factor = _factor(pb, U[0])
    if factor is None:
        raise FloatingPointError("A = K_R + T I is not positive definite (numerically).")
    chol, v, S = factor
    R = torch.cholesky_inverse(chol) - torch.outer(v, v)
    S += float(_prior_action(pb, U))
    grads = []
    for l in range(L):  # l is 0-based: U[l] is U_{l+1}
        Ul = U[l]
        Uinv = torch.linalg.inv(Ul)
        g = N[l] * (_next_prior_inv(pb, U, l) - Uinv)
        if l == 0:
            g = g + s[0] * (G2.T @ (R * H1) @ G2)
        else:
            below = _partial_trace(U[l - 1], M[l])
            g = g + N[l - 1] * (M[l] * Uinv - Uinv @ below @ Uinv / s[l])
        grads.append((g + g.T) / 2)
    return S, grads


@dataclass(frozen=True)
class GGDLNTheory:
    """The saddle point and the predictor it defines.

    ``order_parameters``: ``U_1..U_L`` (``U_l`` indexed by the gate paths above layer ``l``);
    ``kernel``: the renormalised kernel ``K_R`` on the training points; ``gp_kernel``: its
    infinite-width value; ``residuals``: ``‖C_lᵀ (∂S/∂U_l) C_l‖_F / N_l`` with ``U_l = C_l C_lᵀ``
    (dimensionless; 0 at an exact saddle point), ``residual`` their maximum.
    """

    problem: GGDLNProblem
    order_parameters: tuple[torch.Tensor, ...]
    kernel: torch.Tensor
    gp_kernel: torch.Tensor
    action: float
    residuals: tuple[float, ...]
    n_iter: int
    converged: bool
    seconds: float
    limit: str = "finite"
    gate_fn: GateFn | None = field(default=None, repr=False, compare=False)
    _chol: torch.Tensor = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _alpha: torch.Tensor = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def residual(self) -> float:
        return max(self.residuals, default=0.0)

    def predict(
        self, X: torch.Tensor, gates: Sequence[torch.Tensor] | None = None, task: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of ``f`` at test inputs ``X``. Pass their scaled
        ``gates``, or build the theory with :func:`ggdln_theory` to have them computed."""
        if gates is None:
            if self.gate_fn is None:
                raise ValueError("pass the test points' scaled `gates` (no model was given).")
            gates = self.gate_fn(X) if task is None else self.gate_fn(X, task)  # type: ignore[call-arg]
        pb = self.problem
        U1, s1 = self.order_parameters[0], pb.prior_var[0]
        k = renormalized_kernel(U1, s1, gates, X, pb.gates, pb.X)
        mean = k @ self._alpha
        w = torch.linalg.solve_triangular(self._chol, k.T, upper=False)
        var = _kernel_diag(U1, s1, gates, X) - (w**2).sum(0)
        return mean, var.clamp_min(0.0)

    def generalization(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        gates: Sequence[torch.Tensor] | None = None,
        task: Any = None,
    ) -> dict[str, float]:
        """``bias = mean (⟨f⟩ − y)²``, ``variance = mean ⟨δf²⟩``, ``error = bias + variance``."""
        mean, var = self.predict(X, gates, task)
        y = torch.as_tensor(y, dtype=mean.dtype, device=mean.device).reshape(-1)
        bias = float(((mean - y) ** 2).mean())
        variance = float(var.mean())
        return dict(bias=bias, variance=variance, error=bias + variance)


def solve_ggdln(
    problem: GGDLNProblem,
    *,
    limit: str = "finite",
    tol: float = _TOL,
    max_iter: int = _MAX_ITER,
    init: Sequence[torch.Tensor] | None = None,
    gate_fn: GateFn | None = None,
) -> GGDLNTheory:
    """Minimise the effective action, started at the GP values or ``init``, until the residual
    is below ``tol`` (see :func:`_minimise`: Newton where affordable, else L-BFGS, whose residual
    floor is ~1e-8 because its line search compares float64 values of ``S``). ``limit="gp"``
    returns the infinite-width predictor instead (``U_l`` at their GP values).

    Warns with :class:`SaddlePointWarning` (giving the residual) when the residual stays above
    ``tol``; the result then has ``converged=False``."""
    return _solve(problem, limit, tol, max_iter, init, gate_fn, "solve_ggdln")


def _solve(
    problem: GGDLNProblem,
    limit: str,
    tol: float,
    max_iter: int,
    init: Sequence[torch.Tensor] | None,
    gate_fn: GateFn | None,
    caller: str,
) -> GGDLNTheory:
    if limit not in ("finite", "gp"):
        raise ValueError(f"`limit` (={limit!r}) must be 'finite' or 'gp'.")
    t0 = time.perf_counter()
    pb = problem
    U0 = pb.gp_order_parameters()
    if limit == "gp":
        U, n_iter = U0, 0
    else:
        U, n_iter = _minimise(pb, list(init) if init is not None else U0, tol, max_iter)
    S, grads = action_and_gradient(pb, U)
    gp = limit == "gp"  # the GP values are exact there: no saddle point to check
    residuals = tuple(0.0 for _ in U) if gp else residuals_of(U, grads, pb.widths)
    K = renormalized_kernel(U[0], pb.prior_var[0], pb.gates, pb.X)
    Kgp = renormalized_kernel(U0[0], pb.prior_var[0], pb.gates, pb.X)
    eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
    chol = torch.linalg.cholesky(K + pb.temperature * eye)
    alpha = cho_solve(pb.y[:, None], chol)[:, 0]
    converged = max(residuals) <= tol or gp
    if not converged:
        warnings.warn(
            f"{caller}: the saddle point did not converge: residual {max(residuals):.1e} > "
            f"tol={tol:g} after {n_iter} iterations in all (a warm start of the overall scales, "
            "then Newton where affordable, else L-BFGS, each capped by `max_iter`); the "
            "order parameters, kernel and predictions are approximate. Try: raise `max_iter` "
            f"(={max_iter}), loosen `tol` (L-BFGS floors near 1e-8), or start from a nearby "
            "solution with `init=` (the order parameters solved at a neighbouring temperature "
            "or width).",
            SaddlePointWarning,
            stacklevel=3,
        )
    return GGDLNTheory(
        problem=pb,
        order_parameters=tuple(U),
        kernel=K,
        gp_kernel=Kgp,
        action=S,
        residuals=residuals,
        n_iter=n_iter,
        converged=converged,
        seconds=time.perf_counter() - t0,
        limit=limit,
        gate_fn=gate_fn,
        _chol=chol,
        _alpha=alpha,
    )


def _minimise(
    pb: GGDLNProblem, U0: list[torch.Tensor], tol: float, max_iter: int
) -> tuple[list[torch.Tensor], int]:
    """The saddle point, in stages (each counts its iterations toward ``max_iter``):

    1. :func:`_warm_start_scales` — L-BFGS over one scale per layer (``U_l = e^{a_l} U0_l``: a
       few cheap iterations that find the overall renormalisation);
    2. :func:`_newton` — damped Newton on the full matrices with the exact Hessian where it is
       affordable (quadratic convergence in ~10–20 steps);
    3. :func:`_lbfgs_cholesky` — otherwise, or if Newton stops short, L-BFGS in log-Cholesky
       coordinates, which keep every ``U_l`` positive definite.
    """
    start, n_iter = _warm_start_scales(pb, U0)
    if _newton_affordable(pb):
        U, n_newton, ok = _newton(pb, start, tol, max_iter)
        n_iter += n_newton
        if ok:
            return U, n_iter
        start = U
    return _lbfgs_cholesky(pb, start, tol, max_iter, n_iter)


def _action_scale(pb: GGDLNProblem) -> float:
    """The minimisers see ``S / (P + Σ N_l)``: an action of order one."""
    return 1.0 / (pb.X.shape[0] + sum(pb.widths))


def _safe_action(
    pb: GGDLNProblem, U: list[torch.Tensor]
) -> tuple[float, list[torch.Tensor]] | None:
    """``action_and_gradient``, or None where ``U`` is outside its domain (a minimiser's trial
    step that makes a kernel indefinite)."""
    try:
        return action_and_gradient(pb, U)
    except (FloatingPointError, torch.linalg.LinAlgError):
        return None


def _warm_start_scales(pb: GGDLNProblem, U0: list[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
    """Stage 1 of :func:`_minimise`: the best ``e^{a_l} U0_l`` and the L-BFGS iterations."""
    scale = _action_scale(pb)

    def fun(a: np.ndarray) -> tuple[float, np.ndarray]:
        U = [math.exp(ai) * u for ai, u in zip(a, U0, strict=True)]
        out = _safe_action(pb, U)
        if out is None:
            return float("inf"), np.zeros_like(a)
        S, grads = out
        return S * scale, np.array(
            [float((g * u).sum()) for g, u in zip(grads, U, strict=True)]
        ) * scale

    res = minimize(
        fun, np.zeros(len(U0)), jac=True, method="L-BFGS-B", options=dict(maxiter=100, gtol=1e-10)
    )
    return [math.exp(ai) * u for ai, u in zip(res.x, U0, strict=True)], int(res.nit)


def _lbfgs_cholesky(
    pb: GGDLNProblem, start: list[torch.Tensor], tol: float, max_iter: int, n_iter: int
) -> tuple[list[torch.Tensor], int]:
    """Stage 3 of :func:`_minimise`: L-BFGS over ``U_l = C_l C_lᵀ`` (``C_l`` lower triangular,
    ``log diag`` free) from ``start``, restarted until the residual is below ``tol`` or the
    iterations (``n_iter`` so far) reach ``max_iter``."""
    sizes = [u.shape[0] for u in start]
    dtype, device = start[0].dtype, start[0].device
    scale = _action_scale(pb)
    tril = [torch.tril_indices(D, D, offset=-1) for D in sizes]

    def unpack(theta: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        Cs, U, i = [], [], 0
        t = torch.as_tensor(theta, dtype=dtype, device=device)
        for D, idx in zip(sizes, tril, strict=True):
            C = torch.diag(t[i : i + D].exp())
            i += D
            n = idx.shape[1]
            C[idx[0], idx[1]] = t[i : i + n]
            i += n
            Cs.append(C)
            U.append(C @ C.T)
        return Cs, U

    def pack(U: list[torch.Tensor]) -> np.ndarray:
        parts = []
        for u, idx in zip(U, tril, strict=True):
            C = torch.linalg.cholesky(u)
            parts += [C.diagonal().log(), C[idx[0], idx[1]]]
        return torch.cat(parts).cpu().numpy()

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        Cs, U = unpack(theta)
        out = _safe_action(pb, U)
        if out is None:
            return float("inf"), np.zeros_like(theta)
        S, grads = out
        parts = []
        for g, C, idx in zip(grads, Cs, tril, strict=True):
            dC = 2 * g @ C
            parts += [dC.diagonal() * C.diagonal(), dC[idx[0], idx[1]]]
        return S * scale, torch.cat(parts).cpu().numpy() * scale

    theta = pack(start)
    for _ in range(5):  # restarts: each L-BFGS run ends on its own criteria; stop on the residual
        res = minimize(
            fun,
            theta,
            jac=True,
            method="L-BFGS-B",
            options=dict(maxiter=max_iter, maxcor=30, gtol=1e-14, ftol=1e-16),
        )
        theta, n_iter = res.x, n_iter + int(res.nit)
        _, U = unpack(theta)
        _, grads = action_and_gradient(pb, U)
        worst = max(residuals_of(U, grads, pb.widths))
        if worst <= tol or n_iter >= max_iter:
            break
    return U, n_iter


_NEWTON_MAX_BYTES = 2 * 1024**3
_NEWTON_MAX_PARAMS = 600


def _newton_affordable(pb: GGDLNProblem) -> bool:
    """Newton needs the ``D² × r²`` matrix ``Y`` (``r = M_1 N_0``, the rank of ``H_1``) and a
    Hessian over every symmetric entry; beyond a few hundred entries L-BFGS is cheaper."""
    D, r = pb.path_sizes()[0], pb.gate_counts[0] * pb.X.shape[1]
    n = sum(d * (d + 1) // 2 for d in pb.path_sizes())
    # Y, its reshaped copy and the product's inputs: about three D²r² float64 arrays at once
    return 3 * D * D * r * r * 8 <= _NEWTON_MAX_BYTES and r <= 4096 and n <= _NEWTON_MAX_PARAMS


def _sym_index(D: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.triu_indices(D, D)
    return idx[0], idx[1]


def _unvec(u: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    out, i = [], 0
    for D in sizes:
        r, c = _sym_index(D)
        n = r.shape[0]
        U = torch.zeros(D, D, dtype=u.dtype, device=u.device)
        U = U.index_put((r, c), u[i : i + n]).index_put((c, r), u[i : i + n])
        out.append(U)
        i += n
    return out


def _next_prior_inv(pb: GGDLNProblem, U: Sequence[torch.Tensor], l: int) -> torch.Tensor:
    """``S_{l+2}⁻¹`` for 0-based ``l``: the inverse prior covariance of layer ``l + 1``'s
    effective readout (``I/σ_{L+1}²`` at the top, ``(U_{l+2}⁻¹ ⊗ I)/σ²`` below)."""
    s, M, L = pb.prior_var, pb.gate_counts, pb.depth
    if l == L - 1:
        return torch.eye(U[l].shape[0]).to(U[l]) / s[L]
    inv_next = torch.linalg.inv(U[l + 1]).contiguous()
    return torch.kron(inv_next, torch.eye(M[l + 1]).to(U[l])) / s[l + 1]


def _prior_action(pb: GGDLNProblem, U: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Σ_l N_l [Tr(S_{l+1}⁻¹U_l) − log det U_l + log det S_{l+1}]`` (differentiable)."""
    s, N, M, L = pb.prior_var, pb.widths, pb.gate_counts, pb.depth
    total = U[0].new_zeros(())
    for l in range(L):
        if l == L - 1:
            logdet_next = U[l].new_tensor(U[l].shape[0] * math.log(s[L]))
        else:
            D = U[l + 1].shape[0]
            logdet_next = M[l + 1] * (D * math.log(s[l + 1]) + torch.logdet(U[l + 1]))
        trace = (_next_prior_inv(pb, U, l) * U[l]).sum()
        total = total + N[l] * (trace - torch.logdet(U[l]) + logdet_next)
    return total


def _data_newton_terms(
    pb: GGDLNProblem, U1: torch.Tensor
) -> tuple[float, torch.Tensor, torch.Tensor] | None:
    """Data term ``yᵀA⁻¹y + log det A``, its gradient and Hessian over the entries of ``U_1``.

    With ``B_PQ = diag(Γ_P) H_1 diag(Γ_Q)`` and ``K = σ_1² Σ U_PQ B_PQ``::

        ∂²/∂U_PQ ∂U_RS = σ_1⁴ [2 vᵀB_PQ A⁻¹ B_RS v − Tr(A⁻¹B_PQ A⁻¹B_RS)]

    The trace uses ``H_1 = ZZᵀ`` (``Z = rowkron(Ĝ^1, X)/√N_0``, rank ``r``):
    ``Tr(...) = Σ_ij Y_QR[i,j] Y_SP[j,i]`` with ``Y_QR = (Γ_Q ⊙ Z)ᵀ A⁻¹ (Γ_R ⊙ Z)``.
    """
    s1, P = pb.prior_var[0], pb.X.shape[0]
    G2, H1 = pb.path_gates_above, pb.input_kernel
    D = G2.shape[1]
    factor = _factor(pb, U1)
    if factor is None:
        return None
    chol, v, value = factor
    Z = (pb.gates[0][:, :, None] * pb.X[:, None, :]).reshape(P, -1) / math.sqrt(pb.X.shape[1])
    r = Z.shape[1]
    W = (G2[:, :, None] * Z[:, None, :]).reshape(P, D * r)  # columns (q, i): Γ_q ⊙ Z_i
    # Y[q, r, i, j] = (Γ_q ⊙ Z_i)ᵀ A⁻¹ (Γ_r ⊙ Z_j), from triangular solves (no inverse)
    Y = (W.T @ cho_solve(W, chol)).reshape(D, r, D, r).permute(0, 2, 1, 3)
    # Γᵀ(A⁻¹ ⊙ H_1)Γ = Σ_i Y[:, :, i, i]
    grad = s1 * (Y.diagonal(dim1=2, dim2=3).sum(-1) - (G2 * v[:, None]).T @ H1 @ (G2 * v[:, None]))
    # T2[p,q,r,s] = Σ_ij Y[q,r,ij] Y[p,s,ij]  (A⁻¹ symmetric)
    Y = Y.reshape(D * D, r * r)
    T2 = (Y @ Y.T).reshape(D, D, D, D).permute(2, 0, 1, 3)
    Hv = H1 @ (G2 * v[:, None])  # (P, D): H (Γ_S ⊙ v)
    Bv = (G2[:, :, None] * Hv[:, None, :]).reshape(P, D * D)  # columns (R, S): B_RS v
    EBv = cho_solve(Bv, chol)
    T1 = (Bv.T @ EBv).reshape(D, D, D, D).permute(1, 0, 2, 3)
    hess = s1**2 * (2 * T1 - T2)
    return value, grad, hess.reshape(D * D, D * D)


def _value(pb: GGDLNProblem, vec: torch.Tensor, sizes: list[int]) -> float | None:
    """``S`` alone (one Cholesky of ``A``), for line-search trials; ``None`` outside the cone."""
    Us = _unvec(vec, sizes)
    if any(int(torch.linalg.cholesky_ex(U)[1]) != 0 for U in Us):
        return None
    factor = _factor(pb, Us[0])
    if factor is None:
        return None
    data = factor[2]
    with torch.no_grad():
        return data + float(_prior_action(pb, Us))


def _newton_system(
    pb: GGDLNProblem, vec: torch.Tensor, sizes: list[int], J: torch.Tensor
) -> tuple[float, torch.Tensor, torch.Tensor] | None:
    """``S``, its gradient and Hessian over the symmetric entries ``vec`` of every ``U_l``
    (``None`` outside the positive-definite cone); ``J`` maps the first layer's symmetric
    entries to the full ``D × D`` entries."""
    Us = _unvec(vec, sizes)
    if any(int(torch.linalg.cholesky_ex(U)[1]) != 0 for U in Us):
        return None
    data = _data_newton_terms(pb, Us[0])
    if data is None:
        return None
    val, g1, h1 = data
    n1 = J.shape[1]

    def prior_fn(w: torch.Tensor) -> torch.Tensor:
        return _prior_action(pb, _unvec(w, sizes))

    pv = vec.detach().requires_grad_(True)
    pval = prior_fn(pv)
    (pg,) = torch.autograd.grad(pval, pv)
    ph = torch.autograd.functional.hessian(prior_fn, vec.detach(), vectorize=True)
    g = pg.detach().clone()
    g[:n1] += J.T @ g1.reshape(-1)
    H = ph.clone()
    H[:n1, :n1] += J.T @ h1 @ J
    return val + float(pval.detach()), g, (H + H.T) / 2


def _symmetric_jacobian(D: int, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """``∂ vec(U) / ∂ u`` for the upper-triangle parameters ``u`` of a symmetric ``D × D``."""
    r1, c1 = _sym_index(D)
    n1 = r1.shape[0]
    J = torch.zeros(D * D, n1, dtype=dtype, device=device)
    J[r1 * D + c1, torch.arange(n1)] = 1.0
    J[c1 * D + r1, torch.arange(n1)] = 1.0
    return J


def _newton(
    pb: GGDLNProblem, U_start: list[torch.Tensor], tol: float, max_iter: int
) -> tuple[list[torch.Tensor], int, bool]:
    """Damped Newton on the symmetric entries of every ``U_l``: the data term's exact Hessian
    (:func:`_data_newton_terms`, a few ``P × P`` products) plus autograd on the small-matrix
    prior terms; Levenberg damping when the Hessian is not positive definite, backtracking
    until ``S`` decreases and every ``U_l`` stays positive definite."""
    sizes = [u.shape[0] for u in U_start]
    J = _symmetric_jacobian(sizes[0], U_start[0].dtype, U_start[0].device)
    u = torch.cat([U[_sym_index(U.shape[0])] for U in U_start])

    def total(vec: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor] | None:
        return _newton_system(pb, vec, sizes, J)

    cur = total(u)
    if cur is None:
        return U_start, 0, False
    for it in range(1, max_iter + 1):
        S, g, H = cur
        Us = _unvec(u, sizes)
        # matrix gradients from the symmetric-entry gradient (off-diagonal entries count twice)
        grads = _unvec(g, sizes)
        grads = [(G + torch.diag(G.diagonal())) / 2 for G in grads]
        worst = max(residuals_of(Us, grads, pb.widths))
        if worst <= tol:
            return Us, it - 1, True
        mu, scale, L = 0.0, float(H.diagonal().abs().mean()), None
        for _ in range(14):  # Levenberg damping 0, 1e-6, ..., 1e6 times the mean |diagonal|
            Hd = H + mu * scale * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
            L, info = torch.linalg.cholesky_ex(Hd)
            if int(info) == 0:
                break
            mu, L = (1e-6 if mu == 0 else mu * 10), None
        if L is None or not math.isfinite(scale):
            return Us, it, False
        step = -cho_solve(g[:, None], L)[:, 0]
        t, accepted = 1.0, False
        for _ in range(30):
            value = _value(pb, u + t * step, sizes)
            if value is not None and value <= S + 1e-4 * t * float(g @ step):
                trial = total(u + t * step)
                if trial is not None:
                    u, cur, accepted = u + t * step, trial, True
                    break
            t /= 2
        if not accepted:
            return _unvec(u, sizes), it, False
    return _unvec(u, sizes), max_iter, False


def ggdln_problem(
    model: Any, X: torch.Tensor, y: torch.Tensor, temperature: float, task: Any = None
) -> GGDLNProblem:
    """The :class:`GGDLNProblem` of a :class:`galu.nn.GGDLN` on a training set."""
    y = torch.as_tensor(y, dtype=X.dtype, device=X.device).reshape(-1)
    with torch.no_grad():
        gates = tuple(model.scaled_gates(X, task))
    return GGDLNProblem(
        X=X,
        y=y,
        gates=gates,
        widths=tuple(float(n) for n in model.widths),
        prior_var=tuple(model.prior_var),
        temperature=float(temperature),
    )


def ggdln_theory(
    model: Any,
    X: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    *,
    task: Any = None,
    limit: str = "finite",
    tol: float = _TOL,
    max_iter: int = _MAX_ITER,
    init: Sequence[torch.Tensor] | None = None,
) -> GGDLNTheory:
    """The theory for a :class:`galu.nn.GGDLN` (its gates, widths and prior) on ``(X, y)``;
    ``predict(X_test, task=...)`` then computes the test gates from the same model. ``tol``,
    ``max_iter``, ``init``: as :func:`solve_ggdln` (a :class:`SaddlePointWarning` says when the
    residual stays above ``tol``)."""
    pb = ggdln_problem(model, X, y, temperature, task)

    def gate_fn(Xt: torch.Tensor, t: Any = None) -> list[torch.Tensor]:
        with torch.no_grad():
            return model.scaled_gates(Xt, t)

    return _solve(pb, limit, tol, max_iter, init, gate_fn, "ggdln_theory")
