"""The lifted-design identities every solver relies on, against explicit loops."""

import pytest
import torch

from galu import Gate, ops
from tests.conftest import TOL


def _explicit_psi(X, G):
    m, d = X.shape
    k = G.shape[1]
    psi = torch.zeros(m, k * d, dtype=X.dtype)
    for mu in range(m):
        for i in range(k):
            psi[mu, i * d : (i + 1) * d] = G[mu, i] * X[mu]
    return psi


def test_lift_matches_explicit_definition(gen):
    X = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    U = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    G = ops.gate_matrix(X, U, Gate())
    assert torch.equal(ops.lift(X, G), _explicit_psi(X, G))


@pytest.mark.parametrize("k", [6, 3])  # k >= d runs the gates-first GEMM order, k < d the other
def test_matvecs_equal_products_with_the_lifted_matrix(gen, k):
    X = torch.randn(11, 5, generator=gen, dtype=torch.float64)
    G = ops.gate_matrix(X, torch.randn(k, 5, generator=gen, dtype=torch.float64), Gate())
    psi = _explicit_psi(X, G)
    W = torch.randn(k, 5, generator=gen, dtype=torch.float64)
    r = torch.randn(11, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        ops.lifted_matvec(X, G, W), psi @ W.reshape(-1), **TOL[torch.float64]
    )
    torch.testing.assert_close(
        ops.lifted_rmatvec(X, G, r).reshape(-1), psi.T @ r, **TOL[torch.float64]
    )
    # Several outputs sharing the gates.
    W3 = torch.randn(3, k, 5, generator=gen, dtype=torch.float64)
    R = torch.randn(11, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        ops.lifted_matvec(X, G, W3), psi @ W3.reshape(3, -1).T, **TOL[torch.float64]
    )
    torch.testing.assert_close(
        ops.lifted_rmatvec(X, G, R).reshape(3, -1), (psi.T @ R).T, **TOL[torch.float64]
    )
    # The optional contiguous Gᵀ gives the same products.
    gt = G.T.contiguous()
    torch.testing.assert_close(
        ops.lifted_rmatvec(X, G, R, g_t=gt), ops.lifted_rmatvec(X, G, R), **TOL[torch.float64]
    )
    torch.testing.assert_close(
        ops.lifted_rmatvec(X, G, r, g_t=gt), ops.lifted_rmatvec(X, G, r), **TOL[torch.float64]
    )


def test_galu_kernel_is_the_gram_of_the_lifted_design(gen):
    X = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    X2 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    U = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    G, G2 = ops.gate_matrix(X, U, Gate()), ops.gate_matrix(X2, U, Gate())
    torch.testing.assert_close(
        ops.galu_kernel(X, G), _explicit_psi(X, G) @ _explicit_psi(X, G).T, **TOL[torch.float64]
    )
    torch.testing.assert_close(
        ops.galu_kernel(X, G, X2, G2),
        _explicit_psi(X, G) @ _explicit_psi(X2, G2).T,
        **TOL[torch.float64],
    )
