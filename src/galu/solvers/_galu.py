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
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch

from galu import ops
from galu._linalg import cho_solve
from galu._validate import positive_int, positive_number
from galu.gates import Gate
from galu.kernels import galu_kernel
from galu.solvers._blockgram import BlockGramScorer
from galu.solvers._cg import refined_cg
from galu.solvers._lsqr import lsqr
from galu.solvers._memory import (
    GATE_BLOCK_BYTES,
    ROW_BLOCK_BYTES,
    FitSize,
    MemoryBudget,
    MemoryEstimate,
    format_bytes,
    memory_budget,
    path_estimate,
    refusal,
)

Solver = Literal["auto", "primal", "dual", "lsqr", "cg", "svd"]
SOLVERS: tuple[str, ...] = ("auto", "primal", "dual", "lsqr", "cg", "svd")


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


FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float64, torch.float32)


def _check_dtype(dtype: Any) -> torch.dtype:
    if dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"`dtype` (={dtype!r}) must be torch.float64 or torch.float32 (the working precision "
            "of the solve; half precision and integers cannot factor these systems). Inputs of "
            "any real dtype — float16, integers, bool — are converted to it."
        )
    return dtype


def _numeric(name: str, value: Any) -> Any:
    """Unwrap pandas (and other ``to_numpy`` containers) and refuse what is not real numbers,
    naming the argument: complex values, strings, objects."""
    if not isinstance(value, torch.Tensor | np.ndarray) and hasattr(value, "to_numpy"):
        dtypes = getattr(value, "dtypes", None)
        try:
            value = value.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            bad = []
            if dtypes is not None and hasattr(dtypes, "items"):  # a DataFrame: name the columns
                bad = [c for c, t in dtypes.items() if getattr(t, "kind", "O") not in "biuf"]
            detail = (
                f"DataFrame column(s) {bad} are not numeric" if bad else f"{type(value).__name__}"
            )
            raise TypeError(
                f"`{name}` must hold numbers only; {detail} ({exc}). Drop or encode them first."
            ) from exc
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        if value.dtype.kind == "c":
            raise TypeError(
                f"`{name}` is complex ({value.dtype}); fit_galu fits real data: pass "
                f"{name}.real, or split real and imaginary parts into features."
            )
        raise TypeError(
            f"`{name}` must be an array of numbers (float, int or bool); got ndarray of dtype "
            f"{value.dtype}."
        )
    if isinstance(value, torch.Tensor) and value.is_complex():
        raise TypeError(
            f"`{name}` is complex ({value.dtype}); fit_galu fits real data: pass {name}.real, or "
            "split real and imaginary parts into features."
        )
    return value


def _as_tensor(
    name: str, value: Any, dtype: torch.dtype, device: torch.device | str | None
) -> torch.Tensor:
    value = _numeric(name, value)
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()  # torch cannot wrap read-only memory (e.g. a memory-mapped file)
    try:
        t = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"`{name}` must be an array of numbers (float, int or bool); "
            f"got {type(value).__name__}."
        ) from exc
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"`{name}` contains {bad} NaN or infinite value(s); clean the data first.")
    return t


def _shape(value: Any) -> tuple[int, ...] | None:
    """The shape of an input before converting it (``None`` if it cannot be read cheaply)."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    try:
        return tuple(np.shape(value))
    except (TypeError, ValueError):
        return None


def _converted_bytes(value: Any, dtype: torch.dtype, device: torch.device) -> int:
    """Bytes the conversion to ``dtype`` on ``device`` allocates (0 when torch wraps the input)."""
    shape = _shape(value) or ()
    size = math.prod(shape) * dtype.itemsize
    if isinstance(value, torch.Tensor):
        return 0 if value.dtype == dtype and value.device == device else size
    if isinstance(value, np.ndarray):
        same = value.dtype == np.dtype(str(dtype).removeprefix("torch."))
        return 0 if same and device.type == "cpu" and value.flags.writeable else size
    return size


def _check_shapes(X: Any, y: Any, U: Any) -> None:
    """The shape errors, from shapes alone (before anything is converted or allocated)."""
    xs, ys, us = _shape(X), _shape(y), _shape(U)
    if xs is None or ys is None or us is None:
        return  # ragged or exotic input: the conversion says what is wrong
    if len(xs) != 2:
        raise ValueError(f"`X` must be 2-D (m samples, d features); got shape {xs}.")
    if len(ys) not in (1, 2):
        raise ValueError(f"`y` must be 1-D (m,) or 2-D (m, o); got shape {ys}.")
    if ys[0] != xs[0]:
        raise ValueError(
            f"`X` and `y` must have the same number of samples; got X {xs} and y {ys}."
        )
    if xs[0] < 1 or xs[1] < 1:
        raise ValueError(f"`X` needs at least one sample and one feature; got shape {xs}.")
    if len(us) != 2 or us[1] != xs[1]:
        raise ValueError(
            f"`gate_vectors` must be (k, d) with d = X.shape[1] (={xs[1]}); got shape {us}."
        )
    if us[0] < 1:
        raise ValueError("`gate_vectors` must hold at least one gate vector (k >= 1); got k = 0.")


def _check_arguments(ridge: float, solver: str, dtype: torch.dtype) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"`solver` (={solver!r}) must be one of {SOLVERS}.")
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not math.isfinite(ridge):
        raise ValueError(f"`ridge` (={ridge!r}) must be a finite number >= 0.")
    if ridge < 0:
        raise ValueError(f"`ridge` (={ridge!r}) must be >= 0 (0 gives the minimum-norm fit).")
    _check_dtype(dtype)


def _target_device(X: Any, device: torch.device | str | None) -> torch.device:
    if device is None:
        return X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    return torch.device(device)


def _validate(
    X: Any,
    y: Any,
    gate_vectors: Any,
    ridge: float,
    solver: str,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_arguments(ridge, solver, dtype)
    _check_shapes(X, y, gate_vectors)
    return _convert(X, y, gate_vectors, dtype, _target_device(X, device))


def _convert(
    X: Any, y: Any, gate_vectors: Any, dtype: torch.dtype, target: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs as ``dtype`` tensors on ``target`` (their shapes checked again, for inputs
    whose shape only conversion reveals)."""
    X = _as_tensor("X", X, dtype, target)
    y = _as_tensor("y", y, dtype, X.device)
    U = _as_tensor("gate_vectors", gate_vectors, dtype, X.device)
    _check_shapes(X, y, U)
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
    ridge: float = 0.0,
) -> str:
    """The path ``solver="auto"`` takes for one output: the cheaper (in flops) of ``primal`` and
    ``dual`` among those whose estimated peak (:func:`estimate_fit_memory`) fits the direct
    budget, else ``cg``, else ``lsqr`` (the least memory), else ``cg`` (which ``fit_galu`` then
    refuses). At ``ridge = 0`` the square system of the larger side is rank-deficient and is
    charged an eigendecomposition. The budget is ``memory_limit`` bytes (or
    ``$GALU_MEMORY_LIMIT``), else the free memory of the device, of which the direct paths may
    use half.
    """
    size = FitSize(m, d, k, 1, _check_dtype(dtype).itemsize, float(ridge), dtype == torch.float64)
    return _plan(size, memory_budget(torch.device(device), memory_limit)).path


@dataclass(frozen=True)
class _Plan:
    """What ``auto`` (or a named path) will run on a problem of ``size``: ``path``;
    ``estimate``, the peak of everything it may run; ``costs``, the multiply-adds of the direct
    paths that fit (for the CG-first budget); ``cg_first``, whether a CG attempt fits; ``fits``;
    and ``fallbacks``, the matrix-free paths' estimates (for the error message)."""

    size: FitSize
    path: str
    estimate: MemoryEstimate
    costs: dict[str, float]
    cg_first: bool
    fits: bool
    fallbacks: tuple[MemoryEstimate, ...]  # cg, lsqr: what the error message offers instead


# eigh's cost in n³ multiply-adds, against Cholesky's 1/3 (measured on this project's CPU: a
# 768² eigh takes ~25× a Cholesky of the same size; 9 is the textbook constant, kept low so that
# a full-rank system is never mistaken for a singular one's cost).
_EIGH_COST = 9.0


def _solve_cost(n: int, *, singular: bool) -> float:
    """Multiply-adds of solving an ``n × n`` PSD system: Cholesky, or (rank-deficient at λ = 0)
    the minimum-norm eigendecomposition solve that :func:`_spd_solve` falls back to."""
    return n**3 * (_EIGH_COST if singular else 1 / 3)


def _plan(size: FitSize, budget: MemoryBudget, solver: str = "auto") -> _Plan:
    """The path ``auto`` takes: the cheaper direct solve that fits the budget — by cost *and*
    rank: at λ = 0 the square system of the larger side (``m × m`` when ``kd < m``, ``kd × kd``
    when ``kd > m``) has rank at most the smaller side and needs an eigendecomposition, so it
    is charged as such — else CG, else LSQR."""
    m, d, k = size.m, size.d, size.k
    n = k * d
    cg, ls = path_estimate("cg", size), path_estimate("lsqr", size)
    fallbacks = (cg, ls)
    if solver != "auto":
        chosen = path_estimate(solver, size)
        return _Plan(size, solver, chosen, {}, False, chosen.bytes <= budget.total, fallbacks)
    flops = {
        "primal": m * n * n + _solve_cost(n, singular=size.ridge == 0 and n > m),
        "dual": m * m * (d + k) + _solve_cost(m, singular=size.ridge == 0 and m > n),
    }
    direct = {p: path_estimate(p, size) for p in flops}
    costs = {p: flops[p] for p in flops if direct[p].bytes <= budget.direct}
    cg_fits = cg.bytes <= budget.total
    if costs:
        path = min(costs, key=lambda name: costs[name])
        peak = max(direct[path], cg, key=lambda e: e.bytes) if cg_fits else direct[path]
        return _Plan(size, path, peak, costs, cg_fits, True, fallbacks)
    if cg_fits:
        return _Plan(size, "cg", cg, {}, False, True, fallbacks)
    if ls.bytes <= budget.total:
        return _Plan(size, "lsqr", ls, {}, False, True, fallbacks)
    return _Plan(size, "cg", cg, {}, False, False, fallbacks)


# ``auto`` tries CG first when 1/_CG_FIRST_SHARE of the direct solve's multiply-adds buys at least
# _CG_FIRST_MIN_ITERS CG steps, and may use that many; it gives up early when its rate of
# progress predicts more (the interpolation threshold kd ≈ m). The share is 3 because a CG step
# runs its multiply-adds ~3× slower than a direct solve's GEMMs at small sizes (measured at
# (m, d, k) = (768, 16, 32): 7 against 24 GFLOP/s); with a share of 1, auto's failed CG attempts
# made it up to 4.6× slower than the best path on `benchmarks/auto.py`'s grid, and 2.4× with 3
# (that worst case is kd = m, where auto refits by SVD because the dual lost rank).
_CG_FIRST_MIN_ITERS = 50
_CG_FIRST_SHARE = 3


def _cg_steps_expected(m: int, n: int, ridge: float, tol: float) -> float:
    """CG steps to reach ``tol`` predicted from the Marchenko–Pastur edges of an ``m × n``
    matrix with i.i.d. entries: ``√κ = (1 + √r) / (1 − √r)`` with ``r = min/max(m, n)``, and CG
    needs about ``√κ · ln(2/tol) / 2`` steps. Infinite at ``m = n`` (the interpolation threshold,
    where CG cannot win: on `benchmarks/auto.py`'s grid its attempts there only cost time). The
    prediction is only used at ``ridge = 0``; with a ridge the attempt's own rate test decides."""
    if ridge > 0:
        return 0.0
    root = math.sqrt(min(m, n) / max(m, n))
    return math.inf if root >= 1 else (1 + root) / (1 - root) * math.log(2 / tol) / 2


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
    del factor  # the eigendecomposition below needs ~3 n² more: free the unused factor first
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
_EIGVALSH_MAX = 64  # eigvalsh of 64 × 64 ≈ 60 µs here, under 8 power steps' overhead


def _clearly_nonsingular(a: torch.Tensor, factor: torch.Tensor) -> bool:
    """Whether ``λ_min(a) > margin · n·eps·λ_max(a)``, from power iteration on ``a`` and inverse
    iteration through the Cholesky factor (a few ``n²`` passes; the start vectors are fixed, so
    the decision is deterministic). Inverse iteration locks onto an isolated tiny eigenvalue —
    the dangerous case — within a step or two. Up to ``_EIGVALSH_MAX`` rows the exact
    eigenvalues are cheaper than the iterations' Python overhead and are used instead."""
    n = a.shape[0]
    threshold = _CHOLESKY_MARGIN * n * torch.finfo(a.dtype).eps
    if n <= _EIGVALSH_MAX:
        ev = torch.linalg.eigvalsh(a)
        return bool(ev[0] > threshold * ev[-1])
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
    return bool(lam_min > threshold * lam_max)


def _rank_bound(X: torch.Tensor, G: torch.Tensor) -> int:
    """An upper bound on ``rank(Ψ)`` that is attained for data in general position:
    ``min(#samples with an open gate, Σ_i min(rank X, #samples gate i opens))`` over distinct,
    non-zero gate columns. A sample whose gates are all closed is a zero row of Ψ (about
    ``m·2^−k`` of them for random gates), so it adds no rank."""
    cols = torch.unique(G.T, dim=0)  # (k', m): duplicate gates add no rank
    open_counts = (cols != 0).sum(dim=1)
    open_rows = int((G != 0).any(dim=1).sum())
    rank_x = int(torch.linalg.matrix_rank(X))
    return min(open_rows, int(open_counts.clamp(max=rank_x).sum()))


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


def gate_matrix_blocked(X: torch.Tensor, U: torch.Tensor, gate: Gate) -> torch.Tensor:
    """``ops.gate_matrix`` filled in row blocks of 16 MiB, so forming ``G`` needs ``G`` and one
    block's pre-activations rather than three ``(m, k)`` arrays (the same values: the gate is
    elementwise)."""
    m, k = X.shape[0], U.shape[0]
    rows = max(1, GATE_BLOCK_BYTES // max(1, k * X.element_size()))
    if rows >= m:
        return ops.gate_matrix(X, U, gate)
    G = torch.empty((m, k), dtype=X.dtype, device=X.device)
    for start in range(0, m, rows):
        G[start : start + rows] = ops.gate_matrix(X[start : start + rows], U, gate)
    return G


def normal_equations(
    X: torch.Tensor, G: torch.Tensor, Y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ΨᵀΨ`` (kd × kd) and ``ΨᵀY`` (kd × o), accumulated over row blocks of ``Ψ`` (64 MiB
    each) so the whole lifted matrix is never held."""
    m, d = X.shape
    n = G.shape[1] * d
    block = max(1, ROW_BLOCK_BYTES // max(1, n * X.element_size()))
    PtP = torch.zeros((n, n), dtype=X.dtype, device=X.device)
    PtY = torch.zeros((n, Y.shape[1]), dtype=X.dtype, device=X.device)
    for start in range(0, m, block):
        psi = ops.lift(X[start : start + block], G[start : start + block])  # (b, kd)
        PtP.addmm_(psi.T, psi)
        PtY.addmm_(psi.T, Y[start : start + block])
        del psi  # else the next block is formed while this one is alive: two blocks at once
    return PtP, PtY


def _solve_primal(X, G, Y, ridge):
    d = X.shape[1]
    k = G.shape[1]
    A, B = normal_equations(X, G, Y)
    w, rank = _spd_solve(A, B, ridge)  # (kd, o)
    return w.T.reshape(-1, k, d), _rank_loss("primal", rank, X, G)


def _solve_dual(X, G, Y, ridge, gram=None):
    K = (X @ X.T if gram is None else gram.clone()).mul_(G @ G.T)  # (m, m) = kernels.galu_kernel
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


def _lsqr_run(X, G, Y, ridge, tol, max_iter, callback=None):
    """Plain LSQR on ``Ψ`` in ``X``'s precision."""
    return lsqr(
        lambda v: ops.lifted_matvec(X, G, v),  # (o, k, d) -> (m, o)
        lambda u: ops.lifted_rmatvec(X, G, u),  # (m, o) -> (o, k, d)
        Y,
        damp=math.sqrt(ridge),
        tol=tol,
        max_iter=max_iter,
        callback=callback,
    )


def _solve_iterative(
    X, G, Y, ridge, tol, max_iter, solver, *, mixed=False, warn=True, give_up=False, callback=None
):
    if solver == "cg":
        W, n_iter, converged = refined_cg(
            X, G, Y, ridge, tol, max_iter, mixed=mixed, give_up=give_up, callback=callback
        )
    else:
        res = _lsqr_run(X, G, Y, ridge, tol, max_iter, callback)
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
    X,
    G,
    Y,
    ridge,
    solver,
    tol,
    max_iter,
    gram=None,
    *,
    mixed=False,
    warn=True,
    give_up=False,
    callback=None,
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
    return _Solved(
        *_solve_iterative(
            X,
            G,
            Y,
            ridge,
            tol,
            max_iter,
            solver,
            mixed=mixed,
            warn=warn,
            give_up=give_up,
            callback=callback,
        )
    )


def _default_max_iter(m: int, n: int, *, cg: bool) -> int:
    """The matrix-free paths' default iteration cap; ``cg`` counts CG steps over several
    refinement rounds, so it gets 4× the room."""
    return max(200, 4 * min(m, n)) * (4 if cg else 1)


def _mse(X, G, W, Y) -> float:
    return float(((ops.lifted_matvec(X, G, W) - Y) ** 2).mean())


def _size_of(
    X: Any, y: Any, U: Any, dtype: torch.dtype, target: torch.device, ridge: float, *, mixed: bool
) -> FitSize | None:
    """The problem's size from the inputs' shapes alone, before any conversion allocates
    (``None`` when a shape can only be read by converting: ragged lists, small by nature).
    ``_check_shapes`` has checked the ranks."""
    xs, ys, us = _shape(X), _shape(y), _shape(U)
    if xs is None or ys is None or us is None:
        return None
    copies = _converted_bytes(X, dtype, target) + _converted_bytes(y, dtype, target)
    o = ys[1] if len(ys) == 2 else 1
    return FitSize(xs[0], xs[1], us[0], o, dtype.itemsize, float(ridge), mixed, copies)


def _checked_plan(
    caller: str, size: FitSize, solver: str, budget: MemoryBudget, target: torch.device
) -> _Plan:
    """The plan, or :class:`InsufficientMemoryError` if its estimated peak does not fit."""
    plan = _plan(size, budget, solver)
    if not plan.fits:
        raise refusal(
            caller, solver, plan.estimate, budget, plan.fallbacks, device=target, size=size
        )
    return plan


class _Progress:
    """The iterative paths' progress: the user's ``callback(iteration, residual)`` and, with
    ``verbose``, lines on stderr (the first iteration, then at most one a second)."""

    def __init__(self, callback: Callable[[int, float], None] | None, *, verbose: bool) -> None:
        if callback is not None and not callable(callback):
            raise ValueError(
                f"`callback` (={callback!r}) must be callable as callback(iteration, residual), "
                "or None."
            )
        if not isinstance(verbose, bool):
            raise ValueError(f"`verbose` (={verbose!r}) must be True or False.")
        self.callback, self.verbose = callback, verbose
        self.path = ""
        self.t0 = self.last = time.perf_counter()

    @property
    def active(self) -> bool:
        return self.callback is not None or self.verbose

    def note(self, text: str) -> None:
        if self.verbose:
            print(f"fit_galu: {text}", file=sys.stderr, flush=True)

    def start(self, path: str) -> Callable[[int, float], None] | None:
        """The per-iteration hook for a run of ``path`` (``None`` when nobody listens)."""
        self.path = path
        return self.step if self.active else None

    def step(self, iteration: int, residual: float) -> None:
        if self.callback is not None:
            self.callback(iteration, residual)
        now = time.perf_counter()
        if self.verbose and (iteration == 1 or now - self.last >= 1.0):
            self.last = now
            self.note(
                f"{self.path} iteration {iteration}: relative residual {residual:.2e}, "
                f"{now - self.t0:.1f} s"
            )


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
    callback: Callable[[int, float], None] | None = None,
    verbose: bool = False,
) -> GaLUFit:
    """Fit the shallow GaLU model with fixed gates by (ridge) least squares.

    Args:
        X: inputs ``(m, d)``: a tensor, an array, a list or a pandas DataFrame, of any real
            dtype (float16, integers and bool are converted to ``dtype``).
        y: targets ``(m,)`` or ``(m, o)`` (a Series or DataFrame too); outputs share the gates
            and have their own weights.
        gate_vectors: fixed gate vectors ``(k, d)``; gates are ``gate(X @ gate_vectors.T)``.
        gate: gate function (default hard step ``1[z >= 0]``).
        ridge: L2 penalty ``λ >= 0``; ``0`` gives the minimum-norm least-squares solution.
        solver: ``"auto"``, ``"primal"``, ``"dual"``, ``"lsqr"`` or ``"cg"`` (matrix-free), or
            ``"svd"``.
        dtype: working precision, ``torch.float64`` (default: the system is ill-conditioned
            near ``kd = m``) or ``torch.float32``.
        device: where to compute (default: ``X``'s device, or the CPU for arrays).
        tol, max_iter: stopping rule of the matrix-free paths (LSQR's, checked in float64 for
            ``cg``); ``max_iter`` defaults to ``max(200, 4·min(m, kd))``, four times that for
            ``cg``, whose count spans several refinement rounds.
        memory_limit: bytes the fit may use (default: ``$GALU_MEMORY_LIMIT`` if set, else the
            device's free memory, of which ``auto``'s direct paths may use half). The chosen
            path's peak is estimated first (:func:`estimate_fit_memory`); one that does not fit
            is refused with :class:`InsufficientMemoryError` before anything large is
            allocated, and ``auto`` picks a path that fits when one does.
        mixed_precision: run ``cg``'s GEMMs in float32, refining on float64 right-hand sides
            (about 2× faster per step on CPU; the same ``tol``, checked in float64). For
            ``solver="cg"`` or ``"auto"`` (its ``cg`` attempt); the default ``None`` turns it
            on for those when ``dtype`` is float64.
        callback: ``callback(iteration, residual)`` after every iteration of ``lsqr`` and
            ``cg`` (``auto`` too, when it runs them): ``residual`` is the largest relative
            residual over the outputs (LSQR: ``‖r̄‖/‖y‖``; CG: of the system it solves, see
            :func:`galu.solvers._cg.refined_cg`).
        verbose: print the chosen path, its memory estimate and progress lines (at most one
            a second) to stderr.

    ``auto`` first runs ``cg`` when the cheaper direct solve would cost more than 50 CG steps'
    worth of multiply-adds; it keeps that answer if it converges within the direct solve's cost
    and gives up as soon as its rate of progress predicts more (near ``kd = m``, after about 16
    steps), then solves directly. When no direct solve fits in memory it runs ``cg`` (or
    ``lsqr``, which needs less memory, when only that fits).

    Returns:
        A :class:`GaLUFit`.

    Raises:
        InsufficientMemoryError: (a ``MemoryError`` and a ``ValueError``) the path's estimated
            peak exceeds the budget; the message gives both and what would fit.
    """
    progress = _Progress(callback, verbose=verbose)
    target, mixed = _validate_fit(X, y, gate_vectors, ridge, solver, dtype, device, tol,
                                  max_iter, mixed_precision=mixed_precision)  # fmt: skip
    prep = _prepare_fit(X, y, gate_vectors, gate, ridge, solver, dtype, target, tol, max_iter,
                        memory_limit, mixed=mixed, progress=progress)  # fmt: skip
    res, path = _solve_planned(prep, solver, float(ridge), tol, progress)
    if res.rank_loss is not None:
        res, path = _refit_lost_rank(prep, res, path, solver, float(ridge), tol, progress)
    W = res.weight
    mse = _mse(prep.X, prep.G, W, prep.Y)
    weight = W[0] if prep.y_ndim == 1 else W
    progress.note(
        f"{path} done in {time.perf_counter() - progress.t0:.1f} s"
        + (f" ({res.n_iter} iterations)" if res.n_iter is not None else "")
        + f"; training MSE {mse:.4g}"
    )
    return GaLUFit(weight, prep.U, prep.gate, float(ridge), path, mse, res.n_iter, res.converged)


def _validate_fit(
    X: Any,
    y: Any,
    gate_vectors: Any,
    ridge: float,
    solver: str,
    dtype: torch.dtype,
    device: torch.device | str | None,
    tol: float,
    max_iter: int | None,
    *,
    mixed_precision: bool | None,
) -> tuple[torch.device, bool]:
    """Step 1 of :func:`fit_galu`: every argument checked from shapes and values alone (nothing
    converted yet). Returns the target device and whether ``cg`` runs its GEMMs in float32."""
    _check_arguments(ridge, solver, dtype)
    _check_shapes(X, y, gate_vectors)
    target = _target_device(X, device)
    positive_int("max_iter", max_iter, none_ok=True)
    positive_number("tol", tol)
    if mixed_precision is not None and not isinstance(mixed_precision, bool):
        raise ValueError(
            f"`mixed_precision` (={mixed_precision!r}) must be True, False or None (automatic)."
        )
    if mixed_precision and solver not in ("cg", "auto"):
        raise ValueError(
            f"`mixed_precision=True` applies to solver='cg' or 'auto'; got solver={solver!r}."
        )
    # cg's GEMM precision (only cg uses it; the memory estimates of cg use it for any solver)
    mixed = mixed_precision if mixed_precision is not None else dtype == torch.float64
    return target, mixed


@dataclass
class _Prepared:
    """What :func:`fit_galu` solves: converted inputs, the gate matrix and the planned path."""

    X: torch.Tensor  # (m, d)
    Y: torch.Tensor  # (m, o)
    y_ndim: int
    U: torch.Tensor  # (k, d)
    gate: Gate
    G: torch.Tensor  # (m, k)
    plan: _Plan
    budget: MemoryBudget
    max_iter: int
    mixed: bool


def _prepare_fit(
    X: Any,
    y: Any,
    gate_vectors: Any,
    gate: Gate | None,
    ridge: float,
    solver: str,
    dtype: torch.dtype,
    target: torch.device,
    tol: float,
    max_iter: int | None,
    memory_limit: int | None,
    *,
    mixed: bool,
    progress: _Progress,
) -> _Prepared:
    """Step 2: plan the path from the shapes and the memory budget (refusing one that does not
    fit before anything large is allocated), then convert the inputs and form the gates."""
    budget = memory_budget(target, memory_limit)
    size = _size_of(X, y, gate_vectors, dtype, target, ridge, mixed=mixed)
    plan = _checked_plan("fit_galu", size, solver, budget, target) if size else None
    Xt, yt, U = _convert(X, y, gate_vectors, dtype, target)
    gate = gate if gate is not None else Gate()
    Y = yt[:, None] if yt.ndim == 1 else yt  # (m, o)
    m, d = Xt.shape
    k = U.shape[0]
    if plan is None:  # inputs whose shape only conversion revealed (e.g. ragged lists)
        size = FitSize(m, d, k, Y.shape[1], dtype.itemsize, float(ridge), mixed)
        plan = _plan(size, budget, solver)
    if max_iter is None:
        max_iter = _default_max_iter(m, k * d, cg=solver in ("cg", "auto"))
    progress.note(
        f"solver={plan.path!r}{' (auto)' if solver == 'auto' else ''} for m={m}, d={d}, k={k}, "
        f"o={Y.shape[1]}; estimated peak {format_bytes(plan.estimate.bytes)} of "
        f"{format_bytes(budget.total)} ({budget.source})"
    )
    G = gate_matrix_blocked(Xt, U, gate)  # (m, k)
    return _Prepared(Xt, Y, yt.ndim, U, gate, G, plan, budget, max_iter, mixed)


def _solve_planned(
    prep: _Prepared, solver: str, ridge: float, tol: float, progress: _Progress
) -> tuple[_Solved, str]:
    """Step 3: solve by the planned path; for ``auto``, first a CG attempt capped at a share of
    the direct path's cost where the Marchenko–Pastur estimate says it can finish."""
    Xt, G, Y, path = prep.X, prep.G, prep.Y, prep.plan.path
    m, k, d = Xt.shape[0], prep.U.shape[0], Xt.shape[1]
    if solver == "auto" and path not in ("cg", "lsqr") and prep.plan.cg_first:
        per_iter = 4 * m * k * d * Y.shape[1]
        iters = int(prep.plan.costs[path] / per_iter / _CG_FIRST_SHARE)  # CG steps worth it
        if iters >= max(_CG_FIRST_MIN_ITERS, _cg_steps_expected(m, k * d, ridge, tol)):
            attempt = _fit_gated(
                Xt,
                G,
                Y,
                ridge,
                "cg",
                tol,
                min(iters, prep.max_iter),
                mixed=prep.mixed,
                warn=False,
                give_up=True,
                callback=progress.start("cg"),
            )
            if attempt.converged:
                return attempt, "cg"
            progress.note(f"cg stopped after {attempt.n_iter} steps; solving by {path}")
    hook = progress.start(path)
    res = _fit_gated(Xt, G, Y, ridge, path, tol, prep.max_iter, mixed=prep.mixed, callback=hook)
    return res, path


def _refit_lost_rank(
    prep: _Prepared,
    res: _Solved,
    path: str,
    solver: str,
    ridge: float,
    tol: float,
    progress: _Progress,
) -> tuple[_Solved, str]:
    """Step 4: the squared system kept fewer directions than Ψ has. ``auto`` refits on Ψ itself
    (near kd ≈ m, cond(Ψ) can exceed 1/√eps and squaring loses directions), by SVD where it
    fits (the budget counts what is already allocated), else LSQR; a path the user chose
    warns with :class:`RankWarning`."""
    if solver != "auto":
        warnings.warn(res.rank_loss or "", RankWarning, stacklevel=3)
        return res, path
    svd = path_estimate("svd", replace(prep.plan.size, copies=0))
    path = "svd" if svd.bytes <= prep.budget.direct else "lsqr"
    progress.note(f"the squared system lost rank; refitting by {path}")
    hook = progress.start(path)
    res = _fit_gated(
        prep.X, prep.G, prep.Y, ridge, path, tol, prep.max_iter, mixed=prep.mixed, callback=hook
    )
    return res, path


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
    block_updates: bool = True,
) -> HillClimbResult:
    """Improve gates without gradients (Fiat et al. 2019): pick a random neuron, redraw its gate
    vector, refit exactly, keep the new gate if the training MSE did not increase.

    ``steps`` proposals (the authors use 512); randomness from ``generator`` only.
    ``block_updates``: score proposals by a block update of the inverse Gram matrix where it
    exists (``kd <= m`` or ``λ > 0``; about ``k/2`` times cheaper than a fresh solve, same fit to
    rounding); ``False`` refits every proposal from scratch. The returned fit is always a fresh
    :func:`fit_galu` of the final gates.
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
    iters = max_iter if max_iter is not None else _default_max_iter(m, k * d, cg=False)
    G = gate_matrix_blocked(X_, U, fit.gate)
    # Where ΨᵀΨ + λI is positive definite, a proposal is scored by a block update of its inverse
    # (O(m·kd·d) instead of a fresh O(m·(kd)²) solve; see _blockgram). Elsewhere every proposal
    # is a fresh solve with one fast path throughout, even where a squared system loses a
    # direction of Ψ (kd ≈ m): what matters is the comparison between gates. The returned fit
    # is exact (fit_galu on the final gates).
    scorer = BlockGramScorer.from_gates(X_, G, Y, float(ridge)) if block_updates else None
    fast = solver if solver != "auto" else choose_solver(m, k, d, dtype=dtype, device=X_.device)
    gram = X_ @ X_.T if fast == "dual" and scorer is None else None  # reused by dual refits

    def score(gates: torch.Tensor) -> float:
        W = _fit_gated(X_, gates, Y, float(ridge), fast, tol, iters, gram).weight
        return _mse(X_, gates, W, Y)

    scale = Y.numel()
    best = scorer.sse / scale if scorer is not None else score(G)
    history, accepted = [], 0
    for _ in range(steps):
        i = int(torch.randint(k, (1,), generator=generator, device=generator.device))
        u_new = sample_gate_vectors(1, d, generator=generator, dtype=dtype).to(X_.device)[0]
        g_new = fit.gate(X_ @ u_new)
        if scorer is not None:
            sse, proposal = scorer.propose(i, g_new)
            mse = sse / scale
        else:
            G_new = G.clone()
            G_new[:, i] = g_new
            mse = score(G_new)
        if mse <= best:
            U = U.clone()
            U[i] = u_new
            if scorer is not None:
                scorer.accept(proposal)
            else:
                G = G_new
            best = mse
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
    memory_limit: int | None = None,
) -> list[GaLUFit]:
    """Fits for every ``λ`` in ``ridges`` from one eigendecomposition.

    The smaller of ``ΨᵀΨ`` (kd × kd) and ``K = ΨΨᵀ`` (m × m) is decomposed once,
    ``V diag(e) Vᵀ``; each ``λ`` then costs a matrix–vector product:
    ``w(λ) = V diag(1/(e + λ)) Vᵀ Ψᵀy`` (primal) or ``W = Ψᵀ V diag(1/(e + λ)) Vᵀ y`` (dual).
    ``λ = 0`` gives the minimum-norm fit with the eigenvalue cutoff ``n·eps·e_max``.
    ``memory_limit``: as :func:`fit_galu` (the decomposition's estimated peak must fit, else
    :class:`InsufficientMemoryError`).
    """
    if not ridges:
        raise ValueError("`ridges` is empty; give at least one ridge value >= 0.")
    for lam in ridges:
        _check_arguments(lam, "auto", dtype)
    _check_shapes(X, y, gate_vectors)
    target = _target_device(X, device)
    size = _size_of(X, y, gate_vectors, dtype, target, 0.0, mixed=False)
    if size is not None:
        square = "primal" if size.m >= size.k * size.d else "dual"
        _checked_plan("ridge_path", size, square, memory_budget(target, memory_limit), target)
    Xt, yt, U = _convert(X, y, gate_vectors, dtype, target)
    gate = gate if gate is not None else Gate()
    Y = yt[:, None] if yt.ndim == 1 else yt  # (m, o)
    m, d = Xt.shape
    k = U.shape[0]
    G = gate_matrix_blocked(Xt, U, gate)
    primal = k * d <= m
    if primal:
        PtP, rhs = normal_equations(Xt, G, Y)  # ΨᵀΨ, Ψᵀy (kd, o)
        evals, evecs = torch.linalg.eigh(PtP)
    else:
        rhs = Y
        evals, evecs = torch.linalg.eigh(galu_kernel(Xt, G))
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
