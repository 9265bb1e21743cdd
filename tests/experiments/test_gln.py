"""The GLN experiments: their measurements against direct recomputation, and each smoke preset
end to end (rows, summary, figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from galu.experiments.gln import (
    GLNForgetting,
    GLNRegret,
    Stream,
    bayes_probability,
    curve,
    fisher_diagonal,
    gln_parameters,
    make_gln,
    mlp,
    permuted_tasks,
)
from galu.runner import run_experiment
from galu.runner.reproduce import PAPERS

EXPERIMENTS = [
    "gln-online",
    "gln-forgetting",
    "gln-regret",
    "gln-capacity",
    "ggln-regression",
    "gln-local-vs-global",
]


def test_registered_as_one_paper() -> None:
    assert PAPERS["gln"] == tuple(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_preset_end_to_end(name: str, tmp_path) -> None:
    res = run_experiment(name, preset="smoke", out=tmp_path / "r", progress=False)
    assert res.done == res.total and not res.failed
    assert len(res.figures) >= 1 and all(p.stat().st_size > 10_000 for p in res.figures)
    assert np.isfinite(res.table.value.astype(float)).any()


def test_regret_rows_equal_a_direct_recomputation() -> None:
    exp = GLNRegret.from_preset("smoke", {"steps": 400, "bins": 4})
    rows = exp.run_point(dict(context_dim=2, schedule="constant"), seed=3)
    got = {r["metric"]: r["value"] for r in rows if "step" not in r}
    rng = np.random.default_rng(__import__("galu").seeding.derive_seed(3, "regret-stream", 400))
    x = rng.uniform(-1, 1, size=(400, 2))
    p = 1 / (1 + np.exp(-(3 * np.sin(3 * x[:, 0]) + 4 * x[:, 1] ** 2 - 1.5)))
    assert np.allclose(bayes_probability(x), p)
    y = (rng.uniform(size=400) < p).astype(float)
    net = make_gln(2, 1, exp.config.layer_sizes, 2, exp.config.eta_constant, 3)
    z = torch.from_numpy(x)
    q = net.update(torch.sigmoid(z), z, torch.from_numpy(y)).predictions[:, 0].numpy()
    excess = -(y * np.log(q) + (1 - y) * np.log(1 - q)) + (y * np.log(p) + (1 - y) * np.log(1 - p))
    assert got["last_half_excess"] == pytest.approx(excess[200:].mean(), rel=1e-12)
    bins = [r["value"] for r in rows if r["metric"] == "excess"]
    assert np.allclose(bins, excess.reshape(4, 100).mean(1), rtol=1e-12)


def test_forgetting_summary_from_a_hand_made_matrix() -> None:
    # acc[i after j] for two seeds of one model; forgetting = mean_i<last (acc_ii − acc_i,last)
    rows = []
    for seed, m in (
        (0, [[0.9, 0.5, 0.4], [0.1, 0.8, 0.6], [0.1, 0.1, 0.7]]),
        (1, [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]),
    ):
        for j in range(3):
            for i in range(3):
                rows.append(
                    dict(model="mlp", seed=seed, metric="acc", trained=j, task=i, value=m[i][j])
                )
    f = GLNForgetting.forgetting(pd.DataFrame(rows)).set_index("seed")
    assert f.loc[0, "forgetting"] == pytest.approx(((0.9 - 0.4) + (0.8 - 0.6)) / 2)
    assert f.loc[0, "final_acc"] == pytest.approx((0.4 + 0.6 + 0.7) / 3)
    assert f.loc[1, "forgetting"] == pytest.approx(0.0)


def test_helpers() -> None:
    # the capacity experiment's parameter count is the GLN's weight count
    net = make_gln(64, 10, (8, 8, 1), 4, 0.01, 0)
    assert gln_parameters(10, (8, 8, 1), 64, 4) == sum(w.numel() for w in net.weights)
    # permuted tasks permute inputs, keep labels
    rng = np.random.default_rng(0)
    s = Stream(
        rng.normal(size=(20, 6)),
        rng.integers(0, 3, 20),
        rng.normal(size=(5, 6)),
        rng.integers(0, 3, 5),
        3,
    )
    t = permuted_tasks(s, 3, seed=1)
    assert np.array_equal(np.sort(t[2].X, 1), np.sort(s.X, 1)) and np.array_equal(t[2].y, s.y)
    assert not np.array_equal(t[1].X, s.X)
    # prequential curve = cumulative mean at the chosen steps
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    assert curve(correct, 3) == [(2, 0.5), (5, 0.6), (8, 0.75)]


def test_fisher_diagonal_is_the_mean_squared_per_example_gradient() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(7, 4)), rng.integers(0, 3, 7)
    model = mlp(4, 5, 3, seed=0)
    fisher = fisher_diagonal(model, X, y)
    # with torch.func: per-example gradients of the log-likelihood, squared, averaged
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def nll(p, x, t):
        out = functional_call(model, p, (x[None],))
        return torch.nn.functional.cross_entropy(out, t[None])

    g = vmap(grad(nll), in_dims=(None, 0, 0))(params, torch.from_numpy(X), torch.from_numpy(y))
    for f, (name, _) in zip(fisher, model.named_parameters(), strict=False):
        assert torch.allclose(f, (g[name] ** 2).mean(0), rtol=1e-10, atol=1e-14)


def test_gln_online_reads_mnist_from_idx_files(tmp_path) -> None:
    from tests.data.test_datasets import _fake_mnist

    arrays = _fake_mnist(tmp_path, gz=True, n_train=60, n_test=20)
    res = run_experiment(
        "gln-online", preset="smoke", out=tmp_path / "r", progress=False,
        overrides={"datasets": ["mnist"], "data_dir": str(tmp_path), "context_dims": [1],
                   "baselines": ["logreg-converged"]},
    )  # fmt: skip
    assert res.done == res.total == 2 and not res.failed
    acc = res.table[(res.table.model == "gln") & (res.table.metric == "test_acc")].value.item()
    assert acc in {k / 20 for k in range(21)}  # a fraction of the 20 test images
    # the stream has the 60 training images: the prequential curve ends at step 60
    assert res.table[res.table.metric == "curve"].step.max() == len(arrays["train_labels"])
