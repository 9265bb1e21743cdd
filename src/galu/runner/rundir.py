"""The run directory: the unit of output, written atomically and resumable.

Layout::

    DIR/config.json        experiment, preset, resolved config, versions, git sha, device
    DIR/points/<id>.json   one finished (point, seed): its parameters and rows (atomic write)
    DIR/results.csv        every row of every finished point (rebuilt atomically from points/)
    DIR/figures/*.png      the experiment's figures
    DIR/log.txt            one line per finished point
    DIR/failed/<id>.json   one failed (point, seed): error and traceback (atomic write)
    DIR/.galu.lock         held by the one process writing here (see :mod:`galu.runner.lock`)

A point file appears only once its rows are complete (write to a temporary file, ``fsync``,
``os.replace``), so a crash or ``kill`` leaves either the whole point or nothing; re-running
skips every point that has a file, so nothing is done twice or duplicated.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def _umask() -> int:
    """The process's umask (read by setting it, so under a lock: threads share it)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()

_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, then re-run the same command to resume "
    "(finished points are kept)",
    errno.EDQUOT: "the disk quota is exhausted: free some space, then re-run the same command "
    "to resume (finished points are kept)",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "the directory is not writable: choose another --out or fix its permissions",
    errno.EPERM: "the directory is not writable: choose another --out or fix its permissions",
    errno.ENOTDIR: "a path component is a file, not a directory: choose another --out",
    errno.EEXIST: "a path component is a file, not a directory: choose another --out",
}


@contextlib.contextmanager
def write_error(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into a :class:`RunDirError` that says what
    failed and what to do."""
    try:
        yield
    except OSError as exc:
        hint = _WRITE_HINTS.get(exc.errno or -1, "check the output directory and re-run")
        raise RunDirError(
            f"cannot write {exc.filename or path}: {exc.strerror or exc} — {hint}."
        ) from exc


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    The file gets the mode a plain ``open`` would give it (``0o666`` less the umask), not the
    ``0o600`` of the temporary file it is written through. A failure to write raises
    :class:`RunDirError` naming the file and what to do.
    """
    with write_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def point_id(params: dict[str, Any], seed: int) -> str:
    """Stable id of a (point, seed): a hash of its canonical JSON."""
    blob = json.dumps({"params": params, "seed": seed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def environment() -> dict[str, Any]:
    """Versions, git sha and device, recorded with every run."""
    import importlib.metadata as md

    import torch

    versions: dict[str, str | None] = {}
    for pkg in ("galu", "torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    try:
        sha = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        sha = None
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    return {
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_sha": sha,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }


class RunDirError(ValueError):
    """An output directory that cannot hold (or resume) this run."""


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.points_dir = self.path / "points"
        self.fig_dir = self.path / "figures"
        self.config_path = self.path / "config.json"
        self.results_path = self.path / "results.csv"
        self.log_path = self.path / "log.txt"
        self.failed_dir = self.path / "failed"

    def check_target(self) -> None:
        """Refuse an ``--out`` that cannot be a run directory, before anything is written."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(
                f"--out {self.path} is a file, not a directory; choose a directory path "
                "(it is created if missing)."
            )

    # ---------------------------------------------------------------- config
    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise RunDirError(f"{self.path} is not a galu run directory (no config.json).")
        try:
            record = json.loads(self.config_path.read_text())
            if not isinstance(record, dict) or "experiment" not in record:
                raise ValueError("it does not hold a galu run record")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunDirError(
                f"{self.config_path} is damaged ({exc}). It records the run's settings, so "
                "galu will not guess them: restore the file (from a backup or a colleague's "
                f"copy), or start a new --out. The finished points in {self.points_dir} are "
                "intact and untouched."
            ) from None
        return record

    def start(
        self,
        experiment: str,
        preset: str,
        config: dict[str, Any],
        grid: dict[str, list[Any]] | None = None,
    ) -> bool:
        """Create the directory, or check that it holds the same run. Returns True if resuming.

        ``grid`` (sweeps only) holds the extra scalar axes; it must match too.
        """
        if self.config_path.exists():
            from galu.experiments.config import upgrade_keys

            old = self.read_config()
            old["config"] = upgrade_keys(old.get("config", {}), warn=False)
            if old.get("grid") != grid:
                raise RunDirError(
                    f"--out {self.path} holds a run with grid {old.get('grid')!r}, not {grid!r}. "
                    "Use a new --out, or the same --grid to resume it."
                )
            if old.get("experiment") != experiment or old.get("config") != config:
                diff = [
                    f"{k}: {old.get('config', {}).get(k)!r} -> {v!r}"
                    for k, v in config.items()
                    if old.get("config", {}).get(k) != v
                ]
                if old.get("experiment") != experiment:
                    diff.insert(0, f"experiment: {old.get('experiment')!r} -> {experiment!r}")
                raise RunDirError(
                    f"--out {self.path} holds a different run ({'; '.join(diff)}). "
                    "Use a new --out, or the same settings to resume it."
                )
            self._remove_stale_temporaries()
            return True
        if self.path.exists() and any(p.name != ".galu.lock" for p in self.path.iterdir()):
            raise RunDirError(
                f"--out {self.path} exists, is not empty and is not a galu run directory; "
                "choose another --out."
            )
        record = {
            "experiment": experiment,
            "preset": preset,
            "config": config,
            "grid": grid,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **environment(),
        }
        atomic_write_text(self.config_path, json.dumps(record, indent=2) + "\n")
        return False

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writes that a crash or SIGKILL cut short (never read as points)."""
        for folder in (self.path, self.points_dir, self.failed_dir):
            if folder.exists():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    # ---------------------------------------------------------------- points
    def done_ids(self) -> set[str]:
        return {rec["id"] for rec in self.read_points()}

    def failed_ids(self) -> set[str]:
        if not self.failed_dir.exists():
            return set()
        return {p.stem for p in self.failed_dir.glob("*.json")}

    def write_point(
        self, params: dict[str, Any], seed: int, rows: list[dict[str, Any]], seconds: float
    ) -> None:
        pid = point_id(params, seed)
        record = {"id": pid, "params": params, "seed": seed, "seconds": seconds, "rows": rows}
        atomic_write_text(self.points_dir / f"{pid}.json", json.dumps(record) + "\n")
        with write_error(self.log_path), open(self.log_path, "a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {pid} seed={seed} {params} {seconds:.2f}s\n")

    def read_points(self) -> list[dict[str, Any]]:
        """Every finished point. A file that does not parse (damaged outside galu: writes are
        atomic) is moved aside to ``<id>.json.corrupt`` with a warning, so its point is redone."""
        if not self.points_dir.exists():
            return []
        records = []
        for path in sorted(self.points_dir.glob("*.json")):
            try:
                rec = json.loads(path.read_text())
                if rec.get("id") != path.stem or not isinstance(rec.get("rows"), list):
                    raise ValueError("not a galu point record")
            except (ValueError, OSError) as exc:
                aside = path.with_name(path.name + ".corrupt")
                os.replace(path, aside)
                warnings.warn(
                    f"{path} is damaged ({exc}); moved to {aside.name}, its point will "
                    "be run again.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            records.append(rec)
        return records

    # ---------------------------------------------------------------- results
    def table_from_points(self, records: list[dict[str, Any]] | None = None) -> pd.DataFrame:
        """The tidy table of ``records`` (default: every finished point, read now)."""
        rows = []
        for rec in self.read_points() if records is None else records:
            for row in rec["rows"]:
                rows.append({**rec["params"], "seed": rec["seed"], **row})
        table = pd.DataFrame(rows)
        if not table.empty:
            keys = [c for c in table.columns if c not in ("value",)]
            table = table.sort_values(keys, kind="stable").reset_index(drop=True)
        return table

    def write_results(self) -> pd.DataFrame:
        table = self.table_from_points()
        atomic_write_text(self.results_path, table.to_csv(index=False))
        return table

    def read_results(self) -> pd.DataFrame:
        if not self.results_path.exists():
            return self.write_results()
        try:
            return pd.read_csv(self.results_path)
        except pd.errors.EmptyDataError:  # no point finished yet
            return pd.DataFrame()
