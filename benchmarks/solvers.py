"""Exact GaLU fits against scnn (LSMR, R-FISTA) and Adam on the same gates, plus GEMM efficiency.

Usage::

    pip install -e '.[bench]'                  # pyscnn, only for this benchmark
    galu bench solvers --sizes small           # = python benchmarks/solvers.py; minutes
    galu bench solvers --sizes issue           # (8192,64,256), (16384,64,128), (4096,64,64)
    galu bench solvers --sizes issue --contenders galu-cg,scnn-lsmr-f32   # a subset
    galu bench solvers --sizes issue --redo 8192,64,256   # re-measure one shape, keep the rest

Every contender fits the same model — ``f(x) = Σ_i <w_i, x> 1[<u_i, x> > 0]`` with the same gate
vectors (scnn's strict gate; galu's ``Gate(at_zero=0.0)``), squared loss, no regulariser — on
standard Gaussian inputs and random labels, so scnn's data scaling is off
(``unitize_data=False``). Each run is its own process: imports and a small warm-up fit are not
timed, then the fit is timed ``--repeats`` times (fewer if a run takes over 10 s) and the median
is reported, with the minimum beside it.

Target: the exact solution's training MSE within 1e-6 relative, ``max(mse*·(1 + 1e-6),
1e-6·mean(y²))`` (the floor matters only where the exact fit interpolates). Iterative contenders
— ours and scnn's, each in float32 and float64 — run a tolerance ladder 1e-3, 1e-4, …, 1e-8,
1e-10 and report the first (fastest) run that reaches the target, or else their best MSE.
``galu-auto`` runs once at its defaults (tol 1e-10: far below the target); the direct paths run
once where their estimated cost is below ``--direct-limit`` flops. Adam (lr 1e-3, batch 128,
float32, the paper's 1e5 steps by default) trains until the target or the step budget; where it
never reaches the target, its time is a lower bound on its time-to-target.

Rows: ``benchmarks/results/solvers-SIZES.csv`` (one per contender and size) and
``solvers-SIZES-gemm.csv``: the dominant products of each galu path — the two gated GEMMs of a CG
step, a whole CG step, the kernel ``(XXᵀ)⊙(GGᵀ)`` and its Cholesky factorisation — against a
plain ``torch.matmul`` of the same shapes in the same process (``fraction`` = achieved / plain),
and the plain GEMM's rate against the machine's best (a 4096³ matmul, ``of_peak``).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _harness import best_time, provenance, write_rows

RESULTS = Path(__file__).parent / "results"
SIZES = {
    "small": [(2048, 32, 128), (4096, 32, 64), (2048, 32, 64)],  # kd = 2m, m/2, m
    "issue": [(8192, 64, 256), (16384, 64, 128), (4096, 64, 64)],
}
TOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10)
ITERATIVE = (
    "galu-cg",  # mixed precision: float32 GEMMs refined in float64 (the default)
    "galu-cg-f32",  # everything in float32 (dtype=torch.float32)
    "galu-cg-f64",  # float64 GEMMs
    "galu-lsqr",
    "scnn-lsmr-f32",
    "scnn-lsmr-f64",
    "scnn-rfista-f32",
    "scnn-rfista-f64",
)
DIRECT = ("galu-primal", "galu-dual", "galu-svd")
CONTENDERS = ("galu-auto", *ITERATIVE, *DIRECT, "adam")
REPEAT_BUDGET = 10.0  # seconds: no more repeats once one run takes longer


def _problem(m: int, d: int, k: int):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, generator=g, dtype=torch.float64)
    U = torch.randn(k, d, generator=g, dtype=torch.float64) / d**0.5
    return X, y, U


def direct_flops(path: str, m: int, d: int, k: int) -> float:
    """Multiply-adds of a direct path (eigh, used at λ = 0 on a singular system, ~9n³)."""
    n = k * d
    if path == "galu-primal":
        return m * n * n + (n**3 / 3 if n <= m else 9 * n**3)
    if path == "galu-dual":
        return m * m * (d + k) + (m**3 / 3 if n >= m else 9 * m**3)
    return 4 * m * n * min(m, n)  # svd of Ψ


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fit_once(contender: str, X, y, U, tol: float, target: float, budget: int) -> dict:
    """One timed fit; returns seconds, training MSE and contender-specific columns."""
    from scnn.metrics import Metrics
    from scnn.models import ConvexGatedReLU
    from scnn.optimize import optimize_model
    from scnn.solvers import RFISTA, LeastSquaresSolver

    from galu import Gate
    from galu.nn import ShallowGaLU
    from galu.solvers import fit_galu
    from galu.train import train

    d = X.shape[1]
    k = U.shape[0]
    extra: dict = {}
    t0 = time.perf_counter()
    if contender.startswith("galu-"):
        # float32 refinement cannot reach tight tolerances near kd = m: cap its hopeless runs.
        kw: dict = dict(gate=Gate(at_zero=0.0), max_iter=2_000 if "f32" in contender else 20_000)
        name = contender.removeprefix("galu-")
        if name.startswith("cg") or name == "lsqr":
            kw.update(solver="cg" if name.startswith("cg") else "lsqr", tol=tol)
            if name == "cg-f32":
                kw.update(dtype=torch.float32)
            if name == "cg-f64":
                kw.update(mixed_precision=False)
        elif name != "auto":
            kw.update(solver=name)
        fit = fit_galu(X, y, U, **kw)
        seconds = time.perf_counter() - t0
        mse, extra["solver"], extra["iterations"] = fit.train_mse, fit.solver, fit.n_iter
    elif contender.startswith("scnn-"):
        model = ConvexGatedReLU(U.numpy().T.copy(), c=1)
        solver = (
            RFISTA(model, max_iters=20_000, tol=tol)
            if "rfista" in contender
            else LeastSquaresSolver(model, solver="lsmr", max_iters=20_000, tol=tol)
        )
        model, _ = optimize_model(
            model,
            solver,
            Metrics(metric_freq=100_000),
            X.numpy(),
            y.numpy()[:, None],
            unitize_data=False,
            dtype="float32" if contender.endswith("f32") else "float64",
        )
        seconds = time.perf_counter() - t0
        # scnn's own predictions (its parameter layout is internal to it).
        pred = np.asarray(model(X.numpy()), dtype=np.float64).reshape(-1)
        mse = float(np.mean((pred - y.numpy()) ** 2))
    else:  # minibatch Adam on the same gates until the target or the step budget
        net = ShallowGaLU(d, k, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
        with torch.no_grad():
            net.gate_vectors.copy_(U.float())
        net.gate = Gate(at_zero=0.0)
        res = train(net, X.float(), y.float(), seed=0, steps=budget, lr=1e-3, batch_size=128,
                    target_loss=target, eval_every=500)  # fmt: skip
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            mse = float(((net(X.float()).double().reshape(-1) - y) ** 2).mean())
        extra["iterations"] = res.steps
    return dict(seconds=seconds, train_mse=mse, **extra)


def run_one(contender, m, d, k, tol, target, budget, repeats) -> dict:
    X, y, U = _problem(m, d, k)
    if contender != "adam":  # warm-up: thread pools, allocator, lazy imports
        small = min(m, 512)
        _fit_once(contender, X[:small], y[:small], U, max(tol, 1e-4), target, budget)
    before = _rss_mb()
    runs = [_fit_once(contender, X, y, U, tol, target, budget)]
    while len(runs) < repeats and sum(r["seconds"] for r in runs) < REPEAT_BUDGET:
        runs.append(_fit_once(contender, X, y, U, tol, target, budget))
    times = [r["seconds"] for r in runs]
    row = dict(runs[-1], seconds=statistics.median(times), min_seconds=min(times),
               repeats=len(runs), rss_before_mb=before, peak_rss_mb=_rss_mb())  # fmt: skip
    return dict(contender=contender, m=m, d=d, k=k, **row)


def _timed(fn, repeats: int = 7) -> float:
    return best_time(fn, repeats=repeats, warmup=1)  # warm-up: allocator, thread pool


def _gemm_row(op, dtype, shape, flops, ours, plain, peak, repeats=7) -> dict:
    t_ours, t_plain = _timed(ours, repeats), _timed(plain, repeats)
    m, d, k = shape
    return dict(op=op, dtype=dtype, m=m, d=d, k=k, flops=flops, seconds=t_ours,
                plain_seconds=t_plain, gflops=flops / t_ours / 1e9,
                plain_gflops=flops / t_plain / 1e9, fraction=t_plain / t_ours,
                peak_gflops=peak, of_peak=flops / t_ours / 1e9 / peak)  # fmt: skip


@functools.cache
def _peak(dtype: torch.dtype) -> float:
    """The machine's best GEMM rate in GFLOP/s (a 4096³ matmul), measured once per process."""
    A = torch.randn(4096, 4096, dtype=dtype)
    return 2 * 4096**3 / _timed(lambda: A @ A, 3) / 1e9


def _dtype_rows(X, G, y, shape, dtype) -> list[dict]:
    """The gated GEMMs and a whole CG step in ``dtype`` against plain matmuls."""
    from galu import ops
    from galu.solvers._cg import cg, normal_operator

    m, d, k = shape
    name = str(dtype).removeprefix("torch.")
    peak = _peak(dtype)
    Xc, Gc, yc = X.to(dtype), G.to(dtype).contiguous(), y.to(dtype)
    Gt = Gc.T.contiguous()
    W = torch.randn(k, d, dtype=dtype)
    Xr = Xc * yc[:, None]
    flops = 2 * m * d * k
    rows = [
        _gemm_row("Ψw = rowsum(X ⊙ GW)", name, shape, flops,
                  lambda: ops.lifted_matvec(Xc, Gc, W), lambda: Gc @ W, peak),
        _gemm_row("Ψᵀr = Gᵀ(r ⊙ X)", name, shape, flops,
                  lambda: ops.lifted_rmatvec(Xc, Gc, yc, g_t=Gt), lambda: Gt @ Xr, peak),
    ]  # fmt: skip
    dual = k * d > m
    apply, precond = normal_operator(Xc, Gc, 0.0, dual=dual, g_t=Gt)
    rhs = yc[None] if dual else ops.lifted_rmatvec(Xc, Gc, yc)[None]
    steps = 20
    rows.append(_gemm_row(f"CG step ({'dual' if dual else 'primal'}; {steps} steps)", name,
                          shape, 2 * flops * steps, lambda: cg(apply, rhs, 1e-30, steps, precond),
                          lambda: [(Gc @ W, Gt @ Xr) for _ in range(steps)], peak, 3))  # fmt: skip
    return rows


def gemm_rows(m: int, d: int, k: int) -> list[dict]:
    """Achieved GFLOP/s of galu's dominant products vs a plain matmul of the same shapes."""
    from galu import Gate, ops

    X, y, U = _problem(m, d, k)
    G = ops.gate_matrix(X, U, Gate(at_zero=0.0))
    shape, rows = (m, d, k), []
    for dtype in (torch.float32, torch.float64):
        rows += _dtype_rows(X, G, y, shape, dtype)
    if m <= 8192:  # the dual path's products (an m × m float64 system)
        peak = _peak(torch.float64)
        Gt, XtT = G.T.contiguous(), X.T.contiguous()
        kflops = 2 * m * m * (d + k)
        kernel, plain = lambda: (X @ XtT).mul_(G @ Gt), lambda: (X @ XtT, G @ Gt)
        rows.append(
            _gemm_row("kernel (XXᵀ)⊙(GGᵀ)", "float64", shape, kflops, kernel, plain, peak, 2)
        )
        K = (X @ XtT).mul_(G @ Gt)
        K.diagonal().add_(1e-6 * float(K.diagonal().mean()))
        B = torch.randn(m, m, dtype=torch.float64)
        # Plain limit for a factorisation: an m×m×m matmul's rate (its flops are 6× Cholesky's).
        row = _gemm_row("cholesky K (rate vs m³ matmul)", "float64", shape, m**3 / 3,
                        lambda: torch.linalg.cholesky_ex(K), lambda: B @ B, peak, 2)  # fmt: skip
        row["plain_seconds"] /= 6
        row["plain_gflops"] = row["flops"] / row["plain_seconds"] / 1e9
        row["fraction"] = row["plain_seconds"] / row["seconds"]
        rows.append(row)
    return rows


CHILD_TIMEOUT = 1800  # seconds for one run; a run past it is recorded as an error row


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


def _ladder(contender, shape, target, repeats) -> dict:
    tried = []
    for tol in TOLS:
        row = _child([contender, *shape, str(tol), str(target), "0", str(repeats)])
        m, d, k = (int(v) for v in shape)
        row.update(contender=contender, m=m, d=d, k=k, tol=tol)
        tried.append(row)
        if row.get("train_mse", np.inf) <= target:
            break
    hits = [r for r in tried if r.get("train_mse", np.inf) <= target]
    best = hits[0] if hits else min(tried, key=lambda r: r.get("train_mse", np.inf))
    best["reached"] = bool(hits)
    best["ladder_seconds"] = sum(r.get("seconds", 0.0) for r in tried)
    return best


# Our float64 exact paths (galu-cg-f32 returns float32 weights: shown in the rows, not compared).
EXACT = ("galu-auto", "galu-cg", "galu-cg-f64", "galu-lsqr", *DIRECT)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per size: our fastest float64 exact path that reached the target, against scnn's
    fastest solver at equal or better MSE and Adam.

    scnn's entry is its fastest run that reached the target; where none did, the fastest of its
    solvers' best runs (each solver's best MSE, all above ours). Adam's time is a lower bound on
    its time to the target where it never reached it."""
    out = []
    for (m, d, k), rows in table.groupby(["m", "d", "k"], sort=False):
        reached = rows[rows.reached.astype(bool)]
        ours_rows = reached[reached.contender.isin(EXACT)]
        ours = ours_rows.loc[ours_rows.seconds.idxmin()]
        scnn = rows[rows.contender.str.startswith("scnn") & rows.seconds.notna()]
        hit = scnn[scnn.reached.astype(bool)]
        best = hit.loc[hit.seconds.idxmin()] if len(hit) else (
            scnn.loc[scnn.seconds.idxmin()] if len(scnn) else None)  # fmt: skip
        by = rows.set_index("contender")
        adam = by.loc["adam"] if "adam" in by.index else None
        out.append(dict(
            m=m, d=d, k=k, galu=ours.contender, galu_tol=ours.tol, galu_seconds=ours.seconds,
            galu_mse=ours.train_mse, galu_auto_seconds=by.loc["galu-auto"].seconds,
            scnn=None if best is None else best.contender,
            scnn_tol=np.nan if best is None else best.tol,
            scnn_seconds=np.nan if best is None else best.seconds,
            scnn_mse=np.nan if best is None else best.train_mse,
            scnn_reached=None if best is None else bool(best.reached),
            vs_scnn=np.nan if best is None else best.seconds / ours.seconds,
            adam_seconds=np.nan if adam is None else adam.seconds,
            adam_mse=np.nan if adam is None else adam.train_mse,
            adam_reached=None if adam is None else bool(adam.reached),
            vs_adam=np.nan if adam is None else adam.seconds / ours.seconds,
        ))  # fmt: skip
    return pd.DataFrame(out)


def write_summary(table: pd.DataFrame, name: str) -> pd.DataFrame:
    summ = summary(table)
    summ.to_csv(RESULTS / f"{name}-summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summ.round(4).to_string(index=False))
    return summ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="small")
    parser.add_argument("--adam-steps", type=int, default=100_000, help="Adam step budget")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per fit (median)")
    parser.add_argument(
        "--direct-limit", type=float, default=3e12, help="skip direct paths above these flops"
    )
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help="comma-separated subset to run"
    )
    parser.add_argument(
        "--tag", default="", help="suffix for the result files (keeps another run's rows)"
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="recompute the summary from stored rows"
    )
    parser.add_argument(
        "--redo",
        default="",
        help="re-measure only these shapes of --sizes ('M,D,K' separated by ';') and replace "
        "their rows in the stored results, keeping the other shapes' rows",
    )
    parser.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    name = f"solvers-{args.sizes}{'-' + args.tag if args.tag else ''}"
    if args.summary_only:
        write_summary(pd.read_csv(RESULTS / f"{name}.csv"), name)
        return
    if args._child:
        if args._child[0] == "gemm":
            m, d, k = (int(v) for v in args._child[1:])
            print(json.dumps(gemm_rows(m, d, k)))
            return
        c, m, d, k, tol, target, budget, repeats = args._child
        row = run_one(c, int(m), int(d), int(k), float(tol), float(target), int(budget),
                      int(repeats))  # fmt: skip
        print(json.dumps(row))
        return
    wanted = [c.strip() for c in args.contenders.split(",")]
    unknown = sorted(set(wanted) - set(CONTENDERS))
    if unknown:
        parser.error(f"--contenders must name only {CONTENDERS}; got {unknown}")
    shapes = SIZES[args.sizes]
    if args.redo:
        try:
            redo = [tuple(int(v) for v in part.split(",")) for part in args.redo.split(";")]
        except ValueError:
            redo = []
        if not redo or any(shape not in shapes for shape in redo):
            parser.error(
                f"--redo must list shapes of --sizes {args.sizes} {shapes}; got {args.redo!r}"
            )
        shapes = redo
    rows, gemm = [], []
    for m, d, k in shapes:
        shape = [str(m), str(d), str(k)]
        gemm += _child(["gemm", *shape])
        exact = _child(["galu-auto", *shape, "1e-10", "0", "0", str(args.repeats)])
        ybar2 = float((_problem(m, d, k)[1] ** 2).mean())
        target = max(exact["train_mse"] * (1 + 1e-6), 1e-6 * ybar2)
        exact.update(tol=np.nan, reached=bool(exact["train_mse"] <= target))
        found = [exact]
        for contender in wanted:
            if contender in ITERATIVE:
                found.append(_ladder(contender, shape, target, args.repeats))
            elif contender in DIRECT:
                flops = direct_flops(contender, m, d, k)
                if flops > args.direct_limit:
                    limit = f"{args.direct_limit:.0e}"
                    why = f"skipped: {flops:.1e} multiply-adds (> --direct-limit {limit})"
                    found.append(dict(contender=contender, m=m, d=d, k=k, reached=False, error=why))
                    continue
                row = _child([contender, *shape, "1e-10", str(target), "0", "1"])
                row.update(contender=contender, m=m, d=d, k=k, tol=np.nan)
                row["reached"] = row.get("train_mse", np.inf) <= target
                found.append(row)
            elif contender == "adam":
                row = _child(["adam", *shape, "0", str(target), str(args.adam_steps), "1"])
                row.update(contender="adam", m=m, d=d, k=k, tol=np.nan)
                row["reached"] = row.get("train_mse", np.inf) <= target
                found.append(row)
        for row in found:
            row["target_mse"] = target
            print(
                f"m={m} d={d} k={k} {row['contender']:>16}: {row.get('seconds', np.nan):8.3f}s "
                f"mse {row.get('train_mse', np.nan):.6g} reached={row['reached']} "
                f"tol={row.get('tol')} peak {row.get('peak_rss_mb', np.nan):.0f} MiB "
                f"{row.get('error', '')}",
                flush=True,
            )
        rows += found
    table = pd.DataFrame(rows)
    stamp = provenance()
    out, gemm_out = RESULTS / f"{name}.csv", RESULTS / f"{name}-gemm.csv"
    table, gemm_table = table.assign(**stamp), pd.DataFrame(gemm).assign(**stamp)
    if args.redo:  # every row keeps its own timestamp: which run measured it stays visible
        table, gemm_table = _merge(out, table, shapes), _merge(gemm_out, gemm_table, shapes)
    write_rows(table, out)
    write_rows(gemm_table, gemm_out)
    write_summary(table, name)


def _merge(path: Path, new: pd.DataFrame, shapes: list[tuple[int, ...]]) -> pd.DataFrame:
    """Stored rows of ``path`` with those of ``shapes`` replaced by ``new``, in size order."""
    if not path.exists():
        return new
    old = pd.read_csv(path)
    old_shapes = list(zip(old.m, old.d, old.k, strict=True))
    redone = pd.Series(old_shapes).isin(shapes).to_numpy()
    merged = pd.concat([old[~redone], new], ignore_index=True)
    order = {shape: i for i, shape in enumerate(dict.fromkeys(old_shapes))}
    key = [order.get(s, len(order)) for s in zip(merged.m, merged.d, merged.k, strict=True)]
    return merged.assign(_key=key).sort_values("_key", kind="stable").drop(columns="_key")


if __name__ == "__main__":
    main()
