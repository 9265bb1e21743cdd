"""Online training at batch 1 (test, then train on the example) and the empirical Fisher
diagonal that elastic weight consolidation (EWC) penalises with."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def train_online(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    opt: torch.optim.Optimizer,
    penalty: Callable[[], torch.Tensor] | None = None,
) -> np.ndarray:
    """One pass at batch 1 (test-then-train); returns the per-example correctness."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    correct = np.empty(len(y), dtype=bool)
    loss_fn = nn.CrossEntropyLoss()
    for t in range(len(y)):
        out = model(Xt[t : t + 1])
        correct[t] = bool(out.argmax(1).item() == yt[t].item())
        loss = loss_fn(out, yt[t : t + 1])
        if penalty is not None:
            loss = loss + penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return correct


def fisher_diagonal(model: nn.Module, X: np.ndarray, y: np.ndarray) -> list[torch.Tensor]:
    """The empirical Fisher's diagonal: mean over examples of the squared per-example gradient
    of the log-likelihood of the true label."""
    fisher = [torch.zeros_like(p) for p in model.parameters()]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    loss_fn = nn.CrossEntropyLoss()
    for t in range(len(y)):
        model.zero_grad()
        loss_fn(model(Xt[t : t + 1]), yt[t : t + 1]).backward()
        for f, p in zip(fisher, model.parameters(), strict=True):
            assert p.grad is not None
            f += p.grad.detach() ** 2 / len(y)
    return fisher
