"""How gates move during training (``science/dgn.md``): the fraction of gates that flipped and
the alignment of a kernel with the labels."""

from __future__ import annotations

import torch


def flipped_fraction(gates: torch.Tensor, reference: torch.Tensor) -> float:
    """The fraction of entries of ``gates`` that differ from ``reference`` (same shape)."""
    if gates.shape != reference.shape:
        raise ValueError(
            f"`gates` {tuple(gates.shape)} and `reference` {tuple(reference.shape)} must have "
            "one shape."
        )
    return float((gates != reference).float().mean())


def label_kernel(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``Y Yᵀ`` of the centred one-hot labels (float64): the target of :func:`kernel_alignment`."""
    Y = torch.nn.functional.one_hot(labels, n_classes).double()
    Y = Y - Y.mean(0)
    return Y @ Y.T


def kernel_alignment(H: torch.Tensor, target: torch.Tensor) -> float:
    """``⟨H, T⟩_F / (‖H‖_F ‖T‖_F)``: the cosine between a kernel matrix and a target kernel."""
    return float((H * target).sum() / (H.norm() * target.norm()))
