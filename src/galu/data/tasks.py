"""Regression tasks of the GGDLN experiments (Li & Sompolinsky 2022, ``science/ggdln.md``).

``teacher`` — the template task: ``P`` templates ``x ~ N(0, I)``, labels ``y = w·x/√N0 + σ₀ξ``,
test inputs ``√(1−γ) x_template + √γ ξ`` labelled by the teacher; ``digits``, ``mnist1d``,
``mnist`` — even vs odd digits (±1), inputs PCA-whitened to ``N0`` dimensions with the
statistics of the whole training split (no labels used; ``mnist`` reads the IDX files from
``data_dir``), then ``P`` training and ``P_test`` test examples drawn per seed.
"""

from __future__ import annotations

import math
import typing
from typing import Literal

import numpy as np
import torch

from galu.seeding import derive_seed, generator

TaskName = Literal["teacher", "digits", "mnist1d", "mnist"]
TASKS: tuple[str, ...] = typing.get_args(TaskName)


def ggdln_task(
    task: str,
    P: int,
    P_test: int,
    N0: int,
    seed: int,
    *,
    noise: float = 0.1,
    gamma: float = 0.5,
    data_dir: str | None = None,
    teacher_seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X (P, N0), y (P,), X_test, y_test`` in float64 (module docstring). ``teacher_seed``
    fixes the template task's teacher ``w`` independently of the inputs (several tasks, one
    teacher); by default ``w`` comes from ``seed`` like everything else."""
    if task not in TASKS:
        raise ValueError(f"`task` (={task!r}) must be one of {TASKS}.")
    g = generator(seed, "ggdln-task", task, P, P_test, N0)
    if task == "teacher":
        X = torch.randn(P, N0, generator=g, dtype=torch.float64)
        gw = g if teacher_seed is None else generator(teacher_seed, "ggdln-teacher", N0)
        w = torch.randn(N0, generator=gw, dtype=torch.float64)
        y = X @ w / math.sqrt(N0) + noise * torch.randn(P, generator=g, dtype=torch.float64)
        pick = torch.randint(0, P, (P_test,), generator=g)
        xi = torch.randn(P_test, N0, generator=g, dtype=torch.float64)
        Xt = math.sqrt(1 - gamma) * X[pick] + math.sqrt(gamma) * xi
        return X, y, Xt, Xt @ w / math.sqrt(N0)
    from galu.data import PCAWhitener, load_dataset

    ds = load_dataset(
        task,
        root=data_dir,
        seed=0,
        val_fraction=0.0,
        dtype=torch.float64,
        **({"mnist1d_samples": 4000} if task == "mnist1d" else {}),
    )
    if len(ds.y_train) < P or P_test > len(ds.y_test):
        raise ValueError(
            f"`P`={P} / `P_test`={P_test} exceed {task}'s {len(ds.y_train)} training / "
            f"{len(ds.y_test)} test examples."
        )
    rng = np.random.default_rng(derive_seed(seed, "ggdln-subset", task, P, P_test))
    tr = torch.as_tensor(rng.choice(len(ds.y_train), P, replace=False))
    te = torch.as_tensor(rng.choice(len(ds.y_test), P_test, replace=False))
    pca = PCAWhitener(N0).fit(ds.X_train)  # unsupervised: every training input, no labels
    sign = lambda lab: 1.0 - 2.0 * (lab % 2).double()  # noqa: E731  (even → +1, odd → −1)
    return (
        pca.transform(ds.X_train[tr]),
        sign(ds.y_train[tr]),
        pca.transform(ds.X_test[te]),
        sign(ds.y_test[te]),
    )
