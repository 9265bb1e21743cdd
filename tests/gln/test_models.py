"""GLN modules: properties that follow from the definitions, checked on small networks — skip
rules, pre-update predictions, minibatch modes, the export, state, memory and bad input. (The
example-by-example equality with the NumPy reference is in test_reference.py.)"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from galu.gln import BernoulliGLN, DendriticGLN, GaussianGLN, HalfSpaces
from galu.gln._scan import numba_status
from galu.kernels import triton_status
from galu.solvers._memory import InsufficientMemoryError

D = torch.float64


def _data(T: int, n0: int, d: int, A: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(T, n0, generator=g, dtype=D) * 0.9 + 0.05
    side = torch.randn(T, d, generator=g, dtype=D)
    y = torch.randint(0, A, (T,), generator=g) if A > 1 else torch.randint(0, 2, (T,), generator=g)
    return base, side, y


def _net(cls=BernoulliGLN, seed: int = 1, **kw):
    args = dict(num_outputs=3, lr=0.2, dtype=D)
    if cls is not DendriticGLN:
        args["context_dim"] = 2
    args.update(kw)
    return cls(
        5,
        4,
        args.pop("layer_sizes", (4, 3, 1)),
        generator=torch.Generator().manual_seed(seed),
        **args,
    )


ENGINES = ["numpy", "torch"] + (["numba"] if numba_status() is None else [])
# The Triton walk on CPU tensors runs in Triton's interpreter (conftest sets TRITON_INTERPRET=1);
# on a GPU machine test_triton_on_cuda compiles it.
INTERPRET = triton_status() is None and os.environ.get("TRITON_INTERPRET") == "1"
ENGINES += ["triton"] if INTERPRET else []


@pytest.mark.parametrize("skip_rule", ["none", "confident", "deepmind"])
def test_engines_agree(skip_rule: str) -> None:
    base, side, y = _data(80, 5, 4, 3)
    got = {}
    for engine in ENGINES:
        net = _net(skip_rule=skip_rule, engine=engine, lr=0.5, eps=0.05)
        r = net.update(base, side, y)
        got[engine] = (r.predictions, [w.clone() for w in net.weights])
    ref = got["numpy"]
    for engine, (p, ws) in got.items():
        assert torch.allclose(p, ref[0], rtol=0, atol=1e-12), engine
        for w, wr in zip(ws, ref[1], strict=False):
            assert torch.allclose(w, wr, rtol=0, atol=1e-12), engine
    # the rules really differ on this stream (so the agreement covers each rule's branch)
    finals = {rule: _net(skip_rule=rule, lr=0.5, eps=0.05) for rule in ("none", "deepmind")}
    for net in finals.values():
        net.update(base, side, y)
    assert not torch.equal(finals["none"].weight0, finals["deepmind"].weight0)


def test_update_returns_pre_update_predictions() -> None:
    base, side, y = _data(30, 5, 4, 3)
    net = _net()
    for t in range(30):
        before = net.predict(base[t : t + 1], side[t : t + 1])
        r = net.update(base[t : t + 1], side[t : t + 1], y[t : t + 1])
        # (the walk's dot products and predict's GEMM round differently in the last bits)
        assert torch.allclose(r.predictions, before, rtol=0, atol=1e-14)
        after = net.predict(base[t : t + 1], side[t : t + 1])
        assert not torch.allclose(after, before, rtol=0, atol=1e-6)  # it did learn
        assert [tuple(x.shape) for x in r.losses] == [(1, 3, 4), (1, 3, 3), (1, 3, 1)]
    # and one call over all 30 = 30 calls of one (exact sequential semantics)
    a, b = _net(), _net()
    ra = a.update(base, side, y)
    preds = torch.cat(
        [b.update(base[t : t + 1], side[t : t + 1], y[t : t + 1]).predictions for t in range(30)]
    )
    assert torch.allclose(ra.predictions, preds, rtol=0, atol=1e-14)
    # the loss of the output neuron is the log loss of the returned prediction
    target = torch.nn.functional.one_hot(y, 3).double()
    q = ra.predictions
    ll = -(target * q.log() + (1 - target) * (1 - q).log())
    assert torch.allclose(ra.losses[-1][..., 0], ll, rtol=1e-10)


def test_chunking_does_not_change_the_numbers() -> None:
    base, side, y = _data(100, 5, 4, 3)
    a, b = _net(chunk_size=7), _net(chunk_size=1000)
    assert torch.allclose(
        a.update(base, side, y).predictions, b.update(base, side, y).predictions, rtol=0, atol=1e-14
    )
    for wa, wb in zip(a.weights, b.weights, strict=False):
        assert torch.allclose(wa, wb, rtol=0, atol=1e-14)


def test_untouched_contexts_are_unchanged() -> None:
    base, side, y = _data(20, 5, 4, 3)
    for mode in ("sequential", "sum", "mean"):
        net = _net(context_dim=4, batch_mode=mode)
        before = [w.clone() for w in net.weights]
        ctx = torch.split(net.contexts(side), [4, 3, 1], dim=-1)
        net.update(base, side, y)
        for W, W0, c in zip(net.weights, before, ctx, strict=False):
            hit = torch.zeros(W.shape[:3], dtype=torch.bool)
            for a in range(3):
                for k in range(W.shape[1]):
                    hit[a, k, c[:, a, k].unique()] = True
            assert torch.equal(W[~hit], W0[~hit]), mode
            assert not torch.equal(W[hit], W0[hit]), mode


def test_skip_rules() -> None:
    # One neuron, C = 0, weights chosen so its prediction is confidently wrong or right.
    def one(rule: str, w0: float, y: int) -> float:
        net = BernoulliGLN(
            1,
            1,
            (1,),
            context_dim=0,
            bias=None,
            init="zeros",
            beta=100.0,
            skip_rule=rule,
            lr=0.5,
            eps=0.01,
            dtype=D,
        )
        net.weight0.fill_(w0)
        base = torch.tensor([[0.9]], dtype=D)  # logit 2.197
        net.update(base, torch.zeros(1, 1, dtype=D), torch.tensor([y]))
        return net.weight0.item()

    # unclipped σ(10 · 2.197) ≈ 1 - 3e-10: confident; y = 0 is confidently wrong
    assert one("deepmind", 10.0, 0) == 10.0  # frozen through the clip
    assert one("none", 10.0, 0) < 10.0
    assert one("confident", 10.0, 0) < 10.0  # wrong, so it learns
    # right and sure: confident and deepmind skip, none still moves (by ε-sized steps)
    assert one("confident", 10.0, 1) == 10.0
    assert one("deepmind", 10.0, 1) == 10.0
    lo = math.log(0.01 / 0.99)
    moved = one("none", 10.0, 1)
    assert moved == pytest.approx(10.0 - 0.5 * (1 / (1 + math.exp(lo)) - 1) * math.log(9))


def test_mean_mode_is_the_mean_of_per_example_updates() -> None:
    base, side, y = _data(16, 5, 4, 3)
    net = _net(batch_mode="mean", lr=0.1, beta=100.0, context_dim=1)
    start = [w.clone() for w in net.weights]
    net.update(base, side, y)
    deltas = []
    for t in range(16):
        single = _net(batch_mode="sum", lr=0.1, beta=100.0, context_dim=1)
        single.update(base[t : t + 1], side[t : t + 1], y[t : t + 1])
        deltas.append([w - w0 for w, w0 in zip(single.weights, start, strict=False)])
    for i, W in enumerate(net.weights):
        mean = sum(d[i] for d in deltas) / 16
        assert torch.allclose(W, start[i] + mean, rtol=0, atol=1e-14)


def test_sum_mode_equals_sequential_when_contexts_are_distinct() -> None:
    # one neuron, C = 3: eight examples, each in its own context -> no example sees another's update
    normals = torch.eye(3, dtype=D).reshape(1, 1, 3, 3)
    hs = HalfSpaces(normals, torch.zeros(1, 1, 3, dtype=D))
    side = torch.tensor([[(c >> j & 1) * 2.0 - 1 for j in range(3)] for c in range(8)], dtype=D)
    assert torch.equal(hs(side)[:, 0, 0], torch.arange(8))
    base, _, y = _data(8, 5, 3, 1)
    a = BernoulliGLN(5, 3, (1,), context_dim=3, hyperplanes=hs, batch_mode="sum", lr=0.3, dtype=D)
    b = BernoulliGLN(5, 3, (1,), context_dim=3, hyperplanes=hs, lr=0.3, dtype=D)
    a.update(base, side, y)
    b.update(base, side, y)
    assert torch.allclose(a.weight0, b.weight0, rtol=0, atol=1e-15)
    # ...and differs from it when they collide
    a2 = BernoulliGLN(5, 3, (1,), context_dim=3, hyperplanes=hs, batch_mode="sum", lr=0.3, dtype=D)
    b2 = BernoulliGLN(5, 3, (1,), context_dim=3, hyperplanes=hs, lr=0.3, dtype=D)
    same = side[[0, 0, 0, 0]]
    a2.update(base[:4], same, y[:4])
    b2.update(base[:4], same, y[:4])
    assert not torch.allclose(a2.weight0, b2.weight0)


def test_export_forward_equals_unclipped_forward_and_trains() -> None:
    base, side, y = _data(50, 5, 4, 3)
    net = _net(lr=0.5)
    net.update(base, side, y)
    module = net.to_module()
    assert torch.allclose(
        module(base, side), net.logits(base, side, clip=False), rtol=0, atol=1e-13
    )
    # where no neuron's output reaches the clip, the GLN's clipped forward is the same function
    calm = _net(lr=0.01, eps=1e-6)
    calm.update(base, side, y)
    assert calm.logits(base, side, clip=False).abs().max() < math.log(1 / 1e-6 - 1)
    assert torch.allclose(calm.to_module()(base, side), calm.logits(base, side), rtol=0, atol=1e-13)
    # trainable: a gradient step lowers the global loss
    target = torch.nn.functional.one_hot(y, 3).double()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(module(base, side), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in module.parameters())


def test_state_dict_round_trip() -> None:
    base, side, y = _data(40, 5, 4, 3)
    net = _net(lr="pygln")
    net.update(base[:20], side[:20], y[:20])
    fresh = _net(seed=99, lr="pygln")  # different hyperplanes until loaded
    fresh.load_state_dict(net.state_dict())
    assert fresh.steps.item() == 20
    assert torch.equal(fresh.predict(base, side), net.predict(base, side))
    r1, r2 = net.update(base[20:], side[20:], y[20:]), fresh.update(base[20:], side[20:], y[20:])
    assert torch.equal(r1.predictions, r2.predictions)


def test_seeded_construction_is_reproducible() -> None:
    assert torch.equal(_net(seed=3).contexts.normals, _net(seed=3).contexts.normals)
    assert not torch.equal(_net(seed=3).contexts.normals, _net(seed=4).contexts.normals)


def test_memory_refusal_before_allocating() -> None:
    with pytest.raises(InsufficientMemoryError) as info:
        BernoulliGLN(784, 784, (128, 128, 1), num_outputs=10, context_dim=20, memory_limit=2**30)
    msg = str(info.value)
    assert "context_dim" in msg and "1.0 GiB" in msg and "2^C=1048576" in msg
    expected = 4 * 10 * 2**20 * (128 * 785 + 128 * 129 + 1 * 129)
    assert info.value.needed == expected
    with pytest.raises(InsufficientMemoryError, match="branches"):
        DendriticGLN(784, 784, (128, 1), branches=10**6, memory_limit=2**30)


def test_bad_input_names_the_argument() -> None:
    net = _net()
    base, side, y = _data(4, 5, 4, 3)
    cases = [
        (lambda: net.update(base * 2, side, y), r"`base` .*\[0, 1\].*found 1\.\d"),
        (
            lambda: net.update(base.masked_fill(base > 0.5, float("nan")), side, y),
            r"`base` contains a non-finite value \(nan\)",
        ),
        (lambda: net.update(base, side, torch.tensor([0, 1, 5, 1])), r"class 5; valid classes"),
        (lambda: net.update(base[:, :3], side, y), r"`base` must have shape \(T, 5\)"),
        (lambda: net.update(base, side[:3], y), r"`side` has 3 rows"),
        (
            lambda: _net(num_outputs=1).update(base, side, torch.tensor([0, 1, 0.5, 1])),
            r"`target` must be binary \(0 or 1\); found 0.5",
        ),
        (lambda: _net(lr=0), r"`lr` \(=0\)"),
        (lambda: _net(lr=-0.1), r"`lr` \(=-0.1\)"),
        (lambda: _net(beta=0), r"`beta` \(=0\)"),
        (lambda: _net(eps=0.7), r"`eps` \(=0.7\)"),
        (lambda: _net(layer_sizes=(4, 4)), r"must end with 1.*\(4, 4, 1\)"),
        (lambda: _net(skip_rule="never"), r"`skip_rule` \(='never'\)"),
        (lambda: _net(batch_mode="avg"), r"`batch_mode` \(='avg'\)"),
        (lambda: _net(hyperplanes="random"), r"`hyperplanes` \(='random'\)"),
        (lambda: GaussianGLN(2, 2, (2, 1), s2_min=1.0, s2_max=0.5), r"`s2_min` \(=1.0\)"),
        (lambda: GaussianGLN(2, 2, (2, 1), lr=0.0), r"`lr` \(=0.0\)"),
        (lambda: DendriticGLN(2, 2, (2, 1), branches=0), r"`branches` \(=0\)"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            fn()


def test_dendritic_engines_agree_and_only_active_branches_move() -> None:
    base, side, y = _data(60, 5, 4, 3)
    out = {}
    for engine in [e for e in ENGINES if e not in ("triton",)]:
        net = _net(DendriticGLN, branches=3, engine=engine, lr=0.3)
        out[engine] = (net.update(base, side, y).predictions, [w.clone() for w in net.weights])
    for engine, (p, ws) in out.items():
        assert torch.allclose(p, out["numpy"][0], rtol=0, atol=1e-12), engine
        for w, wr in zip(ws, out["numpy"][1], strict=True):
            assert torch.allclose(w, wr, rtol=0, atol=1e-12), engine
    net = _net(DendriticGLN, branches=3)
    w0 = net.weight0.clone()
    gates = net.contexts.bits(side[:1])[0, :, :4]  # layer 0's gates (A, K, B)
    net.update(base[:1], side[:1], y[:1])
    moved = (net.weight0 != w0).any(-1)
    assert torch.equal(moved, gates)


def test_gaussian_engines_agree_and_guard() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(100, 3, generator=g, dtype=D)
    side = torch.randn(100, 2, generator=g, dtype=D)
    y = mu.sum(1) / 2 + 0.1 * torch.randn(100, generator=g, dtype=D)
    out = {}
    for engine in [e for e in ENGINES if e not in ("triton", "numpy")]:
        net = GaussianGLN(
            3,
            2,
            (4, 1),
            context_dim=2,
            lr=0.01,
            dtype=D,
            engine=engine,
            generator=torch.Generator().manual_seed(1),
        )
        r = net.update(mu, side, y)
        out[engine] = (r.mean, r.variance, net.weight0.clone())
    assert out["torch"][0].abs().max() < 5  # no divergence here: the comparison is meaningful
    for engine, vals in out.items():
        for a, b in zip(vals, out["torch"], strict=False):
            assert torch.allclose(a, b, rtol=0, atol=1e-12), engine
    # pre-update predictions, and the variance always inside [s2_min, s2_max]
    net = GaussianGLN(
        3,
        2,
        (4, 1),
        context_dim=2,
        lr=0.05,
        dtype=D,
        s2_min=0.01,
        s2_max=10.0,
        generator=torch.Generator().manual_seed(1),
    )
    before = net.predict(mu[:1], side[:1])
    r = net.update(mu[:1], side[:1], y[:1])
    assert torch.equal(r.mean, before[0]) and torch.equal(r.variance, before[1])
    r = net.update(mu, side, y)
    assert bool(((r.variance >= 0.01 - 1e-12) & (r.variance <= 10.0 + 1e-12)).all())

    # a huge step size: without the guard the means run away; with it they are clipped and the
    # updates that would have followed them are skipped (and counted)
    def wild(bound: float) -> GaussianGLN:
        return GaussianGLN(3, 2, (4, 1), context_dim=2, lr=50.0, dtype=D, mean_bound=bound,
                           generator=torch.Generator().manual_seed(1))  # fmt: skip

    free, guarded = wild(1e30), wild(5.0)
    r_free, r_guard = free.update(mu, side, y * 10), guarded.update(mu, side, y * 10)
    assert r_free.guarded == 0 and float(r_free.mean.abs().max()) > 50
    assert r_guard.guarded > 0
    assert not torch.equal(free.weight0, guarded.weight0)


# Runs only on a CUDA machine (CI has none): benchmarks/gpu_check.sh runs it on a lent GPU. The
# same two kernels are checked on the CPU in Triton's interpreter by the next test.
@pytest.mark.skipif(
    not torch.cuda.is_available() or triton_status() is not None,
    reason="needs CUDA and triton >= 3.2",
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_on_cuda_equals_the_cpu_walk(dtype: torch.dtype) -> None:
    base, side, y = _data(300, 5, 4, 3)
    cpu = _net(skip_rule="confident", engine="numpy", dtype=dtype, lr=0.3)
    gpu = _net(skip_rule="confident", engine="triton", dtype=dtype, lr=0.3, device="cuda")
    p_cpu = cpu.update(base, side, y).predictions
    p_gpu = gpu.update(base.cuda(), side.cuda(), y.cuda()).predictions.cpu()
    # float32: on this stream the CPU float32 walks (numpy, numba, torch) stay within 5e-6 of
    # the float64 walk (predictions and weights); the GPU's reduction order may differ, so 10×
    tol = 1e-12 if dtype == torch.float64 else 5e-5
    assert torch.allclose(p_gpu, p_cpu, rtol=0, atol=tol)
    for wg, wc in zip(gpu.weights, cpu.weights, strict=False):
        assert torch.allclose(wg.cpu(), wc, rtol=0, atol=tol)


# triton is the optional `kernels` extra; `make setup` installs it, so CI runs this test (the
# suite must still collect without it, see tests/test_packaging.py).
@pytest.mark.skipif(not INTERPRET, reason="needs triton >= 3.2 (run in its interpreter)")
@pytest.mark.parametrize("on_chip", [True, False])
def test_both_triton_walks_equal_the_numpy_walk(on_chip: bool) -> None:
    from galu.gln._scan import direct_np
    from galu.gln._triton import triton_scan

    g = torch.Generator().manual_seed(0)
    A, K, E, n, T = 2, 3, 4, 7, 40
    W = (torch.rand(A, K, E, n, generator=g, dtype=D) - 0.5) * 0.2
    ctx = torch.randint(0, E, (T, A, K), generator=g)
    for shared in (True, False):
        X = torch.randn(T, 1 if shared else A, n, generator=g, dtype=D)
        Y = torch.randint(0, 2, (T, A), generator=g).double()
        eta = torch.full((T,), 0.5, dtype=D)
        for rule in (0, 1, 2):
            Wt, Wn = W.clone(), W.clone().numpy()
            out = triton_scan(Wt, ctx, X, Y, eta, eps=0.05, beta=0.4, rule=rule, on_chip=on_chip)
            ref = direct_np(Wn, ctx.numpy(), X.numpy(), Y.numpy(), eta.numpy(), 0.05, 0.4, rule)
            assert np.allclose(out.numpy(), ref, rtol=0, atol=1e-13)
            assert np.allclose(Wt.numpy(), Wn, rtol=0, atol=1e-13)
            assert float(np.abs(Wn).max()) == pytest.approx(0.4)  # the box bound


def test_empty_batches_and_shared_hyperplanes() -> None:
    base, side, y = _data(5, 5, 4, 3)
    for mode in ("sequential", "sum"):
        net = _net(batch_mode=mode)
        r = net.update(base[:0], side[:0], y[:0])
        assert r.predictions.shape == (0, 3) and [t.shape[0] for t in r.losses] == [0, 0, 0]
        assert net.steps.item() == 0
    g = GaussianGLN(5, 4, (2, 1), dtype=D).update(base[:0], side[:0], torch.zeros(0, dtype=D))
    assert g.mean.shape == (0, 1) and g.guarded == 0
    # a HalfSpaces passed in is copied, not shared or converted in place
    hs = HalfSpaces.sample((3, 8), 4, 2, generator=torch.Generator().manual_seed(0), dtype=D)
    net = BernoulliGLN(5, 4, (4, 3, 1), num_outputs=3, context_dim=2, hyperplanes=hs)
    assert net.contexts is not hs and hs.normals.dtype == D and net.contexts.normals.dtype != D
    # the batch modes count minibatches: t = 1, 2, ... per call
    net = _net(batch_mode="mean", lr="pygln")
    for _ in range(3):
        net.update(base, side, y)
    assert net.steps.item() == 3


def test_more_bad_input() -> None:
    cases = [
        (lambda: _net(lr=float("inf")), r"`lr` \(=inf\) must be a finite number"),
        (lambda: _net(offset_scale=float("inf")), r"`offset_scale` \(=inf\)"),
        (lambda: GaussianGLN(2, 2, (2, 1), bias_means=(float("nan"),)), r"`bias_means`"),
        (lambda: DendriticGLN(2, 2, (2, 1), engine="triton"), r"Bernoulli GLNs only"),
        (lambda: _net().update(*_data(3, 5, 4, 3)[:2], torch.zeros(4, 3)),
         r"`target` must have shape \(3,\) or \(3, 3\); got \(4, 3\)"),
    ]  # fmt: skip
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            fn()
    # many branches are fine for a dendritic network (its table is linear in B)
    assert DendriticGLN(2, 2, (2, 1), branches=40).weight0.shape == (1, 2, 40, 3)
