"""Gradient flow: the batched RODAS4 integrator against SciPy's BDF, batching against one network
at a time, monotone loss, the erf toy's two outcomes, and the finite-step optimisers."""

import itertools

import pytest
import torch

from galu.channels import (
    augment,
    derivatives,
    descend,
    detect_channels,
    forward,
    glorot_init,
    glu_limit,
    gradient_flow,
    gradient_flow_scipy,
    loss,
)
from galu.data import erf_toy


def _task(n=40, d=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    if d == 1:
        X = torch.linspace(-2, 2, n, dtype=torch.float64)[:, None]
    else:
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return augment(X), torch.sin(2 * X).sum(1)


def _teacher(seed=4, n=50):
    """Inputs, a two-unit softplus teacher's targets, the teacher and the generator."""
    g = torch.Generator().manual_seed(seed)
    Xa = augment(torch.randn(n, 2, generator=g, dtype=torch.float64))
    teacher = glorot_init(1, 2, 3, generator=g)
    return Xa, forward(teacher, Xa, "softplus")[0], teacher, g


def test_rodas_flow_reaches_the_minimum_scipy_bdf_reaches():
    Xa, y, teacher, g = _teacher()
    theta0 = teacher + 0.3 * torch.randn(teacher.shape, generator=g, dtype=torch.float64)
    ours = gradient_flow(theta0, Xa, y, "softplus", gtol=1e-10, rtol=1e-8, atol=1e-11)
    ref = gradient_flow_scipy(
        theta0, Xa, y, "softplus", method="BDF", gtol=1e-10, rtol=1e-8, atol=1e-11
    )
    assert ours.status == ["converged"] and ref.status == ["converged"]
    torch.testing.assert_close(ours.theta, ref.theta, rtol=1e-6, atol=1e-8)
    H = derivatives(ours.theta, Xa, y, "softplus", hessian=True)[2]
    assert float(torch.linalg.eigvalsh(H[0])[0]) > 0  # a minimum, not a saddle


def test_the_state_at_a_fixed_time_matches_a_tight_radau_solution():
    # Accuracy, not only the end point: at t = 5 (mid-transient) RODAS4 at rtol 1e-6 sits within
    # the tolerance of SciPy's Radau run at 1e-12 — a wrong tableau that stayed stable would
    # still reach the minimum but miss this, its error estimate no longer tracking its error.
    Xa, y, teacher, g = _teacher()
    theta0 = teacher + 0.5 * torch.randn(teacher.shape, generator=g, dtype=torch.float64)
    ref = gradient_flow_scipy(
        theta0, Xa, y, "softplus", method="Radau", t_max=5.0, rtol=1e-12, atol=1e-14
    )
    assert ref.status == ["max_time"] and float(ref.time[0]) == 5.0
    drift = float((ref.theta - theta0).norm())
    for rtol, bound in ((1e-6, 1e-5), (1e-9, 1e-8)):
        ours = gradient_flow(theta0, Xa, y, "softplus", t_max=5.0, rtol=rtol, atol=rtol * 1e-3)
        assert ours.status == ["max_time"] and float(ours.time[0]) == pytest.approx(5.0)
        assert float((ours.theta - ref.theta).norm()) < bound * drift


def test_each_network_follows_its_own_trajectory_in_a_batch():
    # Batched GEMMs and LU sum in another order than single ones: trajectories agree to rounding
    # (the experiments therefore always integrate a point's whole seed list together).
    Xa, y = _task(n=30, d=2)
    theta0 = glorot_init(4, 3, 3, generator=torch.Generator().manual_seed(1))
    batch = gradient_flow(theta0, Xa, y, "erf", max_steps=300)
    for e in range(4):
        alone = gradient_flow(theta0[e : e + 1], Xa, y, "erf", max_steps=300)
        torch.testing.assert_close(batch.theta[e], alone.theta[0], rtol=1e-8, atol=1e-10)
        assert batch.status[e] == alone.status[0]


def test_loss_never_increases_along_the_flow():
    Xa, y = _task(n=30)
    theta0 = glorot_init(3, 4, 2, generator=torch.Generator().manual_seed(2))
    res = gradient_flow(theta0, Xa, y, "sigmoid4-softplus", max_steps=500, trace_every=1)
    for trace in res.trace:
        losses = [row[1] for row in trace]
        assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(losses))


def test_a_realisable_target_is_fitted_exactly():
    Xa, y, teacher, g = _teacher()
    theta0 = teacher + 0.05 * torch.randn(teacher.shape, generator=g, dtype=torch.float64)
    res = gradient_flow(theta0, Xa, y, "softplus")
    assert res.status == ["converged"] and float(res.loss[0]) < 1e-18


def test_the_erf_toy_ends_in_a_channel_or_on_the_duplicate_line():
    # Two erf units, no bias, a target whose optimum is at infinity (the paper's toy). Runs end
    # either in a channel (in either orientation: erf is odd) or on the line of critical points
    # where both units duplicate one neuron, whose loss is higher.
    x, y = erf_toy(61)
    theta0 = glorot_init(8, 2, 1, generator=torch.Generator().manual_seed(0))
    res = gradient_flow(theta0, x, y, "erf")
    reports = detect_channels(res.theta, 1, res.update, activation="erf")
    for e, rep in enumerate(reports):
        if res.status[e] == "diverged":
            assert rep.at_channel
            limit = glu_limit(res.theta[e], 1, "erf", rep.detected)
            assert limit.loss(x, y) < float(res.loss[e])
        else:
            assert res.status[e] == "converged" and not rep.at_channel
            (group,) = rep.channels  # the two units coincide (up to sign)
            assert group.cosine_distance < 1e-10
    diverged = [float(res.loss[e]) for e in range(8) if res.status[e] == "diverged"]
    on_line = [float(res.loss[e]) for e in range(8) if res.status[e] == "converged"]
    assert diverged and on_line and max(diverged) < min(on_line)


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_finite_step_optimisers_decrease_the_loss(optimizer):
    Xa, y = _task(n=30)
    theta0 = glorot_init(3, 3, 2, generator=torch.Generator().manual_seed(5))
    res = descend(theta0, Xa, y, "softplus", optimizer=optimizer, lr=1e-2, steps=500)
    assert bool((res.loss < loss(theta0, Xa, y, "softplus")).all())
    assert res.status == ["steps"] * 3


def test_bad_arguments_are_named():
    Xa, y = _task()
    theta0 = glorot_init(1, 2, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"`rtol` \(=0\) must be a positive finite number"):
        gradient_flow(theta0, Xa, y, "erf", rtol=0)
    with pytest.raises(ValueError, match=r"`theta0` must be \(E, P\)"):
        gradient_flow(theta0[0], Xa, y, "erf")
    with pytest.raises(ValueError, match=r"`max_steps` \(=0\) must be an integer >= 1"):
        gradient_flow(theta0, Xa, y, "erf", max_steps=0)
    with pytest.raises(ValueError, match=r"`Xa` has one data set per network \(3\) but there"):
        gradient_flow(theta0, torch.stack([Xa] * 3), y, "erf")
    with pytest.raises(ValueError, match=r"`Xa` has 40 inputs but `y` has 39 targets"):
        descend(theta0, Xa, y[:-1], "erf")
    with pytest.raises(ValueError, match=r"`theta0` must be one network"):
        gradient_flow_scipy(torch.cat([theta0, theta0]), Xa, y, "erf")
    with pytest.raises(ValueError, match=r"`optimizer` \(='sgd'\) must be 'gd' or 'adam'"):
        descend(theta0, Xa, y, "erf", optimizer="sgd")
