import math

import pytest
import torch

from galu.data.synthetic import clustered_task
from galu.experiments.generalization import Generalization
from galu.runner import run_experiment
from galu.solvers import fit_galu


def _task(task, noise, m=4000):
    return clustered_task(
        m,
        m,
        task=task,
        label_noise=noise,
        task_generator=torch.Generator().manual_seed(0),
        sample_generator=torch.Generator().manual_seed(1),
    )


def test_noise_levels_are_what_the_optimum_lines_assume():
    # Regression: y − b_j ~ N(0, σ²); the mean of n squares has sd σ²·sqrt(2/n).
    X0, y0, *_ = _task("regression", 0.0)
    X, y, *_ = _task("regression", 0.5)
    assert torch.equal(X0, X)  # same centres and samples, only the label noise differs
    n = y.numel()
    assert abs(float(((y - y0) ** 2).mean()) - 0.25) < 4 * 0.25 * math.sqrt(2 / n)
    # Classification: labels flipped with probability σ/2 (binomial sd sqrt(p(1 − p)/n)).
    _, c0, *_ = _task("classification", 0.0)
    _, c, *_ = _task("classification", 0.6)
    p = float((c != c0).float().mean())
    assert abs(p - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    assert set(c.unique().tolist()) == {-1.0, 1.0}


def test_exact_rows_are_independent_ridge_fits_on_the_points_data():
    exp = Generalization.from_preset("smoke")
    rows = exp.run_point(dict(task="regression", noise=0.5, model="galu-exact"), 0)
    X, y, Xt, yt = exp._data("regression", 0.5, 0)
    for lam in exp.config.ridges:
        fit = fit_galu(X, y, exp._gates(0), ridge=lam, solver="svd")
        got = {r["metric"]: r["value"] for r in rows if r["ridge"] == lam}
        test = float(((fit.predict(Xt) - yt) ** 2).mean())
        assert got["train_loss"] == pytest.approx(fit.train_mse, rel=1e-8)
        assert got["test_loss"] == pytest.approx(test, rel=1e-8)
        assert got["gap"] == pytest.approx(test - fit.train_mse, rel=1e-7, abs=1e-12)
        assert got["weight_norm_sq"] == pytest.approx(fit.weight_norm**2, rel=1e-8)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_vectorised_seeds_equal_one_at_a_time(task):
    exp = Generalization.from_preset("smoke", {"steps": 40})
    params = dict(task=task, noise=0.5, model="relu")
    together = exp.run_seeds(params, [0, 1])
    for s in (0, 1):
        alone = exp.run_point(params, s)
        for a, b in zip(alone, together[s], strict=True):
            assert a["metric"] == b["metric"]
            assert a["value"] == pytest.approx(b["value"], rel=1e-5, abs=1e-7)


def test_smoke_run(tmp_path):
    res = run_experiment("generalization", preset="smoke", out=tmp_path, progress=False)
    assert res.done == res.total == (2 * 3 + 2 * 2) * 2  # regression 3 models, class. 2
    assert [p.name for p in res.figures] == ["generalization_loss.png", "generalization_gap.png"]
    assert list(res.summary.columns) == ["task", "σ_y", "optimum", "relu", "galu", "galu-exact"]
