"""The CG path's pieces against independent computations: each preconditioner equals the dense
inverse of the matrix its docstring defines (built here from an explicit Ψ), the gate-aligned
direction is the gate vector for half-space gates, the preconditioners cut CG steps, and CG
gives up at the interpolation threshold where a direct solve is the right tool."""

import numpy as np
import pytest
import torch

from galu import Gate, ops
from galu.solvers import fit_galu, sample_gate_vectors
from galu.solvers._cg import (
    cg,
    dual_preconditioner,
    gate_directions,
    kron_preconditioner,
    refined_cg,
)
from tests.conftest import max_rel_diff


def _gated(m, d, k, seed=0, scale=None):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    if scale is not None:
        X = X * scale
    U = sample_gate_vectors(k, d, generator=g)
    return X, U, ops.gate_matrix(X, U, Gate())


def _directions_reference(X, G):
    """Least squares of each centred gate column on X with numpy; rows, then all, unit norm."""
    Xn, Gn = X.numpy(), G.numpy()
    B, *_ = np.linalg.lstsq(Xn, Gn - Gn.mean(0), rcond=None)  # (d, k)
    W = (B / np.linalg.norm(B, axis=0)).T
    return torch.from_numpy(W / np.linalg.norm(W))


def test_gate_directions_are_the_least_squares_directions_and_align_with_gate_vectors():
    X, U, G = _gated(20_000, 5, 7, scale=torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0]))
    W0 = gate_directions(X, G)
    assert max_rel_diff(W0, _directions_reference(X, G)) < 1e-10
    # For 1[u·x >= 0] on Gaussian x with covariance Σ the best linear predictor is ∝ Σ⁻¹Σu = u.
    cos = (W0 * U).sum(1) / (W0.norm(dim=1) * U.norm(dim=1))
    assert float(cos.min()) > 0.995
    # Gates that never change carry no direction.
    assert gate_directions(X, torch.ones(20_000, 3, dtype=torch.float64)) is None


def test_kron_preconditioner_is_exact_for_one_always_open_gate():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(50, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.1, 1.0])
    G1 = torch.ones(50, 1, dtype=torch.float64)  # ΨᵀΨ = XᵀX is exactly Kronecker
    V = torch.randn(2, 1, 4, generator=g, dtype=torch.float64)
    for ridge in (0.0, 0.7):
        precond = kron_preconditioner(X, G1, ridge)
        normal = ops.lifted_rmatvec(X, G1, ops.lifted_matvec(X, G1, V)) + ridge * V
        assert max_rel_diff(precond(normal), V) < 1e-10


@pytest.mark.parametrize("ridge", [0.0, 0.7])
def test_kron_preconditioner_is_the_inverse_of_its_definition(ridge):
    X, _, G = _gated(60, 4, 5, seed=1)
    m, d = X.shape
    k = G.shape[1]
    psi = ops.lift(X, G)  # explicit (m, kd)
    w0 = _directions_reference(X, G).reshape(-1)
    kron = torch.kron(G.T @ G / m, X.T @ X)
    gamma = float(w0 @ (psi.T @ psi) @ w0 - w0 @ kron @ w0)  # w₀ᵀPw₀ = w₀ᵀΨᵀΨw₀, ‖w₀‖ = 1
    assert gamma > 0
    dense = kron + ridge * torch.eye(k * d, dtype=torch.float64) + gamma * torch.outer(w0, w0)
    V = torch.randn(3, k, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    want = torch.linalg.solve(dense, V.reshape(3, -1).T).T.reshape(3, k, d)
    assert max_rel_diff(kron_preconditioner(X, G, ridge)(V), want) < 1e-9


@pytest.mark.parametrize("ridge", [0.0, 0.3])
def test_dual_preconditioner_is_the_inverse_of_its_definition(ridge):
    X, _, G = _gated(40, 4, 9, seed=2)
    m = X.shape[0]
    psi = ops.lift(X, G)
    K = psi @ psi.T
    mu = G.mean(0)
    F1 = ((G @ mu) / mu.norm())[:, None] * X  # t ⊙ X
    f0 = psi @ _directions_reference(X, G).reshape(-1)  # Ψ vec(W₀)
    off = K - F1 @ F1.T
    offdiag = off - torch.diag(torch.diagonal(off))
    gamma = float(f0 @ offdiag @ f0) / (float(f0 @ f0) ** 2 - float((f0**4).sum()))
    assert gamma > 0
    F = torch.cat([F1, gamma**0.5 * f0[:, None]], 1)
    dK = torch.diagonal(K)
    D = torch.maximum(dK - (F * F).sum(1), 0.1 * dK) + ridge
    dense = F @ F.T + torch.diag(D)
    R = torch.randn(3, m, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = dual_preconditioner(X, G, ridge)(R)
    assert max_rel_diff(got, torch.linalg.solve(dense, R.T).T) < 1e-9


def _steps(apply, rhs, precondition):
    _, steps, ok = cg(apply, rhs, 1e-6, 2000, precondition)
    assert ok
    return steps


def test_the_gate_aligned_term_cuts_cg_steps():
    # Dual (kd = 2m) and primal (kd = m/2) problems of the benchmark's shape, scaled down; the
    # step counts are deterministic (seeded data, float64).
    X, _, G = _gated(2048, 32, 128, seed=4)
    y = torch.randn(1, 2048, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def dual(a):
        return ops.lifted_matvec(X, G, ops.lifted_rmatvec(X, G, a[0]))[None]

    full = _steps(dual, y, dual_preconditioner(X, G, 0.0))
    # The rank-d part alone, built densely from the same definitions.
    mu = G.mean(0)
    F = ((G @ mu) / mu.norm())[:, None] * X
    dK = (X * X).sum(1) * (G * G).sum(1)
    D = torch.maximum(dK - (F * F).sum(1), 0.1 * dK)
    rank_d = torch.linalg.inv(F @ F.T + torch.diag(D))
    partial = _steps(dual, y, lambda r: r @ rank_d)
    plain = _steps(dual, y, None)
    assert full < partial < 0.6 * plain

    X, _, G = _gated(4096, 32, 64, seed=5)
    S = ops.lifted_rmatvec(X, G, y[0].repeat(2))[None]

    def normal(v):
        return ops.lifted_rmatvec(X, G, ops.lifted_matvec(X, G, v[0]))[None]

    full = _steps(normal, S, kron_preconditioner(X, G, 0.0))
    la, Qa = torch.linalg.eigh(G.T @ G / 4096)
    lc, Qc = torch.linalg.eigh(X.T @ X)
    inv = 1.0 / (la[:, None] * lc[None, :])
    kron_only = _steps(normal, S, lambda V: Qa @ ((Qa.T @ V @ Qc) * inv) @ Qc.T)
    assert full < kron_only < 0.6 * _steps(normal, S, None)


def test_cg_gives_up_at_the_interpolation_threshold_and_auto_solves_directly():
    X, U, G = _gated(384, 12, 32, seed=6)  # kd = m
    y = torch.randn(384, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # auto's budget here: the dual's m²(k + d) + m³/3 multiply-adds over 4mkd per step = 43.
    _, steps, ok = refined_cg(X, G, y, 0.0, 1e-10, 43, mixed=True, give_up=True)
    assert not ok and steps <= 24
    _, steps, ok = refined_cg(X, G, y, 0.0, 1e-10, 43, mixed=True)
    assert not ok and steps == 43  # what giving up saved: the rest of the budget
    fit = fit_galu(X, y[:, 0], U)
    assert fit.solver == "dual" and fit.n_iter is None
    assert fit.train_mse < 1e-18  # kd = m: the exact fit interpolates
