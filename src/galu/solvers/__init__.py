"""Exact solvers for gated linear models with fixed gates."""

from galu.solvers._als import ALSResult, fit_galu_als
from galu.solvers._estimator import GaLURegressor
from galu.solvers._galu import (
    SOLVERS,
    ConvergenceWarning,
    GaLUFit,
    HillClimbResult,
    RankWarning,
    choose_solver,
    fit_galu,
    hill_climb,
    ridge_path,
    sample_gate_vectors,
)
from galu.solvers._lsqr import LSQRResult, lsqr
from galu.solvers._memory import (
    MEMORY_LIMIT_ENV,
    InsufficientMemoryError,
    MemoryEstimate,
    estimate_fit_memory,
)

__all__ = [
    "MEMORY_LIMIT_ENV",
    "SOLVERS",
    "ALSResult",
    "ConvergenceWarning",
    "GaLUFit",
    "GaLURegressor",
    "HillClimbResult",
    "InsufficientMemoryError",
    "LSQRResult",
    "MemoryEstimate",
    "RankWarning",
    "choose_solver",
    "estimate_fit_memory",
    "fit_galu",
    "fit_galu_als",
    "hill_climb",
    "lsqr",
    "ridge_path",
    "sample_gate_vectors",
]
