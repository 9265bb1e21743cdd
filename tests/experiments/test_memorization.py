import math

import pytest

from galu.experiments.memorization import Memorization
from galu.runner import run_experiment
from galu.solvers import fit_galu


def _exp(**over):
    return Memorization.from_preset("smoke", over)


@pytest.mark.parametrize("model", ["relu", "galu"])
def test_vectorised_seeds_equal_one_seed_at_a_time(model):
    exp = _exp(steps=80)
    params = dict(m=64, d=8, k=4, model=model)
    together = exp.run_seeds(params, [0, 1, 2])
    for s in (0, 1, 2):
        alone = exp.run_point(params, s)
        assert alone[0]["metric"] == together[s][0]["metric"] == "train_mse"
        assert alone[0]["value"] == pytest.approx(together[s][0]["value"], rel=1e-5)


def test_exact_rows_are_the_solver_on_the_points_data_and_gates():
    exp = _exp()
    rows = exp.run_point(dict(m=64, d=8, k=4, model="galu-exact"), 3)
    X, y = exp._data(64, 8, 3)
    fit = fit_galu(X, y, exp._gates(4, 8, 3, 64), solver="svd")
    values = {r["metric"]: r["value"] for r in rows}
    assert values["train_mse"] == pytest.approx(fit.train_mse, rel=1e-10)
    assert values["weight_norm"] == pytest.approx(fit.weight_norm, rel=1e-8)


def test_adam_galu_trains_the_same_gates_as_the_closed_form():
    # Same data, same gates: with a generous budget Adam reaches the convex optimum.
    exp = _exp(steps=3000, lr=1e-2, batch_size=64)
    p = dict(m=64, d=4, k=4)
    adam = exp.run_point({**p, "model": "galu"}, 0)[0]["value"]
    exact = exp.run_point({**p, "model": "galu-exact"}, 0)[0]["value"]
    assert adam == pytest.approx(exact, rel=2e-3)
    assert adam >= exact * (1 - 1e-6)  # nothing beats the least-squares optimum


def _check_the_result(table, allow_relu_sd=0.0):
    t = table[table.metric == "train_mse"].assign(r=lambda d: d.k * d.d / d.m)
    exact = t[t.model == "galu-exact"]
    for (m, r), g in exact.groupby(["m", "r"]):
        if r < 1:
            # MSE = χ²_{m−kd}/m per fit: the mean of n fits has sd sqrt(2(m−kd)/n)/m.
            sd = math.sqrt(2 * m * (1 - r) / len(g)) / m
            assert abs(g.value.mean() - (1 - r)) < 4 * sd
        else:
            assert g.value.max() < 1e-12  # interpolation at kd = m
    hc = t[t.model == "galu-exact-hc"].set_index(["m", "d", "k", "seed"]).value
    ex = exact.set_index(["m", "d", "k", "seed"]).value
    assert (hc <= ex + 1e-12).all()
    return t


def test_smoke_run_shows_exact_galu_on_the_line(tmp_path):
    res = run_experiment("memorization", preset="smoke", out=tmp_path, progress=False)
    _check_the_result(res.table)


@pytest.mark.slow
def test_quick_preset_shows_the_result(tmp_path):
    res = run_experiment("memorization", preset="quick", out=tmp_path, progress=False)
    t = _check_the_result(res.table)
    relu = t[(t.model == "relu") & t.r.between(0.25, 0.75)].groupby("r").value.mean()
    assert (relu < 1 - relu.index).all(), "ReLU should memorize more than the 1 − kd/m line"
