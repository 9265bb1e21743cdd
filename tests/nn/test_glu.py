"""GLU-family feed-forward layers against formulas written out in NumPy/SciPy (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr
from torch import nn

from galu.nn import (
    FFN_VARIANTS,
    FeedForward,
    ffn_activation,
    from_llama_mlp,
    from_torch_glu,
    gated_hidden_size,
    to_llama_mlp,
)
from galu.nn._glu import GATED


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _phi(z):
    return ndtr(z)  # accurate in the lower tail


BASE = {"atlu": lambda z: np.arctan(z) / np.pi + 0.5, "gelu": _phi, "silu": _sig}


def _reference(variant: str, a: np.ndarray, b: np.ndarray | None, alpha: float, beta: float):
    tanh_gelu = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    tanh_gelu = np.where(
        a < -3, a * _sig(2 * math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)), tanh_gelu
    )
    act = {
        "relu": np.maximum(a, 0),
        "reglu": np.maximum(a, 0),
        "gelu": a * _phi(a),
        "geglu": a * _phi(a),
        "gelu-tanh": tanh_gelu,
        "geglu-tanh": tanh_gelu,
        "swish": a * _sig(beta * a),
        "swiglu": a * _sig(beta * a),
        "glu": _sig(a),
        "bilinear": a,
    }
    if variant in act:
        h = act[variant]
    elif variant.startswith("xglu2-"):
        h = a * (BASE[variant[6:]](a) * (1 + 2 * alpha) - alpha)
    elif variant.startswith("xglu-"):
        h = BASE[variant[5:]](a) * (1 + 2 * alpha) - alpha
    else:
        h = a * (BASE[variant[1:]](a) * (1 + 2 * alpha) - alpha)
    return h if b is None else h * b


@pytest.mark.parametrize("variant", FFN_VARIANTS)
def test_every_variant_equals_its_formula(variant):
    g = torch.Generator().manual_seed(0)
    ffn = FeedForward(6, 5, variant, bias=True, scale=1.7, generator=g, dtype=torch.float64)
    if ffn.alpha is not None:
        with torch.no_grad():
            ffn.alpha.fill_(0.3)
    x = torch.randn(4, 3, 6, generator=g, dtype=torch.float64) * 2
    W, c = ffn.gate_up.weight.detach().numpy(), ffn.gate_up.bias.detach().numpy()
    h = x.numpy() @ W.T + c
    a, b = (h[..., :5], h[..., 5:]) if ffn.gated else (h, None)
    hidden = _reference(variant, a, b, 0.3, 1.7)
    expected = hidden @ ffn.down.weight.detach().numpy().T + ffn.down.bias.detach().numpy()
    np.testing.assert_allclose(ffn(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("expanded", "base"),
    [
        ("xsilu", "swish"),
        ("xgelu", "gelu"),
        ("xglu2-silu", "swiglu"),
        ("xglu2-gelu", "geglu"),
        ("xglu-silu", "glu"),
    ],
)
def test_expanded_variants_start_as_their_base_and_alpha_trains(expanded, base):
    x = torch.randn(7, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    e = FeedForward(8, 6, expanded, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    b = FeedForward(8, 6, base, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(e(x), b(x), rtol=1e-13, atol=1e-13)
    e(x).square().sum().backward()
    assert e.alpha is not None and e.alpha.grad is not None and e.alpha.grad.abs() > 0


def test_expanded_gate_range_is_minus_alpha_to_one_plus_alpha():
    z = torch.linspace(-60, 60, 2001, dtype=torch.float64)
    for name in ("atlu", "gelu", "silu"):
        from galu.nn._glu import expanded_gate

        g = expanded_gate(name, z, 0.4)
        assert -0.4 - 1e-12 <= float(g.min()) < -0.38 and 1.38 < float(g.max()) <= 1.4 + 1e-12


def test_two_thirds_rule_matches_parameter_counts():
    assert gated_hidden_size(3072) == 2048
    assert gated_hidden_size(1000, multiple_of=64) == 704
    relu = FeedForward(768, 3072, "relu")
    swiglu = FeedForward(768, gated_hidden_size(3072), "swiglu")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(relu) == count(swiglu) == 2 * 768 * 3072


def test_torch_glu_layout_converter():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(10, 4, generator=g, dtype=torch.float64)  # used as F.glu(x @ Wᵀ): value, gate
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    ffn = FeedForward(4, 5, "glu", dtype=torch.float64)
    with torch.no_grad():
        ffn.gate_up.weight.copy_(from_torch_glu(W))
    torch.testing.assert_close(ffn.hidden(x), nn.functional.glu(x @ W.T, dim=-1))


class _LlamaMLP(nn.Module):
    """The Hugging Face LLaMA MLP's structure: down(silu(gate(x)) * up(x))."""

    def __init__(self, d: int, F: int, bias: bool) -> None:
        super().__init__()
        kw = dict(bias=bias, dtype=torch.float64)
        self.gate_proj, self.up_proj = nn.Linear(d, F, **kw), nn.Linear(d, F, **kw)
        self.down_proj = nn.Linear(F, d, **kw)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


@pytest.mark.parametrize("bias", [False, True])
def test_llama_mlp_round_trip(bias):
    torch.manual_seed(0)  # nn.Linear's own initialisation in this test-only module
    mlp = _LlamaMLP(8, 12, bias)
    x = torch.randn(5, 8, dtype=torch.float64)
    ffn = from_llama_mlp(mlp)
    torch.testing.assert_close(ffn(x), mlp(x), rtol=1e-13, atol=1e-13)
    back = _LlamaMLP(8, 12, bias)
    back.load_state_dict(to_llama_mlp(ffn))
    torch.testing.assert_close(back(x), mlp(x), rtol=0, atol=0)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.bfloat16, 2**-8), (torch.float16, 2**-11)])
@pytest.mark.parametrize("variant", ["swiglu", "geglu", "xglu2-atlu", "gelu"])
def test_low_precision_inputs_use_float32_math(dtype, tol, variant):
    """The result is the float64 answer rounded once to the output dtype (half a unit in the last
    place: relative 2^-8 for bf16, 2^-11 for fp16) up to float32 rounding of the internal terms
    (8 float32 epsilons of ``|a|(1 + |b|)``, which matters only where the result cancels to ~0)."""
    g = torch.Generator().manual_seed(4)
    a = (torch.randn(64, 33, generator=g) * 3).to(dtype)
    b = torch.randn(64, 33, generator=g).to(dtype) if variant != "gelu" else None
    out = ffn_activation(variant, a, b, alpha=0.25)
    assert out.dtype == dtype
    ref = ffn_activation(variant, a.double(), None if b is None else b.double(), alpha=0.25)
    err = (out.double() - ref).abs()
    scale = a.double().abs() * (1 + (0 if b is None else b.double().abs()))
    assert (err <= tol * ref.abs() + 8 * 2**-23 * scale).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`variant`"):
        FeedForward(4, 4, "swishglu")
    with pytest.raises(ValueError, match="needs second input"):
        ffn_activation("swiglu", torch.ones(2))
    with pytest.raises(ValueError, match="takes no second input"):
        ffn_activation("relu", torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="`scale`"):
        FeedForward(4, 4, scale=0.0)
    mlp = _LlamaMLP(4, 4, True)
    mlp.down_proj = nn.Linear(4, 4, bias=False, dtype=torch.float64)
    with pytest.raises(ValueError, match="biases or none"):
        from_llama_mlp(mlp)
    with pytest.raises(ValueError, match="no gate/up split"):
        to_llama_mlp(FeedForward(4, 4, "relu"))


@pytest.mark.parametrize("variant", FFN_VARIANTS)
def test_gradients_match_finite_differences(variant):
    """torch.autograd.gradcheck (float64 central differences) for the inputs and α."""
    g = torch.Generator().manual_seed(5)
    a = (torch.randn(3, 4, generator=g, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_()
    alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    if variant in ("relu", "reglu"):  # keep away from the kink
        a = (a.detach() + 0.1 * torch.sign(a.detach())).requires_grad_()
    gated = variant in GATED

    def f(a, b, alpha):
        return ffn_activation(variant, a, b if gated else None, alpha=alpha, beta=1.3)

    assert torch.autograd.gradcheck(f, (a, b, alpha))


@pytest.mark.parametrize("variant", ["swiglu", "relu"])  # the packed gated and the plain layout
def test_input_width_mismatch_names_both_widths(variant):
    ffn = FeedForward(16, 32, variant, generator=torch.Generator().manual_seed(0))
    with pytest.raises(
        ValueError,
        match=r"FeedForward\(in_features=16\) got input with last dimension 8 \(shape \(4, 8\)\); "
        r"pass inputs of shape \(\.\.\., 16\)",
    ):
        ffn(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"got input with last dimension 16 \(shape \(2, 3, 16\)"):
        FeedForward(12, 8, variant)(torch.randn(2, 3, 16))
    assert ffn(torch.randn(2, 3, 16)).shape == (2, 3, 16)  # leading dimensions stay free
