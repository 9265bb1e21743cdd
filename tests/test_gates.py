import pytest
import torch

from galu import Gate
from galu.gates import sigmoid, step


def test_step_values_at_and_around_zero():
    z = torch.tensor([-2.0, -1e-30, 0.0, 1e-30, 3.0])
    assert step(z, 1.0).tolist() == [0, 0, 1, 1, 1]
    assert step(z, 0.0).tolist() == [0, 0, 0, 1, 1]
    assert step(z, 0.5).tolist() == [0, 0, 0.5, 1, 1]


def test_step_keeps_dtype_and_has_no_gradient():
    z = torch.randn(5, dtype=torch.float64, requires_grad=True)
    g = step(z)
    assert g.dtype == torch.float64
    assert not g.requires_grad


def test_sigmoid_scale_tends_to_the_step():
    z = torch.tensor([-1.0, -0.1, 0.0, 0.1, 1.0], dtype=torch.float64)
    assert torch.allclose(sigmoid(z, 1e4), step(z, 0.5), atol=1e-40)
    assert torch.allclose(sigmoid(z, 2.0), 1 / (1 + torch.exp(-2 * z)), rtol=1e-15)


def test_gate_dispatch_matches_pure_functions():
    z = torch.linspace(-3, 3, 13)
    assert torch.equal(Gate("step", at_zero=0.0)(z), step(z, 0.0))
    assert torch.equal(Gate("sigmoid", scale=3.0)(z), sigmoid(z, 3.0))
    assert Gate().is_hard and not Gate("sigmoid").is_hard


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="tanh"), r"`kind` \(='tanh'\) must be one of \('step', 'sigmoid', 'one'\)"),
        (dict(at_zero=0.3), r"`at_zero` \(=0.3\) must be one of \(1.0, 0.0, 0.5\)"),
        (dict(scale=0.0), r"`scale` \(=0.0\) must be a positive number"),
    ],
)
def test_gate_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Gate(**kwargs)


def test_step_rejects_bad_at_zero():
    with pytest.raises(ValueError, match=r"`at_zero` \(=2\)"):
        step(torch.zeros(1), 2)


def test_all_ones_gate_makes_a_linear_network():
    from galu.nn import DeepGaLU

    g = torch.Generator().manual_seed(0)
    net = DeepGaLU(3, [4, 5], 2, gate=Gate("one"), generator=g, dtype=torch.float64)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    W = net.readout.weight @ net.layers[1].weight @ net.layers[0].weight
    torch.testing.assert_close(net(x), x @ W.T, rtol=1e-12, atol=1e-12)
