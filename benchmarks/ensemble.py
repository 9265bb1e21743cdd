"""Memorization's Adam pass at the paper's grid: one pass per width, per d, or per m (issue 17).

Usage::

    galu bench ensemble          # = python benchmarks/ensemble.py; ~6 min on 2 cores

The memorization `paper` preset trains, for each m ∈ {256, 512, 768, 1024}, every (d, k) with
d, k ∈ {8, 16, 24, 32} and kd ≤ m, 16 seeds each, for 10⁵ Adam steps (batch 128). Three layouts
of that work are timed with `galu.train.train_ensemble`:

- `per-width`: one vectorised pass per (m, d, k) over its 16 seeds (the baseline);
- `per-d`: one pass per (m, d), k zero-padded to the largest k of that d;
- `per-m`: one pass per m, d and k zero-padded to the largest of that m (the preset's layout).

The time per step excludes set-up: each pass runs `short` and `long` steps, and the row holds
(T(long) − T(short)) / (long − short). `minutes_1e5` projects one model's 10⁵ steps over the
whole grid; `ratio` is the layout's time over `per-width`'s, measured in the same run. Rows:
`benchmarks/results/ensemble.csv`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from _harness import write_rows
from galu.nn import DeepGaLU, ReLUNet, ShallowGaLU
from galu.train import train_ensemble

OUT = Path(__file__).parent / "results" / "ensemble.csv"
GRID_M, GRID_W = (256, 512, 768, 1024), (8, 16, 24, 32)
MODELS = {
    "relu": lambda d, k: ReLUNet(d, k, 1),
    "galu-readout": lambda d, k: DeepGaLU(d, k, 1, bias=True),
    "galu": lambda d, k: ShallowGaLU(d, k, 1),
}


def seconds_per_step(model: str, members: int, m: int, d: int, k: int, short: int, long: int):
    times = []
    for steps in (short, long):
        nets = [MODELS[model](d, k) for _ in range(members)]
        X, Y = torch.randn(members, m, d), torch.randn(members, m, 1)
        t0 = time.perf_counter()
        train_ensemble(nets, X, Y, seeds=list(range(members)), steps=steps, eval_every=10**9)
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / (long - short)


def groups(layout: str, m: int) -> list[tuple[int, int, int]]:
    """(members, d, k) of each pass that one layout runs for one m."""
    widths = [(d, k) for d in GRID_W for k in GRID_W if d * k <= m]
    if layout == "per-width":
        return [(16, d, k) for d, k in widths]
    if layout == "per-d":
        ds = sorted({d for d, _ in widths})
        return [
            (16 * sum(dd == d for dd, _ in widths), d, max(k for dd, k in widths if dd == d))
            for d in ds
        ]
    return [(16 * len(widths), max(d for d, _ in widths), max(k for _, k in widths))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--short", type=int, default=20)
    ap.add_argument("--long", type=int, default=120)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for model in args.models:
        for layout in ("per-width", "per-d", "per-m"):
            for m in GRID_M:
                secs = sum(
                    seconds_per_step(model, e, m, d, k, args.short, args.long)
                    for e, d, k in groups(layout, m)
                )
                rows.append(dict(model=model, layout=layout, m=m, ms_per_step=secs * 1e3,
                                 passes=len(groups(layout, m))))  # fmt: skip
            total = sum(r["ms_per_step"] for r in rows if r["layout"] == layout
                        and r["model"] == model)  # fmt: skip
            print(f"{model:12s} {layout:9s} {total:7.1f} ms/step over the grid "
                  f"→ {total * 1e2 / 60:5.0f} min at 10⁵ steps", flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    totals = df.groupby(["model", "layout"], as_index=False)["ms_per_step"].sum()
    totals["m"] = "all"
    totals["minutes_1e5"] = totals["ms_per_step"] * 1e5 / 1e3 / 60
    base = totals[totals.layout == "per-width"].set_index("model")["ms_per_step"]
    totals["ratio"] = totals["ms_per_step"] / totals["model"].map(base)
    df = pd.concat([df, totals], ignore_index=True)
    print(totals.to_string(index=False))
    write_rows(df, OUT)


if __name__ == "__main__":
    main()
