"""Deep gated networks: every variant against explicit formulas, frozen parts, path identities,
the closed-form path kernel and the value-side NTK in expectation."""

import math

import pytest
import torch

from galu.nn import DGN, VARIANTS, ReLUNet
from galu.paths import model_path_kernel, ntk, path_features, path_kernel, path_values

D, WIDTHS = 3, (4, 5)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _x(m=7, seed=1):
    return torch.randn(m, D, generator=_gen(seed), dtype=torch.float64)


def _relu_source(bias=False):
    return DGN(D, WIDTHS, 2, variant="relu", bias=bias, generator=_gen(9), dtype=torch.float64)


def _net(variant, **kw):
    if variant == "flnpf":
        kw.setdefault("gating_from", _relu_source(kw.get("bias", False)))
    return DGN(D, WIDTHS, 2, variant=variant, generator=_gen(), dtype=torch.float64, **kw)


def _soft(q, beta, eps):
    return (1 + eps) * torch.sigmoid(beta * q)


def _explicit(net, x):
    """The forward pass written out per variant from the equations in science/dgn.md."""
    V = [layer.weight for layer in net.value]
    F = [layer.weight for layer in net.feature]
    out = torch.empty(x.shape[0], 2, dtype=x.dtype)
    for n in range(x.shape[0]):
        xi = x[n]
        z = torch.ones_like(xi) if net.variant == "dlgn-ones" else xi
        q = xi
        for l_ in range(len(WIDTHS)):
            a = V[l_] @ z
            if net.variant == "relu":
                g = (a > 0).double()
            elif net.variant == "dlgn-sf":
                g = _soft(F[l_] @ xi, net.beta, net.eps)
            elif net.variant in ("dlgn", "dlgn-ones"):
                q = F[l_] @ q  # linear gating network: q_l = F_l … F_1 x
                g = _soft(q, net.beta, net.eps)
            else:  # a ReLU gating network
                pre = F[l_] @ q
                g = _soft(pre, net.beta, net.eps) if net.gate == "soft" else (pre > 0).double()
                q = torch.relu(pre)
            z = a * g
        out[n] = net.readout.weight @ z
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_matches_its_equations(variant):
    net = _net(variant)
    x = _x()
    torch.testing.assert_close(net(x), _explicit(net, x), rtol=1e-12, atol=1e-12)


def test_variant_relationships():
    x = _x(20)
    relu = _net("relu")
    # FRNPF-DI gates are a frozen copy of the value network's initialisation: at init the
    # network *is* the ReLU network with the same value weights.
    torch.testing.assert_close(_net("frnpf-di")(x), relu(x), rtol=0, atol=0)
    # `galu` is FRNPF-II; FLNPF's gates are those of the ReLU network it was given.
    assert _net("galu").variant == "frnpf-ii"
    src = _relu_source()
    fl = _net("flnpf", gating_from=src)
    for a, b in zip(fl.gates(x), src.gates(x), strict=True):
        assert torch.equal(a, b)
    # A ReLUNet works as the source too, with identical gates.
    rn = ReLUNet(D, WIDTHS, 2, generator=_gen(9), dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(rn.layers, src.value, strict=True):
            a.weight.copy_(b.weight)
    fl2 = _net("flnpf", gating_from=rn)
    for a, b in zip(fl2.gates(x), src.gates(x), strict=True):
        assert torch.equal(a, b)
    # ReLU = relu(W z) layer by layer.
    z = x
    for layer in relu.value:
        z = torch.relu(z @ layer.weight.T)
    torch.testing.assert_close(relu(x), z @ relu.readout.weight.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_frozen_parts_get_no_gradient_and_trained_parts_do(variant):
    net = _net(variant, bias=True)
    net(_x()).pow(2).sum().backward()
    for p in [*net.value.parameters(), *net.readout.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0
    frozen = net.variant in ("frnpf-ii", "frnpf-di", "flnpf")
    for p in net.feature.parameters():
        assert p.requires_grad is not frozen
        if frozen:
            assert p.grad is None
        else:  # soft gates: the gating network learns
            assert p.grad is not None and p.grad.abs().sum() > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"`variant` \(='gelu'\) must be one of"):
        DGN(3, (4,), variant="gelu")
    with pytest.raises(ValueError, match="variant 'dlgn' trains its gating network"):
        DGN(3, (4,), variant="dlgn", gate="hard")
    with pytest.raises(ValueError, match="required by, and only by, variant 'flnpf'"):
        DGN(3, (4,), variant="flnpf")
    with pytest.raises(ValueError, match="layer shapes"):
        DGN(3, (4, 4), variant="flnpf", gating_from=DGN(3, (4,), variant="relu"))
    with pytest.raises(ValueError, match=r"`arch` \(='rnn'\)"):
        DGN(3, (4,), arch="rnn")


def test_convolutional_dgn_relu_and_frnpf_di_agree_at_init():
    x = torch.randn(2, 3, 6, 6, generator=_gen(2), dtype=torch.float64)
    kw = dict(arch="conv", dtype=torch.float64)
    relu = DGN(3, (4, 5), 10, variant="relu", generator=_gen(), **kw)
    di = DGN(3, (4, 5), 10, variant="frnpf-di", generator=_gen(), **kw)
    torch.testing.assert_close(di(x), relu(x), rtol=0, atol=0)
    gates = DGN(3, (4, 5), 10, variant="dnpfl", generator=_gen(), **kw).gates(x)
    assert [tuple(g.shape) for g in gates] == [(2, 4, 6, 6), (2, 5, 6, 6)]
    # relu conv net by hand: conv → relu → conv → relu → global average pool → linear.
    z = x
    for layer in relu.value:
        z = torch.relu(torch.nn.functional.conv2d(z, layer.weight, padding=1))
    torch.testing.assert_close(relu(x), z.mean((2, 3)) @ relu.readout.weight.T)


@pytest.mark.parametrize("variant", ["relu", "galu", "dnpfl", "dlgn", "dlgn-ones", "dlgn-sf"])
def test_output_is_path_features_times_path_values(variant):
    net = _net(variant)
    x = _x()
    phi, v = path_features(net, x), path_values(net)
    assert phi.shape == (7, D * math.prod(WIDTHS)) and v.shape == (D * math.prod(WIDTHS), 2)
    torch.testing.assert_close(phi @ v, net(x), rtol=1e-12, atol=1e-12)
    # The closed-form kernel never enumerates paths and equals <φ_x, φ_x'>.
    torch.testing.assert_close(model_path_kernel(net, x), phi @ phi.T, rtol=1e-12, atol=1e-12)


def test_path_kernel_counts_common_active_paths_for_hard_gates():
    x = _x(5)
    net = _net("galu")
    gates = net.gates(x)
    ones = torch.ones_like(x)
    # With x replaced by ones, H(x, x') = d · (number of hidden paths open for both inputs).
    counts = torch.zeros(5, 5, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            both = [(g[i] * g[j]).sum() for g in gates]
            counts[i, j] = D * math.prod(both)
    torch.testing.assert_close(path_kernel(ones, gates), counts)


def test_ntk_split_sums_to_the_full_ntk_and_hard_gates_have_no_gate_part():
    x = _x(6)
    soft = _net("dnpfl")
    split = ntk(soft, x)
    params = [p for p in soft.parameters() if p.requires_grad]
    J = torch.stack(
        [
            torch.cat(
                [g.reshape(-1) for g in torch.autograd.grad(soft(x[i : i + 1])[0, 0], params)]
            )
            for i in range(6)
        ]
    )
    torch.testing.assert_close(split.total, J @ J.T, rtol=1e-10, atol=1e-10)
    assert split.gate.abs().max() > 0
    hard = ntk(_net("galu"), x)
    assert torch.count_nonzero(hard.gate) == 0


def test_value_ntk_at_init_is_proportional_to_the_path_kernel_in_expectation():
    # Fixed gates (FRNPF-II), value weights i.i.d. N(0, σ²), one output, L = 2 gated layers:
    # E[K^v] = (L + 1) σ^{2L} H. The Monte Carlo mean must lie within 5 standard errors.
    sigma, L, n = 0.7, 2, 400
    x = _x(4, seed=5)
    net = DGN(D, WIDTHS, 1, variant="galu", generator=_gen(3), dtype=torch.float64)
    H = model_path_kernel(net, x)
    gen = _gen(11)
    draws = []
    for _ in range(n):
        with torch.no_grad():
            for layer in [*net.value, net.readout]:
                layer.weight.copy_(
                    torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64) * sigma
                )
        draws.append(ntk(net, x).value)
    K = torch.stack(draws)
    mean, se = K.mean(0), K.std(0) / math.sqrt(n)
    theory = (L + 1) * sigma ** (2 * L) * H
    assert torch.all((mean - theory).abs() <= 5 * se + 1e-12), (mean, theory, se)
    # And the test can fail: a wrong power of σ is far outside the band.
    wrong = (L + 1) * sigma ** (2 * L + 2) * H
    assert not torch.all((mean - wrong).abs() <= 5 * se)


@pytest.mark.parametrize("variant", ["relu", "galu", "dlgn-sf", "dlgn-ones"])
def test_input_width_mismatch_names_both_widths(variant):
    net = _net(variant)  # in_features = 3
    x = torch.randn(4, 8, dtype=torch.float64)
    message = (
        r"DGN\(in_features=3\) got input with last dimension 8 \(shape \(4, 8\)\); "
        r"pass inputs of shape \(\.\.\., 3\)"
    )
    for method in (net, net.gates):
        with pytest.raises(ValueError, match=message):
            method(x)
    conv = DGN(3, (4,), 2, variant=variant, arch="conv", generator=_gen(), dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"DGN\(arch='conv', in_features=3\) got 4 channels "
        r"\(shape \(2, 4, 5, 5\)\); pass inputs of shape \(N, 3, H, W\) or \(3, H, W\)",
    ):
        conv(torch.randn(2, 4, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"got a 2-D input \(shape \(5, 5\)\)"):
        conv(torch.randn(5, 5, dtype=torch.float64))
    assert conv(torch.randn(2, 3, 5, 5, dtype=torch.float64)).shape == (2, 2)
