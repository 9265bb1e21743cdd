"""Channel detection and the GLU limit on networks built by hand to sit in a channel, where every
limit quantity is known in closed form."""

import itertools
from dataclasses import replace

import pytest
import torch

from galu.channels import (
    activation,
    augment,
    detect_channels,
    forward,
    glu_limit,
    jump,
    loss,
    pack,
    refine,
    unpack,
)


def _pair_network(eps, c=0.7, a=1.3, seed=0, D=3, others=2):
    """Neurons 0, 1 at w ± εΔ with a_{0,1} = c/2 ± a/(2ε); ``others`` ordinary units."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    delta = torch.randn(D, generator=g, dtype=torch.float64)
    delta = delta / delta.norm()
    W = torch.cat(
        [
            torch.stack([w + eps * delta, w - eps * delta]),
            torch.randn(others, D, generator=g, dtype=torch.float64),
        ]
    )
    out = torch.cat(
        [
            torch.tensor([c / 2 + a / (2 * eps), c / 2 - a / (2 * eps)], dtype=torch.float64),
            torch.randn(others, generator=g, dtype=torch.float64),
        ]
    )
    return pack(W[None], out[None]), w, delta


def _update_inside(theta, D, neurons, leak=0.0):
    """An update in the channel subspace of ``neurons`` (their output weights, and input-weight
    moves within the span of their input vectors) plus ``leak`` of it elsewhere."""
    g = torch.Generator().manual_seed(7)
    u = torch.randn(theta.shape, generator=g, dtype=torch.float64)
    dW, da = unpack(u, D)
    W, _ = unpack(theta, D)
    idx = list(neurons)
    Q, sv, _ = torch.linalg.svd(W[0, idx].T, full_matrices=False)
    Q = Q[:, sv > sv[0] * 1e-13]
    inside_W, inside_a = torch.zeros_like(dW), torch.zeros_like(da)
    inside_W[:, idx] = dW[:, idx] @ Q @ Q.T
    inside_a[:, idx] = da[:, idx]
    inside = pack(inside_W, inside_a)
    if not leak:
        return inside
    outside = u - inside
    return inside + leak * outside / outside.norm() * inside.norm()


def test_a_hand_built_channel_is_detected_with_its_limit_quantities():
    eps, c, a = 1e-4, 0.7, 1.3
    theta, w, delta = _pair_network(eps, c, a)
    assert float(theta.norm()) > 1e3
    reports = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)))
    (ch,) = reports[0].channels
    assert reports[0].at_channel and ch.is_channel and ch.neurons == (0, 1)
    assert ch.epsilon == pytest.approx(eps, rel=1e-9)
    assert ch.c == pytest.approx(c, rel=1e-9)
    assert ch.a == pytest.approx(a, rel=1e-9)
    torch.testing.assert_close(ch.w, w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ch.direction, delta, rtol=1e-6, atol=1e-9)
    assert ch.update_fraction == pytest.approx(1.0)


def test_each_criterion_can_veto():
    theta, _, _ = _pair_network(1e-4)
    # 30% of the update outside the channel's coordinates: criterion 3 fails.
    rep = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1), leak=0.7))[0]
    assert not rep.at_channel and rep.channels[0].update_fraction < 0.9
    # Norm below the threshold: criterion 1 fails.
    rep = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)), norm_threshold=1e5)[0]
    assert not rep.at_channel
    # Input vectors 1e-2 apart in cosine distance: grouped (< 1e-2 is not), but not a pair (1e-3).
    theta, _, _ = _pair_network(0.25, others=0)
    rep = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)), norm_threshold=0.0)[0]
    assert 1e-3 < rep.channels[0].cosine_distance < 1e-2 and not rep.at_channel


def test_three_neurons_form_one_group():
    theta, w, _delta = _pair_network(1e-4, others=1)
    W, a = unpack(theta, 3)
    W[0, 2] = w + 3e-5 * torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # a third twin
    rep = detect_channels(pack(W, a), 3, _update_inside(pack(W, a), 3, (0, 1, 2)))[0]
    assert [ch.neurons for ch in rep.channels] == [(0, 1, 2)]


def test_the_glu_limit_is_the_eps_to_zero_limit_of_the_pair():
    Xa = augment(
        torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )
    errors = []
    for eps in (1e-2, 5e-3, 2.5e-3):
        theta, _, _ = _pair_network(eps)
        ch = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)), norm_threshold=0)[0]
        limit = glu_limit(theta[0], 3, "softplus", ch.channels)
        errors.append(float((forward(theta, Xa, "softplus")[0] - limit.forward(Xa)).abs().max()))
    # The remainder is ½ c ε² (Δ·x̃)² σ'' + O(ε²·a): halving ε divides it by 4.
    assert errors[0] / errors[1] == pytest.approx(4, rel=0.05)
    assert errors[1] / errors[2] == pytest.approx(4, rel=0.05)


def test_jump_halves_eps_and_keeps_c_and_v():
    theta, _w, _delta = _pair_network(1e-3, c=0.4, a=2.0)
    ch = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)), norm_threshold=0)[0].channels[
        0
    ]
    new = jump(theta[0], 3, ch, 0.5)
    ch2 = detect_channels(new[None], 3, _update_inside(new[None], 3, (0, 1)), norm_threshold=0)[
        0
    ].channels[0]
    assert ch2.epsilon == pytest.approx(ch.epsilon / 2, rel=1e-9)
    assert ch2.c == pytest.approx(ch.c, rel=1e-9)
    torch.testing.assert_close(ch2.v, ch.v, rtol=1e-9, atol=1e-12)
    # The closed form for a pair: a_{0,1} = c/2 ± a/(2ε').
    _, a = unpack(new[None], 3)
    assert float(a[0, 0]) == pytest.approx(0.2 + 2.0 / (2 * 5e-4), rel=1e-9)
    with pytest.raises(ValueError, match=r"`factor` \(=1.5\) must be in \(0, 1\)"):
        jump(theta[0], 3, ch, 1.5)


def test_refining_the_limit_never_increases_the_loss():
    g = torch.Generator().manual_seed(2)
    Xa = augment(torch.randn(80, 2, generator=g, dtype=torch.float64))
    y = torch.tanh(Xa[:, 0] * 2) + Xa[:, 1] ** 2
    theta, _, _ = _pair_network(1e-3)
    ch = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)), norm_threshold=0)[0].channels
    limit = glu_limit(theta[0], 3, "softplus", ch)
    refined, history = refine(limit, Xa, y, steps=100)
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(history))
    assert refined.loss(Xa, y) < 0.5 * limit.loss(Xa, y)
    assert refined.loss(Xa, y) <= float(loss(theta, Xa, y, "softplus")[0])


def test_odd_activations_pair_units_up_to_sign():
    # erf is odd: (w, a) and (−w, −a) are the same unit, so a channel can form between
    # anti-parallel input vectors; detection, the limit and the jump must see through the flip.
    eps, c, a = 1e-4, 0.7, 1.3
    theta, _, _ = _pair_network(eps, c, a)
    W, out = unpack(theta.clone(), 3)
    W[0, 1], out[0, 1] = -W[0, 1], -out[0, 1]  # flip unit 1: the same function
    flipped = pack(W, out)
    g = torch.Generator().manual_seed(3)
    Xa = augment(torch.randn(50, 2, generator=g, dtype=torch.float64))
    torch.testing.assert_close(forward(flipped, Xa, "erf"), forward(theta, Xa, "erf"))
    update = _update_inside(flipped, 3, (0, 1))
    assert not detect_channels(flipped, 3, update)[0].channels  # compared with sign: no pair
    rep = detect_channels(flipped, 3, update, activation="erf")[0]
    (ch,) = rep.channels
    assert rep.at_channel and ch.c == pytest.approx(c, rel=1e-9)
    assert ch.a == pytest.approx(a, rel=1e-9)
    limit = glu_limit(flipped[0], 3, "erf", rep.detected)
    same = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)))[0].detected
    direct = glu_limit(theta[0], 3, "erf", same)
    torch.testing.assert_close(limit.forward(Xa), direct.forward(Xa), rtol=1e-10, atol=1e-12)
    jumped = jump(flipped[0], 3, ch, 0.5, activation="erf")
    rep2 = detect_channels(jumped[None], 3, update, activation="erf", norm_threshold=0)[0]
    assert rep2.channels[0].epsilon == pytest.approx(eps / 2, rel=1e-9)
    assert rep2.channels[0].c == pytest.approx(c, rel=1e-9)


def test_parallel_vectors_of_different_lengths_pass_the_criteria_but_do_not_merge():
    # Criterion 2 sees angles only: units w and 2.8w with large output weights (the erf sweep
    # produced these) form a "channel" by the paper's criteria, but ε/‖w‖ is large and the GLU
    # limit does not apply.
    w = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
    W = torch.stack([w, 2.8 * w])[None]
    theta = pack(W, torch.tensor([[1000.0, -600.0]], dtype=torch.float64))
    rep = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)))[0]
    (ch,) = rep.channels
    assert rep.at_channel and ch.cosine_distance < 1e-12
    assert ch.relative_epsilon == pytest.approx(0.9 / 1.9, rel=1e-9)  # ε = 0.9‖w‖, centre 1.9w
    assert not ch.merged and rep.glu_channels == ()
    theta, _, _ = _pair_network(1e-4)
    rep = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)))[0]
    assert rep.glu_channels == rep.detected and rep.detected[0].merged


def test_the_update_criterion_projects_onto_the_pair_input_vectors():
    # With two hidden units the pair owns every parameter, so the criterion is only informative
    # if input-weight moves count by their projection onto span{w_0, w_1} (science/channels.md).
    theta, _, _ = _pair_network(1e-4, others=0, D=4)
    inside = _update_inside(theta, 4, (0, 1))
    assert detect_channels(theta, 4, inside)[0].at_channel
    W, _ = unpack(theta, 4)
    normal = torch.linalg.svd(W[0].T, full_matrices=True)[0][:, 2:]  # ⊥ span{w_0, w_1}
    dW = torch.zeros_like(W)
    dW[0, 0], dW[0, 1] = normal[:, 0], -normal[:, 1]  # both input vectors rotate out of the span
    off = pack(dW, torch.zeros(1, 2, dtype=torch.float64))
    off = off / off.norm() * 3 * inside.norm()  # 9× the squared norm inside
    rep = detect_channels(theta, 4, inside + off)[0]
    assert rep.channels[0].update_fraction == pytest.approx(1 / 10, rel=1e-9)
    assert not rep.at_channel


def _triple_network(eps, c=0.6, s=0.9, m=0.4, D=3):
    """Three neurons at w + ε t_k u, t = (−1, 0, 1), a_k = c/3 + s t_k/(2ε) + m b_k/ε² with
    b = (1, −2, 1): c = Σ a_k, v = s u and M = (2cε²/3 + 2m) uuᵀ stay finite as ε → 0."""
    g = torch.Generator().manual_seed(4)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    u = torch.randn(D, generator=g, dtype=torch.float64)
    u = u / u.norm()
    t = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    W = w + eps * t[:, None] * u
    a = c / 3 + s * t / (2 * eps) + m * b / eps**2
    return pack(W[None], a[None])


def test_three_merging_neurons_keep_a_finite_second_order_term():
    Xa = augment(
        torch.randn(200, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    )
    with_M, without_M = [], []
    for eps in (4e-3, 2e-3, 1e-3):
        theta = _triple_network(eps)
        rep = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1, 2)), norm_threshold=0)[0]
        (ch,) = rep.channels
        assert ch.neurons == (0, 1, 2) and ch.c == pytest.approx(0.6, rel=1e-9)
        assert ch.a == pytest.approx(0.9, rel=1e-9)
        limit = glu_limit(theta[0], 3, "softplus", rep.channels)
        (unit,) = limit.units
        assert unit.M is not None
        first_order = type(unit)(unit.c, unit.w, unit.v, None)
        exact = forward(theta, Xa, "softplus")[0]
        with_M.append(float((exact - limit.forward(Xa)).abs().max()))
        without_M.append(float((exact - first_order(Xa, activation("softplus"))).abs().max()))
    # With M the remainder is O(ε²) (the third- and fourth-order terms); without it, O(1).
    assert with_M[0] / with_M[1] == pytest.approx(4, rel=0.05)
    assert with_M[1] / with_M[2] == pytest.approx(4, rel=0.05)
    assert min(without_M) > 1e3 * max(with_M)
    # jump moves pairs only: it would not keep M.
    with pytest.raises(ValueError, match=r"moves a pair of neurons; the channel has 3"):
        jump(theta[0], 3, ch, 0.5)
    # refine trains M along with the rest, never increasing the loss.
    y = torch.tanh(Xa[:, 0]) * Xa[:, 1]
    _, history = refine(limit, Xa, y, steps=40)
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(history))
    assert history[-1] < history[0]


def test_limit_and_jump_name_bad_arguments():
    theta, _, _ = _pair_network(1e-4)
    ch = detect_channels(theta, 3, _update_inside(theta, 3, (0, 1)))[0].channels[0]
    with pytest.raises(ValueError, match=r"`theta` must be one network, shape \(P,\) or \(1, P\)"):
        glu_limit(torch.cat([theta, theta]), 3, "softplus", [ch])
    with pytest.raises(ValueError, match=r"`channels` overlap: neuron 0 is in channel 0 and"):
        glu_limit(theta[0], 3, "softplus", [ch, ch])
    bad = replace(ch, neurons=(0, 9))
    with pytest.raises(ValueError, match=r"names neuron 9, but the network has 4 hidden units"):
        jump(theta[0], 3, bad, 0.5)
