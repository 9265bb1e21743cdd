"""Shared fixtures: explicit seeds and one tolerance table per dtype."""

from __future__ import annotations

import os

# scikit-learn runs its array-API input check (numpy namespace) only when SciPy's array-API mode
# is on, which must be decided before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# Triton kernels run in Triton's CPU interpreter in tests (decided before triton is imported;
# on a CUDA machine, run with TRITON_INTERPRET=0 to test the compiled kernels on the GPU).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

# Tight tolerances per dtype for comparisons of two exact computations of the same quantity.
# float64 direct solvers agree to ~1e-13 on well-conditioned problems; 1e-9 leaves room for
# condition numbers up to ~1e4 and nothing more.
TOL = {
    torch.float64: dict(rtol=1e-9, atol=1e-11),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
}


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh CPU generator with a fixed seed for each test."""
    return torch.Generator().manual_seed(1234)


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a − b| / max|b|``: the agreement measure reported for the solver paths."""
    return float((a - b).abs().max() / b.abs().max())
