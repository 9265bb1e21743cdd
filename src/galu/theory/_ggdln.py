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

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize

GateFn = Callable[[torch.Tensor], list[torch.Tensor]]


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
        P = self.X.shape[0]
        L = len(self.widths)
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
    return (
        sigma1
        * ((Ga @ U1) @ Gb.T)
        * (gates_a[0] @ gates_b[0].T)
        * (Xa @ Xb.T / Xa.shape[1])
    )


def _kernel_diag(U1: torch.Tensor, sigma1: float, gates: Sequence[torch.Tensor], X: torch.Tensor):
    G = path_gates(gates, 2)
    return sigma1 * ((G @ U1) * G).sum(1) * (gates[0] ** 2).sum(1) * (X**2).sum(1) / X.shape[1]


def action_and_gradient(
    problem: GGDLNProblem, U: Sequence[torch.Tensor]
) -> tuple[float, list[torch.Tensor]]:
    """The effective action ``S(U)`` and its gradients ``∂S/∂U_l`` (the saddle-point equations),
    from the closed-form expressions in the module docstring."""
    pb, L = problem, problem.depth
    s, N, M = pb.prior_var, pb.widths, pb.gate_counts
    H1 = (pb.gates[0] @ pb.gates[0].T) * (pb.X @ pb.X.T / pb.X.shape[1])
    G2 = path_gates(pb.gates, 2)
    K = s[0] * ((G2 @ U[0]) @ G2.T) * H1
    A = K + pb.temperature * torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
    chol, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        raise FloatingPointError("A = K_R + T I is not positive definite (numerically).")
    v = torch.cholesky_solve(pb.y[:, None], chol)[:, 0]
    S = float(pb.y @ v + 2 * chol.diagonal().log().sum())
    R = torch.cholesky_inverse(chol) - torch.outer(v, v)
    grads = []
    for l in range(L):  # l is 0-based: U[l] is U_{l+1}
        Ul = U[l]
        Uinv = torch.linalg.inv(Ul)
        if l == L - 1:
            Snext_inv = torch.eye(Ul.shape[0], dtype=Ul.dtype, device=Ul.device) / s[L]
            logdet_Snext = Ul.shape[0] * math.log(s[L])
        else:
            inv_next = torch.linalg.inv(U[l + 1]).contiguous()
            Snext_inv = torch.kron(inv_next, torch.eye(M[l + 1]).to(Ul)) / s[l + 1]
            logdet_Snext = M[l + 1] * (
                U[l + 1].shape[0] * math.log(s[l + 1]) + float(torch.logdet(U[l + 1]))
            )
        S += N[l] * float((Snext_inv * Ul).sum() - torch.logdet(Ul) + logdet_Snext)
        g = N[l] * (Snext_inv - Uinv)
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
        self, X: torch.Tensor, y: torch.Tensor, gates: Sequence[torch.Tensor] | None = None,
        task: Any = None,
    ) -> dict[str, float]:  # fmt: skip
        """``bias = mean (⟨f⟩ − y)²``, ``variance = mean ⟨δf²⟩``, ``error = bias + variance``."""
        mean, var = self.predict(X, gates, task)
        bias = float(((mean - y) ** 2).mean())
        variance = float(var.mean())
        return dict(bias=bias, variance=variance, error=bias + variance)


def solve_ggdln(
    problem: GGDLNProblem,
    *,
    limit: str = "finite",
    tol: float = 1e-6,
    max_iter: int = 500,
    init: Sequence[torch.Tensor] | None = None,
    gate_fn: GateFn | None = None,
) -> GGDLNTheory:
    """Minimise the effective action (L-BFGS over Cholesky factors of ``U_l``, started at the GP
    values or ``init``) until the residual is below ``tol`` (residuals reach ~1e-8 at best: the
    line search compares values of ``S``, whose float64 rounding limits the final digits). ``limit="gp"`` returns the
    infinite-width predictor instead (``U_l`` at their GP values)."""
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
    residuals = tuple(
        float(torch.linalg.norm(torch.linalg.cholesky(u).T @ g @ torch.linalg.cholesky(u))) / n
        for u, g, n in zip(U, grads, pb.widths, strict=True)
    )
    if limit == "gp":
        residuals = tuple(0.0 for _ in residuals)
    K = renormalized_kernel(U[0], pb.prior_var[0], pb.gates, pb.X)
    Kgp = renormalized_kernel(U0[0], pb.prior_var[0], pb.gates, pb.X)
    eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
    chol = torch.linalg.cholesky(K + pb.temperature * eye)
    alpha = torch.cholesky_solve(pb.y[:, None], chol)[:, 0]
    return GGDLNTheory(
        problem=pb, order_parameters=tuple(U), kernel=K, gp_kernel=Kgp, action=S,
        residuals=residuals, n_iter=n_iter, converged=max(residuals) <= tol or limit == "gp",
        seconds=time.perf_counter() - t0, limit=limit, gate_fn=gate_fn, _chol=chol, _alpha=alpha,
    )  # fmt: skip


def _minimise(
    pb: GGDLNProblem, U0: list[torch.Tensor], tol: float, max_iter: int
) -> tuple[list[torch.Tensor], int]:
    sizes = [u.shape[0] for u in U0]
    tril = [torch.tril_indices(D, D) for D in sizes]
    dtype, device = U0[0].dtype, U0[0].device
    scale = 1.0 / (pb.X.shape[0] + sum(pb.widths))

    def unpack(theta: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        Cs, U, i = [], [], 0
        for D, idx in zip(sizes, tril, strict=True):
            C = torch.zeros(D, D, dtype=dtype, device=device)
            n = idx.shape[1]
            C[idx[0], idx[1]] = torch.as_tensor(theta[i : i + n], dtype=dtype, device=device)
            i += n
            Cs.append(C)
            U.append(C @ C.T)
        return Cs, U

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        Cs, U = unpack(theta)
        try:
            S, grads = action_and_gradient(pb, U)
        except (FloatingPointError, torch.linalg.LinAlgError):
            return float("inf"), np.zeros_like(theta)
        parts = [(2 * g @ C)[idx[0], idx[1]] for g, C, idx in zip(grads, Cs, tril, strict=True)]
        return S * scale, torch.cat(parts).cpu().numpy() * scale

    theta0 = np.concatenate(
        [torch.linalg.cholesky(u)[idx[0], idx[1]].cpu().numpy() for u, idx in zip(U0, tril, strict=True)]
    )
    total_iter, theta = 0, theta0
    for _ in range(5):  # L-BFGS restarts: each ends on its own criteria; stop on the residual
        res = minimize(
            fun, theta, jac=True, method="L-BFGS-B",
            options=dict(maxiter=max_iter, maxcor=30, gtol=1e-14, ftol=1e-16),
        )  # fmt: skip
        theta, total_iter = res.x, total_iter + int(res.nit)
        Cs, U = unpack(theta)
        _, grads = action_and_gradient(pb, U)
        worst = max(
            float(torch.linalg.norm(C.T @ g @ C)) / n
            for C, g, n in zip(Cs, grads, pb.widths, strict=True)
        )
        if worst <= tol or total_iter >= max_iter:
            break
    return U, total_iter


def ggdln_problem(model: Any, X: torch.Tensor, y: torch.Tensor, temperature: float,
                  task: Any = None) -> GGDLNProblem:  # fmt: skip
    """The :class:`GGDLNProblem` of a :class:`galu.nn.GGDLN` on a training set."""
    y = torch.as_tensor(y, dtype=X.dtype, device=X.device).reshape(-1)
    with torch.no_grad():
        gates = tuple(model.scaled_gates(X, task))
    return GGDLNProblem(
        X=X, y=y, gates=gates, widths=tuple(float(n) for n in model.widths),
        prior_var=tuple(model.prior_var), temperature=float(temperature),
    )  # fmt: skip


def ggdln_theory(
    model: Any,
    X: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    *,
    task: Any = None,
    limit: str = "finite",
    **kw: Any,
) -> GGDLNTheory:
    """The theory for a :class:`galu.nn.GGDLN` (its gates, widths and prior) on ``(X, y)``;
    ``predict(X_test, task=...)`` then computes the test gates from the same model."""
    pb = ggdln_problem(model, X, y, temperature, task)

    def gate_fn(Xt: torch.Tensor, t: Any = None) -> list[torch.Tensor]:
        with torch.no_grad():
            return model.scaled_gates(Xt, t)

    return solve_ggdln(pb, limit=limit, gate_fn=gate_fn, **kw)
