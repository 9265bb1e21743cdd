"""Exact least-squares fits of the shallow GaLU model with fixed gates.

Model (Fiat, Malach & Shalev-Shwartz 2019, ``science/galu.md``):
``f_o(x) = Σ_i <W_{o,i}, x> g_i(x)`` with ``g_i(x) = gate(<u_i, x>)`` fixed. With squared loss,
fitting ``W`` is linear least squares in ``k·d`` unknowns per output,

    min_W ‖Ψ vec(W) − y‖² + λ ‖W‖²,        Ψ = [X ⊙ g_1, …, X ⊙ g_k]   (m × kd),

solved here five ways that must agree:

``primal``     normal equations ``(ΨᵀΨ + λI) w = Ψᵀy`` (kd × kd), accumulated over row blocks so
               ``Ψ`` is never held whole; Cholesky, or for ``λ = 0`` on a numerically singular
               system an eigendecomposition pseudo-inverse (minimum norm).
``dual``       kernel ``K = (XXᵀ) ⊙ (GGᵀ)`` (m × m), ``α = (K + λI)⁻¹ y``, ``W = Ψᵀ α``.
``lsqr``       matrix-free LSQR using only ``Ψ w = rowsum(X ⊙ GW)`` and ``Ψᵀr = Gᵀ(r ⊙ X)``:
               memory O(m(k + d) + kd), runs on CPU or GPU tensors.
``cg``         matrix-free preconditioned CG on the normal (m ≥ kd) or dual (kd > m) equations
               with float64 refinement and float32 GEMMs (``_cg.py``: structured Kronecker and
               Woodbury preconditioners). The fastest path for large problems.
``svd``        SVD of the formed ``Ψ``: the slow, most stable reference.

``auto`` picks the cheaper of primal and dual among those whose matrices fit in memory, and ``cg``
when neither fits; before an expensive direct solve it tries ``cg`` on a budget.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from galu import ops
from galu._linalg import cho_solve
from galu.gates import Gate
from galu.solvers._cg import refined_cg
from galu.solvers._lsqr import lsqr
from galu.solvers._memory import available_bytes

Solver = Literal["auto", "primal", "dual", "lsqr", "cg", "svd"]
SOLVERS: tuple[str, ...] = ("auto", "primal", "dual", "lsqr", "cg", "svd")

# Rows of Ψ formed at once when accumulating ΨᵀΨ: bounds the primal path's working memory.
_ROW_BLOCK_BYTES = 64 * 2**20


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before reaching ``tol``."""


class RankWarning(UserWarning):
    """A squared (normal-equation or kernel) system dropped directions that Ψ itself resolves."""


@dataclass(frozen=True)
class GaLUFit:
    """Result of :func:`fit_galu`.

    Attributes:
        weight: fitted linear weights, ``(k, d)`` for a 1-D target, ``(o, k, d)`` for ``(m, o)``.
        gate_vectors: the fixed gate vectors ``(k, d)``.
        gate: the gate function.
        ridge: the L2 penalty ``λ``.
        solver: the path that ran (never ``"auto"``).
        train_mse: mean squared training error over samples and outputs.
        n_iter: LSQR iterations (``None`` for direct solvers).
        converged: ``False`` only if LSQR hit ``max_iter``.
    """

    weight: torch.Tensor
    gate_vectors: torch.Tensor
    gate: Gate
    ridge: float
    solver: str
    train_mse: float
    n_iter: int | None = None
    converged: bool = True

    @property
    def weight_norm(self) -> float:
        """Frobenius norm ``‖W‖``."""
        return float(torch.linalg.vector_norm(self.weight))

    def predict(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Predictions ``(n,)`` (1-D target) or ``(n, o)``."""
        xt = _as_tensor("X", x, self.weight.dtype, self.weight.device)
        if xt.ndim != 2 or xt.shape[1] != self.gate_vectors.shape[1]:
            raise ValueError(
                f"`X` must be 2-D with d = {self.gate_vectors.shape[1]} features; "
                f"got shape {tuple(xt.shape)}."
            )
        w3 = self.weight if self.weight.ndim == 3 else self.weight[None]
        out = ops.lifted_matvec(xt, ops.gate_matrix(xt, self.gate_vectors, self.gate), w3)
        return out[:, 0] if self.weight.ndim == 2 else out

    def to_module(self):
        """A :class:`galu.nn.ShallowGaLU` carrying the fitted weights and the same gates."""
        from galu.nn import ShallowGaLU

        w3 = self.weight if self.weight.ndim == 3 else self.weight[None]
        o, k, d = w3.shape
        # A throwaway generator: the weights are overwritten, the global RNG stays untouched.
        module = ShallowGaLU(
            d, k, o, gate=self.gate, generator=torch.Generator(), dtype=w3.dtype, device=w3.device
        )
        with torch.no_grad():
            module.weight.copy_(w3)
            module.gate_vectors.copy_(self.gate_vectors)
        return module


# --------------------------------------------------------------------------- validation


def _as_tensor(
    name: str, value: Any, dtype: torch.dtype, device: torch.device | str | None
) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()  # torch cannot wrap read-only memory (e.g. a memory-mapped file)
    try:
        t = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"`{name}` must be an array of numbers; got {type(value).__name__}."
        ) from exc
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"`{name}` contains {bad} NaN or infinite value(s); clean the data first.")
    return t


def _validate(
    X: Any,
    y: Any,
    gate_vectors: Any,
    ridge: float,
    solver: str,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if solver not in SOLVERS:
        raise ValueError(f"`solver` (={solver!r}) must be one of {SOLVERS}.")
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not math.isfinite(ridge):
        raise ValueError(f"`ridge` (={ridge!r}) must be a finite number >= 0.")
    if ridge < 0:
        raise ValueError(f"`ridge` (={ridge!r}) must be >= 0 (0 gives the minimum-norm fit).")
    if device is None and isinstance(X, torch.Tensor):
        device = X.device
    X = _as_tensor("X", X, dtype, device)
    y = _as_tensor("y", y, dtype, X.device)
    U = _as_tensor("gate_vectors", gate_vectors, dtype, X.device)
    if X.ndim != 2:
        raise ValueError(f"`X` must be 2-D (m samples, d features); got shape {tuple(X.shape)}.")
    if y.ndim not in (1, 2):
        raise ValueError(f"`y` must be 1-D (m,) or 2-D (m, o); got shape {tuple(y.shape)}.")
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"`X` and `y` must have the same number of samples; got X {tuple(X.shape)} "
            f"and y {tuple(y.shape)}."
        )
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            f"`X` needs at least one sample and one feature; got shape {tuple(X.shape)}."
        )
    if U.ndim != 2 or U.shape[1] != X.shape[1]:
        raise ValueError(
            f"`gate_vectors` must be (k, d) with d = X.shape[1] (={X.shape[1]}); "
            f"got shape {tuple(U.shape)}."
        )
    if U.shape[0] < 1:
        raise ValueError("`gate_vectors` must hold at least one gate vector (k >= 1); got k = 0.")
    return X, y, U


# --------------------------------------------------------------------------- solvers


def choose_solver(
    m: int,
    k: int,
    d: int,
    *,
    dtype: torch.dtype,
    device: torch.device,
    memory_limit: int | None = None,
) -> str:
    """The cheaper (in flops) of ``primal`` and ``dual`` that fits in memory, else ``cg``.

    Memory counts the square system, its factor or eigenvectors and the temporaries that build
    it (measured peak ≈ 4 n² elements for an n × n system); the budget is ``memory_limit`` bytes
    or half the device's free memory.
    """
    fitting = _direct_costs(m, k, d, dtype=dtype, device=device, memory_limit=memory_limit)
    if not fitting:
        return "cg"
    return min(fitting, key=lambda name: fitting[name])


def _direct_costs(m, k, d, *, dtype, device, memory_limit) -> dict[str, float]:
    """Multiply-adds of each direct path whose memory fits the budget (see choose_solver)."""
    item = torch.empty((), dtype=dtype).element_size()
    budget = memory_limit if memory_limit is not None else available_bytes(device) // 2
    n = k * d
    candidates = {
        "primal": (4 * n * n * item, m * n * n + n**3 / 3),
        "dual": (4 * m * m * item + m * k * item, m * m * (d + k) + m**3 / 3),
    }
    return {name: cost for name, (mem, cost) in candidates.items() if mem <= budget}


# ``auto`` tries CG first when the direct solve costs at least this many CG steps' worth of
# multiply-adds; the attempt may use up to 1/_CG_FIRST_SHARE of that cost (float32 CG steps run
# ~3× faster per multiply-add than a float64 factorisation on CPU) and gives up early when its
# rate of progress predicts more (the interpolation threshold kd ≈ m).
_CG_FIRST_MIN_ITERS = 50
_CG_FIRST_SHARE = 1


def _pinv_solve_psd(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Minimum-norm solution of ``a x = b`` for symmetric PSD ``a`` and the numerical rank used
    (eigenvalues below ``n·eps·λ_max`` are treated as zero)."""
    evals, evecs = torch.linalg.eigh(a)
    cutoff = evals.abs().max() * a.shape[0] * torch.finfo(a.dtype).eps
    keep = evals > cutoff
    inv = torch.where(keep, 1.0 / torch.where(keep, evals, 1.0), 0.0)
    return evecs @ (inv[:, None] * (evecs.T @ b)), int(keep.sum())


def _spd_solve(a: torch.Tensor, b: torch.Tensor, ridge: float) -> tuple[torch.Tensor, int | None]:
    """Solve ``(a + ridge·I) x = b``; the rank is ``None`` when Cholesky was used (full rank).

    With ``ridge = 0`` Cholesky is kept only when the factored matrix is clearly non-singular
    (:func:`_clearly_nonsingular`); otherwise the minimum-norm eigendecomposition solve runs.
    Cholesky costs ``n³/3`` against eigh's ~``9n³`` (and far fewer passes over memory).
    """
    if ridge > 0:
        a = a.clone()
        a.diagonal().add_(ridge)
    factor, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0 and (ridge > 0 or _clearly_nonsingular(a, factor)):
        return cho_solve(b, factor), None
    if ridge > 0:
        warnings.warn(
            "Cholesky failed on the regularised system; falling back to an eigendecomposition.",
            RuntimeWarning,
            stacklevel=4,
        )
    return _pinv_solve_psd(a, b)


# Cholesky's λ = 0 answer is kept when λ_min exceeds eigh's cutoff n·eps·λ_max by this factor
# (the estimates below are within a few × of the truth). Where eigh would keep every eigenvalue
# both compute the same solution; Cholesky costs 1/27 of it. At (m, d, k) = (4096, 64, 64),
# kd = m, the kernel's λ_min is 2272× the cutoff (κ = 4.9e8): 100 keeps Cholesky there.
_CHOLESKY_MARGIN = 100.0
_POWER_STEPS = 8


def _clearly_nonsingular(a: torch.Tensor, factor: torch.Tensor) -> bool:
    """Whether ``λ_min(a) > margin · n·eps·λ_max(a)``, from power iteration on ``a`` and inverse
    iteration through the Cholesky factor (a few ``n²`` passes; the start vectors are fixed, so
    the decision is deterministic). Inverse iteration locks onto an isolated tiny eigenvalue —
    the dangerous case — within a step or two."""
    n = a.shape[0]
    gen = torch.Generator(device=a.device).manual_seed(0)
    v = torch.randn(n, 1, generator=gen, dtype=a.dtype, device=a.device)
    u = v.clone()
    lam_max = lam_min = torch.ones((), dtype=a.dtype, device=a.device)
    for _ in range(_POWER_STEPS):
        v = a @ (v / torch.linalg.vector_norm(v))
        lam_max = torch.linalg.vector_norm(v)
        u = cho_solve(u / torch.linalg.vector_norm(u), factor)
        lam_min = 1.0 / torch.linalg.vector_norm(u)
    lam_max = torch.maximum(lam_max, a.diagonal().max())
    return bool(lam_min > _CHOLESKY_MARGIN * n * torch.finfo(a.dtype).eps * lam_max)


def _rank_bound(X: torch.Tensor, G: torch.Tensor) -> int:
    """An upper bound on ``rank(Ψ)`` that is attained for data in general position:
    ``min(m, Σ_i min(rank X, #samples gate i opens))`` over distinct, non-zero gate columns."""
    cols = torch.unique(G.T, dim=0)  # (k', m): duplicate gates add no rank
    open_counts = (cols != 0).sum(dim=1)
    rank_x = int(torch.linalg.matrix_rank(X))
    return min(X.shape[0], int(open_counts.clamp(max=rank_x).sum()))


def _rank_loss(solver: str, rank: int | None, X: torch.Tensor, G: torch.Tensor) -> str | None:
    """A message if the squared system kept fewer directions than Ψ has, else ``None``."""
    if rank is None:
        return None
    bound = _rank_bound(X, G)
    if rank >= bound:
        return None
    n = max(X.shape[0], G.shape[1] * X.shape[1])
    lost = math.sqrt(n * torch.finfo(X.dtype).eps)
    return (
        f"solver={solver!r} kept numerical rank {rank}, but Ψ can have rank up to {bound}: its "
        f"squared system drops singular values below ~{lost:.0e}·σ_max, so this is not the exact "
        "minimum-norm fit. Use solver='auto' or 'svd' (or 'lsqr'), standardise the columns of X, "
        "or set ridge > 0."
    )


def normal_equations(
    X: torch.Tensor, G: torch.Tensor, Y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ΨᵀΨ`` (kd × kd) and ``ΨᵀY`` (kd × o), accumulated over row blocks of ``Ψ`` (64 MiB
    each) so the whole lifted matrix is never held."""
    m, d = X.shape
    n = G.shape[1] * d
    block = max(1, _ROW_BLOCK_BYTES // max(1, n * X.element_size()))
    PtP = torch.zeros((n, n), dtype=X.dtype, device=X.device)
    PtY = torch.zeros((n, Y.shape[1]), dtype=X.dtype, device=X.device)
    for start in range(0, m, block):
        psi = ops.lift(X[start : start + block], G[start : start + block])  # (b, kd)
        PtP.addmm_(psi.T, psi)
        PtY.addmm_(psi.T, Y[start : start + block])
    return PtP, PtY


def _solve_primal(X, G, Y, ridge):
    d = X.shape[1]
    k = G.shape[1]
    A, B = normal_equations(X, G, Y)
    w, rank = _spd_solve(A, B, ridge)  # (kd, o)
    return w.T.reshape(-1, k, d), _rank_loss("primal", rank, X, G)


def _solve_dual(X, G, Y, ridge, gram=None):
    K = (X @ X.T if gram is None else gram.clone()).mul_(G @ G.T)  # (m, m) = ops.galu_kernel
    alpha, rank = _spd_solve(K, Y, ridge)  # (m, o)
    return ops.lifted_rmatvec(X, G, alpha), _rank_loss("dual", rank, X, G)  # (o, k, d)


def _solve_svd(X, G, Y, ridge):
    m, d = X.shape
    k = G.shape[1]
    U, s, Vh = torch.linalg.svd(ops.lift(X, G), full_matrices=False)
    if ridge > 0:
        filt = s / (s**2 + ridge)
    else:
        cutoff = s.max() * max(m, k * d) * torch.finfo(s.dtype).eps
        filt = torch.where(s > cutoff, 1.0 / torch.where(s > cutoff, s, 1.0), 0.0)
    w = Vh.T @ (filt[:, None] * (U.T @ Y))  # (kd, o)
    return w.T.reshape(-1, k, d)


def _lsqr_run(X, G, Y, ridge, tol, max_iter):
    """Plain LSQR on ``Ψ`` in ``X``'s precision."""
    return lsqr(
        lambda v: ops.lifted_matvec(X, G, v),  # (o, k, d) -> (m, o)
        lambda u: ops.lifted_rmatvec(X, G, u),  # (m, o) -> (o, k, d)
        Y,
        damp=math.sqrt(ridge),
        tol=tol,
        max_iter=max_iter,
    )


def _solve_iterative(X, G, Y, ridge, tol, max_iter, solver, mixed=False, warn=True, give_up=False):
    if solver == "cg":
        W, n_iter, converged = refined_cg(X, G, Y, ridge, tol, max_iter, mixed, give_up)
    else:
        res = _lsqr_run(X, G, Y, ridge, tol, max_iter)
        W, n_iter, converged = res.x, res.n_iter, res.converged
    if warn and not converged:
        warnings.warn(
            f"{solver.upper()} stopped (max_iter={max_iter}) before reaching tol={tol:g}; the fit "
            "may be inexact. Raise `max_iter`, loosen `tol`, or add a small `ridge`.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return W, n_iter, converged


@dataclass(frozen=True)
class _Solved:
    weight: torch.Tensor  # (o, k, d)
    n_iter: int | None = None
    converged: bool = True
    rank_loss: str | None = None  # set when a squared system dropped directions of Ψ


def _fit_gated(
    X, G, Y, ridge, solver, tol, max_iter, gram=None, mixed=False, warn=True, give_up=False
) -> _Solved:
    """Weights ``(o, k, d)`` for fixed gates ``G`` ``(m, k)`` and targets ``Y`` ``(m, o)``."""
    if solver == "primal":
        W, loss = _solve_primal(X, G, Y, ridge)
        return _Solved(W, rank_loss=loss)
    if solver == "dual":
        W, loss = _solve_dual(X, G, Y, ridge, gram)
        return _Solved(W, rank_loss=loss)
    if solver == "svd":
        return _Solved(_solve_svd(X, G, Y, ridge))
    return _Solved(*_solve_iterative(X, G, Y, ridge, tol, max_iter, solver, mixed, warn, give_up))


def _default_max_iter(m: int, n: int, cg: bool) -> int:
    """The matrix-free paths' default iteration cap; ``cg`` counts CG steps over several
    refinement rounds, so it gets 4× the room."""
    return max(200, 4 * min(m, n)) * (4 if cg else 1)


def _mse(X, G, W, Y) -> float:
    return float(((ops.lifted_matvec(X, G, W) - Y) ** 2).mean())


def fit_galu(
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    gate_vectors: torch.Tensor | np.ndarray,
    *,
    gate: Gate | None = None,
    ridge: float = 0.0,
    solver: Solver = "auto",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    tol: float = 1e-10,
    max_iter: int | None = None,
    memory_limit: int | None = None,
    mixed_precision: bool | None = None,
) -> GaLUFit:
    """Fit the shallow GaLU model with fixed gates by (ridge) least squares.

    Args:
        X: inputs ``(m, d)``.
        y: targets ``(m,)`` or ``(m, o)``; outputs share the gates and have their own weights.
        gate_vectors: fixed gate vectors ``(k, d)``; gates are ``gate(X @ gate_vectors.T)``.
        gate: gate function (default hard step ``1[z >= 0]``).
        ridge: L2 penalty ``λ >= 0``; ``0`` gives the minimum-norm least-squares solution.
        solver: ``"auto"``, ``"primal"``, ``"dual"``, ``"lsqr"`` or ``"cg"`` (matrix-free), or
            ``"svd"``.
        dtype: working precision (float64 by default: the system is ill-conditioned near
            ``kd = m``).
        device: where to compute (default: ``X``'s device, or the CPU for arrays).
        tol, max_iter: stopping rule of the matrix-free paths (LSQR's, checked in float64 for
            ``cg``); ``max_iter`` defaults to ``max(200, 4·min(m, kd))``, four times that for
            ``cg``, whose count spans several refinement rounds.
        memory_limit: bytes the direct solvers may use when ``solver="auto"`` chooses
            (default: half the free memory of the device).
        mixed_precision: run ``cg``'s GEMMs in float32, refining on float64 right-hand sides
            (about 2× faster per step on CPU; the same ``tol``, checked in float64). For
            ``solver="cg"`` or ``"auto"`` (its ``cg`` attempt); the default ``None`` turns it
            on for those when ``dtype`` is float64.

    ``auto`` first runs ``cg`` when the cheaper direct solve would cost more than 50 CG steps'
    worth of multiply-adds; it keeps that answer if it converges within the direct solve's cost
    and gives up as soon as its rate of progress predicts more (near ``kd = m``, after about 16
    steps), then solves directly. When no direct solve fits in memory it runs ``cg``.

    Returns:
        A :class:`GaLUFit`.
    """
    Xt, yt, U = _validate(X, y, gate_vectors, ridge, solver, dtype, device)
    gate = gate if gate is not None else Gate()
    Y = yt[:, None] if yt.ndim == 1 else yt  # (m, o)
    m, d = Xt.shape
    k = U.shape[0]
    path: str = solver
    costs: dict[str, float] = {}
    if path == "auto":  # as choose_solver, keeping the costs for the CG-first budget
        costs = _direct_costs(m, k, d, dtype=dtype, device=Xt.device, memory_limit=memory_limit)
        path = min(costs, key=lambda name: costs[name]) if costs else "cg"
    if max_iter is None:
        max_iter = _default_max_iter(m, k * d, solver in ("cg", "auto"))
    elif isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"`max_iter` (={max_iter!r}) must be a positive integer.")
    if not (isinstance(tol, numbers.Real) and tol > 0):
        raise ValueError(f"`tol` (={tol!r}) must be a positive number.")
    if mixed_precision is not None and not isinstance(mixed_precision, bool):
        raise ValueError(
            f"`mixed_precision` (={mixed_precision!r}) must be True, False or None (automatic)."
        )
    if mixed_precision and solver not in ("cg", "auto"):
        raise ValueError(
            f"`mixed_precision=True` applies to solver='cg' or 'auto'; got solver={solver!r}."
        )
    mixed = (
        mixed_precision
        if mixed_precision is not None
        else solver in ("cg", "auto") and Xt.dtype == torch.float64
    )
    G = ops.gate_matrix(Xt, U, gate)  # (m, k)
    res = None
    if solver == "auto" and path != "cg":  # a direct path: try cg first, on a budget
        per_iter = 4 * m * k * d * Y.shape[1]
        budget = int(costs[path] / per_iter / _CG_FIRST_SHARE)
        if budget >= _CG_FIRST_MIN_ITERS:
            attempt = _fit_gated(
                Xt,
                G,
                Y,
                float(ridge),
                "cg",
                tol,
                min(budget, max_iter),
                mixed=mixed,
                warn=False,
                give_up=True,
            )
            if attempt.converged:
                res, path = attempt, "cg"
    if res is None:
        res = _fit_gated(Xt, G, Y, float(ridge), path, tol, max_iter, mixed=mixed)
    if res.rank_loss is not None:
        if solver == "auto":
            # Near the interpolation threshold (kd ≈ m) cond(Ψ) can exceed 1/√eps, and squaring
            # loses directions: refit on Ψ itself. `GaLUFit.solver` records the path that ran.
            item = Xt.element_size()
            fits = 3 * m * k * d * item <= (memory_limit or available_bytes(Xt.device) // 2)
            path = "svd" if fits else "lsqr"
            res = _fit_gated(Xt, G, Y, float(ridge), path, tol, max_iter, mixed=mixed)
        else:
            warnings.warn(res.rank_loss, RankWarning, stacklevel=2)
    W = res.weight
    mse = _mse(Xt, G, W, Y)
    weight = W[0] if yt.ndim == 1 else W
    return GaLUFit(weight, U, gate, float(ridge), path, mse, res.n_iter, res.converged)


@dataclass(frozen=True)
class HillClimbResult:
    """Result of :func:`hill_climb`: the final fit and the training MSE after every step."""

    fit: GaLUFit
    history: list[float]
    accepted: int


def sample_gate_vectors(
    k: int, d: int, *, generator: torch.Generator | None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``k`` gate vectors ``N(0, I/d)`` ``(k, d)``, the same law as :class:`galu.nn.GaLULayer`."""
    gen_device = generator.device if generator is not None else "cpu"
    return torch.randn((k, d), generator=generator, dtype=dtype, device=gen_device) / math.sqrt(d)


def hill_climb(
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    gate_vectors: torch.Tensor | np.ndarray,
    *,
    steps: int = 512,
    generator: torch.Generator,
    gate: Gate | None = None,
    ridge: float = 0.0,
    solver: Solver = "auto",
    dtype: torch.dtype = torch.float64,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> HillClimbResult:
    """Improve gates without gradients (Fiat et al. 2019): pick a random neuron, redraw its gate
    vector, refit exactly, keep the new gate if the training MSE did not increase.

    ``steps`` proposals (the authors use 512); randomness from ``generator`` only.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"`steps` (={steps!r}) must be an integer >= 0.")
    exact: dict[str, Any] = dict(
        gate=gate, ridge=ridge, solver=solver, dtype=dtype, tol=tol, max_iter=max_iter
    )
    fit = fit_galu(X, y, gate_vectors, **exact)  # validates every argument once
    X_, y_, U = _validate(X, y, fit.gate_vectors, ridge, solver, dtype, None)
    Y = y_[:, None] if y_.ndim == 1 else y_
    m, d = X_.shape
    k = U.shape[0]
    iters = max_iter if max_iter is not None else _default_max_iter(m, k * d, False)
    # Proposals are scored with one fast path throughout, even where a squared system loses a
    # direction of Ψ (kd ≈ m): what matters is the comparison between gates. The returned fit
    # is exact (fit_galu on the final gates).
    fast = solver if solver != "auto" else choose_solver(m, k, d, dtype=dtype, device=X_.device)
    gram = X_ @ X_.T if fast == "dual" else None  # reused by every dual refit
    G = ops.gate_matrix(X_, U, fit.gate)

    def score(gates: torch.Tensor) -> float:
        W = _fit_gated(X_, gates, Y, float(ridge), fast, tol, iters, gram).weight
        return _mse(X_, gates, W, Y)

    best, history, accepted = score(G), [], 0
    for _ in range(steps):
        i = int(torch.randint(k, (1,), generator=generator, device=generator.device))
        u_new = sample_gate_vectors(1, d, generator=generator, dtype=dtype).to(X_.device)[0]
        G_new = G.clone()
        G_new[:, i] = fit.gate(X_ @ u_new)
        mse = score(G_new)
        if mse <= best:
            U = U.clone()
            U[i] = u_new
            G, best = G_new, mse
            accepted += 1
        history.append(best)
    final = fit_galu(X_, y_, U, **exact) if accepted else fit
    return HillClimbResult(final, history, accepted)


def ridge_path(
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    gate_vectors: torch.Tensor | np.ndarray,
    ridges: list[float] | tuple[float, ...],
    *,
    gate: Gate | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> list[GaLUFit]:
    """Fits for every ``λ`` in ``ridges`` from one eigendecomposition.

    The smaller of ``ΨᵀΨ`` (kd × kd) and ``K = ΨΨᵀ`` (m × m) is decomposed once,
    ``V diag(e) Vᵀ``; each ``λ`` then costs a matrix–vector product:
    ``w(λ) = V diag(1/(e + λ)) Vᵀ Ψᵀy`` (primal) or ``W = Ψᵀ V diag(1/(e + λ)) Vᵀ y`` (dual).
    ``λ = 0`` gives the minimum-norm fit with the eigenvalue cutoff ``n·eps·e_max``.
    """
    if not ridges:
        raise ValueError("`ridges` is empty; give at least one ridge value >= 0.")
    for lam in ridges:
        _validate(np.zeros((1, 1)), np.zeros(1), np.zeros((1, 1)), lam, "auto", dtype, None)
    Xt, yt, U = _validate(X, y, gate_vectors, 0.0, "auto", dtype, device)
    gate = gate if gate is not None else Gate()
    Y = yt[:, None] if yt.ndim == 1 else yt  # (m, o)
    m, d = Xt.shape
    k = U.shape[0]
    G = ops.gate_matrix(Xt, U, gate)
    primal = k * d <= m
    if primal:
        PtP, rhs = normal_equations(Xt, G, Y)  # ΨᵀΨ, Ψᵀy (kd, o)
        evals, evecs = torch.linalg.eigh(PtP)
    else:
        rhs = Y
        evals, evecs = torch.linalg.eigh(ops.galu_kernel(Xt, G))
    proj = evecs.T @ rhs
    cutoff = evals.abs().max() * evals.shape[0] * torch.finfo(dtype).eps
    fits = []
    for lam in ridges:
        shifted = evals + lam
        keep = evals > cutoff if lam == 0 else shifted > 0
        inv = torch.where(keep, 1.0 / torch.where(keep, shifted, 1.0), 0.0)
        sol = evecs @ (inv[:, None] * proj)
        W = sol.T.reshape(-1, k, d) if primal else ops.lifted_rmatvec(Xt, G, sol)
        weight = W[0] if yt.ndim == 1 else W
        fits.append(
            GaLUFit(weight, U, gate, float(lam), "primal" if primal else "dual", _mse(Xt, G, W, Y))
        )
    return fits
