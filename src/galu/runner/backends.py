"""Where sweep tasks run: in this process, on a local process pool, or on a Ray cluster.

Every backend runs the same top-level function, :func:`execute`, on the same :class:`Task`
values and yields :class:`Outcome` values as tasks finish (in any order). Workers only compute:
the sweep process alone writes files, so a worker that dies or a sweep that is killed can never
leave a half-written or duplicated row.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from galu._validate import positive_int

BACKENDS = ("inline", "process", "ray")


@dataclass(frozen=True)
class Task:
    """One point of a sweep and the seeds to run for it."""

    experiment: str
    config: dict[str, Any]  # the resolved config of the point's grid cell (JSON values)
    params: dict[str, Any]  # the experiment's point parameters
    seeds: tuple[int, ...]
    # Torch threads while it runs (fixed, so rows do not depend on the backend); None: as is.
    threads: int | None = 1


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
    if task.threads is not None:
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

    def run(
        self, tasks: list[Task], on_start: Callable[[Task], None] | None = None
    ) -> Iterator[Outcome]:
        """Run every task; call ``on_start`` as each starts; yield each outcome when known."""
        ...

    def close(self) -> None: ...


class InlineBackend:
    """Tasks one after another in this process: no start-up cost, easiest to debug."""

    name = "inline"

    def __init__(self, workers: int = 1) -> None:
        self.workers = 1

    def run(
        self, tasks: list[Task], on_start: Callable[[Task], None] | None = None
    ) -> Iterator[Outcome]:
        for task in tasks:
            if on_start is not None:
                on_start(task)
            yield execute(task)

    def close(self) -> None:
        pass


class ProcessBackend:
    """A local pool of ``workers`` processes (spawned, so no torch state is forked).

    Each worker takes one task at a time over its own pipe, so the pool always knows which task
    a worker was running: a worker that dies (killed, out of memory, a crash in native code)
    fails that task only; a fresh worker takes its place and the queue goes on. Workers watch
    their parent and exit when it dies, so ``kill -9`` of the sweep leaves no orphans.
    """

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        import multiprocessing

        self.workers = workers or os.cpu_count() or 1
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: dict[Any, tuple[_Worker, Task]] = {}  # conn -> (worker, task)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(child, os.getpid()), daemon=True, name="galu-worker"
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def run(
        self, tasks: list[Task], on_start: Callable[[Task], None] | None = None
    ) -> Iterator[Outcome]:
        from collections import deque
        from multiprocessing.connection import wait

        queue = deque(tasks)
        while queue or self._busy:
            while queue and (self._idle or len(self._busy) < self.workers):
                worker = self._idle.pop() if self._idle else self._spawn()
                task = queue.popleft()
                try:
                    worker.conn.send(task)
                except (BrokenPipeError, OSError):  # died while idle: replace it, keep the task
                    worker.stop()
                    queue.appendleft(task)
                    continue
                self._busy[worker.conn] = (worker, task)
                if on_start is not None:
                    on_start(task)
            by_sentinel = {w.proc.sentinel: c for c, (w, _) in self._busy.items()}
            for ready in wait([*self._busy, *by_sentinel]):
                conn = by_sentinel.get(ready, ready)
                if conn not in self._busy:  # both its pipe and its sentinel were ready
                    continue
                worker, task = self._busy.pop(conn)
                outcome = None
                if conn.poll():
                    try:
                        outcome = conn.recv()
                    except (EOFError, OSError):
                        outcome = None
                if outcome is not None:
                    self._idle.append(worker)
                    yield outcome
                    continue
                worker.proc.join(timeout=5)
                worker.stop()
                yield Outcome(task, None, 0.0, _death(worker.proc.exitcode), None, worker.label)

    def close(self) -> None:
        for worker in self._idle:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self._idle:
            worker.proc.join(timeout=10)
        for worker, _ in self._busy.values():  # interrupted mid-task: nothing to wait for
            worker.stop()
        for worker in self._idle:
            worker.stop()
        self._idle, self._busy = [], {}


@dataclass
class _Worker:
    proc: Any
    conn: Any

    @property
    def label(self) -> str:
        return f"{os.uname().nodename}:{self.proc.pid}"

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)
        with contextlib.suppress(OSError):
            self.conn.close()


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
        if exitcode == -signal.SIGKILL:
            how += " (out of memory, or killed by hand)"
    else:
        how = f"exit code {exitcode}"
    return f"worker process died while running this point ({how})"


def _watch_parent(parent: int) -> None:
    """Exit this process as soon as its parent is gone (then ``getppid`` changes)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="galu-parent-watch", daemon=True).start()


def _worker_main(conn: Any, parent: int) -> None:
    """A pool worker: run the tasks that arrive on ``conn`` until ``None`` or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _watch_parent(parent)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(execute(task))


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

    def run(
        self, tasks: list[Task], on_start: Callable[[Task], None] | None = None
    ) -> Iterator[Outcome]:
        ray = self._ray
        refs = {self._remote.remote(t): t for t in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except Exception as exc:  # the worker died; the point is recorded as failed
                yield Outcome(
                    refs[done[0]],
                    None,
                    0.0,
                    f"ray task failed: {type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(exc)),
                )

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def check_backend(name: str, workers: int | None = None, address: str | None = None) -> None:
    """Raise ``ValueError`` for a backend choice that cannot run (before anything is created)."""
    if name not in BACKENDS:
        raise ValueError(f"`backend` (={name!r}) must be one of {', '.join(BACKENDS)}.")
    if workers is not None:
        positive_int("workers", workers)
    if address is not None and name != "ray":
        raise ValueError(f"`address` (={address!r}) only applies to --backend ray.")
    if name == "inline" and workers not in (None, 1):
        raise ValueError(f"--backend inline runs one task at a time; got workers={workers}.")
    if name == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise RuntimeError(
                "--backend ray needs Ray: pip install 'galu[ray]' (or pip install ray)."
            )


def make_backend(name: str, workers: int | None = None, address: str | None = None) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`)."""
    check_backend(name, workers, address)
    if name == "inline":
        return InlineBackend()
    if name == "process":
        return ProcessBackend(workers)
    return RayBackend(workers, address)
