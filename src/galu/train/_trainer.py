"""Minibatch gradient training of one network or of many independent networks in one pass.

Many small networks of identical shape (different seeds) are trained together: their parameters
are stacked along a leading "member" axis (``torch.func.stack_module_state``) and the forward
pass is ``vmap``-ed over members. Adam and SGD act elementwise, and each member draws its own
minibatches from its own generator, so member ``e`` follows the same trajectory as training that
network alone with seed ``seeds[e]`` (up to floating-point summation order) — a test checks it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from galu._validate import positive_int, positive_number
from galu.progress import Progress

Optimizer = Literal["adam", "sgd"]
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
Loss = Literal["mse", "cross_entropy", "hinge"]
LOSSES: tuple[str, ...] = ("mse", "cross_entropy", "hinge")


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean(dim=(1, 2))  # (E,)


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(out, dim=-1)  # (E, b, C)
    return -logp.gather(-1, y[..., None]).squeeze(-1).mean(dim=1)  # (E,)


def _hinge(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.relu(1 - y * out).mean(dim=(1, 2))  # labels ±1


# Loss per member, and the number of dimensions of stacked targets (E, m[, o]).
_LOSS_FNS = {"mse": (_mse, 3), "cross_entropy": (_cross_entropy, 2), "hinge": (_hinge, 3)}


@dataclass(frozen=True)
class TrainResult:
    """Outcome for one network.

    Attributes:
        final_loss: full-batch training loss of the returned parameters.
        steps: optimisation steps taken (fewer than asked if ``target_loss`` was reached).
        reached_target: whether the loss went at or below ``target_loss``.
        history: ``(step, full-batch training loss)`` at every evaluation.
    """

    final_loss: float
    steps: int
    reached_target: bool
    history: list[tuple[int, float]] = field(default_factory=list)


def _stack_data(name: str, t: torch.Tensor, n_members: int, ndim: int) -> torch.Tensor:
    if t.ndim == ndim - 1:
        t = t.expand(n_members, *t.shape)
    if t.ndim != ndim or t.shape[0] != n_members:
        raise ValueError(
            f"`{name}` must be shared {ndim - 1}-D or stacked {ndim}-D with {n_members} members "
            f"first; got shape {tuple(t.shape)}."
        )
    return t


def _width(model: nn.Module, which: str) -> tuple[str, int] | None:
    """The model's input (``which="in"``) or output width and the attribute that holds it:
    ``in_features``/``out_features`` (galu's networks, DGN), ``d_model`` (FeedForward), else the
    first / last ``nn.Linear``; ``None`` when nothing declares it."""
    for attr in ("in_features", "d_model") if which == "in" else ("out_features", "d_model"):
        value = getattr(model, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return attr, value
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    if which == "in":
        return "in_features", linears[0].in_features
    return "out_features", linears[-1].out_features


def _check_widths(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, loss: str) -> None:
    """Refuse inputs and targets that do not match the models' widths: a wrong input width fails
    deep inside vmap, and a wrong target width would broadcast silently in the loss."""
    name = type(model).__name__
    width = _width(model, "in")
    if width is not None and X.shape[-1] != width[1]:
        raise ValueError(
            f"`X` has {X.shape[-1]} features (last dimension of shape {tuple(X.shape)}) but the "
            f"models take {name}({width[0]}={width[1]}) inputs."
        )
    out = _width(model, "out")
    if out is None:
        return
    if loss == "cross_entropy":
        if Y.numel() and (int(Y.min()) < 0 or int(Y.max()) >= out[1]):
            raise ValueError(
                f"`Y` holds class labels in [{int(Y.min())}, {int(Y.max())}] but the models give "
                f"{out[0]}={out[1]} logits; labels must lie in [0, {out[1]})."
            )
    elif Y.shape[-1] != out[1]:
        raise ValueError(
            f"`Y` has {Y.shape[-1]} outputs (last dimension of shape {tuple(Y.shape)}) but the "
            f"models give {out[0]}={out[1]} ({name}); pass targets of shape (m, {out[1]})."
        )


def embed_zero_padded(small: nn.Module, big: nn.Module) -> nn.Module:
    """Write ``small``'s parameters and buffers into the leading corner of ``big``'s same-named
    tensors and zero everything else (in place); returns ``big``.

    This lets networks of different widths train in one :func:`train_ensemble` pass: pad every
    member to the largest width and its inputs with zero features. A padded entry keeps the value
    0 when its gradient is 0 at 0, because Adam's and SGD's updates of a parameter whose gradients
    have all been 0 are exactly 0. That holds for a zero input feature (every weight it meets
    gets ``x_i · (…) = 0``) and for a hidden unit whose incoming weights, bias and readout are all
    zero (its output is 0, and each of its weights' gradients is a product with another of them).
    It fails for a unit whose output does not vanish with its weights, e.g. a folded GaLU unit
    ``g(x)·<w, x>`` with an open gate: such a unit must have its gate closed.
    """
    big_state, small_state = big.state_dict(), small.state_dict()  # views of the tensors
    if big_state.keys() != small_state.keys():
        raise ValueError(
            f"`small` and `big` hold different tensors: {sorted(small_state)} vs "
            f"{sorted(big_state)}."
        )
    with torch.no_grad():
        for name, target in big_state.items():
            source = small_state[name]
            if source.ndim != target.ndim or any(
                s > t for s, t in zip(source.shape, target.shape, strict=True)
            ):
                raise ValueError(
                    f"`{name}` of shape {tuple(source.shape)} does not fit in the padded shape "
                    f"{tuple(target.shape)}."
                )
            target.zero_()
            target[tuple(slice(0, n) for n in source.shape)] = source
    return big


def train_ensemble(
    models: Sequence[nn.Module],
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    seeds: Sequence[int],
    steps: int,
    optimizer: Optimizer = "adam",
    lr: float = 1e-3,
    batch_size: int = 128,
    target_loss: float | None = None,
    eval_every: int = 100,
    progress: bool = False,
    loss: Loss = "mse",
) -> list[TrainResult]:
    """Train ``models`` (same architecture) in place, all in one vectorised pass.

    Args:
        models: networks with identical parameter shapes (e.g. one per seed).
        X: inputs ``(m, d)`` shared by all, or ``(E, m, d)`` one set per member.
        Y: targets ``(m, o)`` / ``(E, m, o)`` matching the models' output (``mse``; ``±1`` for
            ``hinge``), or integer class labels ``(m,)`` / ``(E, m)`` for ``cross_entropy``.
        seeds: one minibatch-order seed per member.
        steps: optimisation steps (minibatches); each epoch is a fresh permutation.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: learning rate.
        batch_size: minibatch size (the last batch of an epoch may be smaller).
        target_loss: stop a member once its full-batch training loss is at or below this (checked
            every ``eval_every`` steps); its parameters at that moment are the ones returned.
        eval_every: steps between full-batch evaluations recorded in ``history``.
        progress: show a progress bar.
        loss: ``"mse"`` (mean over samples and outputs), ``"cross_entropy"`` (logits) or
            ``"hinge"`` (``mean(relu(1 − y f))``).

    Returns:
        One :class:`TrainResult` per member; each model holds its trained parameters.
    """
    if not models:
        raise ValueError("`models` is empty; pass at least one network.")
    if len(seeds) != len(models):
        raise ValueError(f"`seeds` has {len(seeds)} entries but there are {len(models)} models.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` (={optimizer!r}) must be one of {OPTIMIZERS}.")
    if loss not in LOSSES:
        raise ValueError(f"`loss` (={loss!r}) must be one of {LOSSES}.")
    loss_fn, y_ndim = _LOSS_FNS[loss]
    positive_int("steps", steps)
    positive_int("batch_size", batch_size)
    positive_int("eval_every", eval_every)
    positive_number("lr", lr, noun="float")
    E = len(models)
    X = _stack_data("X", X, E, 3)  # (E, m, d)
    Y = _stack_data("Y", Y, E, y_ndim)  # (E, m, o) or labels (E, m)
    if loss == "cross_entropy" and (Y.dtype.is_floating_point or Y.dtype.is_complex):
        raise ValueError(f"`Y` must hold integer class labels for cross_entropy; got {Y.dtype}.")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"`X` and `Y` differ in samples: {tuple(X.shape)} vs {tuple(Y.shape)}.")
    _check_widths(models[0], X, Y, loss)
    m = X.shape[1]
    if not (torch.isfinite(X).all() and torch.isfinite(Y.float()).all()):
        raise ValueError("`X` or `Y` contains NaN or infinite values.")

    params, buffers = stack_module_state(list(models))
    base = copy.deepcopy(models[0]).to("meta")

    def forward_one(p, b, x):
        return functional_call(base, (p, b), (x,))

    forward = vmap(forward_one)
    plist = list(params.values())
    opt: torch.optim.Optimizer = (
        torch.optim.Adam(plist, lr=lr) if optimizer == "adam" else torch.optim.SGD(plist, lr=lr)
    )
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    offsets = torch.arange(E, device=X.device)[:, None] * m  # member e's rows start at e·m
    X_flat, Y_flat = X.reshape(E * m, *X.shape[2:]), Y.reshape(E * m, *Y.shape[2:])

    def full_losses() -> torch.Tensor:
        with torch.no_grad():
            return loss_fn(forward(params, buffers, X), Y)  # (E,)

    histories: list[list[tuple[int, float]]] = [[] for _ in range(E)]
    snapshot: dict[int, tuple[dict[str, torch.Tensor], int, float]] = {}
    perm: torch.Tensor | None = None
    pos = 0
    bar = Progress("training", steps, enabled=progress)
    step = 0
    for step in range(1, steps + 1):
        if perm is None:
            perm = torch.stack([torch.randperm(m, generator=g) for g in generators]).to(X.device)
            pos = 0
        idx = perm[:, pos : pos + batch_size]  # (E, b)
        pos += batch_size
        if pos >= m:
            perm = None
        flat = (offsets + idx).reshape(-1)  # index_select is far faster than X[members, idx]
        xb = X_flat.index_select(0, flat).view(E, -1, *X.shape[2:])  # (E, b, d)
        yb = Y_flat.index_select(0, flat).view(E, -1, *Y.shape[2:])  # (E, b, o) or (E, b)
        batch_loss = loss_fn(forward(params, buffers, xb), yb)  # (E,)
        opt.zero_grad(set_to_none=True)
        batch_loss.sum().backward()  # members are independent: d(sum)/dθ_e = dloss_e/dθ_e
        opt.step()
        if step % eval_every == 0 or step == steps:
            losses = full_losses().tolist()
            for e, value in enumerate(losses):
                if e in snapshot:
                    continue
                histories[e].append((step, value))
                if target_loss is not None and value <= target_loss:
                    snapshot[e] = (
                        {k: v[e].detach().clone() for k, v in params.items()},
                        step,
                        value,
                    )
            best = min(losses)
            bar.describe(f"loss {best:.4g}" if math.isfinite(best) else f"loss {best}")
            bar.update(step)
            if len(snapshot) == E:
                break
    bar.close()

    final = full_losses().tolist()
    results = []
    with torch.no_grad():
        for e, model in enumerate(models):
            if e in snapshot:
                values, stop_step, stop_loss = snapshot[e]
                result = TrainResult(stop_loss, stop_step, True, histories[e])
            else:
                values = {k: v[e] for k, v in params.items()}
                reached = target_loss is not None and final[e] <= target_loss
                result = TrainResult(final[e], step, reached, histories[e])
            for name, p in model.named_parameters():
                p.copy_(values[name])
            results.append(result)
    return results


def train(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int,
    steps: int,
    optimizer: Optimizer = "adam",
    lr: float = 1e-3,
    batch_size: int = 128,
    target_loss: float | None = None,
    eval_every: int = 100,
    progress: bool = False,
    loss: Loss = "mse",
) -> TrainResult:
    """Train one network (see :func:`train_ensemble`); ``y`` may be ``(m,)`` for mse and hinge."""
    Y = y[:, None] if (y.ndim == 1 and loss != "cross_entropy") else y
    return train_ensemble(
        [model],
        X,
        Y,
        seeds=[seed],
        steps=steps,
        optimizer=optimizer,
        lr=lr,
        batch_size=batch_size,
        target_loss=target_loss,
        eval_every=eval_every,
        progress=progress,
        loss=loss,
    )[0]
