"""The GGDLN kernel-renormalisation theory: its saddle-point equations, special cases and limits,
each against an independent computation."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from galu.nn import GGDLN
from galu.theory import action_and_gradient, ggdln_problem, ggdln_theory, path_gates, solve_ggdln


def _data(P: int, N0: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(P, N0, generator=g, dtype=torch.float64)
    return X, torch.sign(X[:, 0] + 0.5 * X[:, 1])


@pytest.mark.parametrize(
    ("depth", "readout"), [(1, "gated"), (2, "gated"), (2, "ungated"), (3, "gated")]
)
def test_saddle_point_equations_are_the_gradient_of_the_action(depth, readout):
    """The closed-form ∂S/∂U_l against central finite differences of S, at a point off the
    saddle (random symmetric directions)."""
    X, y = _data(15, 6)
    net = GGDLN(
        6,
        7,
        depth,
        2,
        readout=readout,
        bias_std=0.4,
        prior_var=(1.5, 0.8, 1.2, 0.9)[: depth + 1],
        generator=torch.Generator().manual_seed(1),
    )
    pb = ggdln_problem(net, X, y, temperature=0.2)
    g = torch.Generator().manual_seed(2)
    U = []
    for u in pb.gp_order_parameters():
        B = torch.randn(u.shape, generator=g, dtype=torch.float64) * 0.2
        U.append(u + B @ B.T)
    _, grads = action_and_gradient(pb, U)
    for l in range(depth):
        E = torch.randn(U[l].shape, generator=g, dtype=torch.float64)
        E = E + E.T
        eps = 1e-5
        up = [u + eps * E if k == l else u for k, u in enumerate(U)]
        dn = [u - eps * E if k == l else u for k, u in enumerate(U)]
        fd = (action_and_gradient(pb, up)[0] - action_and_gradient(pb, dn)[0]) / (2 * eps)
        assert abs(fd - float((grads[l] * E).sum())) < 1e-6 * max(1.0, abs(fd))


@pytest.mark.parametrize(
    ("depth", "readout"), [(1, "gated"), (2, "gated"), (2, "ungated"), (3, "gated")]
)
def test_the_solution_satisfies_the_saddle_point_equations(depth, readout):
    X, y = _data(25, 6)
    net = GGDLN(
        6, 10, depth, 2, readout=readout, bias_std=0.4, generator=torch.Generator().manual_seed(3)
    )
    th = ggdln_theory(net, X, y, 0.1)
    assert th.converged and th.residual < 1e-6
    for U in th.order_parameters:
        assert torch.linalg.eigvalsh(U)[0] > 0
    # the renormalised kernel moved away from the GP kernel (finite width matters here)
    assert float((th.kernel - th.gp_kernel).norm() / th.gp_kernel.norm()) > 1e-3


def test_one_hidden_layer_gated_readout_closed_fixed_point():
    """U⁻¹ = I/σ_a² + (σ_1²/N) Γᵀ[(A⁻¹ − v vᵀ) ⊙ H]Γ, evaluated in NumPy from the solution."""
    X, y = _data(30, 5)
    N, T = 8, 0.05
    net = GGDLN(
        5, N, 1, 3, bias_std=0.5, prior_var=(1.3, 0.7), generator=torch.Generator().manual_seed(4)
    )
    th = ggdln_theory(net, X, y, T)
    U = th.order_parameters[0].numpy()
    G = [g.numpy() for g in net.scaled_gates(X)]
    Xn = X.numpy()
    H = (G[0] @ G[0].T) * (Xn @ Xn.T / 5)
    K = 1.3 * (G[1] @ U @ G[1].T) * H
    Ainv = np.linalg.inv(K + T * np.eye(30))
    v = Ainv @ y.numpy()
    rhs = np.eye(3) / 0.7 + (1.3 / N) * G[1].T @ ((Ainv - np.outer(v, v)) * H) @ G[1]
    np.testing.assert_allclose(np.linalg.inv(U), rhs, rtol=1e-6, atol=1e-7)
    # shape renormalisation: the off-diagonal (path-coupling) entries are not zero
    assert np.abs(U - np.diag(np.diag(U))).max() > 1e-3


def test_deep_linear_one_layer_scalar_renormalisation_by_root_finding():
    """M = 1, g ≡ 1, L = 1: u solves σ_1² Tr(R K0) + N(1/σ_a² − 1/u) = 0, found here with
    scipy's brentq on K0's eigen-decomposition."""
    X, y = _data(20, 6)
    N, T, s1, sa = 5, 0.3, 1.4, 0.6
    th = ggdln_theory(GGDLN.deep_linear(6, N, 1, prior_var=(s1, sa)), X, y, T)
    lam, Q = np.linalg.eigh(X.numpy() @ X.numpy().T / 6)
    yk2 = (Q.T @ y.numpy()) ** 2

    def eq(u: float) -> float:
        c = s1 * u * lam + T
        tr_RK0 = np.sum(lam / c) - np.sum(yk2 * lam / c**2)
        return s1 * tr_RK0 + N * (1 / sa - 1 / u)

    u = brentq(eq, 1e-6, 1e6, xtol=1e-14)
    assert abs(float(th.order_parameters[0]) / u - 1) < 1e-7


def test_gp_limit_is_recovered_like_one_over_width():
    X, y = _data(20, 6)
    net = GGDLN(6, 4, 2, 2, bias_std=0.3, generator=torch.Generator().manual_seed(5))
    base = ggdln_problem(net, X, y, 0.1)
    devs = []
    for N in (10**3, 10**4, 10**5):  # the theory needs only the widths, not the weights
        th = solve_ggdln(dataclasses.replace(base, widths=(N, N)))
        devs.append(float((th.kernel - th.gp_kernel).norm() / th.gp_kernel.norm()))
    assert devs[0] < 1e-2
    for big, small in itertools.pairwise(devs):
        assert 8 < big / small < 12.5  # ∝ 1/N up to O(1/N²)


def test_deep_linear_mean_is_independent_of_width_and_depth_but_ggdln_mean_is_not():
    """At T → 0 with P ≤ N0 the DLN posterior mean is min-norm regression on K0 (computed here
    with NumPy's lstsq), whatever the width and depth; global gating breaks that."""
    X, y = _data(8, 12)
    Xt, _ = _data(15, 12, seed=9)
    T = 1e-9
    ref = Xt.numpy() @ np.linalg.lstsq(X.numpy(), y.numpy(), rcond=None)[0]
    for depth in (1, 2, 3):
        for N in (3, 30, 300):
            th = ggdln_theory(GGDLN.deep_linear(12, N, depth), X, y, T)
            np.testing.assert_allclose(th.predict(Xt)[0].numpy(), ref, rtol=1e-5, atol=1e-6)
    means = {}
    for depth in (1, 2):
        for N in (3, 300):
            net = GGDLN(12, N, depth, 3, bias_std=0.5, generator=torch.Generator().manual_seed(6))
            means[depth, N] = ggdln_theory(net, X, y, T).predict(Xt)[0]
    spread = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert spread(means[1, 3], means[1, 300]) > 1e-2
    assert spread(means[2, 3], means[2, 300]) > 1e-2
    assert spread(means[1, 300], means[2, 300]) > 1e-2


def test_path_gates_row_kronecker_order():
    g = torch.Generator().manual_seed(0)
    gates = [
        torch.rand(4, 2, generator=g),
        torch.rand(4, 3, generator=g),
        torch.rand(4, 2, generator=g),
    ]
    G = path_gates(gates, 1)
    for p in range(4):
        expect = torch.kron(torch.kron(gates[2][p], gates[1][p]), gates[0][p])
        torch.testing.assert_close(G[p], expect)


def test_predict_needs_gates_without_a_model_and_bad_problems_are_named():
    from galu.theory import GGDLNProblem, solve_ggdln

    X, y = _data(10, 4)
    gates = (torch.ones(10, 1, dtype=torch.float64),) * 2
    th = solve_ggdln(GGDLNProblem(X, y, gates, (5.0,), (1.0, 1.0), 0.1))
    with pytest.raises(ValueError, match="scaled `gates`"):
        th.predict(X)
    with pytest.raises(ValueError, match="`temperature`"):
        GGDLNProblem(X, y, gates, (5.0,), (1.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="`prior_var`"):
        GGDLNProblem(X, y, gates, (5.0,), (1.0,), 0.1)
    with pytest.raises(ValueError, match="`limit`"):
        solve_ggdln(GGDLNProblem(X, y, gates, (5.0,), (1.0, 1.0), 0.1), limit="ntk")


@pytest.mark.parametrize(("depth", "readout"), [(1, "gated"), (2, "gated"), (2, "ungated")])
def test_newton_hessian_matches_finite_differences_of_the_gradient(depth, readout):
    from galu.theory._ggdln import _newton_system, _sym_index, _symmetric_jacobian

    X, y = _data(15, 5)
    net = GGDLN(
        5,
        6,
        depth,
        2,
        readout=readout,
        bias_std=0.4,
        prior_var=0.7,
        generator=torch.Generator().manual_seed(7),
    )
    pb = ggdln_problem(net, X, y, temperature=0.2)
    g = torch.Generator().manual_seed(8)
    Us = []
    for u in pb.gp_order_parameters():
        B = torch.randn(u.shape, generator=g, dtype=torch.float64) * 0.2
        Us.append(u + B @ B.T)
    sizes = [u.shape[0] for u in Us]
    vec = torch.cat([u[_sym_index(u.shape[0])] for u in Us])
    J = _symmetric_jacobian(sizes[0], torch.float64, "cpu")
    S, grad, H = _newton_system(pb, vec, sizes, J)
    assert abs(S - action_and_gradient(pb, Us)[0]) < 1e-9 * abs(S)
    eps = 1e-6
    for k in range(vec.shape[0]):
        e = torch.zeros_like(vec)
        e[k] = eps
        gp_, gm_ = (
            _newton_system(pb, vec + e, sizes, J)[1],
            _newton_system(pb, vec - e, sizes, J)[1],
        )
        torch.testing.assert_close(H[:, k], (gp_ - gm_) / (2 * eps), rtol=1e-5, atol=1e-5)
        fd = (
            _newton_system(pb, vec + e, sizes, J)[0] - _newton_system(pb, vec - e, sizes, J)[0]
        ) / (2 * eps)
        assert abs(fd - float(grad[k])) < 1e-5 * max(1.0, abs(fd))


def test_newton_and_lbfgs_reach_the_same_saddle_point(monkeypatch):
    import galu.theory._ggdln as mod

    X, y = _data(40, 6)
    net = GGDLN(6, 8, 2, 2, bias_std=0.4, prior_var=0.3, generator=torch.Generator().manual_seed(9))
    newton = ggdln_theory(net, X, y, 0.05)
    monkeypatch.setattr(mod, "_NEWTON_MAX_PARAMS", 0)
    lbfgs = ggdln_theory(net, X, y, 0.05)
    assert newton.residual < 1e-6 and lbfgs.residual < 1e-6
    for a, b in zip(newton.order_parameters, lbfgs.order_parameters, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_unconverged_saddle_point_warns_with_its_residual_and_what_to_try():
    from galu.theory import SaddlePointWarning

    X, y = _data(25, 6)
    net = GGDLN(6, 10, 2, 2, bias_std=0.4, generator=torch.Generator().manual_seed(3))
    with pytest.warns(
        SaddlePointWarning,
        match=r"ggdln_theory: the saddle point did not converge: residual \d\.\de-\d\d > "
        r"tol=1e-06 after \d+ iterations .* raise `max_iter` \(=1\)",
    ) as record:
        th = ggdln_theory(net, X, y, 0.1, max_iter=1)
    assert not th.converged and th.residual > 1e-6
    assert issubclass(SaddlePointWarning, RuntimeWarning)
    assert record[0].filename == __file__  # points at the caller, not at galu's internals
    # The same problem, converged: silent (warnings are errors in this suite), and the GP limit
    # has no saddle point to miss.
    assert ggdln_theory(net, X, y, 0.1).converged
    assert ggdln_theory(net, X, y, 0.1, limit="gp", max_iter=1).converged
