"""Exact GaLU solvers: agreement and speed of every path, and the largest matrix-free fit.

Usage::

    python benchmarks/paths.py                 # agreement + timing table (~1 min)
    python benchmarks/paths.py --large         # also the matrix-free fit whose Ψ exceeds RAM

Rows go to ``benchmarks/results/paths.csv`` (tidy: one row per problem × solver). The baseline
of each problem is numpy's SVD least squares on the explicitly formed Ψ (``numpy-lstsq``),
measured in the same run; ``speedup`` is its time divided by the row's time, and
``max_rel_diff`` is ``max|W − W_ref| / max|W_ref|`` against it.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _harness import best_time, provenance, write_rows
from galu import ops
from galu.gates import Gate
from galu.solvers import fit_galu, sample_gate_vectors

OUT = Path(__file__).parent / "results" / "paths.csv"
COLUMNS = [
    "benchmark",
    "m",
    "d",
    "k",
    "o",
    "ridge",
    "solver",
    "seconds",
    "speedup",
    "max_rel_diff",
    "train_mse",
    "n_iter",
    "peak_rss_mb",
    "psi_gb",
    "device",
    "torch",
    "timestamp",
]

# (m, d, k, o, ridge): under- and over-parameterised, min-norm and ridge, vector targets.
PROBLEMS = [
    (4000, 32, 16, 1, 0.0),
    (4000, 32, 16, 1, 1.0),
    (1000, 32, 64, 1, 0.0),
    (1000, 32, 64, 1, 1.0),
    (2000, 16, 32, 4, 0.1),
]


def _problem(m, d, k, o, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn((m,) if o == 1 else (m, o), generator=g, dtype=torch.float64)
    return X, y, sample_gate_vectors(k, d, generator=g)


def _numpy_lstsq(X, y, U, ridge):
    G = ops.gate_matrix(X, U, Gate())
    psi = ops.lift(X, G).numpy()
    Y = y.numpy().reshape(X.shape[0], -1)
    if ridge > 0:
        n = psi.shape[1]
        psi = np.vstack([psi, math.sqrt(ridge) * np.eye(n)])
        Y = np.vstack([Y, np.zeros((n, Y.shape[1]))])
    w, *_ = np.linalg.lstsq(psi, Y, rcond=None)
    k, d = U.shape
    return torch.from_numpy(np.ascontiguousarray(w.T).reshape(-1, k, d))


def _timed(fn, repeats=3):
    out = []
    best = best_time(lambda: out.append(fn()), repeats=repeats, warmup=0)
    return best, out[-1]


def agreement_rows() -> list[dict]:
    rows = []
    for m, d, k, o, ridge in PROBLEMS:
        X, y, U = _problem(m, d, k, o)
        t_ref, W_ref = _timed(lambda X=X, y=y, U=U, ridge=ridge: _numpy_lstsq(X, y, U, ridge))
        base = dict(
            benchmark="agreement", m=m, d=d, k=k, o=o, ridge=ridge, psi_gb=m * k * d * 8 / 2**30
        )
        rows.append(
            {**base, "solver": "numpy-lstsq", "seconds": t_ref, "speedup": 1.0, "max_rel_diff": 0.0}
        )
        for solver in ("primal", "dual", "lsqr", "svd", "auto"):
            sec, fit = _timed(
                lambda X=X, y=y, U=U, s=solver, r=ridge: fit_galu(X, y, U, ridge=r, solver=s)
            )
            W = fit.weight if fit.weight.ndim == 3 else fit.weight[None]
            diff = float((W - W_ref).abs().max() / W_ref.abs().max())
            name = solver if solver != "auto" else f"auto ({fit.solver})"
            rows.append(
                {
                    **base,
                    "solver": name,
                    "seconds": sec,
                    "speedup": t_ref / sec,
                    "max_rel_diff": diff,
                    "train_mse": fit.train_mse,
                    "n_iter": fit.n_iter,
                }
            )
            print(
                f"m={m} d={d} k={k} o={o} ridge={ridge} {name:>14}: {sec:8.3f}s "
                f"x{t_ref / sec:6.1f}  max rel diff {diff:.1e}",
                flush=True,
            )
    return rows


def large_case(m: int, d: int, k: int, ridge: float, max_iter: int) -> dict:
    """Matrix-free LSQR on a problem whose lifted matrix Ψ (m × kd) would not fit in memory."""
    X, y, U = _problem(m, d, k, 1, seed=1)
    t0 = time.perf_counter()
    fit = fit_galu(X, y, U, ridge=ridge, solver="lsqr", max_iter=max_iter, tol=1e-8)
    seconds = time.perf_counter() - t0
    # Optimality measured exactly (not LSQR's estimate): ‖Ψᵀ(y − Ψw) − λw‖ / ‖Ψᵀy‖.
    G = ops.gate_matrix(X, U, Gate())
    r = y - ops.lifted_matvec(X, G, fit.weight)
    grad = ops.lifted_rmatvec(X, G, r) - ridge * fit.weight
    rel_opt = float(
        torch.linalg.vector_norm(grad) / torch.linalg.vector_norm(ops.lifted_rmatvec(X, G, y))
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        benchmark="matrix-free-large",
        m=m,
        d=d,
        k=k,
        o=1,
        ridge=ridge,
        solver="lsqr",
        seconds=seconds,
        train_mse=fit.train_mse,
        n_iter=fit.n_iter,
        peak_rss_mb=peak,
        psi_gb=m * k * d * 8 / 2**30,
        max_rel_diff=rel_opt,
        converged=fit.converged,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", action="store_true", help="also run the large matrix-free fit")
    parser.add_argument(
        "--large-shape",
        default="200000,64,256",
        help="m,d,k of the large fit (default: Ψ of 24.4 GiB)",
    )
    parser.add_argument("--ridge", type=float, default=1.0, help="ridge of the large fit")
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    m, d, k = (int(v) for v in args.large_shape.split(","))
    if args._child:  # runs in its own process so its peak RSS is its own
        print(json.dumps(large_case(m, d, k, args.ridge, args.max_iter)))
        return
    rows = agreement_rows()
    if args.large:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--_child",
                "--large-shape",
                args.large_shape,
                "--ridge",
                str(args.ridge),
                "--max-iter",
                str(args.max_iter),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"large matrix-free fit: m={m} d={d} k={k}: Ψ would need {row['psi_gb']:.1f} GiB; "
            f"{row['seconds']:.1f}s, {row['n_iter']} iterations, peak RSS "
            f"{row['peak_rss_mb']:.0f} MiB, relative optimality {row['max_rel_diff']:.1e}"
        )
        rows.append(row)
    table = pd.DataFrame(rows).assign(**provenance())
    table = table[
        [c for c in COLUMNS if c in table.columns] + [c for c in table.columns if c not in COLUMNS]
    ]
    write_rows(table, OUT)


if __name__ == "__main__":
    main()
