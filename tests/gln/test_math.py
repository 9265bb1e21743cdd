"""The neuron math against independent computations: autograd, the product form of geometric
mixing, finite Hessians, a per-hyperplane context loop."""

from __future__ import annotations

import math

import pytest
import torch

from galu.gln import HalfSpaces, LearningRate
from galu.gln._math import (
    as_learning_rate,
    bernoulli_grad,
    bernoulli_hessian,
    bernoulli_loss,
    gaussian_grad,
    gaussian_loss,
    gaussian_product,
    geometric_mix,
    logit,
    project_precision,
)

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_geometric_mixing_identities() -> None:
    p = torch.rand(50, 6, generator=_gen(0), dtype=D) * 0.98 + 0.01
    ell = logit(p)
    assert torch.allclose(
        torch.sigmoid(geometric_mix(torch.zeros(6, dtype=D), ell)), torch.full((50,), 0.5, dtype=D)
    )
    for j in range(6):
        e = torch.zeros(6, dtype=D)
        e[j] = 1
        assert torch.allclose(torch.sigmoid(geometric_mix(e, ell)), p[:, j], rtol=0, atol=1e-15)
    w = torch.randn(6, generator=_gen(1), dtype=D)
    num = torch.prod(p**w, dim=1)
    product_form = num / (num + torch.prod((1 - p) ** w, dim=1))
    assert torch.allclose(torch.sigmoid(geometric_mix(w, ell)), product_form, rtol=1e-12, atol=0)


def test_bernoulli_loss_is_stable_log_loss() -> None:
    u = torch.tensor([-40.0, -3.0, 0.0, 2.5, 40.0], dtype=D)
    for y in (0.0, 1.0):
        naive = -(y * torch.log(torch.sigmoid(u)) + (1 - y) * torch.log(1 - torch.sigmoid(u)))
        got = bernoulli_loss(u, torch.tensor(y, dtype=D))
        ok = torch.isfinite(naive) & (naive > 1e-10) & (naive < 30)
        assert torch.allclose(got[ok], naive[ok], rtol=1e-12)
    # where the naive form rounds 1 - σ(40) to 0, the loss is still 40 (to 1e-12)
    assert (
        abs(bernoulli_loss(torch.tensor(40.0, dtype=D), torch.tensor(0.0, dtype=D)).item() - 40.0)
        < 1e-12
    )


def test_bernoulli_gradient_and_hessian_against_autograd() -> None:
    g = _gen(2)
    for _ in range(5):
        x = torch.randn(7, generator=g, dtype=D) * 2
        w = torch.randn(7, generator=g, dtype=D).requires_grad_()
        for y in (0.0, 1.0):
            yt = torch.tensor(y, dtype=D)
            (auto,) = torch.autograd.grad(bernoulli_loss(geometric_mix(w, x), yt), w)
            assert torch.allclose(bernoulli_grad(w.detach(), x, yt), auto, rtol=1e-12, atol=1e-15)
            H = torch.autograd.functional.hessian(
                lambda v, yt=yt, x=x: bernoulli_loss(geometric_mix(v, x), yt), w.detach()
            )
            assert torch.allclose(bernoulli_hessian(w.detach(), x), H, rtol=1e-10, atol=1e-14)
            assert torch.linalg.eigvalsh(H).min() > -1e-12  # convex


def test_gaussian_product_gradient_and_convexity() -> None:
    g = _gen(3)
    for _ in range(5):
        mu = torch.randn(5, generator=g, dtype=D)
        s2 = torch.rand(5, generator=g, dtype=D) + 0.2
        w = (torch.rand(5, generator=g, dtype=D) + 0.1).requires_grad_()
        y = torch.randn((), generator=g, dtype=D)

        def nll(v: torch.Tensor, mu=mu, s2=s2, y=y) -> torch.Tensor:
            m, var = gaussian_product(v, mu, s2)
            return gaussian_loss(m, var, y)

        (auto,) = torch.autograd.grad(nll(w), w)
        assert torch.allclose(gaussian_grad(w.detach(), mu, s2, y), auto, rtol=1e-10, atol=1e-13)
        H = torch.autograd.functional.hessian(nll, w.detach())
        assert torch.linalg.eigvalsh(H).min() > -1e-10  # convex where the precision is positive
    # product of two Gaussians with unit weights: the textbook formula
    m, v = gaussian_product(
        torch.ones(2, dtype=D), torch.tensor([1.0, 3.0], dtype=D), torch.tensor([1.0, 3.0], dtype=D)
    )
    assert math.isclose(v.item(), 1 / (1 + 1 / 3)) and math.isclose(m.item(), (1 + 1) * v.item())


def test_precision_projection_lands_on_the_nearer_end() -> None:
    s2 = torch.tensor([0.5, 2.0, 4.0], dtype=D)
    for w, want in [
        (torch.tensor([0.001, 0.001, 0.001], dtype=D), 1 / 100.0),
        (torch.tensor([50.0, 50.0, 50.0], dtype=D), 1 / 0.01),
        (torch.tensor([0.3, 0.2, 0.1], dtype=D), None),
    ]:
        p = project_precision(w, s2, 0.01, 100.0)
        prec = (p / s2).sum().item()
        if want is None:
            assert torch.equal(p, w)
        else:
            assert math.isclose(prec, want, rel_tol=1e-12)
            # the move is along λ: the closest point of the hyperplane
            diff = p - w
            assert torch.allclose(
                (diff / diff.norm()).abs(), (1 / s2) / (1 / s2).norm(), atol=1e-12
            )


def test_contexts_match_a_per_hyperplane_loop() -> None:
    hs = HalfSpaces.sample((3, 5), 4, 3, generator=_gen(4), dtype=D)
    z = torch.randn(40, 4, generator=_gen(5), dtype=D)
    got = hs(z)
    for t in range(40):
        for a in range(3):
            for k in range(5):
                c = 0
                for j in range(3):
                    side = float(hs.normals[a, k, j] @ z[t]) > float(hs.offsets[a, k, j])
                    c += (2**j) * int(side)
                assert got[t, a, k].item() == c
    # the two sampling rules: unit-norm normals vs N(0, I) with zero offsets
    assert torch.allclose(hs.normals.norm(dim=-1), torch.ones(3, 5, 3, dtype=D))
    py = HalfSpaces.sample((200,), 10, 2, rule="pygln", generator=_gen(6), dtype=D)
    assert torch.all(py.offsets == 0) and abs(py.normals.norm(dim=-1).mean().item() - 3.08) < 0.1
    # explicit generator: same seed, same hyperplanes
    again = HalfSpaces.sample((3, 5), 4, 3, generator=_gen(4), dtype=D)
    assert torch.equal(again.normals, hs.normals) and torch.equal(again.offsets, hs.offsets)
    # C = 0: one context
    assert torch.all(HalfSpaces.sample((2,), 4, 0, generator=_gen(0))(z.float()) == 0)


def test_learning_rate_schedules() -> None:
    t = torch.arange(1.0, 20001.0, dtype=D)
    dm = as_learning_rate("deepmind")(t)
    assert torch.allclose(dm, torch.minimum(torch.tensor(0.003, dtype=D), 1 / (1 + 0.1 * t)))
    py = as_learning_rate("pygln")(t)
    assert py[0].item() == 0.01 and py[-1].item() == pytest.approx(100 / 20000)
    assert torch.all(as_learning_rate(0.05)(t) == 0.05)
    with pytest.raises(ValueError, match=r"`lr` \(=0\)"):
        as_learning_rate(0)
    with pytest.raises(ValueError, match="names no schedule"):
        as_learning_rate("adam")
    with pytest.raises(ValueError, match="slope"):
        LearningRate(0.1, c=1.0, slope=-1.0)
