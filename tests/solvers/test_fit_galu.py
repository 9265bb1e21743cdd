"""Every solver path against an independent reference (numpy lstsq on an explicitly built Ψ)."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from galu import Gate
from galu.solvers import (
    ConvergenceWarning,
    RankWarning,
    choose_solver,
    fit_galu,
    hill_climb,
    ridge_path,
    sample_gate_vectors,
)
from tests.conftest import max_rel_diff

PATHS = ["primal", "dual", "lsqr", "cg", "svd"]
# LSQR stops at ‖Āᵀr‖ <= tol·‖Ā‖‖r‖ (tol 1e-10); its error is that times the condition number.
LSQR_RTOL = 1e-6
DIRECT_RTOL = 1e-9


def _problem(m, d, k, o=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn((m,) if o is None else (m, o), generator=g, dtype=torch.float64)
    U = sample_gate_vectors(k, d, generator=g)
    return X, y, U


def _numpy_reference(X, y, U, ridge):
    """Ψ by explicit loops and numpy's SVD least squares (augmented for ridge)."""
    Xn, Un = X.numpy(), U.numpy()
    m, d = Xn.shape
    k = Un.shape[0]
    psi = np.zeros((m, k * d))
    for i in range(k):
        gate = (Xn @ Un[i] >= 0).astype(float)
        psi[:, i * d : (i + 1) * d] = Xn * gate[:, None]
    Y = y.numpy().reshape(m, -1)
    if ridge > 0:
        psi = np.vstack([psi, math.sqrt(ridge) * np.eye(k * d)])
        Y = np.vstack([Y, np.zeros((k * d, Y.shape[1]))])
    w, *_ = np.linalg.lstsq(psi, Y, rcond=None)  # (kd, o), minimum norm
    return torch.from_numpy(w.T.reshape(-1, k, d))


# Under-parameterised (kd < m), over-parameterised (kd > m), with and without ridge, vector y.
CASES = [
    dict(m=120, d=6, k=8, o=None, ridge=0.0),
    dict(m=120, d=6, k=8, o=None, ridge=0.3),
    dict(m=60, d=6, k=20, o=None, ridge=0.0),
    dict(m=60, d=6, k=20, o=None, ridge=1e-2),
    dict(m=90, d=5, k=10, o=3, ridge=0.0),
    dict(m=40, d=5, k=12, o=3, ridge=0.5),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("solver", PATHS)
def test_solver_paths_agree_with_independent_reference(case, solver):
    X, y, U = _problem(case["m"], case["d"], case["k"], case["o"])
    ref = _numpy_reference(X, y, U, case["ridge"])
    fit = fit_galu(X, y, U, ridge=case["ridge"], solver=solver)
    W = fit.weight if fit.weight.ndim == 3 else fit.weight[None]
    assert fit.solver == solver
    assert fit.weight.shape == (
        (case["k"], case["d"]) if case["o"] is None else (case["o"], case["k"], case["d"])
    )
    tol = LSQR_RTOL if solver in ("lsqr", "cg") else DIRECT_RTOL
    assert max_rel_diff(W, ref) < tol
    # The reported training MSE is the MSE of the returned weights' predictions.
    pred = fit.predict(X)
    assert math.isclose(fit.train_mse, float(((pred - y) ** 2).mean()), rel_tol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_mixed_precision_cg_reaches_the_float64_reference(case, monkeypatch):
    # float32 GEMMs, float64 refinement: the same answer as the float64 reference, minimum norm
    # included (the wide cases), although the products really run in float32.
    import galu.solvers._galu as mod

    seen = []
    matvec = mod.ops.lifted_matvec
    monkeypatch.setattr(
        mod.ops, "lifted_matvec", lambda x, g, w: seen.append(x.dtype) or matvec(x, g, w)
    )
    X, y, U = _problem(case["m"], case["d"], case["k"], case["o"])
    ref = _numpy_reference(X, y, U, case["ridge"])
    fit = fit_galu(X, y, U, ridge=case["ridge"], solver="cg", mixed_precision=True)
    W = fit.weight if fit.weight.ndim == 3 else fit.weight[None]
    assert fit.converged and W.dtype == torch.float64
    assert torch.float32 in seen and torch.float64 in seen
    assert max_rel_diff(W, ref) < LSQR_RTOL


def test_auto_keeps_cg_only_when_it_converges_within_its_budget(monkeypatch):
    import galu.solvers._galu as mod

    X, y, U = _problem(m=400, d=6, k=10)  # tall: the direct choice is primal
    ref = _numpy_reference(X, y, U, 0.0)
    monkeypatch.setattr(mod, "_CG_FIRST_MIN_ITERS", 1)
    monkeypatch.setattr(mod, "_CG_FIRST_SHARE", 1e-3)  # a budget of thousands of iterations
    fit = fit_galu(X, y, U)
    assert fit.solver == "cg" and fit.converged and fit.n_iter > 1
    assert max_rel_diff(fit.weight[None], ref) < LSQR_RTOL
    # A 1-iteration budget cannot converge: auto falls back to the direct path, silently.
    monkeypatch.setattr(mod, "_CG_FIRST_SHARE", 15.0)  # 1.5e6 / 96_000 / 15 → one step
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_galu(X, y, U)
    assert fit.solver == "primal" and fit.n_iter is None
    assert max_rel_diff(fit.weight[None], ref) < DIRECT_RTOL


@pytest.mark.parametrize("n", [50, 100])  # exact eigenvalues (≤ 64), power/inverse iteration
def test_cholesky_is_kept_at_zero_ridge_only_for_a_clearly_nonsingular_system(n):
    from galu.solvers._galu import _EIGVALSH_MAX, _clearly_nonsingular, _spd_solve

    assert (n <= _EIGVALSH_MAX) == (n == 50)
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))

    def psd(spectrum):
        return (Q * spectrum) @ Q.T

    good = psd(torch.logspace(0, -6, n, dtype=torch.float64))
    edge = psd(torch.cat([torch.ones(n - 1), torch.tensor([5e-13])]).double())
    for A, expected in ((good, True), (edge, False)):
        factor, info = torch.linalg.cholesky_ex(A)
        assert int(info) == 0  # Cholesky itself succeeds on both
        assert _clearly_nonsingular(A, factor) is expected
    b = torch.randn(n, 1, generator=g, dtype=torch.float64)
    x, rank = _spd_solve(good, b, 0.0)
    assert rank is None and max_rel_diff(x, torch.linalg.solve(good, b)) < 1e-8
    singular = psd(torch.cat([torch.ones(n - 1), torch.zeros(1)]).double())
    x, rank = _spd_solve(singular, b, 0.0)  # falls back to the minimum-norm solve
    assert rank == n - 1
    assert max_rel_diff(x, torch.linalg.pinv(singular, hermitian=True, rtol=1e-10) @ b) < 1e-9


def test_interpolation_at_kd_equal_m_and_overparameterised():
    for k in (12, 20):  # kd = m and kd > m
        X, y, U = _problem(m=72, d=6, k=k)
        for solver in ("primal", "dual", "svd"):
            assert fit_galu(X, y, U, solver=solver).train_mse < 1e-20


def test_expected_training_mse_is_one_minus_kd_over_m():
    # E[MSE] = (m − kd)/m · E[y²] for y independent of Ψ. Each fit's MSE is σ²χ²_{m−kd}/m,
    # so the mean over n fits has standard deviation sqrt(2(m−kd)/n)/m.
    m, d, k, n = 200, 10, 8, 40
    mses = [fit_galu(*_problem(m, d, k, seed=s)).train_mse for s in range(n)]
    expected = 1 - k * d / m
    sd = math.sqrt(2 * (m - k * d) / n) / m
    assert abs(np.mean(mses) - expected) < 4 * sd


def test_minimum_norm_solution_is_orthogonal_to_the_null_space():
    # kd > m: many interpolants; the minimum-norm one lies in the row space of Ψ, i.e. W = Ψᵀα.
    X, y, U = _problem(m=30, d=4, k=20)
    w = fit_galu(X, y, U, solver="primal").weight
    w_dual = fit_galu(X, y, U, solver="dual").weight
    assert max_rel_diff(w, w_dual) < DIRECT_RTOL
    other = w + 0.0  # any interpolant w + n with n in the null space has a larger norm
    null_dir = (
        torch.linalg.svd(torch.cat([(X * (X @ U[i] >= 0).double()[:, None]) for i in range(20)], 1))
        .Vh[-1]
        .reshape(20, 4)
    )
    assert torch.linalg.vector_norm(other + 0.1 * null_dir) > torch.linalg.vector_norm(w)


def test_ridge_shrinks_the_weight_norm_monotonically():
    X, y, U = _problem(m=60, d=6, k=12)
    norms = [fit_galu(X, y, U, ridge=lam).weight_norm for lam in (0.0, 0.01, 0.1, 1.0, 10.0)]
    assert all(a > b for a, b in itertools.pairwise(norms))


def test_auto_picks_by_shape_and_memory():
    kw = dict(dtype=torch.float64, device=torch.device("cpu"))
    assert choose_solver(10_000, 10, 10, memory_limit=2**30, **kw) == "primal"  # kd ≪ m
    assert choose_solver(500, 100, 50, memory_limit=2**30, **kw) == "dual"  # m ≪ kd
    assert choose_solver(10_000, 100, 100, memory_limit=2**20, **kw) == "cg"  # nothing fits
    X, y, U = _problem(m=50, d=4, k=30)
    assert fit_galu(X, y, U).solver == "dual"


def test_auto_does_not_pick_the_rank_deficient_side_at_zero_ridge():
    # (m, k, d) = (768, 32, 16): kd = 512 < m. By Cholesky flops alone the dual (m³/3 + m²(k+d))
    # is cheaper than the primal (m(kd)² + (kd)³/3), but at λ = 0 its m × m kernel has rank
    # ≤ kd and needs an eigendecomposition; with a ridge it is full rank again.
    kw = dict(dtype=torch.float64, device=torch.device("cpu"), memory_limit=2**30)
    assert choose_solver(768, 32, 16, **kw) == "primal"
    assert choose_solver(768, 32, 16, ridge=1.0, **kw) == "dual"
    assert choose_solver(300, 32, 16, **kw) == "dual"  # kd > m: the primal is the singular side
    X, y, U = _problem(m=768, d=16, k=32)
    auto, dual = fit_galu(X, y, U), fit_galu(X, y, U, solver="dual")
    assert auto.solver in ("primal", "cg") and auto.solver != "dual"
    assert torch.allclose(auto.predict(X), dual.predict(X), rtol=0, atol=1e-8)


def test_lsqr_warns_when_it_cannot_converge():
    X, y, U = _problem(m=120, d=6, k=8)
    with pytest.warns(
        ConvergenceWarning, match=r"LSQR stopped \(max_iter=3\) before reaching tol=1e-10"
    ):
        fit = fit_galu(X, y, U, solver="lsqr", max_iter=3)
    assert not fit.converged and fit.n_iter == 3


def test_float32_and_gate_convention_are_respected():
    X, y, U = _problem(m=80, d=5, k=6)
    # Put sample 0 exactly on gate 0's hyperplane: only the convention decides that gate. With
    # u_0 = e_d and x_0[d] = 0 every product is an exact zero, whatever order a BLAS sums in
    # (projecting x_0 onto the hyperplane left 2.8e-17 on one CPU).
    U[0] = torch.zeros(5, dtype=torch.float64)
    U[0, -1] = 1.0
    X[0, -1] = 0.0
    assert float((X @ U.T)[0, 0]) == 0.0
    fits = {a: fit_galu(X, y, U, gate=Gate(at_zero=a), solver="svd") for a in (0.0, 1.0)}
    assert fits[0.0].train_mse != fits[1.0].train_mse
    f32 = fit_galu(X, y, U, dtype=torch.float32, ridge=0.1, solver="primal")
    f64 = fit_galu(X, y, U, dtype=torch.float64, ridge=0.1, solver="primal")
    assert f32.weight.dtype == torch.float32
    assert max_rel_diff(f32.weight.double(), f64.weight) < 1e-4


def test_fitted_module_reproduces_the_fit():
    X, y, U = _problem(m=50, d=4, k=6, o=2)
    fit = fit_galu(X, y, U, ridge=0.1)
    module = fit.to_module()
    torch.testing.assert_close(module(X), fit.predict(X), rtol=1e-12, atol=1e-12)


def test_hill_climbing_never_increases_the_loss_and_is_seeded():
    X, y, U = _problem(m=100, d=5, k=8)
    base = fit_galu(X, y, U).train_mse
    res = hill_climb(X, y, U, steps=30, generator=torch.Generator().manual_seed(3))
    assert res.history[0] <= base
    assert all(b <= a for a, b in zip(res.history, res.history[1:], strict=False))
    assert res.fit.train_mse == pytest.approx(res.history[-1], rel=1e-9)
    assert res.fit.train_mse < base
    # The reported fit is an exact fit of its own (accepted) gates.
    refit = fit_galu(X, y, res.fit.gate_vectors)
    assert math.isclose(refit.train_mse, res.fit.train_mse, rel_tol=1e-9)
    again = hill_climb(X, y, U, steps=30, generator=torch.Generator().manual_seed(3))
    assert again.history == res.history


@pytest.mark.parametrize(("ridge", "o"), [(0.0, None), (0.3, 2)])
def test_block_gram_scorer_equals_a_fresh_solve_through_many_updates(ridge, o):
    """Every proposal's SSE against numpy's least squares on the changed gates, through 40
    proposals (about half accepted, so H goes through many block updates)."""
    from galu.solvers._blockgram import BlockGramScorer

    X, y, U = _problem(m=90, d=4, k=6, o=o, seed=5)
    Y = y[:, None] if y.ndim == 1 else y
    gate = Gate()
    scorer = BlockGramScorer.from_gates(X, gate(X @ U.T), Y, ridge)
    assert scorer is not None
    gen = torch.Generator().manual_seed(9)
    accepted = 0
    for _ in range(40):
        j = int(torch.randint(6, (1,), generator=gen))
        u = torch.randn(4, generator=gen, dtype=torch.float64)
        U_new = U.clone()
        U_new[j] = u
        sse, proposal = scorer.propose(j, gate(X @ u))
        W = _numpy_reference(X, y, U_new, ridge).reshape(Y.shape[1], -1).T.numpy()  # (kd, o)
        gates = (X.numpy() @ U_new.numpy().T >= 0).astype(float)
        psi = np.hstack([X.numpy() * gates[:, [i]] for i in range(6)])
        ref = float(((psi @ W - Y.numpy()) ** 2).sum())
        assert sse == pytest.approx(ref, rel=1e-10)
        if sse <= scorer.sse:
            scorer.accept(proposal)
            U, accepted = U_new, accepted + 1
    assert 5 <= accepted <= 35


def test_block_gram_scorer_refuses_a_singular_gram_and_hill_climb_falls_back():
    from galu.solvers._blockgram import BlockGramScorer

    X, y, U = _problem(m=20, d=4, k=8)  # kd = 32 > m = 20: ΨᵀΨ is singular at λ = 0
    assert BlockGramScorer.from_gates(X, Gate()(X @ U.T), y[:, None], 0.0) is None
    res = hill_climb(X, y, U, steps=10, generator=torch.Generator().manual_seed(1))
    assert res.fit.train_mse == pytest.approx(0.0, abs=1e-20)


def test_hill_climb_with_block_updates_takes_the_same_decisions_as_fresh_solves():
    X, y, U = _problem(m=120, d=5, k=8, seed=2)
    fast = hill_climb(X, y, U, steps=60, generator=torch.Generator().manual_seed(4))
    slow = hill_climb(
        X, y, U, steps=60, generator=torch.Generator().manual_seed(4), block_updates=False
    )
    assert fast.accepted == slow.accepted > 0
    np.testing.assert_allclose(fast.history, slow.history, rtol=1e-10)
    torch.testing.assert_close(fast.fit.gate_vectors, slow.fit.gate_vectors, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(y=np.zeros(9)), r"same number of samples; got X \(10, 3\) and y \(9,\)"),
        (dict(X=np.zeros(10)), r"`X` must be 2-D .* got shape \(10,\)"),
        (dict(y=np.zeros((10, 2, 2))), r"`y` must be 1-D \(m,\) or 2-D \(m, o\); got shape"),
        (dict(X=np.full((10, 3), np.nan)), r"`X` contains 30 NaN or infinite"),
        (dict(y=np.r_[np.inf, np.zeros(9)]), r"`y` contains 1 NaN or infinite"),
        (dict(U=np.zeros((0, 3))), r"at least one gate vector \(k >= 1\); got k = 0"),
        (dict(U=np.zeros((4, 2))), r"`gate_vectors` must be \(k, d\) with d = X.shape\[1\] \(=3\)"),
        (dict(ridge=-1.0), r"`ridge` \(=-1.0\) must be >= 0"),
        (dict(X=np.ones((10, 0)), U=np.ones((4, 0))), r"at least one sample and one feature"),
        (dict(ridge=float("nan")), r"`ridge` \(=nan\) must be a finite number"),
        (dict(solver="cholesky"), r"`solver` \(='cholesky'\) must be one of \('auto', 'primal'"),
        (
            dict(solver="lsqr", mixed_precision=True),
            r"`mixed_precision=True` applies to solver='cg' or 'auto'; got solver='lsqr'",
        ),
    ],
)
def test_bad_input_errors_name_the_argument(kwargs, message):
    args = dict(X=np.ones((10, 3)), y=np.zeros(10), U=np.ones((4, 3)), ridge=0.0, solver="auto")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fit_galu(
            args["X"],
            args["y"],
            args["U"],
            ridge=args["ridge"],
            solver=args["solver"],
            mixed_precision=args.get("mixed_precision", False),
        )


def test_no_warnings_on_a_healthy_fit():
    X, y, U = _problem(m=60, d=5, k=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_galu(X, y, U, solver="lsqr")


def test_numpy_scalar_ridge_and_iteration_arguments():
    X, y, U = _problem(m=40, d=3, k=4)
    a = fit_galu(X, y, U, ridge=np.float32(0.5), solver="primal")
    b = fit_galu(X, y, U, ridge=0.5, solver="primal")
    assert torch.equal(a.weight, b.weight)
    assert fit_galu(X, y, U, ridge=np.int64(0)).ridge == 0.0
    with pytest.raises(ValueError, match=r"`max_iter` \(=0\) must be a positive integer"):
        fit_galu(X, y, U, solver="lsqr", max_iter=0)
    with pytest.raises(ValueError, match=r"`tol` \(=-1\) must be a positive number"):
        fit_galu(X, y, U, solver="lsqr", tol=-1)


def test_squared_systems_warn_when_they_lose_rank_that_svd_keeps():
    # Feature scales 1000× apart (gates unchanged): cond(Ψ) ≈ 1e7 at kd = m, so the squared
    # systems drop directions of Ψ. They must say so; the SVD path still interpolates.
    X, y, U = _problem(m=256, d=16, k=16, seed=0)
    X[:, 0] *= 1000
    U[:, 0] /= 1000
    assert fit_galu(X, y, U, solver="svd").train_mse < 1e-15
    for solver in ("primal", "dual"):
        with pytest.warns(
            RankWarning,
            match=rf"solver='{solver}' kept numerical rank \d+, but Ψ "
            r"can have rank up to 256",
        ):
            fit_galu(X, y, U, solver=solver)


def test_genuine_rank_deficiency_does_not_warn():
    # Duplicate and never-open gates reduce rank(Ψ) for real: nothing is lost, nothing to say.
    X, y, U = _problem(m=30, d=3, k=6)
    U[1] = U[0]
    U[2] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for solver in ("primal", "dual"):
            fit = fit_galu(X, y, U, gate=Gate(at_zero=0.0), solver=solver)
            ref = fit_galu(X, y, U, gate=Gate(at_zero=0.0), solver="svd")
            assert max_rel_diff(fit.weight, ref.weight) < DIRECT_RTOL


def test_points_with_every_gate_closed_are_not_a_rank_loss():
    # kd = m with k = 2: about a quarter of the points have both gates closed, so they are zero
    # rows of Ψ and rank(Ψ) < m for real. The rank bound counts them, and auto keeps the dual.
    from galu.solvers._galu import _rank_bound, gate_matrix_blocked

    X, y, U = _problem(m=64, d=32, k=2, seed=3)
    G = gate_matrix_blocked(X, U, Gate())
    closed = int((G == 0).all(dim=1).sum())
    assert closed >= 8
    psi = (G[:, :, None] * X[:, None, :]).reshape(64, -1)
    assert _rank_bound(X, G) == int(torch.linalg.matrix_rank(psi)) == 64 - closed
    ref = fit_galu(X, y, U, solver="svd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for solver in ("dual", "auto"):
            fit = fit_galu(X, y, U, solver=solver)
            assert fit.solver == "dual"
            assert max_rel_diff(fit.weight, ref.weight) < DIRECT_RTOL


def test_to_module_and_hill_climb_leave_the_global_rng_alone():
    X, y, U = _problem(m=40, d=3, k=4)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    fit_galu(X, y, U).to_module()
    hill_climb(X, y, U, steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("shape", [(120, 6, 8), (40, 6, 12)])  # primal (kd < m) and dual paths
def test_ridge_path_matches_independent_fits(shape):
    m, d, k = shape
    X, y, U = _problem(m=m, d=d, k=k, o=2)
    ridges = [0.0, 1e-3, 0.1, 10.0]
    path = ridge_path(X, y, U, ridges)
    for lam, fit in zip(ridges, path, strict=True):
        ref = _numpy_reference(X, y, U, lam)
        assert max_rel_diff(fit.weight, ref) < DIRECT_RTOL
        assert fit.ridge == lam
    with pytest.raises(ValueError, match=r"`ridge` \(=-1\) must be >= 0"):
        ridge_path(X, y, U, [0.1, -1])


def test_inputs_are_accepted_as_the_estimator_accepts_them():
    # int64, float16 and bool arrays, lists, and pandas DataFrames / Series (as GaLURegressor
    # takes them) fit exactly as their float64 values do.
    import pandas as pd

    g = torch.Generator().manual_seed(0)
    Xi = torch.randint(-4, 5, (60, 4), generator=g)  # int64
    yi = torch.randint(-3, 4, (60,), generator=g)
    U = sample_gate_vectors(5, 4, generator=g)
    ref = fit_galu(Xi.double(), yi.double(), U, ridge=0.1)
    frame = pd.DataFrame(Xi.numpy(), columns=list("abcd"))
    for X, y in (
        (Xi, yi),
        (Xi.numpy(), yi.numpy()),
        (Xi.half(), yi.half()),  # small integers are exact in float16
        (frame, pd.Series(yi.numpy())),
        (Xi.tolist(), yi.tolist()),
    ):
        fit = fit_galu(X, y, U, ridge=0.1)
        assert torch.equal(fit.weight, ref.weight), type(X)
    two = fit_galu(frame, pd.DataFrame({"y": yi.numpy(), "z": -yi.numpy()}), U, ridge=0.1)
    assert two.weight.shape == (2, 5, 4)  # two outputs: one solve, summed in another order
    assert max_rel_diff(two.weight[0], ref.weight) < 1e-12
    assert max_rel_diff(two.weight[1], -ref.weight) < 1e-12
    assert torch.equal(ref.predict(frame), ref.predict(Xi))
    assert fit_galu(Xi > 0, yi, U, ridge=0.1).weight.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            dict(dtype=torch.float16),
            ValueError,
            r"`dtype` \(=torch.float16\) must be torch.float64 or torch.float32",
        ),
        (
            dict(dtype=torch.int64),
            ValueError,
            r"`dtype` \(=torch.int64\) must be torch.float64 or torch.float32",
        ),
        (
            dict(X=np.ones((10, 3), dtype=np.complex128)),
            TypeError,
            r"`X` is complex \(complex128\); fit_galu fits real data",
        ),
        (
            dict(X=np.array([["a", "b", "c"]] * 10, dtype=object)),
            TypeError,
            r"`X` must be an array of numbers \(float, int or bool\); got ndarray of dtype object",
        ),
        (
            dict(X="pandas-mixed"),
            TypeError,
            r"`X` must hold numbers only; DataFrame column\(s\) \['c'\] are not numeric",
        ),
    ],
)
def test_unsupported_dtypes_and_types_are_named(kwargs, error, message):
    import pandas as pd

    X = kwargs.pop("X", np.ones((10, 3)))
    if isinstance(X, str):
        X = pd.DataFrame({"a": np.ones(10), "b": np.arange(10), "c": ["x"] * 10})
    with pytest.raises(error, match=message):
        fit_galu(X, np.zeros(10), np.ones((4, 3)), **kwargs)
