import math

import torch

from galu.experiments.dgn_depth import METRICS, DGNDepth
from galu.nn import DGN
from galu.paths import path_features
from galu.seeding import generator


def test_kernel_metrics_match_an_explicit_path_enumeration():
    exp = DGNDepth.from_preset("smoke", {"m": 12, "d": 6, "width": 8, "steps": 5})
    params = dict(m=12, d=6, width=8, depth=2)
    rows = {r["metric"]: r["value"] for r in exp.run_point(params, seed=1)}
    assert set(rows) == set(METRICS)
    # Rebuild the same network and data, then form H from enumerated path features.
    X, _ = exp._data(12, 6, 1)
    net = DGN(6, (8, 8), 1, variant="frnpf-ii", dtype=torch.float64,
              generator=generator(1, "init", 12, 6, 8, 2))  # fmt: skip
    phi = path_features(net, X)
    H = phi @ phi.T
    Hn = H / H.diagonal().mean()
    eig = torch.linalg.eigvalsh(Hn)
    assert rows["eig_min"] > 1e-3  # a well-conditioned case, so relative comparisons mean something
    assert math.isclose(rows["eig_min"], float(eig[0]), rel_tol=1e-9)
    assert math.isclose(rows["cond"], float(eig[-1] / eig[0]), rel_tol=1e-9)
    off = (Hn - torch.diag(Hn.diagonal())).abs().sum() / (12 * 11)
    assert math.isclose(rows["offdiag"], float(off), rel_tol=1e-9)
    d = H.diagonal()
    assert math.isclose(rows["diag_cv"], float(d.std() / d.mean()), rel_tol=1e-9)


def test_smoke_preset_rows_and_figure(tmp_path):
    from galu.runner import run_experiment

    res = run_experiment("dgn-depth", preset="smoke", out=tmp_path / "r", progress=False)
    assert res.done == res.total == 3 * 2
    assert set(res.table.metric) == set(METRICS)
    assert [p.name for p in res.figures] == ["dgn_depth.png"]
    # Deeper fixed-gate kernels have smaller normalised off-diagonal mass (each layer multiplies
    # by G Gᵀ, whose off-diagonal entries are below its diagonal).
    off = res.table[res.table.metric == "offdiag"].groupby("depth")["value"].mean()
    assert off.is_monotonic_decreasing
