"""Exact GaLU fits against scnn (R-FISTA, LSMR) and Adam on the same gates.

Usage::

    pip install -e '.[bench]'                    # pyscnn, only for this benchmark
    python benchmarks/vs_scnn.py --sizes small   # minutes on 2 cores
    python benchmarks/vs_scnn.py --sizes issue   # (8192,64,256), (16384,64,128), kd = m: long

Every contender fits the same model — ``f(x) = Σ_i <w_i, x> 1[<u_i, x> > 0]`` with the same gate
vectors (scnn's strict gate; galu's ``Gate(at_zero=0.0)``), squared loss, no regulariser — on
standardised Gaussian inputs and random labels, so scnn's data scaling is off
(``unitize_data=False``). Each runs in its own process (peak RSS is its own). Reported: wall time,
training MSE, its relative excess over galu's exact MSE, and peak RSS. Rows go to
``benchmarks/results/vs_scnn.csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

OUT = Path(__file__).parent / "results" / "vs_scnn.csv"
SIZES = {
    "small": [(2048, 32, 128), (4096, 32, 64), (2048, 32, 64)],  # kd = 2m, m/2, m
    "issue": [(8192, 64, 256), (16384, 64, 128), (4096, 64, 64)],
}


def _problem(m: int, d: int, k: int):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, generator=g, dtype=torch.float64)
    U = torch.randn(k, d, generator=g, dtype=torch.float64) / d**0.5
    return X, y, U


def run_one(contender: str, m: int, d: int, k: int, target: float, budget: float) -> dict:
    # Imports happen before the clock starts: only the fit is timed.
    from scnn.metrics import Metrics
    from scnn.models import ConvexGatedReLU
    from scnn.optimize import optimize_model
    from scnn.solvers import RFISTA, LeastSquaresSolver

    from galu import Gate
    from galu.nn import ShallowGaLU
    from galu.solvers import fit_galu
    from galu.train import train

    X, y, U = _problem(m, d, k)
    t0 = time.perf_counter()
    extra: dict = {}
    if contender.startswith("galu-"):
        fit = fit_galu(X, y, U, gate=Gate(at_zero=0.0), solver=contender[5:])
        seconds = time.perf_counter() - t0
        mse, extra["solver"] = fit.train_mse, fit.solver
    elif contender.startswith("scnn-"):
        model = ConvexGatedReLU(U.numpy().T.copy(), c=1)
        solver = (
            RFISTA(model, max_iters=10_000, tol=1e-10)
            if contender == "scnn-rfista"
            else LeastSquaresSolver(model, solver="lsmr", max_iters=10_000, tol=1e-10)
        )
        model, _ = optimize_model(
            model,
            solver,
            Metrics(metric_freq=10_000),
            X.numpy(),
            y.numpy()[:, None],
            unitize_data=False,
            dtype="float64",
        )
        seconds = time.perf_counter() - t0
        # scnn's own predictions (its parameter layout is internal to it).
        pred = np.asarray(model(X.numpy()), dtype=np.float64).reshape(-1)
        mse = float(np.mean((pred - y.numpy()) ** 2))
    else:  # minibatch Adam (lr 1e-3, batch 128) on the same gates until the target or budget
        net = ShallowGaLU(d, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        with torch.no_grad():
            net.gate_vectors.copy_(U)
        net.gate = Gate(at_zero=0.0)
        res = train(
            net,
            X,
            y,
            seed=0,
            steps=int(budget),
            lr=1e-3,
            batch_size=128,
            target_loss=target,
            eval_every=200,
        )
        seconds = time.perf_counter() - t0
        mse = res.final_loss
        extra["steps"] = res.steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        contender=contender,
        m=m,
        d=d,
        k=k,
        seconds=seconds,
        train_mse=mse,
        peak_rss_mb=peak,
        **extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="small")
    parser.add_argument("--adam-steps", type=int, default=20_000, help="Adam step budget")
    parser.add_argument("--_child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        c, m, d, k, target, budget = args._child
        print(json.dumps(run_one(c, int(m), int(d), int(k), float(target), float(budget))))
        return
    rows = []
    for m, d, k in SIZES[args.sizes]:
        exact = None
        for contender in ("galu-auto", "galu-lsqr", "scnn-lsmr", "scnn-rfista", "adam"):
            # The exact MSE within 1e-6 relative, with a 1e-6 absolute floor for interpolation.
            target = exact * (1 + 1e-6) + 1e-6 if exact is not None else 0.0
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--_child",
                    contender,
                    str(m),
                    str(d),
                    str(k),
                    str(target),
                    str(args.adam_steps),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                row = dict(contender=contender, m=m, d=d, k=k, error=proc.stderr[-300:])
            else:
                row = json.loads(proc.stdout.strip().splitlines()[-1])
            if contender == "galu-auto":
                exact = row["train_mse"]
            row["excess_mse"] = (row.get("train_mse", np.nan) - exact) / max(exact, 1e-300)
            rows.append(row)
            print(
                f"m={m} d={d} k={k} {contender:>12}: {row.get('seconds', np.nan):8.2f}s "
                f"mse {row.get('train_mse', np.nan):.6g} (excess {row['excess_mse']:.1e}) "
                f"peak {row.get('peak_rss_mb', np.nan):.0f} MiB",
                flush=True,
            )
    table = pd.DataFrame(rows)
    base = table[table.contender == "galu-auto"].set_index(["m", "d", "k"])["seconds"]
    table["time_vs_galu_auto"] = [r.seconds / base[(r.m, r.d, r.k)] for r in table.itertuples()]
    table["device"] = f"cpu, {torch.get_num_threads()} threads"
    table["torch"] = torch.__version__
    table["timestamp"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT, index=False)
    print(f"rows: {OUT}")


if __name__ == "__main__":
    main()
