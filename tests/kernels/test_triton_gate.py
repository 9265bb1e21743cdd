"""The fused Triton gate against a float64 reference: forward and gradients, every fused
variant, fp32/bf16/fp16, odd shapes, non-contiguous inputs. On CPU the kernel runs in Triton's
interpreter (TRITON_INTERPRET=1, set in conftest)."""

from __future__ import annotations

import math
import os

import pytest
import torch

from galu.kernels import FUSED_VARIANTS, gate, triton_available, triton_status
from galu.kernels._eager import ffn_activation

# triton (the `kernels` extra) is optional; `make setup` installs it, so CI runs these tests.
# Without it, or with a triton below TRITON_MIN, the reason names which.
pytestmark = pytest.mark.skipif(not triton_available(), reason=str(triton_status()))
DEVICE = (
    "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
)

# One tolerance table: |got − ref| <= rtol·|ref| + atol·scale + tiny, where rtol is half an ulp
# of the output dtype (the single final rounding), atol·scale bounds float32 rounding of the
# terms inside the kernel (scale = the size of those terms, e.g. |a|·|b| for the output), and
# tiny is half the dtype's smallest subnormal (results below it round to 0).
TOL = {
    torch.float32: dict(rtol=2**-23 * 8, atol=2**-23 * 16, tiny=2**-150),  # a few roundings
    torch.bfloat16: dict(rtol=2**-8, atol=2**-23 * 16, tiny=2**-134),
    torch.float16: dict(rtol=2**-11, atol=2**-23 * 16, tiny=2**-25),
}


def _check(got: torch.Tensor, ref: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> None:
    t = TOL[dtype]
    got, ref = got.detach(), ref.detach()
    err = (got.double() - ref).abs()
    bound = t["rtol"] * ref.abs() + t["atol"] * scale + t["tiny"]
    worst = float((err / bound.clamp_min(1e-300)).max())
    assert (err <= bound).all(), f"worst error is {worst:.2f}× the tolerance"


def _inputs(shape, dtype, seed, noncontig):
    g = torch.Generator().manual_seed(seed)
    if noncontig == "packed":  # the two halves of a gate_up output, used in place
        h = (torch.randn(*shape[:-1], 2 * shape[-1], generator=g) * 2.5).to(dtype)
        a, b = h.split(shape[-1], dim=-1)
    elif noncontig == "transposed":  # last-dim stride != 1: the kernel gets a contiguous copy
        a = (torch.randn(*shape[::-1], generator=g) * 2.5).to(dtype).transpose(0, -1)
        b = torch.randn(*shape[::-1], generator=g).to(dtype).transpose(0, -1)
    else:
        a = (torch.randn(*shape, generator=g) * 2.5).to(dtype)
        b = torch.randn(*shape, generator=g).to(dtype)
    return a.to(DEVICE), b.to(DEVICE)


CASES = [
    ((3, 37), "contiguous"),
    ((1, 1), "contiguous"),
    ((2, 5, 129), "packed"),
    ((4, 6), "transposed"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("variant", FUSED_VARIANTS)
def test_forward_and_gradients_match_float64(variant, dtype):
    for i, (shape, layout) in enumerate(CASES):
        a, b = _inputs(shape, dtype, i, layout)
        alpha = torch.tensor(0.3, device=DEVICE, requires_grad=True)
        a_, b_ = a.detach().requires_grad_(), b.detach().requires_grad_()
        out = gate(a_, b_, variant, alpha=alpha, beta=1.4, impl="triton")
        assert out.dtype == dtype and out.shape == a.shape
        dout = torch.randn(shape, generator=torch.Generator().manual_seed(99)).to(dtype).to(DEVICE)
        out.backward(dout)
        # float64 reference and its gradients
        a64, b64 = a.double().requires_grad_(), b.double().requires_grad_()
        al64 = torch.tensor(0.3, dtype=torch.float64, device=DEVICE, requires_grad=True)
        ref = ffn_activation(variant, a64, b64, alpha=al64, beta=1.4)
        ref.backward(dout.double())
        A, B, G = a.double().abs(), b.double().abs(), dout.double().abs()
        _check(out, ref.detach(), A.add(1) * (B + 1), dtype)
        _check(a_.grad, a64.grad, G * (B + 1) * (A + 1), dtype)
        _check(b_.grad, b64.grad, G * (A + 1), dtype)
        if variant.startswith("xglu"):
            # a float32 sum of n terms |dout·b·∂h/∂α| <= G·B·(A + 1): (log2 n + 8) roundings
            terms = float((G * B * (A + 1)).sum())
            bound = 2**-23 * (math.log2(a.numel()) + 8) * terms
            assert abs(float(alpha.grad) - float(al64.grad)) <= bound
        else:
            assert alpha.grad is None or float(alpha.grad) == 0.0


def test_module_uses_the_kernel_and_agrees_with_eager():
    from galu.nn import FeedForward

    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    fused = FeedForward(16, 24, "swiglu", impl="triton", generator=torch.Generator().manual_seed(1))
    eager = FeedForward(16, 24, "swiglu", impl="eager", generator=torch.Generator().manual_seed(1))
    fused, eager = fused.to(DEVICE), eager.to(DEVICE)
    h = fused.hidden(x)
    assert "FusedGate" in type(h.grad_fn).__name__  # the kernel ran
    out_f, out_e = fused(x), eager(x)
    torch.testing.assert_close(out_f, out_e, rtol=1e-6, atol=1e-6)
    out_f.square().sum().backward()
    out_e.square().sum().backward()
    torch.testing.assert_close(fused.gate_up.weight.grad, eager.gate_up.weight.grad, rtol=1e-5,
                               atol=1e-6)  # fmt: skip


def test_lower_tail_keeps_relative_accuracy():
    """Φ(a) for a in [−12, −8]: the values are 1e-15 … 1e-32; ½(1 + erf) would give 0 or
    garbage, the kernel's erfc stays within 1e-4 relative (measured ~2e-5 in float32)."""
    a = torch.linspace(-12, -8, 64).reshape(4, 16).to(DEVICE)
    b = torch.ones_like(a)
    for variant in ("geglu", "xglu-gelu"):
        got = gate(a, b, variant, alpha=0.0, impl="triton").double()
        ref = ffn_activation(variant, a.double(), b.double())
        assert ((got - ref).abs() <= 1e-4 * ref.abs()).all()


def test_noncontiguous_upstream_gradient_and_empty_inputs():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 9, generator=g).to(DEVICE).requires_grad_()
    b = torch.randn(6, 9, generator=g).to(DEVICE).requires_grad_()
    dout = torch.randn(9, 6, generator=g).to(DEVICE).t()  # a transposed view
    gate(a, b, "swiglu", impl="triton").backward(dout)
    a2, b2 = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    ffn_activation("swiglu", a2, b2).backward(dout.double())
    torch.testing.assert_close(a.grad.double(), a2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.grad.double(), b2.grad, rtol=1e-5, atol=1e-6)
    empty = torch.empty(0, 5, device=DEVICE)
    assert gate(empty, empty, "swiglu", impl="triton").shape == (0, 5)


def test_second_derivatives_are_refused_not_wrong():
    a = torch.randn(2, 5).to(DEVICE).requires_grad_()
    b = torch.randn(2, 5).to(DEVICE)
    (ga,) = torch.autograd.grad(gate(a, b, "swiglu", impl="triton").sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|does not require grad"):
        ga.sum().backward()


def test_dispatch_errors_are_clear():
    a = torch.ones(2, 3)
    with pytest.raises(ValueError, match="`impl`"):
        gate(a, a, "swiglu", impl="cuda")
    with pytest.raises(ValueError, match="gated variant"):
        gate(a, a, "relu")
    with pytest.raises(ValueError, match="one shape"):
        gate(a, torch.ones(3, 2), "swiglu")
    with pytest.raises(ValueError, match="one scalar"):
        gate(a, a, "xglu-silu", alpha=torch.zeros(3), impl="triton")
    with pytest.raises(ValueError, match="must match"):
        gate(a, a.double(), "swiglu")
    with pytest.raises(ValueError, match="float32/bfloat16/float16"):
        gate(a.double(), a.double(), "swiglu", impl="triton")
    with pytest.raises(ValueError, match="`beta`"):
        gate(a, a, "swiglu", beta=0.0)


def test_compile_path_matches_eager_with_gradients():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(5, 33, generator=g, requires_grad=True)
    b = torch.randn(5, 33, generator=g, requires_grad=True)
    out = gate(a, b, "geglu", impl="compile")
    out.sum().backward()
    a2, b2 = a.detach().requires_grad_(), b.detach().requires_grad_()
    ref = ffn_activation("geglu", a2, b2)
    ref.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.grad, a2.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(b.grad, b2.grad, rtol=1e-6, atol=1e-7)


def test_every_gated_variant_is_fused():
    from galu.nn._glu import GATED

    assert set(FUSED_VARIANTS) == set(GATED)
