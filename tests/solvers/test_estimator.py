import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from galu.solvers import GaLURegressor, fit_galu, sample_gate_vectors


@parametrize_with_checks(
    [
        GaLURegressor(n_neurons=8, random_state=0),
        GaLURegressor(n_neurons=8, ridge=0.1, solver="lsqr", random_state=0),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_estimator_equals_the_functional_fit_with_the_same_gates():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 5)), rng.normal(size=80)
    est = GaLURegressor(n_neurons=6, ridge=0.2, random_state=3).fit(X, y)
    fit = fit_galu(X, y, torch.from_numpy(est.gate_vectors_), ridge=0.2, solver="svd")
    np.testing.assert_allclose(est.coef_, fit.weight.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.predict(X), fit.predict(X).numpy(), rtol=1e-9, atol=1e-12)


def test_estimator_gates_follow_random_state_and_the_module_matches():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(60, 4)), rng.normal(size=(60, 2))
    a = GaLURegressor(n_neurons=5, random_state=7).fit(X, Y)
    b = GaLURegressor(n_neurons=5, random_state=7).fit(X, Y)
    c = GaLURegressor(n_neurons=5, random_state=8).fit(X, Y)
    np.testing.assert_array_equal(a.gate_vectors_, b.gate_vectors_)
    assert not np.array_equal(a.gate_vectors_, c.gate_vectors_)
    assert a.coef_.shape == (2, 5, 4)
    module = a.to_module()
    np.testing.assert_allclose(
        module(torch.from_numpy(X)).detach().numpy(), a.predict(X), rtol=1e-12, atol=1e-12
    )


def test_hill_climbing_estimator_fits_at_least_as_well():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(100, 5)), rng.normal(size=100)
    plain = GaLURegressor(n_neurons=8, random_state=0).fit(X, y)
    climbed = GaLURegressor(n_neurons=8, hill_climb_steps=20, random_state=0).fit(X, y)
    assert climbed.fit_.train_mse < plain.fit_.train_mse


def test_sample_gate_vectors_law():
    U = sample_gate_vectors(20_000, 4, generator=torch.Generator().manual_seed(0))
    # N(0, I/d): each coordinate has variance 1/4; the sample variance of 20 000 draws has
    # standard error 0.25·sqrt(2/20 000) ≈ 0.0025.
    assert torch.allclose(U.var(0), torch.full((4,), 0.25, dtype=torch.float64), atol=0.01)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n_neurons(n):
    with pytest.raises(ValueError, match=r"`n_neurons` \(=.*\) must be a positive integer"):
        GaLURegressor(n_neurons=n).fit(np.ones((5, 2)), np.ones(5))


@pytest.mark.parametrize("steps", [-1, 2.7])
def test_bad_hill_climb_steps(steps):
    with pytest.raises(ValueError, match=r"`hill_climb_steps` \(=.*\) must be an integer >= 0"):
        GaLURegressor(hill_climb_steps=steps).fit(np.ones((5, 2)), np.ones(5))
