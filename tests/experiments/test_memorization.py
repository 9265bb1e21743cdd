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


@pytest.mark.parametrize("model", ["relu", "galu-readout", "galu"])
def test_widths_trained_together_zero_padded_equal_each_width_alone(model):
    """One padded pass over every (d, k) against a separate run per width; the padded entries
    of every trained network stay exactly zero under Adam."""
    exp = _exp(steps=60, d=(4, 8), k=(2, 4))
    m, widths, seeds = 64, [(4, 2), (8, 4), (4, 4)], [0, 1]
    together = exp._train(model, m, widths, seeds)
    for d, k in widths:
        alone = exp._train(model, m, [(d, k)], seeds)
        for s in seeds:
            a = alone[s][0]["value"]
            t = next(r["value"] for r in together[s] if (r["d"], r["k"]) == (d, k))
            assert t == pytest.approx(a, rel=1e-4)


def test_padded_weights_stay_exactly_zero_under_adam():
    import torch

    from galu.train import embed_zero_padded, train_ensemble

    exp = _exp()
    for model in ("relu", "galu-readout", "galu"):
        small = exp._network(model, 64, 3, 2, 0, closed=True)
        big = embed_zero_padded(small, exp._network(model, 64, 6, 5, 0, closed=True))
        X, y = exp._data(64, 3, 0)
        X = torch.nn.functional.pad(X, (0, 3)).float()
        before = {n: p.detach().clone() for n, p in big.named_parameters()}
        train_ensemble([big], X, y.float()[:, None], seeds=[1], steps=50, lr=1e-2)
        for name, p in big.named_parameters():
            corner = tuple(slice(0, n) for n in dict(small.named_parameters())[name].shape)
            pad = torch.ones_like(p, dtype=torch.bool)
            pad[corner] = False
            assert (p[pad] == 0).all(), (model, name)
            if pad.any():
                assert not torch.equal(p[~pad], before[name][~pad]), (model, name)


def test_exact_rows_count_points_with_every_gate_closed():

    from galu.gates import Gate

    exp = _exp()
    rows = exp.run_point(dict(m=64, d=8, k=2, model="galu-exact"), 1)
    X, _ = exp._data(64, 8, 1)
    U = exp._gates(2, 8, 1, 64)
    closed = sum(bool((Gate()(X[i : i + 1].double() @ U.T) == 0).all()) for i in range(64))
    assert closed > 0  # k = 2: about m/4 points
    assert {r["metric"]: r["value"] for r in rows}["closed_points"] == closed
