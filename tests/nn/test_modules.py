"""Modules against explicit per-neuron formulas; state, devices/dtypes and torch.compile."""

import io

import pytest
import torch

from galu import Gate
from galu.nn import DeepGaLU, GaLU0, GaLULayer, ReLUNet, ShallowGaLU
from tests.conftest import TOL

F64 = TOL[torch.float64]


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_galu_layer_matches_neuron_formula():
    layer = GaLULayer(5, 4, bias=True, generator=_g(), dtype=torch.float64)
    x = torch.randn(6, 5, generator=_g(1), dtype=torch.float64)
    out = layer(x)
    for i in range(4):
        w, u, b = layer.weight[i], layer.gate_vectors[i], layer.bias[i]
        expected = (x @ w + b) * (x @ u >= 0).double()
        torch.testing.assert_close(out[:, i], expected, **F64)
    assert "gate_vectors" in dict(layer.named_buffers())
    assert "gate_vectors" not in dict(layer.named_parameters())


def test_shallow_galu_is_the_paper_formula():
    net = ShallowGaLU(3, 5, 2, generator=_g(), dtype=torch.float64)
    x = torch.randn(8, 3, generator=_g(2), dtype=torch.float64)
    out = net(x)
    assert out.shape == (8, 2)
    for o in range(2):
        expected = sum(
            (x @ net.weight[o, i]) * (x @ net.gate_vectors[i] >= 0).double() for i in range(5)
        )
        torch.testing.assert_close(out[:, o], expected, **F64)
    # Leading batch dimensions are kept.
    assert net(x.reshape(2, 4, 3)).shape == (2, 4, 2)


@pytest.mark.parametrize("gated_by", ["previous", "input"])
def test_deep_galu_layers_follow_their_definition(gated_by):
    net = DeepGaLU(4, (6, 5), 3, gated_by=gated_by, bias=True, generator=_g(), dtype=torch.float64)
    x0 = torch.randn(7, 4, generator=_g(3), dtype=torch.float64)
    h = x0
    for layer in net.layers:
        z = x0 if gated_by == "input" else h
        h = (h @ layer.weight.T + layer.bias) * (z @ layer.gate_vectors.T >= 0).double()
    expected = h @ net.readout.weight.T + net.readout.bias
    torch.testing.assert_close(net(x0), expected, **F64)
    if gated_by == "input":
        assert all(layer.gate_vectors.shape[1] == 4 for layer in net.layers)


def test_galu0_is_deep_galu_gated_by_input():
    a = GaLU0(4, [6, 6], 2, generator=_g(5))
    b = DeepGaLU(4, [6, 6], 2, gated_by="input", generator=_g(5))
    x = torch.randn(3, 4, generator=_g(6))
    assert torch.equal(a(x), b(x))


def test_relu_net_matches_formula_and_shares_constructor():
    net = ReLUNet(4, [5, 3], 2, bias=True, generator=_g(), dtype=torch.float64)
    x = torch.randn(6, 4, generator=_g(1), dtype=torch.float64)
    h = x
    for layer in net.layers:
        h = torch.relu(h @ layer.weight.T + layer.bias)
    torch.testing.assert_close(net(x), h @ net.readout.weight.T + net.readout.bias, **F64)
    # A ReLU unit is a gated linear unit whose gate shares the weight vector.
    w = net.layers[0].weight
    torch.testing.assert_close(
        torch.relu(x @ w.T), (x @ w.T) * (x @ w.T > 0).double(), rtol=0, atol=0
    )


def test_soft_gate_is_used_when_given():
    gate = Gate("sigmoid", scale=2.5)
    layer = GaLULayer(3, 2, gate=gate, generator=_g(), dtype=torch.float64)
    x = torch.randn(4, 3, generator=_g(1), dtype=torch.float64)
    expected = (x @ layer.weight.T) * torch.sigmoid(2.5 * (x @ layer.gate_vectors.T))
    torch.testing.assert_close(layer(x), expected, **F64)


def test_same_generator_seed_gives_same_network_and_different_seed_differs():
    a, b, c = (ShallowGaLU(4, 6, generator=_g(s)) for s in (7, 7, 8))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.gate_vectors, b.gate_vectors)
    assert not torch.equal(a.gate_vectors, c.gate_vectors)


ALL = [
    lambda: ShallowGaLU(4, 6, 2, generator=_g()),
    lambda: DeepGaLU(4, [6, 5], 2, bias=True, generator=_g()),
    lambda: GaLU0(4, [6, 5], 2, generator=_g()),
    lambda: ReLUNet(4, [6, 5], 2, generator=_g()),
]


@pytest.mark.parametrize("make", ALL)
def test_state_dict_round_trip_restores_identical_outputs(make):
    net = make()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    other = make()  # same architecture
    with torch.no_grad():  # scramble, then restore
        for p in other.parameters():
            p.add_(1.0)
        for b in other.buffers():
            b.mul_(-1.0)
    x = torch.randn(5, 4, generator=_g(9))
    assert not torch.equal(other(x), net(x))
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other(x), net(x))


@pytest.mark.parametrize("make", ALL)
def test_to_moves_gate_buffers(make):
    net = make().to(torch.float64)
    assert all(b.dtype == torch.float64 for b in net.buffers())
    meta = make().to("meta")
    assert all(b.device.type == "meta" for b in meta.buffers())


def test_explicit_dtype_and_device():
    net = DeepGaLU(3, 4, generator=_g(), dtype=torch.float64, device="cpu")
    assert {p.dtype for p in net.parameters()} | {b.dtype for b in net.buffers()} == {torch.float64}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ShallowGaLU(0, 3), r"`in_features` \(=0\) must be a positive integer"),
        (lambda: ShallowGaLU(3, 0), r"`hidden_features` \(=0\) must be a positive integer"),
        (lambda: DeepGaLU(3, [4, -1]), r"`hidden_features\[1\]` \(=-1\)"),
        (lambda: DeepGaLU(3, []), r"`hidden_features` \(=\(\)\) must name at least one"),
        (lambda: DeepGaLU(3, 4, gated_by="next"), r"`gated_by` \(='next'\) must be one of"),
    ],
)
def test_constructor_errors_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_input_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"input of shape \(2, 5\) must end in in_features \(=4\)"):
        ShallowGaLU(4, 3)(torch.zeros(2, 5))
    for cls in (DeepGaLU, GaLU0, ReLUNet):
        with pytest.raises(
            ValueError,
            match=rf"{cls.__name__}\(in_features=4\) got input with last dimension 5 "
            r"\(shape \(2, 5\)\); pass inputs of shape \(\.\.\., 4\)",
        ):
            cls(4, 3)(torch.zeros(2, 5))


def test_compile_fullgraph_matches_eager_with_inductor():
    net = ShallowGaLU(4, 6, 2, generator=_g())
    x = torch.randn(16, 4, generator=_g(1))
    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(x), net(x), **TOL[torch.float32])


@pytest.mark.parametrize("make", ALL[1:])
def test_compile_fullgraph_captures_every_model(make):
    # One graph, no breaks; aot_eager skips C++ code generation to keep the suite fast.
    net = make()
    x = torch.randn(16, 4, generator=_g(1))
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), net(x), **TOL[torch.float32])
