"""The batched MLP's values and analytic derivatives against autograd and explicit loops."""

import pytest
import torch

from galu.channels import (
    ACTIVATIONS,
    _mlp,
    augment,
    derivatives,
    forward,
    glorot_init,
    hvp,
    loss,
    top_eigenvalue,
    unpack,
)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives_are_the_autograd_derivatives(name):
    sigma = ACTIVATIONS[name]
    z = torch.linspace(-8, 8, 401, dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(sigma.f(z).sum(), z, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), z)
    torch.testing.assert_close(sigma.d1(z), d1, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(sigma.d2(z), d2, rtol=1e-12, atol=1e-14)


def _nets(E=3, r=4, d=3, n=25, seed=0, per_network=False):
    g = torch.Generator().manual_seed(seed)
    theta = glorot_init(E, r, d + 1, generator=g)
    shape = (E, n, d) if per_network else (n, d)
    X = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randn(*shape[:-1], generator=g, dtype=torch.float64)
    return theta, augment(X), y


def test_forward_is_the_sum_over_hidden_units():
    theta, Xa, y = _nets()
    W, a = unpack(theta, Xa.shape[-1])
    sigma = ACTIVATIONS["softplus"]
    for e in range(theta.shape[0]):
        want = sum(a[e, i] * sigma.f(Xa @ W[e, i]) for i in range(W.shape[1]))
        torch.testing.assert_close(forward(theta, Xa, "softplus")[e], want, rtol=1e-13, atol=0)
    L = loss(theta, Xa, y, "softplus")
    torch.testing.assert_close(L, 0.5 * ((forward(theta, Xa, "softplus") - y) ** 2).mean(1))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("per_network", [False, True])
def test_gradient_hessian_and_hvp_match_autograd(name, per_network):
    theta, Xa, y = _nets(per_network=per_network)
    L, g, H = derivatives(theta, Xa, y, name, hessian=True)
    assert H is not None
    for e in range(theta.shape[0]):
        Xe = Xa[e] if per_network else Xa
        ye = y[e] if per_network else y

        def f(th, Xe=Xe, ye=ye):
            return loss(th[None], Xe, ye, name)[0]

        torch.testing.assert_close(L[e], f(theta[e]), rtol=1e-14, atol=0)
        torch.testing.assert_close(g[e], torch.func.grad(f)(theta[e]), rtol=1e-11, atol=1e-13)
        torch.testing.assert_close(
            H[e], torch.autograd.functional.hessian(f, theta[e]), rtol=1e-10, atol=1e-12
        )
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(
        hvp(theta, Xa, y, name, v), (H @ v[..., None])[..., 0], rtol=1e-11, atol=1e-13
    )


def test_hessian_in_chunks_equals_one_pass(monkeypatch):
    theta, Xa, y = _nets(E=5)
    whole = derivatives(theta, Xa, y, "erf", hessian=True)
    monkeypatch.setattr(_mlp, "_JACOBIAN_ELEMENTS", 1)  # one network per chunk
    parts = derivatives(theta, Xa, y, "erf", hessian=True)
    for a, b in zip(whole, parts, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_top_eigenvalue_by_lanczos_equals_the_dense_spectrum():
    theta, Xa, y = _nets(E=4, r=5, d=4)
    H = derivatives(theta, Xa, y, "sigmoid4-softplus", hessian=True)[2]
    want = torch.linalg.eigvalsh(H)[:, -1]
    got = top_eigenvalue(theta, Xa, y, "sigmoid4-softplus")  # P = 30 < 40: the exact Krylov space
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)


def test_a_network_sharpness_does_not_depend_on_its_batch():
    # Few Lanczos steps (5 < P = 30), so the estimate depends on the start vector: every network
    # starts from the same one, whatever its position or company in the batch.
    theta, Xa, y = _nets(E=4, r=5, d=4)
    batch = top_eigenvalue(theta, Xa, y, "erf", steps=5)
    alone = torch.stack(
        [top_eigenvalue(theta[e : e + 1], Xa, y, "erf", steps=5)[0] for e in range(4)]
    )
    flipped = top_eigenvalue(theta.flip(0), Xa, y, "erf", steps=5).flip(0)
    torch.testing.assert_close(batch, alone, rtol=1e-12, atol=0)
    torch.testing.assert_close(batch, flipped, rtol=1e-12, atol=0)
    H = derivatives(theta, Xa, y, "erf", hessian=True)[2]
    top = torch.linalg.eigvalsh(H)[:, -1]
    assert bool((batch <= top + 1e-12 * top.abs()).all())  # a Ritz value never exceeds the top


def test_bad_shapes_and_names_are_named():
    theta, Xa, _y = _nets()
    with pytest.raises(ValueError, match=r"`activation` \(='relu'\) must be one of"):
        forward(theta, Xa, "relu")
    with pytest.raises(ValueError, match=r"`theta` has 19 parameters per network"):
        forward(theta[:, :-1], Xa, "erf")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_joint_value_and_slope_equal_the_separate_ones(name):
    sigma = ACTIVATIONS[name]
    z = torch.linspace(-800, 800, 4001, dtype=torch.float64)  # far into both tails
    f, d1 = sigma.f_d1(z)
    torch.testing.assert_close(f, sigma.f(z), rtol=1e-15, atol=1e-300)
    torch.testing.assert_close(d1, sigma.d1(z), rtol=1e-15, atol=1e-300)
