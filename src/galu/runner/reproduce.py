"""Run every experiment of one paper into one folder, with an index."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from galu.runner.run import RunResult, run_experiment
from galu.runner.rundir import atomic_write_text

# Paper → its experiments, in the paper's order.
PAPERS: dict[str, tuple[str, ...]] = {
    "galu": ("memorization", "min-width", "generalization", "real-data"),
    "ggdln": ("ggdln-curves", "ggdln-gate-learning", "ggdln-multitask"),
    "channels": ("channels-toy", "channels-sweep", "channels-erf", "channels-jump"),
    "gln": (
        "gln-online",
        "gln-forgetting",
        "gln-regret",
        "gln-capacity",
        "ggln-regression",
        "gln-local-vs-global",
    ),
}


def _markdown(df: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def reproduce(
    paper: str,
    *,
    preset: str = "quick",
    out: Path | str | None = None,
    seed: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
) -> tuple[Path, list[RunResult]]:
    """Run (or resume) every experiment of ``paper`` into ``out/<experiment>/`` and write
    ``out/index.md`` and ``out/index.json``. Returns the folder and the runs' results."""
    if paper not in PAPERS:
        from galu.experiments import ConfigError

        raise ConfigError(f"unknown paper {paper!r}; valid papers: {', '.join(PAPERS)}.")
    root = (
        Path(out)
        if out is not None
        else Path("runs") / (f"{paper}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    results = []
    for name in PAPERS[paper]:
        res = run_experiment(
            name, preset=preset, out=root / name, seed=seed, progress=progress,
            retry_failed=retry_failed,
        )  # fmt: skip
        results.append(res)
        if res.interrupted:
            break
    lines = [f"# {paper}: preset {preset}", ""]
    index = []
    for name, res in zip(PAPERS[paper], results, strict=False):
        rel = [str(p.relative_to(root)) for p in res.figures]
        index.append(
            dict(
                experiment=name,
                done=res.done,
                failed=res.failed,
                total=res.total,
                results=str((res.path / "results.csv").relative_to(root)),
                figures=rel,
            )
        )
        lines += [
            f"## {name}",
            "",
            f"{res.done}/{res.total} (point, seed) pairs done"
            + (f", {res.failed} failed (see {name}/failed/)" if res.failed else "")
            + f"; [results.csv]({name}/results.csv)",
            "",
        ]
        lines += [f"![{name}]({f})" for f in rel] + [""]
        if res.summary is not None:
            lines += [_markdown(res.summary), ""]
    atomic_write_text(root / "index.md", "\n".join(lines))
    atomic_write_text(root / "index.json", json.dumps(index, indent=2) + "\n")
    return root, results
