"""The minibatch-epoch loop: one place for "shuffle, split into batches, step" so that
experiments only write what differs — the loss of a batch and what to record after an epoch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from galu._validate import positive_int


def minibatch_epochs(
    opt: torch.optim.Optimizer,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    after_epoch: Callable[[int], None] | None = None,
) -> None:
    """``epochs`` passes over ``n`` examples: each pass draws a permutation from ``generator``
    (or keeps the order with ``shuffle=False``), splits it into batches of ``batch_size``
    indices (the last may be smaller) and takes one ``opt`` step on ``batch_loss(indices)``.
    ``after_epoch(epoch)`` runs after each pass (epochs count from 1).

    Example::

        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        minibatch_epochs(opt, lambda idx: F.cross_entropy(net(X[idx]), y[idx]), len(y),
                         epochs=10, batch_size=32, generator=torch.Generator().manual_seed(0))
    """
    positive_int("n", n)
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for idx in order.split(batch_size):
            opt.zero_grad(set_to_none=True)
            batch_loss(idx).backward()
            opt.step()
        if after_epoch is not None:
            after_epoch(epoch)
