"""The GGDLN experiments: tasks, rows against a direct recomputation, smoke runs with figures."""

from __future__ import annotations

import math

import pytest
import torch

from galu.experiments.ggdln import GGDLNCurves, GGDLNMultitask, ggdln_task
from galu.nn import GGDLN
from galu.theory import ggdln_theory


def test_template_task_structure():
    X, y, Xt, yt = ggdln_task("teacher", 50, 400, 30, seed=3, noise=0.0, gamma=0.25)
    assert X.shape == (50, 30) and Xt.shape == (400, 30) and X.dtype == torch.float64
    # noise-free teacher: one linear map explains train and test labels exactly
    w = torch.linalg.lstsq(torch.cat([X, Xt]), torch.cat([y, yt])).solution
    torch.testing.assert_close(torch.cat([X, Xt]) @ w, torch.cat([y, yt]))
    # every test input is √(1−γ)·template + √γ·noise: its best template correlates ≈ √(1−γ)
    cos = torch.nn.functional.normalize(Xt, dim=1) @ torch.nn.functional.normalize(X, dim=1).T
    assert abs(float(cos.max(1).values.mean()) - math.sqrt(0.75)) < 0.05


def test_real_tasks_are_balanced_binary_and_whitened():
    X, y, Xt, _ = ggdln_task("digits", 200, 100, 10, seed=0)
    assert set(y.tolist()) == {-1.0, 1.0} and abs(float(y.mean())) < 0.3
    assert X.shape == (200, 10) and Xt.shape == (100, 10)
    assert abs(float(X.var(0).mean()) - 1) < 0.25
    with pytest.raises(FileNotFoundError):
        ggdln_task("mnist", 10, 10, 5, seed=0, data_dir="/nonexistent")
    with pytest.raises(ValueError, match="`task`"):
        ggdln_task("cifar", 10, 10, 5, seed=0)


def test_curve_point_rows_equal_a_direct_recomputation():
    exp = GGDLNCurves.from_preset("smoke", {"sampler": "none", "axes": ("width",)})
    rows = exp.run_point(dict(axis="width", x=16), seed=2)
    got = {(r["source"], r["metric"]): r["value"] for r in rows}
    c = exp.config
    X, y, Xt, yt = c.data(2)
    from galu.seeding import generator

    net = GGDLN(
        c.N0, 16, c.depth, c.n_gates, prior_var=c.prior_var, generator=generator(2, "ggdln-net")
    )
    th = ggdln_theory(net, X, y, c.temperature).generalization(Xt, yt)
    for k in ("error", "bias", "variance"):
        assert math.isclose(got["theory", k], th[k], rel_tol=1e-10)
    assert got["theory", "residual"] < 1e-6


def test_task_gates_equal_shared_gates_for_one_task():
    exp = GGDLNMultitask.from_preset("smoke", {"sampler": "none"})
    a = exp.run_point(dict(gating="shared", n_tasks=1), seed=0)
    b = exp.run_point(dict(gating="task", n_tasks=1), seed=0)

    def key(rows):
        return {(r["source"], r["metric"]): r["value"] for r in rows if r["metric"] != "seconds"}

    assert key(a) == key(b)


@pytest.mark.parametrize("name", ["ggdln-curves", "ggdln-gate-learning", "ggdln-multitask"])
def test_smoke_presets_write_rows_and_a_figure(tmp_path, name):
    from galu.runner import run_experiment

    res = run_experiment(name, preset="smoke", out=tmp_path / "r", progress=False)
    assert res.done == res.total
    t = res.table
    assert {"theory", "gp", "gibbs"} <= set(t.source)
    assert set(t.metric) >= {"error", "bias", "variance", "seconds"}
    assert t[t.metric == "residual"].value.max() < 1e-6
    assert len(res.figures) == 1 and res.figures[0].stat().st_size > 10_000
    if name == "ggdln-curves":
        assert "relu" in set(t.source)


def test_config_errors_name_the_key():
    from galu.experiments.config import ConfigError

    with pytest.raises((ValueError, ConfigError), match="`axes`"):
        GGDLNCurves.from_preset("smoke", {"axes": ("height",)})
    with pytest.raises((ValueError, ConfigError), match="`sampler`"):
        GGDLNCurves.from_preset("smoke", {"sampler": "hmc"})
