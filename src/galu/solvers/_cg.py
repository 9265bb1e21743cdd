"""Preconditioned conjugate gradients for the shallow GaLU least-squares problem.

The problem is ``min ‖Ψ w − y‖² + λ‖w‖²`` with the lifted design ``Ψ = [X ⊙ g_1, …, X ⊙ g_k]``
(``galu.ops``). CG runs on the normal equations ``(ΨᵀΨ + λI) w = Ψᵀy`` when ``m >= kd`` and on
the dual ``(ΨΨᵀ + λI) α = y``, ``w = Ψᵀα``, when ``kd > m`` (so ``λ = 0`` gives the
minimum-norm interpolant). Every step costs one ``Ψ`` and one ``Ψᵀ`` product: two GEMMs of
``m k d`` multiply-adds. Rounds of float32 CG are refined on float64 right-hand sides, so the
answer has float64 accuracy although the GEMMs run in float32.

The preconditioners model the structure of ``ΨᵀΨ`` and ``ΨΨᵀ`` that slows plain Krylov methods:

* the *shared direction*: all neurons' weights moving together (``k/2`` to ``k/4`` times stiffer
  than the bulk) — captured by the Kronecker factor ``GᵀG/m ⊗ XᵀX`` (primal) and by the rank-d
  term ``(t tᵀ) ⊙ XXᵀ`` (dual);
* the *gate-aligned direction*: each neuron's weight along the direction its own gate opens on
  (for half-space gates, ``w_i ∝ u_i``: the network then computes a sum of ReLUs). It is tens of
  times stiffer than the Kronecker model predicts (26× at m = 16384, d = 64, k = 128); one
  Galerkin-fitted rank-1 term captures it.

Measured on Gaussian inputs with random half-space gates, float32, CG steps until the training
MSE is within 1e-6 relative of the exact fit's: at (m, d, k) = (8192, 64, 256) the dual
preconditioner cuts them from 147 (none) and 68 (rank-d only) to 55; at (16384, 64, 128) the
primal one from 140 (none) and 42 (Kronecker only) to 35. Each preconditioner costs less to build
than three CG steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from galu import ops

Operator = Callable[[torch.Tensor], torch.Tensor]

# Each refinement round asks CG for this much reduction of its float64 right-hand side: float32
# cannot give much more (1e-3 cost the tall benchmark problem a second round: 69 steps instead of
# 44 to the same MSE); in float64 a deeper round saves restarts.
INNER_TOL = {torch.float32: 1e-4, torch.float64: 1e-8}
MIXED_ROUNDS = 60
# A CG run watched for progress gives up when, after this many steps, its average rate predicts
# more than GIVE_UP_FACTOR × the remaining budget (the interpolation threshold kd ≈ m, where
# CG would need thousands of steps and a direct solve takes seconds).
WATCH_AFTER = 16
GIVE_UP_FACTOR = 1.5


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` elementwise, 0 where ``b <= 0`` (a converged or empty system)."""
    return torch.where(b > 0, a / torch.where(b > 0, b, 1.0), 0.0)


def cg(
    apply: Operator,
    S: torch.Tensor,
    tol: float,
    max_iter: int,
    precondition: Operator | None = None,
    *,
    give_up: float | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, int, bool]:
    """Preconditioned CG on ``apply(δ) = S`` for a symmetric PSD ``apply`` (and SPD
    ``precondition`` ≈ its inverse), one system per output along the first dimension of ``S``,
    from ``δ = 0``; stops when every residual is below ``tol·‖S‖``.

    With ``give_up`` (a relative residual the caller is aiming for, possibly below ``tol``
    across several refinement rounds) it also stops once the observed rate of residual decrease
    predicts more than ``GIVE_UP_FACTOR × max_iter`` steps to get there. ``callback(step,
    ‖r‖)`` runs after every step with the residual norm of each output ``(o,)``. Returns
    ``(δ, steps, converged)``.
    """
    o = S.shape[0]
    dims = tuple(range(1, S.ndim))
    shape = (-1,) + (1,) * (S.ndim - 1)
    precondition = precondition if precondition is not None else (lambda r: r)
    delta = torch.zeros_like(S)
    r = S.clone()
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum(dims)
    r0 = torch.linalg.vector_norm(r.reshape(o, -1), dim=1)
    stop = (tol * r0) ** 2
    seen: dict[int, float] = {}  # step -> relative residual, for give_up
    it = 0
    while it < max_iter:
        rr = (r * r).sum(dims)
        if callback is not None and it > 0:
            callback(it, rr.sqrt())
        if bool((rr <= stop).all()):
            return delta, it, True
        if give_up is not None and it % 8 == 0:
            # The rate over the last WATCH_AFTER steps: CG slows down near kd ≈ m, so the
            # recent rate is the honest predictor (the average from the start is optimistic).
            reduced = float((_ratio(rr.sqrt(), r0)).max())
            seen[it] = reduced
            before = seen.get(it - WATCH_AFTER)
            if before is not None and reduced > 0:
                rate = math.log(reduced / before) / WATCH_AFTER if before > 0 else 0.0
                left = math.log(min(tol, give_up) / reduced)
                if left < 0 and (rate >= 0 or left / rate > GIVE_UP_FACTOR * (max_iter - it)):
                    return delta, it, False
        q = apply(p)
        alpha = _ratio(rz, (p * q).sum(dims)).reshape(shape)
        delta.add_(alpha * p)
        r.sub_(alpha * q)
        z = precondition(r)
        rz_new = (r * z).sum(dims)
        p = p.mul_(_ratio(rz_new, rz).reshape(shape)).add_(z)  # z + β p, in place
        rz = rz_new
        it += 1
    rr = (r * r).sum(dims)
    if callback is not None and it > 0:
        callback(it, rr.sqrt())
    return delta, it, bool((rr <= stop).all())


def gate_directions(
    X: torch.Tensor, G: torch.Tensor, XtX: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Unit-norm ``(k, d)``: row ``i`` is the direction of ``x`` that best predicts gate ``i``
    (least squares of ``g_i − mean(g_i)`` on ``X``), each row normalised, then the whole matrix.

    For half-space gates ``1[u_i·x >= 0]`` on symmetric data the row is ``∝ u_i`` (whitened), so
    ``Ψ vec(W₀)`` is a sum of ReLUs. ``None`` when no gate correlates linearly with ``x``.
    ``XtX``: ``XᵀX`` in float64, if the caller has it.
    """
    # Xᵀ(G − 1μᵀ) = XᵀG − (Xᵀ1)μᵀ: the GEMMs run in X's precision, the d × d solve in float64.
    XtX = (X.T @ X).double() if XtX is None else XtX
    mu = G.mean(0).double()
    XtG = (X.T @ G).double() - X.sum(0).double()[:, None] * mu[None, :]
    B = torch.linalg.lstsq(XtX, XtG).solution  # (d, k)
    # Squared norms via vector_norm: no (m, k) temporary (G may be most of the fit's memory).
    sq = torch.linalg.vector_norm(G, dim=0).double() ** 2 / G.shape[0]  # mean of g_i², (k,)
    varying = sq - mu**2 > 1e-12 * float(sq.mean())  # not constant
    B = B * varying
    norms = torch.linalg.vector_norm(B, dim=0)
    if float(norms.max()) <= 0:
        return None
    W0 = torch.where(norms > 0, B / norms.clamp(min=torch.finfo(B.dtype).tiny), 0.0).T
    return (W0 / torch.linalg.vector_norm(W0)).to(X.dtype).contiguous()


def kron_preconditioner(X: torch.Tensor, G: torch.Tensor, ridge: float) -> Operator:
    """``V ↦ P⁻¹ V`` for ``V`` ``(o, k, d)``: a cheap inverse of ``ΨᵀΨ + λI``.

    ``P = A ⊗ C + λI + γ w₀w₀ᵀ``. Block ``(i, j)`` of ``ΨᵀΨ`` is ``Σ_n g_ni g_nj x_n x_nᵀ``;
    replacing it by ``(Σ_n g_ni g_nj / m) · XᵀX`` gives the Kronecker product ``A ⊗ C`` with
    ``A = GᵀG/m`` and ``C = XᵀX`` — exact when the gates are independent of ``x xᵀ``; it captures
    the features' scales and the shared direction. ``w₀ = vec(W₀)`` is the gate-aligned
    direction (:func:`gate_directions`) and ``γ >= 0`` makes ``w₀ᵀPw₀ = w₀ᵀ(ΨᵀΨ + λI)w₀``
    (one product with ``Ψ``). Applied through the eigendecompositions of ``A`` (k × k) and ``C``
    (d × d) and Sherman–Morrison: four small GEMMs. Eigenvalue products below ``1e-10`` of the
    largest are floored (dead or repeated gates make ``A`` singular).
    """
    m = X.shape[0]
    A, C = (G.T @ G).double() / m, (X.T @ X).double()
    la, Qa = torch.linalg.eigh(A)
    lc, Qc = torch.linalg.eigh(C)
    prod = la.clamp(min=0)[:, None] * lc.clamp(min=0)[None, :] + ridge
    inv = 1.0 / prod.clamp(min=1e-10 * float(prod.max()))
    Qa, Qc, inv = Qa.to(X.dtype), Qc.to(X.dtype), inv.to(X.dtype)

    def kron_inv(V: torch.Tensor) -> torch.Tensor:
        return Qa @ ((Qa.T @ V @ Qc) * inv) @ Qc.T

    W0 = gate_directions(X, G, C)
    if W0 is None:
        return kron_inv
    Aw = A @ W0.double() @ C
    normal = ops.lifted_rmatvec(X, G, ops.lifted_matvec(X, G, W0)).double()
    gamma = float((W0.double() * (normal - Aw)).sum())  # ‖w₀‖ = 1
    if not gamma > 0:
        return kron_inv
    z = kron_inv(W0[None])[0]  # P₀⁻¹ w₀
    denom = 1.0 + gamma * float((z * W0).sum())

    def apply(V: torch.Tensor) -> torch.Tensor:
        coef = (gamma / denom) * (V * z).sum((-2, -1), keepdim=True)  # (o, 1, 1)
        return kron_inv(V).sub_(coef * z)

    return apply


def dual_preconditioner(X: torch.Tensor, G: torch.Tensor, ridge: float) -> Operator:
    """``R ↦ M⁻¹ R`` for ``R`` ``(o, m)``: a cheap inverse of ``K + λI``, ``K = ΨΨᵀ``.

    ``M = F Fᵀ + D`` with ``F = [t ⊙ X, √γ f₀]`` (``m × (d + 1)``) and ``D`` diagonal. The kernel
    is ``K_nl = (x_n·x_l)(g_n·g_l)``; ``t_n = g_n·μ / ‖μ‖`` (``μ`` the mean gate vector) makes
    ``(t tᵀ) ⊙ XXᵀ`` its shared-direction part (rank d), and ``f₀ = Ψ vec(W₀)`` is the
    gate-aligned direction (:func:`gate_directions`), with ``γ >= 0`` fitted so that ``M``
    matches ``K`` off the diagonal along ``f₀`` (one product with ``Ψᵀ``).
    ``D = diag(K) − diag(FFᵀ) + λ``, floored at a tenth of ``diag(K)``. Woodbury makes each
    application ``O(m d)``.
    """
    m = X.shape[0]
    dK = torch.linalg.vector_norm(X, dim=1) ** 2 * torch.linalg.vector_norm(G, dim=1) ** 2
    mu = G.mean(0)
    mu_norm = float(torch.linalg.vector_norm(mu))
    cols = []
    if mu_norm > 0:
        cols.append((G @ mu / mu_norm)[:, None] * X)  # (m, d)
    F = torch.cat(cols, 1) if cols else torch.zeros(m, 0, dtype=X.dtype, device=X.device)
    W0 = gate_directions(X, G)
    if W0 is not None:
        f0 = ops.lifted_matvec(X, G, W0).double()  # (m,)
        F1 = F.double()
        f0K = float((ops.lifted_rmatvec(X, G, f0.to(X.dtype)).double() ** 2).sum())
        f0F = float(((F1.T @ f0) ** 2).sum())
        diag_part = float((f0**2 * (dK.double() - (F1**2).sum(1))).sum())
        denom = float((f0**2).sum()) ** 2 - float((f0**4).sum())
        gamma = (f0K - f0F - diag_part) / denom if denom > 0 else 0.0
        if gamma > 0:
            F = torch.cat([F, (math.sqrt(gamma) * f0).to(X.dtype)[:, None]], 1)
    D = torch.maximum(dK - (F * F).sum(1), 0.1 * dK) + ridge
    Di = 1.0 / D.clamp(min=torch.finfo(X.dtype).tiny)
    if F.shape[1] == 0:
        return lambda R: Di * R
    inner = torch.eye(F.shape[1], dtype=torch.float64, device=X.device)
    inner = inner + (F.T.double() * Di.double()) @ F.double()
    Si = torch.linalg.inv(inner).to(X.dtype)
    DiF = (Di[:, None] * F).contiguous()  # (m, r)

    def apply(R: torch.Tensor) -> torch.Tensor:
        return (Di * R).sub_(((R @ DiF) @ Si) @ DiF.T)

    return apply


def normal_operator(
    X: torch.Tensor, G: torch.Tensor, ridge: float, *, dual: bool, g_t: torch.Tensor | None = None
) -> tuple[Operator, Operator]:
    """CG's operator and preconditioner: ``(ΨΨᵀ + λI)`` on ``(o, m)`` with the Woodbury
    preconditioner when ``dual``, else ``(ΨᵀΨ + λI)`` on ``(o, k, d)`` with the Kronecker one;
    GEMMs in ``X``'s precision (``g_t``: a contiguous ``Gᵀ``, see ``ops.lifted_rmatvec``)."""
    if dual:

        def apply(a: torch.Tensor) -> torch.Tensor:  # (o, m) -> (o, m), per output
            out = ops.lifted_matvec(X, G, ops.lifted_rmatvec(X, G, a.T, g_t=g_t)).T
            return out.add_(a, alpha=ridge) if ridge else out

        return apply, dual_preconditioner(X, G, ridge)

    def apply_primal(a: torch.Tensor) -> torch.Tensor:  # (o, k, d) -> (o, k, d)
        out = ops.lifted_rmatvec(X, G, ops.lifted_matvec(X, G, a), g_t=g_t)
        return out.add_(a, alpha=ridge) if ridge else out

    return apply_primal, kron_preconditioner(X, G, ridge)


def refined_cg(
    X: torch.Tensor,
    G: torch.Tensor,
    Y: torch.Tensor,
    ridge: float,
    tol: float,
    max_iter: int,
    *,
    mixed: bool,
    give_up: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[torch.Tensor, int, bool]:
    """Preconditioned CG rounds refined on float64 residuals; float32 GEMMs when ``mixed``.

    Tall or square problems (``m >= kd``) refine ``w``: each round forms the normal residual
    ``s = Ψᵀ(y − Ψw) − λw`` in ``X``'s precision and solves ``(ΨᵀΨ + λI) δ = s`` to ``1e-3``
    relative with float32 GEMMs. Wide problems (``kd > m``) refine dual coefficients ``α`` with
    ``w = Ψᵀα`` formed in ``X``'s precision, solving ``(ΨΨᵀ + λI) δ = y − Ψw − λα``; ``w`` then
    lies in the row space of ``Ψ`` exactly, so ``λ = 0`` gives the minimum-norm interpolant.
    Because each round's right-hand side is formed in full precision and shrinks, float32 limits
    only a round's progress, not the final accuracy (refining on ``y − Ψw`` in the primal would
    floor inconsistent least squares near ``eps32·κ``). Stops on LSQR's rule checked in full
    precision. Returns ``(W, n_iter, converged)``; ``n_iter`` counts CG steps (one matvec and
    one rmatvec each, as an LSQR iteration). ``give_up``: stop early when the rate of progress
    predicts more than the budget (:func:`cg`). ``callback(step, residual)`` runs after every CG
    step (numbered across rounds) with the largest relative residual over the outputs of the
    system CG solves: ``‖Ψᵀ(y − Ψw) − λw‖ / ‖Ψᵀy‖`` (normal equations) or
    ``‖y − Ψw − λα‖ / ‖y‖`` (dual), as the current round's recurrence tracks it.
    """
    inner = torch.float32 if mixed else X.dtype
    X_in, G_in = X.to(inner).contiguous(), G.to(inner).contiguous()
    Gt_in = G_in.T.contiguous()
    inner_tol = max(tol, INNER_TOL.get(inner, 1e-3))
    m, o, k, d = X.shape[0], Y.shape[1], G.shape[1], X.shape[1]
    dual = k * d > m
    apply, precondition = normal_operator(X_in, G_in, ridge, dual=dual, g_t=Gt_in)
    if dual:
        alpha = torch.zeros(o, m, dtype=X.dtype, device=X.device)

    W = torch.zeros(o, k, d, dtype=X.dtype, device=X.device)
    ynorm = torch.linalg.vector_norm(Y, dim=0)
    # ‖Ā‖_F, the scale in LSQR's optimality test: ‖Ψ‖_F² = Σ_{n,i} g_ni² ‖x_n‖².
    row = torch.linalg.vector_norm(G, dim=1) * torch.linalg.vector_norm(X, dim=1)  # (m,)
    anorm = math.sqrt(float((row**2).sum()) + ridge * k * d)
    total = 0
    scale: torch.Tensor | None = None  # each output's first right-hand side norm

    def on_step(step: int, rnorm: torch.Tensor) -> None:
        assert callback is not None and scale is not None
        callback(total + step, float(_ratio(rnorm.to(scale.dtype), scale).max()))

    for round_ in range(MIXED_ROUNDS):
        R = Y - ops.lifted_matvec(X, G, W) if round_ else Y  # (m, o), full precision
        rbar = ((R**2).sum(0) + ridge * (W**2).sum((1, 2))).sqrt()
        small = rbar <= tol * ynorm
        S = None
        if bool(small.all()):
            return W, total, True
        if round_ or not dual:  # from W = 0 the dual needs no Āᵀr̄ (its test cannot pass)
            S = ops.lifted_rmatvec(X, G, R) - ridge * W  # Āᵀ r̄, (o, k, d)
            snorm = torch.linalg.vector_norm(S.reshape(o, -1), dim=1)
            if bool((small | (snorm <= tol * anorm * rbar)).all()):
                return W, total, True
        if total >= max_iter:
            break
        rhs = (R.T - ridge * alpha) if dual else S  # (o, m) or (o, k, d)
        assert rhs is not None
        if scale is None:
            scale = torch.linalg.vector_norm(rhs.reshape(o, -1), dim=1)
        # Giving up is judged against the whole reduction `tol`, not this round's `inner_tol`.
        step, it, ok = cg(
            apply,
            rhs.to(inner),
            inner_tol,
            max_iter - total,
            precondition,
            give_up=tol if give_up else None,
            callback=on_step if callback is not None else None,
        )
        total += it
        if dual:
            alpha = alpha + step.to(X.dtype)
            W = ops.lifted_rmatvec(X, G, alpha.T)
        else:
            W = W + step.to(X.dtype)
        if give_up and not ok:
            break
    return W, total, False
