"""Synthetic tasks generated from an explicit generator."""

from __future__ import annotations

import math

import torch

from galu._validate import positive_int


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
    positive_int("m", m)
    positive_int("d", d)
    X = torch.randn((m, d), generator=generator, dtype=dtype)
    shape = (m,) if outputs is None else (m, outputs)
    y = torch.randn(shape, generator=generator, dtype=dtype)
    return X, y


def clustered_task(
    m_train: int,
    m_test: int,
    *,
    d: int = 30,
    n_centres: int = 30,
    spread: float = 0.1,
    label_noise: float = 0.0,
    task: str = "regression",
    task_generator: torch.Generator,
    sample_generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clustered data with noisy labels (Fiat et al. 2019, experiment 3).

    Centres ``c_j ~ N(0, I_d)`` and one label per centre (``b_j ~ N(0, 1)`` for regression, ``±1``
    for classification) are drawn from ``task_generator``; samples ``x = c_j + spread·N(0, I)``
    with ``j`` uniform, and the label noise, from ``sample_generator`` — so tasks with different
    ``label_noise`` share their centres. Regression: ``y = b_j + label_noise·N(0, 1)`` (the best
    possible test MSE is ``label_noise²``). Classification: ``y = ±1`` of the centre, flipped with
    probability ``label_noise / 2`` (the best possible test error).

    Returns ``X_train (m_train, d), y_train (m_train,), X_test, y_test``.
    """
    if task not in ("regression", "classification"):
        raise ValueError(f"`task` (={task!r}) must be 'regression' or 'classification'.")
    if not 0 <= label_noise <= (2.0 if task == "classification" else float("inf")):
        raise ValueError(f"`label_noise` (={label_noise!r}) must be >= 0 (<= 2 to classify).")
    centres = torch.randn((n_centres, d), generator=task_generator, dtype=dtype)
    if task == "regression":
        centre_labels = torch.randn(n_centres, generator=task_generator, dtype=dtype)
    else:
        centre_labels = torch.randint(2, (n_centres,), generator=task_generator).to(dtype) * 2 - 1

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = torch.randint(n_centres, (n,), generator=sample_generator)
        x = centres[j] + spread * torch.randn((n, d), generator=sample_generator, dtype=dtype)
        y = centre_labels[j]
        if task == "regression":
            y = y + label_noise * torch.randn(n, generator=sample_generator, dtype=dtype)
        else:
            flip = torch.rand(n, generator=sample_generator, dtype=dtype) < label_noise / 2
            y = torch.where(flip, -y, y)
        return x, y

    X_train, y_train = draw(m_train)
    X_test, y_test = draw(m_test)
    return X_train, y_train, X_test, y_test


def rosenbrock(X: torch.Tensor) -> torch.Tensor:
    """``log(1 + R(x))`` with the d-dimensional Rosenbrock function
    ``R(x) = Σ_{i<d} (1 − x_i)² + 100 (x_{i+1} − x_i²)²``: the log tames its quartic growth.

    This is our reading of the paper's "modified (log-)Rosenbrock" target (its exact
    modification is not in the notes); :func:`standardize` it before fitting."""
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"`X` must be (n, d) with d >= 2; got shape {tuple(X.shape)}.")
    a, b = X[:, :-1], X[:, 1:]
    return torch.log1p(((1 - a) ** 2 + 100 * (b - a**2) ** 2).sum(1))


def rosenbrock_grid(side: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A ``side × side`` grid over ``[−2, 2] × [−1, 3]`` (the Rosenbrock valley and its banana),
    ``(side², 2)``; the paper's toy uses 10⁴ points (``side = 100``)."""
    if side < 2:
        raise ValueError(f"`side` (={side!r}) must be >= 2.")
    x1 = torch.linspace(-2.0, 2.0, side, dtype=dtype)
    x2 = torch.linspace(-1.0, 3.0, side, dtype=dtype)
    g1, g2 = torch.meshgrid(x1, x2, indexing="ij")
    return torch.stack([g1.reshape(-1), g2.reshape(-1)], dim=1)


def matern_gp_sample(
    X: torch.Tensor, length_scale: float, *, generator: torch.Generator
) -> torch.Tensor:
    """One draw ``(n,)`` of a zero-mean Gaussian process with the Matérn-3/2 kernel
    ``k(x, x') = (1 + √3 ρ/ℓ) exp(−√3 ρ/ℓ)``, ``ρ = ‖x − x'‖``, at the rows of ``X`` (exact,
    through a Cholesky factor with a 1e-10 jitter; ``n`` up to a few thousand). Smaller ``ℓ``
    gives rougher targets."""
    if not length_scale > 0:
        raise ValueError(f"`length_scale` (={length_scale!r}) must be > 0.")
    rho = torch.cdist(X, X) * (math.sqrt(3.0) / length_scale)
    K = (1 + rho) * torch.exp(-rho)
    K.diagonal().add_(1e-10)
    L = torch.linalg.cholesky(K)
    z = torch.randn(X.shape[0], generator=generator, dtype=X.dtype)
    return L @ z


def standardize(y: torch.Tensor) -> torch.Tensor:
    """``(y − mean) / std`` (population std; a constant target is returned centred)."""
    centred = y - y.mean()
    sd = centred.pow(2).mean().sqrt()
    return centred / sd if float(sd) > 0 else centred


def erf_toy(n: int = 201) -> tuple[torch.Tensor, torch.Tensor]:
    """The channels paper's erf toy: ``x`` ``(n, 1)`` on ``[−3, 3]`` (no bias input) and
    ``y = erf((5x+2.5)/√2) + erf((5x−2.5)/√2)`` ``(n,)``, whose best two-unit fit is at infinity."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"`n` (={n!r}) must be an integer >= 2.")
    x = torch.linspace(-3.0, 3.0, n, dtype=torch.float64)[:, None]
    y = torch.erf((5 * x[:, 0] + 2.5) / math.sqrt(2)) + torch.erf(
        (5 * x[:, 0] - 2.5) / math.sqrt(2)
    )
    return x, y


def parse_target(name: str) -> tuple[str, float]:
    """``"rosenbrock"`` → ``("rosenbrock", nan)``; ``"matern-S"`` → ``("matern", S)``."""
    if name == "rosenbrock":
        return ("rosenbrock", math.nan)
    if name.startswith("matern-"):
        try:
            s = float(name.removeprefix("matern-"))
        except ValueError:
            s = -1.0
        if s > 0:
            return ("matern", s)
    raise ValueError(
        f"target {name!r} is not valid: use 'rosenbrock' or 'matern-S' with a length-scale "
        "parameter S > 0 (e.g. 'matern-0.5')."
    )


def target_task(d: int, n: int, target: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X (n, d), y (n,))`` of the channel sweeps (Martinelli et al. 2025): inputs uniform in
    ``[−2, 2]^d`` and the standardised ``target`` (:func:`parse_target`): the log-Rosenbrock
    function, or a Matérn-3/2 Gaussian-process draw whose parameter ``S`` gives the length scale
    ``ℓ = S·√d`` (comparable roughness across ``d``). Everything is drawn from ``seed``."""
    from galu.seeding import generator

    kind, s = parse_target(target)
    g = generator(seed, "channels-sweep-data", d, n, target)
    X = 4 * torch.rand(n, d, generator=g, dtype=torch.float64) - 2
    if kind == "rosenbrock":
        y = rosenbrock(X)
    else:
        y = matern_gp_sample(X, s * math.sqrt(d), generator=g)
    return X, standardize(y)
