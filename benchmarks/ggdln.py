"""GGDLN theory and samplers: what a curve point costs.

Usage::

    galu bench ggdln                 # = python benchmarks/ggdln.py; a few minutes on 2 cores
    galu bench ggdln -- --sizes 500 2000

Rows (``benchmarks/results/ggdln.csv``):

* ``theory``: for P = 500, 2000, 5000 (L = 2, M = 4, gated readout: order parameters of size
  16 and 4), the wall time of the saddle-point solve, its iterations (scale-stage L-BFGS plus
  Newton steps), the residual, and the peak resident memory of a fresh process (with the
  process's resident memory before the solve, i.e. Python + torch + the data). ``chol_s`` is one
  float64 Cholesky of that size measured in the same process, so ``chol_per_iter`` says how
  many factorisations' worth of time one iteration (scalar L-BFGS steps and Newton steps
  together) costs.
* ``gibbs``: exact Gibbs sampler throughput (network samples per second over all chains) at
  P = 200 and 500, width 64, 16 chains.
* ``precision``: on one curve point (P = 200, width 64), the Gibbs standard error of the
  generalisation error after 400 sweeps of 16 chains, the number of samples needed for a 1%
  relative standard error (SE ∝ 1/√samples) and the time that takes (burn-in of 100 sweeps plus
  the kept sweeps per chain), against the theory's solve time for the same point.
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

import pandas as pd
import torch

from _harness import provenance, write_rows

OUT = Path(__file__).parent / "results" / "ggdln.csv"


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _setting(P: int, P_test: int = 500, width: int = 64, seed: int = 0):
    from galu.data import ggdln_task
    from galu.nn import GGDLN

    X, y, Xt, yt = ggdln_task("teacher", P, P_test, 50, seed)
    net = GGDLN(50, width, 2, 4, prior_var=0.2, generator=torch.Generator().manual_seed(seed))
    return net, X, y, Xt, yt


def one_theory(P: int) -> dict:
    """Run in a fresh process: the solve's time, iterations and peak memory."""
    from galu.theory import ggdln_problem, solve_ggdln

    net, X, y, _, _ = _setting(P)
    pb = ggdln_problem(net, X, y, 0.01)
    A = pb.X @ pb.X.T + torch.eye(P, dtype=torch.float64) * P
    torch.linalg.cholesky(A)
    t0 = time.perf_counter()
    for _ in range(3):
        torch.linalg.cholesky(A)
    chol_s = (time.perf_counter() - t0) / 3
    del A
    rss0 = _rss_mb()
    th = solve_ggdln(pb)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        kind="theory",
        P=P,
        seconds=th.seconds,
        iterations=th.n_iter,
        s_per_iter=th.seconds / max(th.n_iter, 1),
        chol_s=chol_s,
        chol_per_iter=th.seconds / max(th.n_iter, 1) / chol_s,
        residual=th.residual,
        rss_before_mb=rss0,
        peak_rss_mb=peak,
    )


def gibbs_rows(sizes: list[int], sweeps: int) -> list[dict]:
    from galu.train import gibbs_ggdln

    rows = []
    for P in sizes:
        net, X, y, Xt, _ = _setting(P, P_test=100)
        s = gibbs_ggdln(net, X, y, 0.01, Xt, chains=16, sweeps=sweeps, burn_in=0, seed=1)
        rows.append(
            dict(
                kind="gibbs",
                P=P,
                seconds=s.seconds,
                samples=s.chains * s.n_kept,
                samples_per_s=s.samples_per_second(),
            )
        )
    return rows


def precision_row(sweeps: int) -> dict:
    from galu.theory import ggdln_theory
    from galu.train import gibbs_ggdln

    P = 200
    net, X, y, Xt, yt = _setting(P, P_test=500)
    th = ggdln_theory(net, X, y, 0.01)
    s = gibbs_ggdln(net, X, y, 0.01, Xt, chains=16, sweeps=sweeps, burn_in=sweeps // 4, seed=2)
    gen = s.generalization(yt)
    n = s.chains * s.n_kept
    rel_se = gen["error_se"] / gen["error"]
    need = n * (rel_se / 0.01) ** 2  # SE ∝ 1/√samples
    # all chains advance together: the burn-in plus the kept sweeps each chain needs
    sweep_s = s.seconds / sweeps
    need_s = (sweeps // 4 + math.ceil(need / s.chains)) * sweep_s
    return dict(
        kind="precision",
        P=P,
        seconds=s.seconds,
        samples=n,
        error=gen["error"],
        error_theory=th.generalization(Xt, yt)["error"],
        rel_se=rel_se,
        samples_for_1pct=need,
        seconds_for_1pct=need_s,
        theory_s=th.seconds,
        ratio=need_s / th.seconds,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 5000])
    ap.add_argument("--gibbs-sizes", type=int, nargs="+", default=[200, 500])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument(
        "--parts",
        nargs="+",
        default=["theory", "gibbs", "precision"],
        help="which rows to (re)measure; rows of other kinds in --out are kept",
    )
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_theory(args.one)))
        return
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    for P in args.sizes if "theory" in args.parts else []:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(P)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    for r in gibbs_rows(args.gibbs_sizes, args.sweeps) if "gibbs" in args.parts else []:
        rows.append(r)
        print(r, flush=True)
    if "precision" in args.parts:
        rows.append(precision_row(args.sweeps * 2))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows).assign(**provenance())  # kept by the rows of other parts below
    if args.out.exists():
        old = pd.read_csv(args.out)
        df = pd.concat([old[~old.kind.isin(args.parts)], df], ignore_index=True)
    print(df.to_string(index=False))
    write_rows(df, args.out)


if __name__ == "__main__":
    main()
