"""The batched torch LSQR against SciPy's LSQR (an independent implementation)."""

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import lsqr as scipy_lsqr

from galu.solvers import lsqr


@pytest.mark.parametrize("damp", [0.0, 0.7])
@pytest.mark.parametrize("shape", [(40, 15), (15, 40)])
def test_matches_scipy_column_by_column(shape, damp):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(*shape, generator=g, dtype=torch.float64)
    B = torch.randn(shape[0], 3, generator=g, dtype=torch.float64)
    res = lsqr(lambda v: A @ v.T, lambda u: (A.T @ u).T, B, damp=damp, tol=1e-12, max_iter=500)
    assert res.converged
    for j in range(3):
        ref = scipy_lsqr(
            A.numpy(), B[:, j].numpy(), damp=damp, atol=1e-14, btol=1e-14, iter_lim=500
        )[0]
        np.testing.assert_allclose(res.x[j].numpy(), ref, rtol=1e-8, atol=1e-10)


def test_zero_right_hand_side_returns_zero_at_once():
    A = torch.eye(3, dtype=torch.float64)
    res = lsqr(lambda v: A @ v.T, lambda u: (A.T @ u).T, torch.zeros(3, 2, dtype=torch.float64))
    assert res.n_iter == 0 and res.converged and not res.x.any()


def test_one_dimensional_b_gets_a_clear_error():
    A = torch.eye(3, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"`u_col_dim` \(=1\) must index a dimension of `b` "
        r"\(shape \(3,\)\); for a single right-hand side",
    ):
        lsqr(lambda v: A @ v, lambda u: A.T @ u, torch.ones(3, dtype=torch.float64))
