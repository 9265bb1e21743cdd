"""Explicit, seeded parameter initialisation (no hidden global RNG)."""

from __future__ import annotations

import math

import torch


def sample_uniform(
    shape: tuple[int, ...],
    bound: float,
    *,
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """``U(-bound, bound)`` drawn on the generator's device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else "cpu"
    t = torch.rand(shape, generator=generator, dtype=dtype, device=gen_device)
    return (t * (2 * bound) - bound).to(device)


def sample_normal(
    shape: tuple[int, ...],
    std: float,
    *,
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """``N(0, std²)`` drawn on the generator's device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else "cpu"
    return (torch.randn(shape, generator=generator, dtype=dtype, device=gen_device) * std).to(
        device
    )


def fan_in_bound(fan_in: int) -> float:
    """PyTorch's ``nn.Linear`` default bound ``1/√fan_in``."""
    return 1.0 / math.sqrt(fan_in)


def check_last_dim(module: str, x: torch.Tensor, expected: int) -> None:
    """Refuse an input whose last dimension is not the module's input width (``module`` names
    the module and its width argument, e.g. ``"FeedForward(in_features=16)"``)."""
    if x.ndim < 1 or x.shape[-1] != expected:
        got = x.shape[-1] if x.ndim else "none (a 0-d tensor)"
        raise ValueError(
            f"{module} got input with last dimension {got} (shape {tuple(x.shape)}); "
            f"pass inputs of shape (..., {expected})."
        )
