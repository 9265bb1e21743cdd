"""The jump procedure on a channel the flow found (the erf toy): after each halving of ε and
re-integration the loss gap to the GLU limit falls 4× and the sharpness grows 4× (the paper's
L − L₀ ∝ ε², λ_max ∝ 1/ε²), while c and a stay put."""

import pytest
import torch

from galu.channels import (
    detect_channels,
    glorot_init,
    glu_limit,
    gradient_flow,
    jump,
    loss,
    top_eigenvalue,
)
from galu.data import erf_toy


def test_jumps_scale_the_loss_gap_as_eps_squared_and_the_sharpness_as_its_inverse():
    x, y = erf_toy(61)
    theta0 = glorot_init(8, 2, 1, generator=torch.Generator().manual_seed(0))
    res = gradient_flow(theta0, x, y, "erf")
    reps = detect_channels(res.theta, 1, res.update, activation="erf")
    e = next(i for i, rep in enumerate(reps) if rep.at_channel)
    theta, channel = res.theta[e], reps[e].detected[0]
    eps, gap, sharp, c, a = [], [], [], [], []
    for step in range(3):
        if step:
            theta = jump(theta, 1, channel, 0.5, activation="erf")
            again = gradient_flow(theta[None], x, y, "erf", norm_bound=1e300, t_max=1e4)
            theta = again.theta[0]
            channel = detect_channels(
                again.theta, 1, again.update, activation="erf", norm_threshold=0, update_threshold=0
            )[0].channels[0]
        limit = glu_limit(theta, 1, "erf", (channel,))
        eps.append(channel.epsilon)
        gap.append(float(loss(theta[None], x, y, "erf")[0]) - limit.loss(x, y))
        sharp.append(float(top_eigenvalue(theta[None], x, y, "erf")[0]))
        c.append(channel.c)
        a.append(channel.a)
    for k in (1, 2):
        assert eps[k] / eps[k - 1] == pytest.approx(0.5, rel=0.02)
        assert gap[k] / gap[k - 1] == pytest.approx(0.25, rel=0.05)
        assert sharp[k] / sharp[k - 1] == pytest.approx(4.0, rel=0.05)
        assert c[k] == pytest.approx(c[0], rel=1e-3)
        assert a[k] == pytest.approx(a[0], rel=1e-3)
