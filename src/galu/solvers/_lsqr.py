"""Matrix-free LSQR (Paige & Saunders 1982) for several right-hand sides at once, in torch.

Solves ``min ‖A x − b‖² + damp² ‖x‖²`` for each column of ``B`` using only the products
``A v`` and ``Aᵀ u``, so ``A`` is never formed. Started from ``x = 0`` it converges to the
minimum-norm solution when ``damp = 0``. All scalar recurrences carry one value per column,
so ``o`` right-hand sides cost one pass of batched GEMMs per iteration. Runs on any device the
operator's tensors live on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LSQRResult:
    x: torch.Tensor  # shape of Aᵀ applied to B
    n_iter: int
    converged: bool
    residual_norm: torch.Tensor  # (o,) estimate of ‖[A; damp·I] x − [b; 0]‖
    normal_residual_norm: torch.Tensor  # (o,) estimate of ‖Aᵀ(b − A x) − damp² x‖
    operator_norm: torch.Tensor  # (o,) Frobenius-norm estimate of the damped operator Ā


def _col_norm(t: torch.Tensor, col_dim: int) -> torch.Tensor:
    """Euclidean norm of each right-hand side; ``col_dim`` is where the ``o`` columns sit."""
    dims = [i for i in range(t.ndim) if i != col_dim]
    return torch.linalg.vector_norm(t, dim=dims)


def _scale(t: torch.Tensor, s: torch.Tensor, col_dim: int) -> torch.Tensor:
    shape = [1] * t.ndim
    shape[col_dim] = -1
    return t * s.reshape(shape)


def _safe_div(t: torch.Tensor, s: torch.Tensor, col_dim: int) -> torch.Tensor:
    inv = torch.where(s > 0, 1.0 / torch.where(s > 0, s, 1.0), 0.0)
    return _scale(t, inv, col_dim)


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / torch.where(b > 0, b, 1.0), 0.0)


def lsqr(
    matvec: Operator,
    rmatvec: Operator,
    b: torch.Tensor,
    *,
    damp: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 1000,
    u_col_dim: int = 1,
    v_col_dim: int = 0,
    callback: Callable[[int, float], None] | None = None,
) -> LSQRResult:
    """LSQR on ``b`` whose ``o`` right-hand sides sit along ``u_col_dim``.

    ``matvec`` maps an ``x``-shaped tensor (columns along ``v_col_dim``) to a ``b``-shaped one and
    ``rmatvec`` back. Stops when every column satisfies ``‖r‖ ≤ tol·‖b‖`` (consistent systems) or
    ``‖Āᵀ r̄‖ ≤ tol·‖Ā‖·‖r̄‖`` (least squares optimality, Ā the damped operator).
    ``callback(iteration, residual)`` runs after every iteration with the largest relative
    residual ``‖r̄‖ / ‖b‖`` over the columns (non-increasing in exact arithmetic; it levels off at
    the least-squares residual of an inconsistent system).
    """
    if not 0 <= u_col_dim < b.ndim:
        raise ValueError(
            f"`u_col_dim` (={u_col_dim}) must index a dimension of `b` (shape {tuple(b.shape)}); "
            "for a single right-hand side pass b[:, None]."
        )
    u = b.clone()
    beta = _col_norm(u, u_col_dim)
    u = _safe_div(u, beta, u_col_dim)
    v = rmatvec(u)
    alfa = _col_norm(v, v_col_dim)
    v = _safe_div(v, alfa, v_col_dim)
    w = v.clone()
    x = torch.zeros_like(v)
    bnorm = beta.clone()
    phibar, rhobar = beta.clone(), alfa.clone()
    anorm2 = torch.zeros_like(beta)
    res2 = torch.zeros_like(beta)
    damp2 = float(damp) ** 2
    rnorm, arnorm = beta.clone(), alfa * beta
    if bool((arnorm == 0).all()):
        return LSQRResult(x, 0, True, rnorm, arnorm, torch.sqrt(alfa**2 + damp2))
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        u = matvec(v) - _scale(u, alfa, u_col_dim)
        beta = _col_norm(u, u_col_dim)
        u = _safe_div(u, beta, u_col_dim)
        anorm2 = anorm2 + alfa**2 + beta**2 + damp2
        v = rmatvec(u) - _scale(v, beta, v_col_dim)
        alfa = _col_norm(v, v_col_dim)
        v = _safe_div(v, alfa, v_col_dim)

        # Rotation eliminating the damping term, then the subdiagonal beta.
        rhobar1 = torch.sqrt(rhobar**2 + damp2)
        cs1 = torch.where(rhobar1 > 0, rhobar / rhobar1, 1.0)
        sn1 = torch.where(rhobar1 > 0, damp / rhobar1, 0.0)
        psi = sn1 * phibar
        phibar = cs1 * phibar
        rho = torch.sqrt(rhobar1**2 + beta**2)
        safe_rho = torch.where(rho > 0, rho, 1.0)
        cs, sn = rhobar1 / safe_rho, beta / safe_rho
        theta = sn * alfa
        rhobar = -cs * alfa
        phi = cs * phibar
        phibar = sn * phibar

        x = x + _scale(w, torch.where(rho > 0, phi / safe_rho, 0.0), v_col_dim)
        w = v - _scale(w, torch.where(rho > 0, theta / safe_rho, 0.0), v_col_dim)

        res2 = res2 + psi**2
        rnorm = torch.sqrt(phibar**2 + res2)
        arnorm = alfa * torch.abs(cs * phibar)
        anorm = torch.sqrt(anorm2)
        small_r = rnorm <= tol * bnorm
        optimal = arnorm <= tol * anorm * rnorm
        if callback is not None:
            callback(it, float(_ratio(rnorm, bnorm).max()))
        if bool((small_r | optimal).all()):
            converged = True
            break
    return LSQRResult(x, it, converged, rnorm, arnorm, torch.sqrt(anorm2))
