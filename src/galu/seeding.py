"""Deriving independent, reproducible random streams from one explicit seed."""

from __future__ import annotations

import numbers
import zlib

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed determined by ``seed`` and the ``keys`` (e.g. ``"data", m, d``).

    Different keys give statistically independent streams (``numpy.random.SeedSequence``), and the
    same ``(seed, keys)`` always gives the same number, on every machine and backend.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` (={seed!r}) must be a non-negative integer.")
    words = [int(seed)] + [zlib.crc32(_canonical(k).encode()) for k in keys]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _canonical(key: object) -> str:
    """The same text for equal keys whatever their type (``5``, ``np.int64(5)``; ``0.5``,
    ``np.float32(0.5)``), and independent of how NumPy prints its scalars."""
    if isinstance(key, bool | np.bool_):
        return repr(bool(key))
    if isinstance(key, numbers.Integral):
        return repr(int(key))
    if isinstance(key, numbers.Real):
        return repr(float(key))
    if isinstance(key, str):
        return repr(str(key))
    return repr(key)


def generator(seed: int, *keys: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))
