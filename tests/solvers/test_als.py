"""Alternating least squares for B((Ax) ⊙ g): each half-step against an explicit least squares."""

import math

import numpy as np
import pytest
import torch

from galu import Gate, ops
from galu.solvers import fit_galu, fit_galu_als, sample_gate_vectors
from galu.solvers._als import _a_step, _b_step
from galu.solvers._galu import normal_equations


def _problem(m=80, d=4, k=6, o=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    Y = torch.randn(m, o, generator=g, dtype=torch.float64)
    U = sample_gate_vectors(k, d, generator=g)
    return X, Y, U, ops.gate_matrix(X, U, Gate())


def _ridge_lstsq(design, target, ridge):
    n = design.shape[1]
    aug = np.vstack([design, math.sqrt(ridge) * np.eye(n)])
    rhs = np.concatenate([target, np.zeros(n)])
    return np.linalg.lstsq(aug, rhs, rcond=None)[0]


@pytest.mark.parametrize("ridge", [1e-3, 0.5])
def test_a_step_is_the_least_squares_fit_of_the_explicit_design(ridge):
    X, Y, U, G = _problem()
    m, d = X.shape
    k, o = U.shape[0], Y.shape[1]
    B = torch.randn(o, k, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    # Design by loops: row (μ, o), column (i, j) = B[o, i] g_i(x_μ) x_μj.
    design = np.zeros((m * o, k * d))
    for mu in range(m):
        for out in range(o):
            for i in range(k):
                design[mu * o + out, i * d : (i + 1) * d] = B[out, i] * G[mu, i] * X[mu]
    expected = _ridge_lstsq(design, Y.numpy().reshape(-1), ridge).reshape(k, d)
    PtP, PtY = normal_equations(X, G, Y)
    np.testing.assert_allclose(
        _a_step(PtP, PtY, B, d, ridge).numpy(), expected, rtol=1e-9, atol=1e-11
    )


def test_b_step_is_the_least_squares_fit_of_the_hidden_activations():
    X, Y, U, G = _problem()
    A = torch.randn(U.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    H = ((X @ A.T) * G).numpy()
    for out in range(Y.shape[1]):
        expected = _ridge_lstsq(H, Y[:, out].numpy(), 0.2)
        np.testing.assert_allclose(
            _b_step(X, G, A, Y, 0.2)[out].numpy(), expected, rtol=1e-9, atol=1e-11
        )


def test_objective_never_increases_and_the_module_reproduces_the_fit():
    X, Y, U, _ = _problem(m=200, d=6, k=12, o=4)
    res = fit_galu_als(
        X, Y, U, generator=torch.Generator().manual_seed(0), ridge=1e-4, max_iter=300
    )
    steps = np.diff(res.objective)
    assert (steps <= 1e-12 * res.objective[0]).all()
    assert res.converged and res.objective[-1] < res.objective[0]
    pred = res.predict(X)
    assert res.train_mse == pytest.approx(float(((pred - Y) ** 2).mean()), rel=1e-12)
    torch.testing.assert_close(res.to_module()(X), pred, rtol=1e-12, atol=1e-12)


def test_one_output_reaches_the_convex_optimum():
    # With o = 1, B((Ax) ⊙ g) can represent every absorbed W (w_i = b_i a_i), so ALS must reach
    # the closed-form least-squares loss.
    X, Y, U, _ = _problem(m=150, d=5, k=8, o=1)
    res = fit_galu_als(X, Y[:, 0], U, generator=torch.Generator().manual_seed(0), ridge=1e-10)
    assert res.train_mse == pytest.approx(fit_galu(X, Y[:, 0], U).train_mse, rel=1e-6)


def test_bad_arguments():
    X, Y, U, _ = _problem()
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"`max_iter` \(=0\) must be a positive integer"):
        fit_galu_als(X, Y, U, generator=gen, max_iter=0)
    with pytest.raises(ValueError, match=r"`ridge` \(=-1\) must be >= 0"):
        fit_galu_als(X, Y, U, generator=gen, ridge=-1)
    with pytest.raises(ValueError, match=r"same number of samples"):
        fit_galu_als(X, Y[:5], U, generator=gen)
