"""Run every experiment's preset and write its rows, or compare two such snapshots.

Written for issue 18 (the restructure must keep every experiment's quick-preset rows
identical)::

    python tools/rows_snapshot.py snapshot before.json [--preset quick] [--only NAME ...]
    python tools/rows_snapshot.py compare before.json after.json

Each experiment runs through ``galu.runner.run_experiment`` into a temporary directory with
one thread (so that reductions are ordered alike); its ``results.csv`` rows are sorted and kept
with every float as written. Metrics that measure time (``*seconds*``, ``*per_s*``) are dropped,
being the only values that may differ between two runs of the same code. ``compare`` reports,
per experiment, whether the rows are identical (empty cells aside: a column that new rows
bring is not part of the old ones), whether every old row is kept with rows added, or the first
difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TIMED = ("seconds", "per_s", "wall")


def _rows(csv: Path) -> list[dict]:
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    if "metric" in table.columns:
        timed = table["metric"].str.contains("|".join(TIMED))
        table = table[~timed]
    table = table.drop(columns=[c for c in table.columns if any(t in c for t in TIMED)])
    table = table[sorted(table.columns)]
    return sorted(table.to_dict("records"), key=lambda r: json.dumps(r, sort_keys=True))


def snapshot(out: Path, preset: str, only: list[str] | None) -> None:
    from galu.experiments.base import experiments
    from galu.runner import run_experiment

    names = only or list(experiments())
    result = json.loads(out.read_text()) if out.exists() else {}
    for name in names:
        if name in result:
            print(f"{name}: already in {out}", flush=True)
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            run = run_experiment(name, preset=preset, out=Path(tmp) / name, progress=False,
                                 threads=1)  # fmt: skip
            rows = _rows(Path(tmp) / name / "results.csv")
        secs = time.perf_counter() - t0
        result[name] = dict(rows=rows, failed=run.failed, seconds=secs)
        out.write_text(json.dumps(result, indent=1))
        print(f"{name}: {len(rows)} rows, {run.failed} failed, {secs:.0f} s", flush=True)


def _normal(rows: list[dict]) -> list[dict]:
    """Rows without their empty cells (a column another row added is not part of this one)."""
    return sorted(
        ({k: v for k, v in r.items() if v != ""} for r in rows),
        key=lambda r: json.dumps(r, sort_keys=True),
    )


def compare(a: Path, b: Path) -> int:
    before, after = json.loads(a.read_text()), json.loads(b.read_text())
    bad = 0
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            print(f"{name}: only in {'after' if name in after else 'before'}")
            bad += 1
            continue
        x, y = _normal(before[name]["rows"]), _normal(after[name]["rows"])
        if x == y and before[name]["failed"] == after[name]["failed"] == 0:
            print(f"{name}: identical ({len(x)} rows)")
            continue
        old = {json.dumps(r, sort_keys=True) for r in x}
        added = [r for r in y if json.dumps(r, sort_keys=True) not in old]
        if len(y) - len(added) == len(x) and after[name]["failed"] == 0:
            metrics = sorted({r.get("metric", "?") for r in added})
            print(f"{name}: every one of the {len(x)} rows identical; {len(added)} rows added "
                  f"(metrics {', '.join(metrics)})")  # fmt: skip
            continue
        bad += 1
        diff = next((i for i, (r, s) in enumerate(zip(x, y, strict=False)) if r != s), None)
        print(f"{name}: DIFFERENT ({len(x)} vs {len(y)} rows; failed "
              f"{before[name]['failed']} / {after[name]['failed']})")  # fmt: skip
        if diff is not None:
            print(f"  before: {x[diff]}\n  after:  {y[diff]}")
    print(f"{bad} experiment(s) differ" if bad else "no experiment differs")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snapshot")
    s.add_argument("out", type=Path)
    s.add_argument("--preset", default="quick")
    s.add_argument("--only", nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = ap.parse_args()
    if args.cmd == "snapshot":
        snapshot(args.out, args.preset, args.only)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
