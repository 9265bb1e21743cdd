"""Resumable execution of an experiment's grid into a run directory."""

from galu.runner.reproduce import PAPERS, reproduce
from galu.runner.run import RunResult, default_out, plot_run, run_experiment
from galu.runner.rundir import RunDir, RunDirError, atomic_write_text, point_id

__all__ = [
    "PAPERS",
    "RunDir",
    "RunDirError",
    "RunResult",
    "atomic_write_text",
    "default_out",
    "plot_run",
    "point_id",
    "reproduce",
    "run_experiment",
]
