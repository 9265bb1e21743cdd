"""Synthetic tasks generated from an explicit generator."""

from __future__ import annotations

import torch


def random_regression(
    m: int,
    d: int,
    *,
    outputs: int | None = None,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs and labels for memorization (Fiat et al. 2019, experiment 1).

    ``X ~ N(0, I_d)`` of shape ``(m, d)`` and labels ``y ~ N(0, 1)`` of shape ``(m,)``
    (or ``(m, outputs)``), independent of ``X`` — there is nothing to learn, only to memorize.
    """
    for name, v in (("m", m), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` (={v!r}) must be a positive integer.")
    X = torch.randn((m, d), generator=generator, dtype=dtype)
    shape = (m,) if outputs is None else (m, outputs)
    y = torch.randn(shape, generator=generator, dtype=dtype)
    return X, y
