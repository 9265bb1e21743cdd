"""Where sweep tasks run: in this process, on a local process pool, or on a Ray cluster.

Every backend runs the same top-level function, :func:`execute`, on the same :class:`Task`
values and yields :class:`Outcome` values as tasks finish (in any order). Workers only compute:
the sweep process alone writes files, so a worker that dies or a sweep that is killed can never
leave a half-written or duplicated row.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

BACKENDS = ("inline", "process", "ray")


@dataclass(frozen=True)
class Task:
    """One point of a sweep and the seeds to run for it."""

    experiment: str
    config: dict[str, Any]  # the resolved config of the point's grid cell (JSON values)
    params: dict[str, Any]  # the experiment's point parameters
    seeds: tuple[int, ...]
    threads: int = 1  # torch threads while it runs (fixed, so rows do not depend on the backend)


@dataclass(frozen=True)
class Outcome:
    """What running a task gave: rows per seed, or the error and its traceback."""

    task: Task
    rows: dict[int, list[dict[str, Any]]] | None
    seconds: float
    error: str | None = None
    traceback: str | None = None
    worker: str = ""


def execute(task: Task) -> Outcome:
    """Run one task. Never raises for a failing point: the error comes back as data."""
    import torch

    from galu.experiments import get_experiment

    worker = f"{os.uname().nodename}:{os.getpid()}"
    t0 = time.perf_counter()
    previous = torch.get_num_threads()
    torch.set_num_threads(task.threads)
    try:
        exp = get_experiment(task.experiment).from_saved(task.config)
        rows = exp.run_seeds(dict(task.params), list(task.seeds))
        return Outcome(task, {int(s): rows[s] for s in task.seeds}, _since(t0), worker=worker)
    except Exception as exc:  # a failing point is recorded, never fatal to the sweep
        error = f"{type(exc).__name__}: {exc}"
        return Outcome(task, None, _since(t0), error, traceback.format_exc(), worker)
    finally:
        torch.set_num_threads(previous)


def _since(t0: float) -> float:
    return time.perf_counter() - t0


class Backend(Protocol):
    name: str
    workers: int

    def run(self, tasks: list[Task]) -> Iterator[Outcome]:
        """Run every task; yield each outcome as soon as it is known."""
        ...

    def close(self) -> None: ...


class InlineBackend:
    """Tasks one after another in this process: no start-up cost, easiest to debug."""

    name = "inline"

    def __init__(self, workers: int = 1) -> None:
        self.workers = 1

    def run(self, tasks: list[Task]) -> Iterator[Outcome]:
        for task in tasks:
            yield execute(task)

    def close(self) -> None:
        pass


class ProcessBackend:
    """A local pool of ``workers`` processes (spawned, so no torch state is forked)."""

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    def run(self, tasks: list[Task]) -> Iterator[Outcome]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        futures = {self._pool.submit(execute, t): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool as exc:  # a worker died (e.g. killed, out of memory)
                yield Outcome(
                    futures[fut], None, 0.0, f"worker process died: {exc}",
                    "".join(traceback.format_exception(exc)),
                )  # fmt: skip

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Tasks as Ray remote functions (one CPU each).

    ``address=None`` starts a local Ray instance with ``workers`` CPUs (default: all); ``"auto"``
    or ``"ray://host:10001"`` joins an existing cluster, whose size then sets the parallelism.
    Environment variables that locate experiments (``GALU_EXPERIMENTS``, ``PYTHONPATH``) are
    passed to the workers.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError(
                "--backend ray needs Ray: pip install 'galu[ray]' (or pip install ray)."
            ) from exc
        self._ray = ray
        env = {k: os.environ[k] for k in ("GALU_EXPERIMENTS", "PYTHONPATH") if k in os.environ}
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = dict(
                address=address,
                runtime_env={"env_vars": env} if env else None,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            if address is None:
                kwargs["num_cpus"] = workers or os.cpu_count() or 1
            ray.init(**kwargs)
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(execute)

    def run(self, tasks: list[Task]) -> Iterator[Outcome]:
        ray = self._ray
        refs = {self._remote.remote(t): t for t in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except Exception as exc:  # the worker died; the point is recorded as failed
                yield Outcome(
                    refs[done[0]], None, 0.0, f"ray task failed: {type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(exc)),
                )  # fmt: skip

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_backend(name: str, workers: int | None = None, address: str | None = None) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise ValueError(f"`backend` (={name!r}) must be one of {', '.join(BACKENDS)}.")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"`workers` (={workers!r}) must be a positive integer.")
    if address is not None and name != "ray":
        raise ValueError(f"`address` (={address!r}) only applies to --backend ray.")
    if name == "inline":
        if workers not in (None, 1):
            raise ValueError(f"--backend inline runs one task at a time; got workers={workers}.")
        return InlineBackend()
    if name == "process":
        return ProcessBackend(workers)
    return RayBackend(workers, address)
