"""The channel experiments: targets, intervals, configs, determinism and smoke runs."""

import math

import numpy as np
import pytest
import torch

from galu.channels import glorot_init, gradient_flow
from galu.data import matern_gp_sample, rosenbrock, rosenbrock_grid, standardize
from galu.experiments.channels import (
    ChannelsErf,
    ChannelsSweep,
    ChannelsToy,
    parse_target,
    sweep_data,
    toy_data,
    wilson_interval,
)
from galu.experiments.config import ConfigError
from galu.runner import run_experiment
from galu.seeding import generator


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 40), (1, 3)])
def test_wilson_interval_solves_its_defining_quadratic(k, n):
    # The Wilson bounds are the p with (k/n − p)² = z² p(1 − p)/n: solve that quadratic directly.
    z, ph = 1.96, k / n
    roots = np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph])
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(max(0.0, min(roots)), abs=1e-12)
    assert hi == pytest.approx(min(1.0, max(roots)), abs=1e-12)
    assert math.isnan(wilson_interval(0, 0)[0])


def test_rosenbrock_target_and_grid():
    X = rosenbrock_grid(5)
    assert X.shape == (25, 2) and float(X[:, 0].min()) == -2.0 and float(X[:, 1].max()) == 3.0
    x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    want = math.log1p((1 - 0.5) ** 2 + 100 * (-1 - 0.25) ** 2 + (1 + 1) ** 2 + 100 * (2 - 1) ** 2)
    assert float(rosenbrock(x)[0]) == pytest.approx(want, rel=1e-14)
    Xa, y = toy_data(7)
    assert Xa.shape == (49, 3) and torch.all(Xa[:, 2] == 1)
    assert float(y.mean()) == pytest.approx(0, abs=1e-14)
    assert float(y.pow(2).mean()) == pytest.approx(1, rel=1e-12)
    with pytest.raises(ValueError, match=r"`X` must be \(n, d\) with d >= 2"):
        rosenbrock(torch.zeros(3, 1))


def test_matern_samples_have_the_matern_covariance():
    # 4000 independent draws at 4 points: the empirical covariance against the kernel, within
    # 5 standard errors (the variance of a sample covariance is (k_ij² + k_ii k_jj)/draws).
    X = torch.tensor([[0.0, 0.0], [0.3, 0.0], [1.0, 1.0], [-2.0, 0.5]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([matern_gp_sample(X, 0.8, generator=g) for _ in range(4000)])
    emp = draws.T @ draws / 4000
    rho = torch.cdist(X, X) * math.sqrt(3) / 0.8
    K = (1 + rho) * torch.exp(-rho)
    se = torch.sqrt((K**2 + torch.outer(K.diagonal(), K.diagonal())) / 4000)
    assert bool(((emp - K).abs() <= 5 * se).all())
    with pytest.raises(ValueError, match=r"`length_scale` \(=0\) must be > 0"):
        matern_gp_sample(X, 0, generator=g)
    assert float(standardize(torch.ones(3)).abs().max()) == 0.0


def test_sweep_targets_parse_and_fail_clearly():
    assert parse_target("rosenbrock")[0] == "rosenbrock"
    assert parse_target("matern-0.5") == ("matern", 0.5)
    for bad in ("matern-0", "matern-x", "gp"):
        with pytest.raises(ValueError, match="use 'rosenbrock' or 'matern-S'"):
            parse_target(bad)
    Xa, y = sweep_data(3, 50, "matern-2", 0)
    assert Xa.shape == (50, 4) and float(Xa[:, :3].abs().max()) <= 2.0
    _, y2 = sweep_data(3, 50, "matern-2", 0)
    assert torch.equal(y, y2)  # one target per configuration and base seed


@pytest.mark.parametrize(
    ("cls", "over", "message"),
    [
        (ChannelsToy, dict(widths=(0,)), "`widths`"),
        (ChannelsToy, dict(optimizer="sgd"), "`optimizer`"),
        (ChannelsSweep, dict(activations=("relu",)), "`activations`"),
        (ChannelsSweep, dict(targets=("gp",)), "target 'gp' is not valid"),
        (ChannelsSweep, dict(rtol=0.0), "`rtol`"),
        (ChannelsErf, dict(n=1), "`n`"),
    ],
)
def test_bad_configs_name_the_key(cls, over, message):
    with pytest.raises((ValueError, ConfigError), match=message):
        cls.from_preset("smoke", over)


def test_a_seed_gives_the_same_rows_alone_and_with_others():
    exp = ChannelsToy.from_preset("smoke", dict(max_steps=300))
    params = exp.points()[0]
    together = exp.run_seeds(params, [0, 1, 2])
    assert exp.run_point(params, 1) == together[1]


def test_sweep_rows_cover_every_target_with_the_flow_metrics():
    exp = ChannelsSweep.from_preset("smoke", dict(max_steps=200, repeats=2))
    rows = exp.run_point(exp.points()[0], 0)
    assert {r["target"] for r in rows} == set(exp.config.targets)
    metrics = {r["metric"] for r in rows}
    assert {"channel", "diverged", "undecided", "loss", "norm", "steps"} <= metrics
    # Each network of the batch (one data set per target) ends where it ends when integrated
    # alone on its own data.
    c, (d, r) = exp.config, (exp.points()[0]["d"], exp.points()[0]["r"])
    for t in exp.config.targets:
        by = {row["metric"]: row["value"] for row in rows if row["target"] == t}
        Xa, y = sweep_data(d, c.n, t, c.seed)
        theta0 = glorot_init(1, r, d + 1, generator=generator(0, "channels-sweep-init", d, r))
        alone = gradient_flow(theta0, Xa, y, "softplus", gtol=c.gtol, t_max=c.t_max,
                              max_steps=200, rtol=c.rtol, norm_bound=c.norm_bound)  # fmt: skip
        assert by["loss"] == pytest.approx(float(alone.loss[0]), rel=1e-8)
        assert by["norm"] == pytest.approx(float(alone.norm[0]), rel=1e-8)
        assert by["steps"] == float(alone.steps[0])
        assert by["undecided"] == float(alone.status[0] in ("max_steps", "max_time"))


@pytest.mark.parametrize(
    "name", ["channels-toy", "channels-sweep", "channels-erf", "channels-jump"]
)
def test_smoke_runs_write_rows_and_a_figure(tmp_path, name):
    res = run_experiment(
        name, preset="smoke", out=tmp_path, progress=False, overrides=dict(max_steps=400)
    )
    assert res.done == res.total and not res.table.empty
    assert len(res.figures) == 1 and res.figures[0].exists()


def test_the_erf_experiment_finds_a_channel_and_its_limit_is_lower():
    exp = ChannelsErf.from_preset("smoke", dict(repeats=4))
    rows = exp.run_seeds(exp.points()[0], [0, 1, 2, 3])
    found = 0
    for seed_rows in rows.values():
        by = {r["metric"]: r["value"] for r in seed_rows}
        if by["channel"]:
            found += 1
            assert by["diverged"] == 1 and by["glu"] == 1  # the erf toy's channels merge
            # The limit unit itself is within the Taylor remainder of the end point, and its
            # trained version is not worse.
            assert abs(by["loss_limit"] - by["loss"]) < 1e-6 * by["loss"]
            assert by["loss_refined"] <= by["loss"] and by["loss_gap"] >= 0
    assert found >= 1
