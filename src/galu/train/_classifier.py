"""Classifier training with validation-based early stopping (one network, minibatch Adam)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from galu.seeding import generator

Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]


def accuracy(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``X`` whose arg-max output equals the label."""
    with torch.no_grad():
        return float((net(X).argmax(-1) == y).float().mean())


def fit_classifier(
    net: nn.Module,
    splits: Splits,
    *,
    lr: float,
    steps: int,
    batch_size: int,
    eval_every: int,
    seed: int,
) -> dict[str, float]:
    """Adam on cross-entropy over ``splits["train"]``, evaluating every ``eval_every`` steps and
    keeping the parameters of the best **validation** accuracy (early stopping).

    ``splits`` maps ``train`` / ``val`` / ``test`` to ``(inputs, integer labels)``. Only
    trainable parameters are optimised. Minibatch order comes from ``seed``. Returns
    ``train_loss``, ``train_acc``, ``val_acc``, ``test_acc`` (all at the selected parameters)
    and ``test_acc_max``, the maximum test accuracy over evaluations — what selecting on the
    test set would report, kept only to compare with papers that did.
    """
    (X_tr, y_tr), (X_val, y_val), (X_te, y_te) = splits["train"], splits["val"], splits["test"]
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    gen = generator(seed, "batches", lr)
    m = X_tr.shape[0]
    best_val, best_state = -1.0, copy.deepcopy(net.state_dict())
    test_max, perm, pos = 0.0, torch.randperm(m, generator=gen), 0
    for step in range(1, steps + 1):
        if pos >= m:
            perm, pos = torch.randperm(m, generator=gen), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        loss = nn.functional.cross_entropy(net(X_tr[idx]), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            val, test = accuracy(net, X_val, y_val), accuracy(net, X_te, y_te)
            test_max = max(test_max, test)
            if val > best_val:
                best_val, best_state = val, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    with torch.no_grad():
        train_loss = float(nn.functional.cross_entropy(net(X_tr), y_tr))
    return dict(
        train_loss=train_loss,
        train_acc=accuracy(net, X_tr, y_tr),
        val_acc=best_val,
        test_acc=accuracy(net, X_te, y_te),
        test_acc_max=test_max,
    )
