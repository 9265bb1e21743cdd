"""What every benchmark shares: timing, peak memory, one provenance schema, atomic rows.

Each benchmark script imports this (``from _harness import ...``: the scripts run as
``python benchmarks/NAME.py``, so this folder is on ``sys.path``). Every row it writes carries
the same provenance columns (:data:`PROVENANCE`): ``device``, ``threads``, ``torch``, ``galu``,
``git``, ``timestamp`` (UTC), so that rows from different runs and machines can be pooled and
told apart.
"""

from __future__ import annotations

import datetime as dt
import resource
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from galu.runner.rundir import atomic_write_text

RESULTS = Path(__file__).parent / "results"
PROVENANCE = ("device", "threads", "torch", "galu", "git", "timestamp")


def sync(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so a timer measures the work itself."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_time(
    fn: Callable[[], Any],
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (seconds) after ``warmup`` untimed ones;
    GPU work is synchronised before and after each call."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def times(
    fn: Callable[[], Any], *, repeats: int, device: torch.device | str | None = None
) -> list[float]:
    """Every one of ``repeats`` timed calls of ``fn`` (seconds), GPU work synchronised."""
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MiB; Linux reports KiB). Measure one case
    per fresh process for a peak that is the case's own."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_peak_bytes(fn: Callable[[], Any], device: torch.device | str) -> int:
    """Bytes allocated at ``fn``'s peak above what was allocated before it (CUDA only)."""
    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def _git() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def provenance(device: torch.device | str | None = None) -> dict[str, Any]:
    """The provenance columns of a row written now (:data:`PROVENANCE`)."""
    import galu

    dev = torch.device(device) if device is not None else torch.device("cpu")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return dict(
        device=name,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        galu=getattr(galu, "__version__", ""),
        git=_git(),
        timestamp=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def write_rows(
    rows: Iterable[dict[str, Any]] | pd.DataFrame,
    path: Path | str,
    *,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Write ``rows`` with the provenance columns to the CSV ``path``, atomically (a crash leaves
    the previous file, never half a table) and respecting the umask; print where."""
    table = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for key, value in provenance(device).items():
        if key not in table.columns:  # a row's own column (e.g. the GPU it ran on) wins
            table[key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, table.to_csv(index=False))
    print(f"rows: {path}")
    return table
