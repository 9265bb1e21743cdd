"""Exact GaLU fits against scnn (R-FISTA, LSMR) and Adam on the same gates, plus GEMM efficiency.

Usage::

    pip install -e '.[bench]'               # pyscnn, only for this benchmark
    galu bench solvers --sizes small        # = python benchmarks/solvers.py; minutes on 2 cores
    galu bench solvers --sizes issue        # (8192,64,256), (16384,64,128), (4096,64,64)

Every contender fits the same model — ``f(x) = Σ_i <w_i, x> 1[<u_i, x> > 0]`` with the same gate
vectors (scnn's strict gate; galu's ``Gate(at_zero=0.0)``), squared loss, no regulariser — on
standard Gaussian inputs and random labels, so scnn's data scaling is off
(``unitize_data=False``). Each run is its own process (peak RSS is its own; imports untimed).

The target is the exact solution's training MSE within 1e-6 relative (``max(mse*·(1+1e-6),
1e-6·mean(y²))``: the floor matters only when the exact fit interpolates). ``galu-auto`` runs
once at its defaults. Iterative contenders (``galu-lsqr``, ``galu-cg``, ``galu-cg-mixed``,
``scnn-lsmr``, ``scnn-rfista``) run a tolerance ladder 1e-4, 1e-6, 1e-8, 1e-10 and report the
first (fastest) run that reaches the target, or else their best MSE. Adam (lr 1e-3, batch 128)
trains until the target or the step budget. Rows: ``benchmarks/results/solvers-SIZES.csv``.

GEMM rows (``benchmarks/results/solvers-SIZES-gemm.csv``) time the dominant products of each
galu path — the two gated GEMMs of an LSQR iteration (float64 and float32), the kernel
``(XXᵀ)⊙(GGᵀ)`` and its Cholesky factorisation — and a plain ``torch.matmul`` of the same shape
in the same process, the machine's practical limit; ``fraction`` = achieved / plain GFLOP/s.
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

RESULTS = Path(__file__).parent / "results"
SIZES = {
    "small": [(2048, 32, 128), (4096, 32, 64), (2048, 32, 64)],  # kd = 2m, m/2, m
    "issue": [(8192, 64, 256), (16384, 64, 128), (4096, 64, 64)],
}
TOLS = (1e-4, 1e-6, 1e-8, 1e-10)
ITERATIVE = ("galu-lsqr", "galu-cg", "galu-cg-mixed", "scnn-lsmr", "scnn-rfista")
CONTENDERS = ("galu-auto", *ITERATIVE, "adam")


def _problem(m: int, d: int, k: int):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, generator=g, dtype=torch.float64)
    U = torch.randn(k, d, generator=g, dtype=torch.float64) / d**0.5
    return X, y, U


def run_one(contender: str, m: int, d: int, k: int, tol: float, target: float, budget: int):
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
    extra: dict = {}
    t0 = time.perf_counter()
    if contender.startswith("galu-"):
        kw: dict = dict(gate=Gate(at_zero=0.0), max_iter=20_000)
        if contender != "galu-auto":
            kw.update(
                solver=contender.split("-")[1], tol=tol, mixed_precision=contender.endswith("mixed")
            )
        fit = fit_galu(X, y, U, **kw)
        seconds = time.perf_counter() - t0
        mse, extra["solver"], extra["iterations"] = fit.train_mse, fit.solver, fit.n_iter
    elif contender.startswith("scnn-"):
        model = ConvexGatedReLU(U.numpy().T.copy(), c=1)
        solver = (
            RFISTA(model, max_iters=20_000, tol=tol)
            if contender == "scnn-rfista"
            else LeastSquaresSolver(model, solver="lsmr", max_iters=20_000, tol=tol)
        )
        model, _ = optimize_model(
            model,
            solver,
            Metrics(metric_freq=100_000),
            X.numpy(),
            y.numpy()[:, None],
            unitize_data=False,
            dtype="float64",
        )
        seconds = time.perf_counter() - t0
        # scnn's own predictions (its parameter layout is internal to it).
        pred = np.asarray(model(X.numpy()), dtype=np.float64).reshape(-1)
        mse = float(np.mean((pred - y.numpy()) ** 2))
    else:  # minibatch Adam on the same gates until the target or the step budget
        net = ShallowGaLU(d, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        with torch.no_grad():
            net.gate_vectors.copy_(U)
        net.gate = Gate(at_zero=0.0)
        res = train(
            net,
            X,
            y,
            seed=0,
            steps=budget,
            lr=1e-3,
            batch_size=128,
            target_loss=target,
            eval_every=200,
        )
        seconds = time.perf_counter() - t0
        mse = res.final_loss
        extra["iterations"] = res.steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(contender=contender, m=m, d=d, k=k, seconds=seconds, train_mse=mse,
                peak_rss_mb=peak, **extra)  # fmt: skip


def _timed(fn, repeats: int = 5) -> float:
    fn()  # warm-up (allocator, thread pool)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _gemm_row(op: str, dtype: str, shape, flops: float, ours, plain, repeats: int = 5) -> dict:
    t_ours, t_plain = _timed(ours, repeats), _timed(plain, repeats)
    m, d, k = shape
    return dict(op=op, dtype=dtype, m=m, d=d, k=k, flops=flops, seconds=t_ours,
                plain_seconds=t_plain, gflops=flops / t_ours / 1e9,
                plain_gflops=flops / t_plain / 1e9, fraction=t_plain / t_ours)  # fmt: skip


def _gated_gemm_rows(X, G, y, shape) -> list[dict]:
    from galu import ops

    m, d, k = shape
    name = str(X.dtype).removeprefix("torch.")
    W = torch.randn(k, d, dtype=X.dtype)
    Wt, Xt = W.T.contiguous(), X.T.contiguous()
    flops = 2 * m * d * k
    return [
        _gemm_row("lifted_matvec Ψw", name, shape, flops,
                  lambda: ops.lifted_matvec(X, G, W), lambda: X @ Wt),
        _gemm_row("lifted_rmatvec Ψᵀr", name, shape, flops,
                  lambda: ops.lifted_rmatvec(X, G, y), lambda: Xt @ G),
    ]  # fmt: skip


def gemm_rows(m: int, d: int, k: int) -> list[dict]:
    """Achieved GFLOP/s of galu's dominant products vs a plain matmul of the same shape."""
    from galu import Gate, ops

    X, y, U = _problem(m, d, k)
    G = ops.gate_matrix(X, U, Gate(at_zero=0.0))
    shape, rows = (m, d, k), []
    for dtype in (torch.float64, torch.float32):
        rows += _gated_gemm_rows(X.to(dtype), G.to(dtype), y.to(dtype), shape)
    if m <= 8192:  # the dual path's products (an m × m float64 system)
        Gt, XtT = G.T.contiguous(), X.T.contiguous()
        kflops = 2 * m * m * (d + k)
        kernel, plain = lambda: (X @ XtT).mul_(G @ Gt), lambda: (X @ XtT, G @ Gt)
        rows.append(_gemm_row("kernel (XXᵀ)⊙(GGᵀ)", "float64", shape, kflops, kernel, plain, 2))
        K = (X @ XtT).mul_(G @ Gt)
        K.diagonal().add_(1e-6 * float(K.diagonal().mean()))
        A = torch.randn(m, m, dtype=torch.float64)
        # Plain limit for a factorisation: an m×m×m matmul's rate (its flops are 6× Cholesky's).
        row = _gemm_row("cholesky K (rate vs m³ matmul)", "float64", shape, m**3 / 3,
                        lambda: torch.linalg.cholesky_ex(K), lambda: A @ A, 2)  # fmt: skip
        row["plain_seconds"] /= 6
        row["plain_gflops"] = row["flops"] / row["plain_seconds"] / 1e9
        row["fraction"] = row["plain_seconds"] / row["seconds"]
        rows.append(row)
    return rows


CHILD_TIMEOUT = 900  # seconds for one run; a run past it is recorded as an error row


def _child(args: list[str]) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--_child", *args],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {CHILD_TIMEOUT} s")
    if proc.returncode != 0:
        return dict(error=proc.stderr.strip().splitlines()[-1][-300:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="small")
    parser.add_argument("--adam-steps", type=int, default=20_000, help="Adam step budget")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help="comma-separated subset to run"
    )
    parser.add_argument(
        "--tag", default="", help="suffix for the result files (keeps another run's rows)"
    )
    parser.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        if args._child[0] == "gemm":
            m, d, k = (int(v) for v in args._child[1:])
            print(json.dumps(gemm_rows(m, d, k)))
            return
        c, m, d, k, tol, target, budget = args._child
        row = run_one(c, int(m), int(d), int(k), float(tol), float(target), int(budget))
        print(json.dumps(row))
        return
    wanted = [c.strip() for c in args.contenders.split(",")]
    unknown = sorted(set(wanted) - set(CONTENDERS))
    if unknown or "galu-auto" not in wanted:
        parser.error(
            f"--contenders must include galu-auto and name only {CONTENDERS}; got {wanted}"
        )
    rows, gemm = [], []
    for m, d, k in SIZES[args.sizes]:
        shape = [str(m), str(d), str(k)]
        gemm += _child(["gemm", *shape])
        exact = _child(["galu-auto", *shape, "1e-10", "0", "0"])
        ybar2 = float((_problem(m, d, k)[1] ** 2).mean())
        target = max(exact["train_mse"] * (1 + 1e-6), 1e-6 * ybar2)
        exact.update(tol=np.nan, reached=True)
        found = [exact]
        for contender in wanted:
            if contender in ITERATIVE:
                tried = []
                for tol in TOLS:
                    row = _child([contender, *shape, str(tol), str(target), "0"])
                    row.update(contender=contender, m=m, d=d, k=k, tol=tol)
                    tried.append(row)
                    if row.get("train_mse", np.inf) <= target:
                        break
                hits = [r for r in tried if r.get("train_mse", np.inf) <= target]
                best = hits[0] if hits else min(tried, key=lambda r: r.get("train_mse", np.inf))
                best["reached"] = bool(hits)
                best["ladder_seconds"] = sum(r.get("seconds", 0.0) for r in tried)
                found.append(best)
            elif contender == "adam":
                row = _child(["adam", *shape, "0", str(target), str(args.adam_steps)])
                row.update(contender="adam", m=m, d=d, k=k, tol=np.nan)
                row["reached"] = row.get("train_mse", np.inf) <= target
                found.append(row)
        for row in found:
            row["target_mse"] = target
            print(
                f"m={m} d={d} k={k} {row['contender']:>16}: {row.get('seconds', np.nan):8.2f}s "
                f"mse {row.get('train_mse', np.nan):.6g} reached={row['reached']} "
                f"tol={row.get('tol')} peak {row.get('peak_rss_mb', np.nan):.0f} MiB",
                flush=True,
            )
        rows += found
    table = pd.DataFrame(rows)
    base = table[table.contender == "galu-auto"].set_index(["m", "d", "k"])["seconds"]
    table["time_vs_galu_auto"] = [r.seconds / base[(r.m, r.d, r.k)] for r in table.itertuples()]
    stamp = dict(
        device=f"cpu, {torch.get_num_threads()} threads",
        torch=torch.__version__,
        timestamp=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"solvers-{args.sizes}{'-' + args.tag if args.tag else ''}"
    out = RESULTS / f"{name}.csv"
    table.assign(**stamp).to_csv(out, index=False)
    pd.DataFrame(gemm).assign(**stamp).to_csv(RESULTS / f"{name}-gemm.csv", index=False)
    print(f"rows: {out}")


if __name__ == "__main__":
    main()
