import re

import pytest
import torch

from galu.nn import DGN, ReLUNet, ShallowGaLU
from galu.solvers import fit_galu
from galu.train import train, train_ensemble


def _data(E, m, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(E, m, d, generator=g, dtype=dtype), torch.randn(
        E, m, 1, generator=g, dtype=dtype
    )


@pytest.mark.parametrize("cls", [ShallowGaLU, ReLUNet])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_each_ensemble_member_equals_training_it_alone(cls, optimizer):
    E, m, d, k = 4, 50, 5, 6
    X, Y = _data(E, m, d)
    make = lambda s: cls(d, k, 1, generator=torch.Generator().manual_seed(s), dtype=torch.float64)  # noqa: E731
    nets = [make(s) for s in range(E)]
    results = train_ensemble(
        nets,
        X,
        Y,
        seeds=[10 + s for s in range(E)],
        steps=60,
        lr=1e-2,
        batch_size=16,
        eval_every=20,
        optimizer=optimizer,
    )
    for s in range(E):
        alone = make(s)
        res = train(
            alone,
            X[s],
            Y[s, :, 0],
            seed=10 + s,
            steps=60,
            lr=1e-2,
            batch_size=16,
            eval_every=20,
            optimizer=optimizer,
        )
        for p, q in zip(nets[s].parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
        assert res.final_loss == pytest.approx(results[s].final_loss, rel=1e-12)
        assert [h[0] for h in res.history] == [20, 40, 60]


def test_gradient_training_on_fixed_gates_reaches_the_closed_form():
    # Fixed gates make the problem convex: full-batch gradient descent with step 1/L converges
    # linearly to the least-squares optimum; Adam (constant lr) reaches its neighbourhood.
    m, d, k = 256, 4, 4  # condition number of the Hessian ≈ 70 for this draw
    X, Y = _data(1, m, d, seed=1)

    def make():
        return ShallowGaLU(
            d,
            k,
            1,
            generator=torch.Generator().manual_seed(0),
            dtype=torch.float64,
        )

    net = make()
    exact = fit_galu(X[0], Y[0, :, 0], net.gate_vectors)
    psi = torch.cat([X[0] * (X[0] @ u >= 0).double()[:, None] for u in net.gate_vectors], 1)
    hessian = 2 * psi.T @ psi / m
    evals = torch.linalg.eigvalsh(hessian)
    steps = int(40 * evals[-1] / evals[0])  # (1 − 1/κ)^steps ≈ e^-40
    res = train(
        net,
        X[0],
        Y[0, :, 0],
        seed=0,
        steps=steps,
        lr=float(1 / evals[-1]),
        batch_size=m,
        optimizer="sgd",
        eval_every=steps,
    )
    assert res.final_loss == pytest.approx(exact.train_mse, rel=1e-10)
    torch.testing.assert_close(net.weight[0], exact.weight, rtol=1e-7, atol=1e-9)
    adam = make()
    res = train(adam, X[0], Y[0, :, 0], seed=0, steps=3000, lr=1e-2, batch_size=m)
    assert res.final_loss == pytest.approx(exact.train_mse, rel=1e-3)


def test_target_loss_stops_members_independently():
    E, m, d = 3, 40, 4
    X, Y = _data(E, m, d, seed=2)
    nets = [
        ShallowGaLU(d, 12, 1, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
        for s in range(E)
    ]
    results = train_ensemble(
        nets,
        X,
        Y,
        seeds=[0, 1, 2],
        steps=4000,
        lr=3e-2,
        batch_size=m,
        target_loss=0.2,
        eval_every=10,
    )
    for net, res, x, y in zip(nets, results, X, Y, strict=True):
        assert res.reached_target and res.final_loss <= 0.2 and res.steps < 4000
        # The returned parameters are those at the stopping step.
        with torch.no_grad():
            assert float(((net(x) - y) ** 2).mean()) == pytest.approx(res.final_loss, rel=1e-12)
        assert res.history[-1] == (res.steps, res.final_loss)


def test_same_seed_same_numbers():
    X, Y = _data(1, 30, 3)
    runs = []
    for _ in range(2):
        net = ReLUNet(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        runs.append(train(net, X[0], Y[0], seed=5, steps=25, batch_size=8).final_loss)
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps=0), r"`steps` \(=0\) must be a positive int"),
        (dict(batch_size=-1), r"`batch_size` \(=-1\) must be a positive int"),
        (dict(lr=0.0), r"`lr` \(=0.0\) must be a positive float"),
        (dict(optimizer="lbfgs"), r"`optimizer` \(='lbfgs'\) must be one of \('adam', 'sgd'\)"),
        (dict(seeds=[0, 1]), r"`seeds` has 2 entries but there are 1 models"),
        (dict(Y=torch.zeros(2, 10, 1)), r"`Y` must be shared 2-D or stacked 3-D with 1 members"),
        (dict(Y=torch.zeros(9, 1)), r"`X` and `Y` differ in samples"),
        (dict(X=torch.full((10, 3), float("nan"))), r"contains NaN or infinite"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = dict(X=torch.zeros(10, 3), Y=torch.zeros(10, 1), seeds=[0], steps=5)
    args.update(kwargs)
    net = ReLUNet(3, 4)
    with pytest.raises(ValueError, match=message):
        train_ensemble([net], args.pop("X"), args.pop("Y"), **args)


def test_cross_entropy_and_hinge_are_the_textbook_losses_and_vectorise():
    g = torch.Generator().manual_seed(0)
    E, m, d, C = 3, 40, 5, 4
    X = torch.randn(E, m, d, generator=g, dtype=torch.float64)
    labels = torch.randint(C, (E, m), generator=g)

    def make(s, o):
        return ReLUNet(d, 6, o, generator=torch.Generator().manual_seed(s), dtype=torch.float64)

    nets = [make(s, C) for s in range(E)]
    res = train_ensemble(
        nets, X, labels, seeds=[0, 1, 2], steps=30, batch_size=16, loss="cross_entropy", lr=1e-2
    )
    for s in range(E):
        alone = make(s, C)
        r = train(
            alone, X[s], labels[s], seed=s, steps=30, batch_size=16, loss="cross_entropy", lr=1e-2
        )
        with torch.no_grad():
            ref = torch.nn.functional.cross_entropy(alone(X[s]), labels[s])
        assert r.final_loss == pytest.approx(float(ref), rel=1e-12)
        assert res[s].final_loss == pytest.approx(r.final_loss, rel=1e-10)
    signs = torch.where(torch.rand(m, generator=g) > 0.5, 1.0, -1.0).double()
    net = make(0, 1)
    r = train(net, X[0], signs, seed=0, steps=20, batch_size=16, loss="hinge")
    with torch.no_grad():
        ref = torch.clamp(1 - signs * net(X[0])[:, 0], min=0).mean()
    assert r.final_loss == pytest.approx(float(ref), rel=1e-12)


def test_loss_argument_errors():
    net = ReLUNet(3, 4, 2)
    with pytest.raises(
        ValueError, match=r"`loss` \(='l1'\) must be one of \('mse', 'cross_entropy'"
    ):
        train(net, torch.zeros(10, 3), torch.zeros(10, 2), seed=0, steps=1, loss="l1")
    with pytest.raises(
        ValueError, match=r"integer class labels for cross_entropy; got torch.float32"
    ):
        train(net, torch.zeros(10, 3), torch.zeros(10), seed=0, steps=1, loss="cross_entropy")


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda: ReLUNet(16, 8), "ReLUNet(in_features=16)"),
        (lambda: ShallowGaLU(16, 8), "ShallowGaLU(in_features=16)"),
        (lambda: DGN(16, (8,)), "DGN(in_features=16)"),
    ],
)
def test_width_mismatches_name_the_expected_and_given_width(make, what):
    nets = [make(), make()]
    X, Y = torch.randn(32, 8), torch.randn(32, 1)
    with pytest.raises(
        ValueError,
        match=rf"`X` has 8 features \(last dimension of shape \(2, 32, 8\)\) but the models take "
        rf"{re.escape(what)}",
    ):
        train_ensemble(nets, X, Y, seeds=[0, 1], steps=2)
    # A target with more outputs than the models have would broadcast silently in the loss.
    with pytest.raises(
        ValueError,
        match=r"`Y` has 3 outputs \(last dimension of shape \(2, 32, 3\)\) but the models give "
        r"out_features=1",
    ):
        train_ensemble(nets, torch.randn(32, 16), torch.randn(32, 3), seeds=[0, 1], steps=2)
    labels = torch.tensor([0, 1, 2, 1])
    with pytest.raises(
        ValueError,
        match=r"`Y` holds class labels in \[0, 2\] but the models give out_features=1 "
        r"logits; labels must lie in \[0, 1\)",
    ):
        train(nets[0], torch.randn(4, 16), labels, seed=0, steps=1, loss="cross_entropy")
