"""GGDLN module and global gates against their equations written out sample by sample."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from galu.nn import GGDLN, GlobalGates, ggdln_backward, ggdln_forward


def _loop_forward(model: GGDLN, X: torch.Tensor, task=None) -> torch.Tensor:
    """f(x) from the defining double sums with raw gates and the chosen normalisation."""
    out = []
    raw = [s(X, task) for s in model.gate_sets]
    M = model.gate_counts
    for p in range(X.shape[0]):
        h = X[p]
        for l, W in enumerate(model.weights):
            g = raw[0 if len(raw) == 1 else l][p]
            c = 1 / (M[l] * h.shape[0]) if model.normalization == "fan_in" else 1 / h.shape[0]
            h = math.sqrt(c) * sum(g[m] * (W[m] @ h) for m in range(M[l]))
        a = model.readout_weight
        if model.readout == "gated":
            g = raw[0 if len(raw) == 1 else model.depth][p]
        else:
            g = torch.ones(1, dtype=X.dtype)
        c = 1 / (M[-1] * h.shape[0]) if model.normalization == "fan_in" else 1 / h.shape[0]
        out.append(math.sqrt(c) * sum(g[m] * (a[m] @ h) for m in range(M[-1])))
    return torch.stack(out)


@pytest.mark.parametrize("readout", ["gated", "ungated"])
@pytest.mark.parametrize("normalization", ["fan_in", "width"])
@pytest.mark.parametrize("shared", [True, False])
def test_forward_equals_the_defining_sums(readout, normalization, shared, gen):
    X = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    net = GGDLN(
        5,
        (4, 3),
        2,
        3,
        readout=readout,
        normalization=normalization,
        shared_gates=shared,
        bias_std=0.5,
        prior_var=(1.0, 2.0, 0.5),
        generator=gen,
    )
    torch.testing.assert_close(net(X), _loop_forward(net, X), rtol=1e-12, atol=1e-13)


def test_deep_linear_special_case_is_a_matrix_product(gen):
    X = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    net = GGDLN.deep_linear(4, (5, 3), 2, generator=gen)
    W1, W2, a = net.weights[0][0], net.weights[1][0], net.readout_weight[0]
    expected = X @ W1.T @ W2.T @ a / math.sqrt(4 * 5 * 3)
    torch.testing.assert_close(net(X), expected, rtol=1e-12, atol=1e-13)
    assert net.gate_counts == (1, 1, 1)


def test_prior_draw_has_the_stated_variance():
    net = GGDLN(50, 200, 1, 4, prior_var=(2.0, 0.5), generator=torch.Generator().manual_seed(0))
    w = net.weights[0].detach().reshape(-1)
    # 40_000 draws: the sample variance has relative standard error sqrt(2/n) = 0.7%.
    assert abs(float(w.var()) / 2.0 - 1) < 5 * math.sqrt(2 / w.numel())
    assert abs(float(net.readout_weight.detach().var()) / 0.5 - 1) < 5 * math.sqrt(2 / 800)


def test_output_is_linear_in_every_layer_through_the_backward_pass(gen):
    """f = Z_l w_l with Z_l[p,(m,i,j)] = ĝ_m β_i h_j / √N: the identity the Gibbs sampler uses."""
    X = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    net = GGDLN(4, (5, 3, 2), 3, 2, bias_std=0.3, generator=gen)
    W = [w.detach() for w in net.stacked_weights()]
    g = net.scaled_gates(X)
    f, hidden = ggdln_forward(W, g, X)
    for l in range(1, 4):
        beta = ggdln_backward(W, g, l)
        h = hidden[l - 1]
        Zw = torch.einsum("pm,cpi,cpj,cmij->cp", g[l - 1], beta, h, W[l - 1]) / math.sqrt(
            h.shape[-1]
        )
        torch.testing.assert_close(Zw, f, rtol=1e-12, atol=1e-13)
        # β^l is ∂f/∂h^l: perturbing h^l along e changes f by β·e (f is linear in h^l).
        e = torch.randn(hidden[l].shape, generator=gen, dtype=torch.float64)
        hl = hidden[l] + e
        for k in range(l, 3):
            hl = torch.einsum("cmij,cpj,pm->cpi", W[k], hl, g[k]) / math.sqrt(hl.shape[-1])
        f_pert = torch.einsum("cmi,cpi,pm->cp", W[3], hl, g[3]) / math.sqrt(hl.shape[-1])
        torch.testing.assert_close(f_pert - f, (beta * e).sum(-1), rtol=1e-11, atol=1e-12)


def test_halfspace_and_sigmoid_gates(gen):
    X = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    hs = GlobalGates(6, 3, "halfspace", bias_std=1.0, generator=gen)
    z = X @ hs.vectors[0].T / math.sqrt(6) + hs.biases[0]
    torch.testing.assert_close(hs(X), (z > 0).double())
    sg = GlobalGates(6, 3, "sigmoid", scale=2.5, generator=gen)
    z = X @ sg.vectors[0].T / math.sqrt(6)
    torch.testing.assert_close(sg(X), torch.sigmoid(2.5 * z))


def test_task_dependent_gates_use_each_tasks_vectors(gen):
    X = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    task = torch.tensor([0, 1, 2] * 3 + [1])
    gates = GlobalGates(4, 5, n_tasks=3, generator=gen)
    got = gates(X, task)
    for p in range(10):
        z = gates.vectors[task[p]] @ X[p] / 2 + gates.biases[task[p]]
        torch.testing.assert_close(got[p], (z > 0).double())
    with pytest.raises(ValueError, match="pass `task`"):
        gates(X)
    with pytest.raises(ValueError, match=r"task index in \[0, 3\)"):
        gates(X, torch.full((10,), 3))


def test_pca_gates_split_along_principal_directions(gen):
    X = (
        torch.randn(200, 5, generator=gen, dtype=torch.float64) * torch.tensor([5, 3, 1, 1, 1.0])
        + 2
    )
    gates = GlobalGates(5, 2, "pca").fit(X)
    comps = torch.as_tensor(PCA(2).fit(X.numpy()).components_)
    for m in range(2):
        v = gates.vectors[0, m] / gates.vectors[0, m].norm()
        assert abs(abs(float(v @ comps[m])) - 1) < 1e-10
        # the hyperplane passes through the data mean
        mu = X.mean(0)
        assert abs(float(gates.vectors[0, m] @ mu / math.sqrt(5) + gates.biases[0, m])) < 1e-10
    # about half of the data on each side of each principal hyperplane
    assert (gates(X).mean(0) - 0.5).abs().max() < 0.15


def test_kmeans_gates_are_the_nearest_centre_partition(gen):
    X = torch.randn(120, 3, generator=gen, dtype=torch.float64)
    X[:40] += 6
    X[40:80] -= 6
    gates = GlobalGates(3, 3, "kmeans").fit(X, seed=5)
    km = KMeans(3, n_init=4, random_state=5).fit(X.numpy())
    G = gates(X)
    assert torch.equal(G.sum(1), torch.ones(120, dtype=torch.float64))
    assert torch.equal(G.argmax(1), torch.as_tensor(km.predict(X.numpy())).long())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(gates="cones"), "`kind`"),
        (dict(readout="soft"), "`readout`"),
        (dict(normalization="layer"), "`normalization`"),
        (dict(prior_var=(1.0,)), "`prior_var`"),
        (dict(prior_var=-1.0), "`prior_var`"),
        (dict(hidden_features=(3,)), "`hidden_features`"),
        (dict(gates="pca", n_tasks=2), "`n_tasks`"),
    ],
)
def test_bad_arguments_are_named(kw, match):
    args = dict(in_features=4, hidden_features=3, depth=2, n_gates=2) | kw
    with pytest.raises(ValueError, match=match):
        GGDLN(**args)


def test_learned_gates_must_be_fitted_first(gen):
    net = GGDLN(4, 3, 1, 2, gates="kmeans", generator=gen)
    X = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"call \.fit"):
        net(X)
    assert net.fit_gates(X)(X).shape == (10,)
