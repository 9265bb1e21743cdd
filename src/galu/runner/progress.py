"""Progress of a run over its (point, seed) pairs: :class:`galu.progress.Progress` (re-exported
here as ``RunProgress``) and the one-line description of a point."""

from __future__ import annotations

from typing import Any

from galu.progress import Progress, RunProgress

__all__ = ["Progress", "RunProgress", "describe_params"]


def describe_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())
