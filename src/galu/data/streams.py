"""Classification streams for online learners: a data set's examples in a seeded order, tasks
made by permuting input coordinates, and the synthetic stream with a known Bayes predictor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from galu._validate import renamed
from galu.data.datasets import load_dataset
from galu.seeding import derive_seed


@dataclass(frozen=True)
class Stream:
    """A classification stream: training examples in the order they arrive, and a test set."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    def standardised(self) -> Stream:
        mu, sd = self.X.mean(0), self.X.std(0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        return Stream(
            (self.X - mu) / sd, self.y, (self.X_test - mu) / sd, self.y_test, self.n_classes
        )


def load_stream(
    name: str, seed: int, *, data_dir: str | None = None, limit: int = 0, root: str | None = None
) -> Stream:
    """A data set's training split in a seeded random order (the first ``limit`` examples when
    ``limit > 0``) and its test split, standardised with the training statistics. ``name`` is
    one of :data:`galu.data.DATASETS`; ``data_dir`` holds its files where it needs them
    (``root`` is its old name, read with a DeprecationWarning until galu 0.3)."""
    data_dir = renamed("load_stream", "data_dir", data_dir, "root", root)
    ds = load_dataset(name, root=data_dir or None, val_fraction=0.0, seed=seed, dtype=torch.float64)
    X, y = ds.X_train.numpy(), ds.y_train.numpy()
    order = np.random.default_rng(derive_seed(seed, "gln-stream", name)).permutation(len(y))
    if limit > 0:
        order = order[:limit]
    return Stream(
        X[order], y[order], ds.X_test.numpy(), ds.y_test.numpy(), ds.n_classes
    ).standardised()


def permuted_tasks(s: Stream, tasks: int, seed: int) -> list[Stream]:
    """Task 0 is the data set; task ``i > 0`` the same with a fixed random permutation of the
    input coordinates (applied to training and test inputs alike)."""
    out = [s]
    for i in range(1, tasks):
        perm = np.random.default_rng(derive_seed(seed, "permutation", i)).permutation(s.X.shape[1])
        out.append(Stream(s.X[:, perm], s.y, s.X_test[:, perm], s.y_test, s.n_classes))
    return out


def bayes_probability(x: np.ndarray) -> np.ndarray:
    """``P(y = 1 | x) = σ(3 sin 3x₁ + 4x₂² − 1.5)`` of the synthetic stream."""
    return 1 / (1 + np.exp(-(3 * np.sin(3 * x[:, 0]) + 4 * x[:, 1] ** 2 - 1.5)))
