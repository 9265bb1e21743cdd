"""Every training path of the GLNs against the independent NumPy float64 reference
(``reference.py``: one example at a time, explicit loops): predictions, per-neuron losses and the
final weights agree to 1e-12."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from galu.gln import BernoulliGLN, DendriticGLN, GaussianGLN, LearningRate
from galu.gln._scan import numba_status
from galu.kernels import triton_status
from tests.gln import reference as ref

D = torch.float64
TOL = 1e-12
SIZES = (5, 4, 1)
ENGINES = ["numpy", "torch"] + (["numba"] if numba_status() is None else [])
# The Triton walk on CPU tensors runs in Triton's interpreter (conftest sets TRITON_INTERPRET=1);
# on a GPU machine test_triton_on_cuda compiles it.
INTERPRET = triton_status() is None and os.environ.get("TRITON_INTERPRET") == "1"
ENGINES += ["triton"] if INTERPRET else []


def _stream(T: int = 150, n0: int = 6, d: int = 4, A: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, size=(T, n0))
    base[:5, 0] = [0.0, 1.0, 0.001, 0.999, 0.5]  # exercise the clip of the base predictions
    side = rng.normal(size=(T, d))
    labels = rng.integers(0, A, size=T)
    return base, side, labels, np.eye(A)[labels]


def _layers(net, per_layer):
    """The network's hyperplanes split per layer, as NumPy."""
    V = torch.split(net.contexts.normals, list(net.layer_sizes), dim=1)
    b = torch.split(net.contexts.offsets, list(net.layer_sizes), dim=1)
    return [v.numpy().copy() for v in V], [o.numpy().copy() for o in b]


def _etas(net, T: int) -> np.ndarray:
    return net.lr(torch.arange(1, T + 1, dtype=D)).numpy()


def _close(got, want, what: str) -> None:
    err = float(np.max(np.abs(np.asarray(got) - np.asarray(want))))
    assert err <= TOL, f"{what}: max |galu − reference| = {err:.3g}"


# The Triton walk runs in Triton's (slow) interpreter: one rule here; test_models covers all three.
CASES = [(e, r) for e in ENGINES for r in ("none", "confident", "deepmind")
         if e != "triton" or r == "deepmind"]  # fmt: skip


@pytest.mark.parametrize(("engine", "skip_rule"), CASES)
def test_bernoulli_sequential_equals_reference(engine: str, skip_rule: str) -> None:
    base, side, labels, Y = _stream()
    # a large, decaying step (η_t = min(0.6, 6/t)) so that the box, the skip rules and the step
    # counter all matter on this short stream; chunks of 64 split it in three calls' worth
    lr = LearningRate(0.6, c=6.0)
    net = BernoulliGLN(6, 4, SIZES, num_outputs=3, context_dim=3, lr=lr, eps=0.02, beta=1.5,
                       skip_rule=skip_rule, engine=engine, chunk_size=64, dtype=D,
                       generator=torch.Generator().manual_seed(7))  # fmt: skip
    W0 = [w.numpy().copy() for w in net.weights]
    V, b = _layers(net, SIZES)
    half = len(Y) // 2  # two update calls: the counter carries over
    r1 = net.update(torch.from_numpy(base[:half]), torch.from_numpy(side[:half]),
                    torch.from_numpy(labels[:half]))  # fmt: skip
    r2 = net.update(torch.from_numpy(base[half:]), torch.from_numpy(side[half:]),
                    torch.from_numpy(labels[half:]))  # fmt: skip
    etas = np.minimum(0.6, 6.0 / np.arange(1, len(Y) + 1))
    kw = dict(eps=0.02, beta=1.5, bias_logit=math.log(net.bias / (1 - net.bias)))
    p_ref, l_ref, W_ref = ref.bernoulli_sequential(W0, V, b, base, side, Y, etas,
                                                   skip_rule=skip_rule, **kw)  # fmt: skip
    preds = torch.cat([r1.predictions, r2.predictions]).numpy()
    _close(preds, p_ref, "predictions")
    for i in range(3):
        losses = torch.cat([r1.losses[i], r2.losses[i]]).numpy()
        _close(losses, l_ref[i], f"losses of layer {i}")
        _close(net.weights[i].numpy(), W_ref[i], f"weights of layer {i}")
    # the box bound somewhere, and a skipping rule skipped something that `none` learnt from
    assert max(float(np.abs(w).max()) for w in W_ref) == pytest.approx(1.5)
    if skip_rule != "none":
        _, _, W_none = ref.bernoulli_sequential(W0, V, b, base, side, Y, etas,
                                                skip_rule="none", **kw)  # fmt: skip
        assert max(float(np.abs(a - c).max()) for a, c in zip(W_ref, W_none, strict=True)) > 1e-3


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("skip_rule", ["none", "confident", "deepmind"])
def test_bernoulli_batch_modes_equal_reference(mode: str, skip_rule: str) -> None:
    base, side, labels, Y = _stream(T=40)
    net = BernoulliGLN(
        6,
        4,
        SIZES,
        num_outputs=3,
        context_dim=2,
        lr=0.3,
        batch_mode=mode,
        dtype=D,
        skip_rule=skip_rule,
        generator=torch.Generator().manual_seed(3),
    )
    W = [w.numpy().copy() for w in net.weights]
    V, b = _layers(net, SIZES)
    for s in range(0, 40, 10):  # four minibatches of 10
        r = net.update(
            torch.from_numpy(base[s : s + 10]),
            torch.from_numpy(side[s : s + 10]),
            torch.from_numpy(labels[s : s + 10]),
        )
        p_ref, l_ref, W = ref.bernoulli_batch(
            W,
            V,
            b,
            base[s : s + 10],
            side[s : s + 10],
            Y[s : s + 10],
            0.3,
            eps=0.01,
            beta=5.0,
            bias_logit=math.log(net.bias / (1 - net.bias)),
            skip_rule=skip_rule,
            mode=mode,
        )
        _close(r.predictions.numpy(), p_ref, f"{mode} predictions")
        for i in range(3):
            _close(r.losses[i].numpy(), l_ref[i], f"{mode} losses of layer {i}")
    for i in range(3):
        _close(net.weights[i].numpy(), W[i], f"{mode} weights of layer {i}")


@pytest.mark.parametrize("skip_rule", ["none", "confident", "deepmind"])
@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "triton"])
def test_dendritic_equals_reference(engine: str, skip_rule: str) -> None:
    base, side, labels, Y = _stream(T=100)
    net = DendriticGLN(
        6,
        4,
        SIZES,
        num_outputs=3,
        branches=3,
        lr=0.1,
        skip_rule=skip_rule,
        engine=engine,
        dtype=D,
        generator=torch.Generator().manual_seed(5),
    )
    W0 = [w.numpy().copy() for w in net.weights]
    V, b = _layers(net, SIZES)
    r = net.update(torch.from_numpy(base), torch.from_numpy(side), torch.from_numpy(labels))
    p_ref, l_ref, W_ref = ref.dendritic_sequential(
        W0,
        V,
        b,
        base,
        side,
        Y,
        _etas(net, 100),
        eps=0.01,
        beta=5.0,
        bias_logit=math.log(net.bias / (1 - net.bias)),
        skip_rule=skip_rule,
    )
    _close(r.predictions.numpy(), p_ref, "predictions")
    for i in range(3):
        _close(r.losses[i].numpy(), l_ref[i], f"losses of layer {i}")
        _close(net.weights[i].numpy(), W_ref[i], f"weights of layer {i}")


@pytest.mark.parametrize("engine", [e for e in ENGINES if e not in ("triton", "numpy")])
def test_gaussian_equals_reference(engine: str) -> None:
    rng = np.random.default_rng(1)
    T = 120
    mu0 = rng.normal(size=(T, 3))
    s20 = rng.uniform(0.3, 2.0, size=(T, 3))
    side = rng.normal(size=(T, 2))
    y = (mu0[:, 0] - 0.5 * mu0[:, 1] + 0.1 * rng.normal(size=T))[:, None]
    net = GaussianGLN(
        3,
        2,
        (4, 3, 1),
        context_dim=2,
        lr=0.05,
        s2_min=0.05,
        s2_max=5.0,
        beta=3.0,
        mean_bound=2.0,
        engine=engine,
        dtype=D,
        generator=torch.Generator().manual_seed(2),
    )
    W0 = [w.numpy().copy() for w in net.weights]
    V, b = _layers(net, (4, 3, 1))
    r = net.update(
        (torch.from_numpy(mu0), torch.from_numpy(s20)), torch.from_numpy(side), torch.from_numpy(y)
    )
    m_ref, v_ref, l_ref, W_ref = ref.gaussian_sequential(
        W0,
        V,
        b,
        mu0,
        s20,
        side,
        y,
        _etas(net, T),
        s2_min=0.05,
        s2_max=5.0,
        beta=3.0,
        mean_bound=2.0,
        bias_means=(-1.0, 0.0, 1.0),
    )
    _close(r.mean.numpy(), m_ref, "means")
    _close(r.variance.numpy(), v_ref, "variances")
    for i in range(3):
        _close(r.losses[i].numpy(), l_ref[i], f"losses of layer {i}")
        _close(net.weights[i].numpy(), W_ref[i], f"weights of layer {i}")
    # the projection and the guard both acted on this stream
    assert r.guarded > 0
    assert float(r.variance.min()) == pytest.approx(0.05) or float(
        r.variance.max()
    ) == pytest.approx(5.0)
