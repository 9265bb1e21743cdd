"""`solver="auto"` against the fastest path, over a grid of shapes (issue 17, part 1).

Usage::

    galu bench auto            # = python benchmarks/auto.py; ~10 min on 2 cores

For each (m, d, k) with kd/m from 0.05 to 4 at λ = 0 (float64, one output, random Gaussian X
and y, gates from `sample_gate_vectors`), every path (`primal`, `dual`, `cg`, `lsqr`, `svd`) and
`auto` are timed, each the minimum of at least 5 runs after a warm-up (as many as fill ~0.5 s),
interleaved round by round. A path is `exact` when its training MSE is within 1e-8 (the targets
have unit variance) of the SVD's, the reference minimum-norm fit; `best_path` is the fastest
exact path, and `ratio` = auto's time / best_path's. Rows: `benchmarks/results/auto.csv`; the
worst ratio is printed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import pandas as pd
import torch

from _harness import write_rows
from galu.solvers import fit_galu
from galu.solvers._galu import sample_gate_vectors

OUT = Path(__file__).parent / "results" / "auto.csv"
PATHS = ("primal", "dual", "cg", "lsqr", "svd")
EXACT = 1e-8  # |train MSE − the SVD's| for a path to count as the same answer


def timed(X, y, U, solvers, repeats: int) -> dict[str, tuple[float, str, float]]:
    """Per solver: the minimum time over at least ``repeats`` runs, and over as many as fill
    ~0.5 s (≤ 200), with the runs of all solvers interleaved round by round, so that a drift of
    the machine's speed (±30% between runs here) hits every path alike."""
    fits, counts = {}, {}
    for solver in solvers:
        t0 = time.perf_counter()
        fits[solver] = fit_galu(X, y, U, solver=solver)
        first = max(time.perf_counter() - t0, 1e-6)
        counts[solver] = min(200, max(repeats, math.ceil(0.5 / first)))
    best = dict.fromkeys(solvers, float("inf"))
    for r in range(max(counts.values())):
        for solver in solvers:
            if r < counts[solver]:
                t0 = time.perf_counter()
                fits[solver] = fit_galu(X, y, U, solver=solver)
                best[solver] = min(best[solver], time.perf_counter() - t0)
    return {s: (best[s], fits[s].solver, fits[s].train_mse) for s in solvers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ms", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--ds", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.05, 0.25, 0.5, 1, 2, 4])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for m, d, r in itertools.product(args.ms, args.ds, args.ratios):
        k = max(1, round(r * m / d))
        g = torch.Generator().manual_seed(m * 1000 + d)
        X = torch.randn(m, d, generator=g, dtype=torch.float64)
        y = torch.randn(m, generator=g, dtype=torch.float64)
        U = sample_gate_vectors(k, d, generator=g)
        times, mses = {}, {}
        for solver, (secs, ran, mse) in timed(X, y, U, (*PATHS, "auto"), args.repeats).items():
            times[solver], mses[solver] = secs, mse
            rows.append(dict(m=m, d=d, k=k, kd_over_m=k * d / m, solver=solver, ran=ran,
                             seconds=secs, train_mse=mse))  # fmt: skip
        exact = {p for p in mses if abs(mses[p] - mses["svd"]) <= EXACT}
        best = min(exact & set(PATHS), key=times.__getitem__)
        for row in rows[-len(times) :]:
            row["exact"] = row["solver"] in exact
            row["best_path"] = best
            row["ratio_to_best"] = row["seconds"] / times[best]
        auto = rows[-1]
        print(f"m={m:5d} d={d:3d} k={k:4d} kd/m={k * d / m:5.2f}  auto→{auto['ran']:6s} "
              f"{times['auto']:.4f}s  best {best:6s} {times[best]:.4f}s  "
              f"ratio {auto['ratio_to_best']:.2f}", flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    write_rows(df, OUT)
    autos = df[df.solver == "auto"]
    worst = autos.loc[autos.ratio_to_best.idxmax()]
    print(
        f"worst auto / best: {worst.ratio_to_best:.2f} at m={worst.m}, d={worst.d}, "
        f"k={worst.k} (auto ran {worst.ran}, best {worst.best_path}); rows: {OUT}"
    )


if __name__ == "__main__":
    main()
