"""Half-space contexts: ``C`` fixed hyperplanes per neuron choose one of its ``2^C`` weight
vectors, ``c(z) = Σ_j 2^j · 1[⟨v_j, z⟩ > b_j]``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

RULES = ("deepmind", "pygln")


class HalfSpaces(nn.Module):
    """Fixed hyperplanes ``(v, b)`` for a batch of neurons: ``normals`` ``(*shape, C, d)`` and
    ``offsets`` ``(*shape, C)``. Calling it on side information ``z`` ``(T, d)`` returns the
    context index of every neuron for every example, ``(T, *shape)`` int64, from one GEMM.

    Build one with :meth:`sample` (a seeded draw by DeepMind's or pygln's rule) or from tensors of
    your own.
    """

    normals: torch.Tensor
    offsets: torch.Tensor
    powers: torch.Tensor

    def __init__(self, normals: torch.Tensor, offsets: torch.Tensor) -> None:
        super().__init__()
        if normals.ndim < 2:
            raise ValueError(
                f"`normals` must have shape (*neurons, C, d); got {tuple(normals.shape)}."
            )
        if tuple(offsets.shape) != tuple(normals.shape[:-1]):
            raise ValueError(
                f"`offsets` must have shape {tuple(normals.shape[:-1])} (normals' shape without "
                f"d); got {tuple(offsets.shape)}."
            )
        self.register_buffer("normals", normals)
        self.register_buffer("offsets", offsets.to(normals.dtype))
        self.register_buffer(
            "powers", 2 ** torch.arange(normals.shape[-2], device=normals.device), persistent=False
        )

    @classmethod
    def sample(
        cls,
        shape: Sequence[int],
        side_features: int,
        context_dim: int,
        *,
        rule: str = "deepmind",
        offset_scale: float = 0.05,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> HalfSpaces:
        """Draw ``context_dim`` hyperplanes for each of ``shape`` neurons on ``side_features``
        dimensions. ``rule="deepmind"``: unit-norm Gaussian normals, offsets ``N(0,
        offset_scale²)``; ``rule="pygln"``: unnormalised ``N(0, I)`` normals, offsets 0. The draw
        happens in float64 on the CPU from ``generator``, so it is the same on every device."""
        if rule not in RULES:
            raise ValueError(f"`rule` (={rule!r}) must be one of {', '.join(RULES)}.")
        if isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 0:
            raise ValueError(f"`context_dim` (={context_dim!r}) must be an integer >= 0.")
        if not (isinstance(offset_scale, int | float) and 0 <= offset_scale < float("inf")):
            raise ValueError(f"`offset_scale` (={offset_scale!r}) must be a finite number >= 0.")
        shape = tuple(shape)
        v = torch.randn(
            *shape, context_dim, side_features, generator=generator, dtype=torch.float64
        )
        if rule == "deepmind":
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
            b = offset_scale * torch.randn(
                *shape, context_dim, generator=generator, dtype=torch.float64
            )
        else:
            b = torch.zeros(*shape, context_dim, dtype=torch.float64)
        return cls(v.to(dtype=dtype, device=device), b.to(dtype=dtype, device=device))

    @property
    def context_dim(self) -> int:
        return self.normals.shape[-2]

    @property
    def side_features(self) -> int:
        return self.normals.shape[-1]

    def bits(self, z: torch.Tensor) -> torch.Tensor:
        """``1[⟨v_j, z⟩ > b_j]`` for every example, neuron and hyperplane: ``(T, *shape, C)``."""
        shape = self.normals.shape[:-1]
        v = self.normals.reshape(-1, self.side_features)
        dist = z.to(v.dtype) @ v.T  # (T, Π shape · C): one GEMM for every neuron
        return dist.view(z.shape[0], *shape) > self.offsets

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.context_dim > 62:
            raise ValueError(
                f"a context index of C={self.context_dim} hyperplanes does not fit in int64 "
                "(at most 62); use bits() for gates."
            )
        return (self.bits(z).long() * self.powers).sum(-1)
