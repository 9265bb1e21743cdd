"""Measurements of online (test-then-train) learners."""

from __future__ import annotations

import numpy as np


def prequential_curve(correct: np.ndarray, points: int) -> list[tuple[int, float]]:
    """Prequential accuracy (cumulative mean of test-then-train correctness) at ``points``
    evenly spaced steps, the first at ``len / points``."""
    cum = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    first = max(1, len(correct) // points)
    steps = np.unique(np.linspace(first, len(correct), points).round().astype(int))
    return [(int(s), float(cum[s - 1])) for s in steps]
