"""The scikit-learn estimators: the estimator contract, online = batch equivalence, the scaler,
and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from galu.gln import BernoulliGLN, GLNClassifier, GLNRegressor


@parametrize_with_checks([GLNClassifier(random_state=0), GLNRegressor(random_state=0)])
def test_sklearn_contract(estimator, check) -> None:
    check(estimator)


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def test_partial_fit_equals_fit_and_pieces_equal_one_stream() -> None:
    X, y = _digits()
    a = GLNClassifier(context_dim=2, lr=0.03, random_state=0).fit(X, y)
    b = GLNClassifier(context_dim=2, lr=0.03, random_state=0)
    b.partial_fit(X, y)  # the first call fixes the scaler, as fit's does
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=0, atol=1e-14)
    # in pieces: the scaler is the first piece's, and the network sees one stream
    c = GLNClassifier(context_dim=2, lr=0.03, random_state=0)
    for piece in np.array_split(np.arange(600), 7):
        c.partial_fit(X[piece], y[piece], classes=np.arange(10))
    first = X[np.array_split(np.arange(600), 7)[0]]
    sd = first.std(0)
    z = torch.from_numpy((X - first.mean(0)) / np.where(sd > 1e-12, sd, 1.0)).clamp(-30, 30)
    net = BernoulliGLN(64, 64, (16, 16, 1), num_outputs=10, context_dim=2, lr=0.03,
                       dtype=torch.float64, hyperplanes=c.gln_.contexts)  # fmt: skip
    net.update(torch.sigmoid(z), z, torch.from_numpy(y))
    p = net.predict(torch.sigmoid(z), z).numpy()
    np.testing.assert_allclose(c.predict_proba(X), p / p.sum(1, keepdims=True), atol=1e-13)
    assert c.n_seen_ == 600 and c.gln_.steps.item() == 600


def test_classifier_is_the_network_it_wraps() -> None:
    X, y = _digits()
    clf = GLNClassifier(layer_sizes=(8, 1), context_dim=2, lr=0.03, random_state=3).fit(X, y)
    # the same network by hand: standardise with the data's statistics, base = σ(z), side = z
    sd = X.std(0)
    z = torch.from_numpy((X - X.mean(0)) / np.where(sd > 1e-12, sd, 1.0))
    net = BernoulliGLN(
        64,
        64,
        (8, 1),
        num_outputs=10,
        context_dim=2,
        lr=0.03,
        dtype=torch.float64,
        hyperplanes=clf.gln_.contexts,
    )
    net.update(torch.sigmoid(z), z, torch.from_numpy(y))
    p = net.predict(torch.sigmoid(z), z).numpy()
    np.testing.assert_allclose(clf.predict_proba(X), p / p.sum(1, keepdims=True), atol=1e-14)
    # one pass already separates the digits well, and more passes do better on the training set
    assert clf.score(X, y) > 0.85
    more = GLNClassifier(
        layer_sizes=(8, 1), context_dim=2, lr=0.03, n_passes=3, random_state=3
    ).fit(X, y)
    assert more.score(X, y) > clf.score(X, y)


def test_binary_classifier_uses_one_network() -> None:
    X, y = _digits()
    yb = np.where(y < 5, "low", "high")
    clf = GLNClassifier(context_dim=2, random_state=0).fit(X, yb)
    assert clf.gln_.num_outputs == 1 and set(clf.classes_) == {"high", "low"}
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (clf.predict(X) == yb).mean() > 0.8


def test_unseen_classes_are_a_clear_error() -> None:
    X, y = _digits()
    clf = GLNClassifier(random_state=0).partial_fit(X[y < 3], y[y < 3])
    with pytest.raises(
        ValueError, match=r"classes \[3, 4\] not among classes_ \[0, 1, 2\].*classes="
    ):
        clf.partial_fit(X[(y >= 2) & (y < 5)], y[(y >= 2) & (y < 5)])
    with pytest.raises(ValueError, match=r"`n_passes` \(=0\)"):
        GLNClassifier(n_passes=0).fit(X, y)
    with pytest.raises(ValueError, match=r"at least 2 classes; got 1 class"):
        GLNClassifier().fit(X[:5], np.zeros(5))
    # a first call whose `classes` misses a label is refused before anything is built
    fresh = GLNClassifier(random_state=0)
    with pytest.raises(ValueError, match=r"classes \[2\] missing from `classes`"):
        fresh.partial_fit(X[:30], np.minimum(y[:30], 2), classes=[0, 1])
    assert not hasattr(fresh, "gln_")
    fresh.partial_fit(X[:30], np.minimum(y[:30], 2), classes=[0, 1, 2])  # and can be corrected


def test_minibatch_modes_learn_in_batches_of_batch_size() -> None:
    X, y = _digits()
    for mode in ("sum", "mean"):
        clf = GLNClassifier(context_dim=2, lr=0.03, batch_mode=mode, batch_size=16,
                            random_state=0).fit(X, y)  # fmt: skip
        assert clf.gln_.steps.item() == -(-600 // 16)  # one step per minibatch
        assert clf.score(X, y) > 0.8


def test_regressor_learns_and_reports_its_uncertainty() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(4000, 1))
    noise = 0.05 + 0.3 * (X[:, 0] > 0)
    y = np.sin(3 * X[:, 0]) + noise * rng.standard_normal(4000)
    reg = GLNRegressor(layer_sizes=(16, 1), lr=0.01, offset_scale=1.0, random_state=0)
    reg.fit(X[:3000], y[:3000])
    assert reg.score(X[3000:], y[3000:]) > 0.8
    _, sd = reg.predict(X[3000:], return_std=True)
    right = X[3000:, 0] > 0.2
    left = X[3000:, 0] < -0.2
    assert np.median(sd[right]) > 2 * np.median(sd[left])  # it sees the noisier half
    # the 200-sample sklearn check data: one pass is poor (the tag says so), passes help
    from sklearn.datasets import make_regression

    Xr, yr = make_regression(200, 5, noise=1.0, random_state=0)
    one = GLNRegressor(random_state=0).fit(Xr, yr).score(Xr, yr)
    many = GLNRegressor(random_state=0, n_passes=20).fit(Xr, yr).score(Xr, yr)
    assert many > 0.5 and many > one
