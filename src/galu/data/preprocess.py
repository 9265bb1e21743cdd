"""PCA whitening fitted on the training inputs only."""

from __future__ import annotations

import dataclasses

import torch

from galu.data.datasets import Dataset

__all__ = ["PCAWhitener", "whiten_dataset"]


class PCAWhitener:
    """Project onto the top principal components of the training inputs, at unit variance.

    :meth:`fit` centres the training inputs ``X`` (shape ``(n, d)``) by their mean, takes the
    ``n_components`` leading right singular vectors of the centred matrix and the standard
    deviation of the training data along each (sample standard deviation, ``n − 1``);
    :meth:`transform` maps any ``(m, d)`` inputs to ``(m, n_components)`` by
    ``((X − mean_) @ components_.T) / scale_``. The transformed training inputs therefore have
    mean zero and sample covariance equal to the identity; validation and test inputs go
    through the same (training) statistics.

    Statistics are computed and stored in float64; :meth:`transform` returns the input's dtype.
    Each component's sign is fixed so that its entry of largest magnitude is positive, so the
    result does not depend on the SVD routine's sign choices.

    ``n_components=None`` keeps every component with non-negligible variance (the numerical
    rank of the centred training inputs). An explicit ``n_components`` larger than the number
    of features (or than ``n − 1``) raises :class:`ValueError` — there is no silent clamping —
    and so does one that would keep a direction of (numerically) zero training variance, which
    cannot be scaled to unit variance; the message gives the rank. A singular value counts as
    zero when it is at most ``rtol`` times the largest, with ``rtol`` defaulting to
    ``max(n, d)`` times the machine epsilon of the input's dtype.

    Example:
        >>> import torch
        >>> from galu.data import PCAWhitener
        >>> X = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> Z = PCAWhitener(3).fit_transform(X)
        >>> Z.shape
        torch.Size([200, 3])
        >>> torch.allclose(torch.cov(Z.T), torch.eye(3, dtype=torch.float64))
        True
    """

    mean_: torch.Tensor
    components_: torch.Tensor
    scale_: torch.Tensor
    singular_values_: torch.Tensor

    def __init__(self, n_components: int | None = 64, *, rtol: float | None = None) -> None:
        if n_components is not None and (
            isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1
        ):
            raise ValueError(f"`n_components` (={n_components!r}) must be a positive integer.")
        if rtol is not None and not 0.0 <= rtol < 1.0:
            raise ValueError(f"`rtol` (={rtol!r}) must be in [0, 1).")
        self.n_components = n_components
        self.rtol = rtol

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has been called."""
        return hasattr(self, "components_")

    def fit(self, X: torch.Tensor) -> PCAWhitener:
        """Fit on the training inputs ``X`` of shape ``(n, d)``; returns ``self``.

        Sets ``mean_`` ``(d,)``, ``components_`` ``(k, d)`` (orthonormal rows, by decreasing
        variance), ``scale_`` ``(k,)`` (training standard deviation along each component) and
        ``singular_values_`` (all ``min(n, d)`` of the centred inputs), all float64.
        """
        if not isinstance(X, torch.Tensor) or X.ndim != 2 or not X.is_floating_point():
            raise ValueError("`X` must be a floating tensor of shape (n, d).")
        n, d = X.shape
        if n < 2:
            raise ValueError(f"PCA needs at least 2 training examples, got {n}.")
        k = self.n_components
        if k is not None and k > d:
            raise ValueError(
                f"n_components={k} is more than the {d} input features; choose n_components <= {d}."
            )
        if k is not None and k > n - 1:
            raise ValueError(
                f"n_components={k} needs more than {n} training examples (at most n - 1 = {n - 1} "
                "components have non-zero variance)."
            )
        if not bool(torch.isfinite(X).all()):
            raise ValueError("`X` contains NaN or infinite values.")
        X64 = X.detach().to(device="cpu", dtype=torch.float64)
        mean = X64.mean(dim=0)
        _, sv, Vh = torch.linalg.svd(X64 - mean, full_matrices=False)
        rtol = self.rtol if self.rtol is not None else max(n, d) * torch.finfo(X.dtype).eps
        threshold = rtol * sv[0]
        rank = int((sv > threshold).sum()) if sv[0] > 0 else 0
        if rank == 0:
            raise ValueError("The training inputs are constant: every component has zero variance.")
        if k is None:
            k = rank
        elif k > rank:
            raise ValueError(
                f"n_components={k} but the centred training inputs have numerical rank {rank}: "
                f"{k - rank} of the components have (numerically) zero variance and cannot be "
                f"scaled to unit variance. Choose n_components <= {rank} (or None)."
            )
        V = Vh[:k]
        # Sign convention: the entry of largest magnitude of each component is positive.
        pivot = V.gather(1, V.abs().argmax(dim=1, keepdim=True))
        V = V * torch.sign(pivot)
        self.mean_ = mean
        self.components_ = V
        self.scale_ = sv[:k] / (n - 1) ** 0.5
        self.singular_values_ = sv
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Whiten ``X`` of shape ``(m, d)`` with the fitted statistics; ``(m, k)``, same dtype."""
        if not self.is_fitted:
            raise RuntimeError("PCAWhitener is not fitted; call fit(X_train) first.")
        d = self.mean_.shape[0]
        if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"`X` must be a tensor of shape (m, {d}).")
        if not X.is_floating_point():
            raise ValueError(f"`X` must be floating, got {X.dtype}.")
        Z = (X.detach().to(device="cpu", dtype=torch.float64) - self.mean_) @ self.components_.T
        return (Z / self.scale_).to(device=X.device, dtype=X.dtype)

    def fit_transform(self, X: torch.Tensor) -> torch.Tensor:
        """:meth:`fit` on ``X``, then :meth:`transform` it."""
        return self.fit(X).transform(X)


def whiten_dataset(
    dataset: Dataset, n_components: int | None = 64, *, rtol: float | None = None
) -> tuple[Dataset, PCAWhitener]:
    """PCA-whiten all three splits of ``dataset`` with statistics of its training split only.

    Returns the transformed :class:`Dataset` (inputs of shape ``(n_split, k)``, same dtype,
    labels unchanged) and the fitted :class:`PCAWhitener`.
    """
    whitener = PCAWhitener(n_components, rtol=rtol).fit(dataset.X_train)
    out = dataclasses.replace(
        dataset,
        X_train=whitener.transform(dataset.X_train),
        X_val=whitener.transform(dataset.X_val),
        X_test=whitener.transform(dataset.X_test),
    )
    return out, whitener
