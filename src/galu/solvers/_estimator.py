"""scikit-learn estimator over :func:`fit_galu`."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from galu._validate import int_at_least, one_of, positive_int
from galu.gates import Gate
from galu.solvers._galu import SOLVERS, fit_galu, hill_climb, sample_gate_vectors


class GaLURegressor(RegressorMixin, BaseEstimator):
    """Shallow GaLU regression with random fixed gates, fitted exactly by least squares.

    Parameters:
        n_neurons: number of gated units ``k``.
        ridge: L2 penalty ``λ >= 0`` (``0``: minimum-norm least squares).
        solver: ``"auto"``, ``"primal"``, ``"dual"``, ``"lsqr"``, ``"cg"`` or ``"svd"`` (see
            :func:`galu.solvers.fit_galu`).
        gate_at_zero: value of the step gate at exactly 0 (``1.0``, ``0.0`` or ``0.5``).
        hill_climb_steps: gate-improvement steps after the first fit (0 disables).
        random_state: seed for the gate vectors (and hill climbing).

    Attributes:
        coef_: weights ``(k, d)`` (1-D ``y``) or ``(o, k, d)``.
        gate_vectors_: the gate vectors ``(k, d)``.
        fit_: the :class:`galu.solvers.GaLUFit`.
        n_features_in_: ``d``.

    Example:
        >>> import numpy as np
        >>> from galu.solvers import GaLURegressor
        >>> X = np.random.default_rng(0).normal(size=(64, 4))
        >>> est = GaLURegressor(n_neurons=16, random_state=0).fit(X, X[:, 0] ** 2)
        >>> round(est.score(X, X[:, 0] ** 2), 6)  # kd = 64 = m: interpolation
        1.0
    """

    def __init__(
        self,
        n_neurons: int = 64,
        *,
        ridge: float = 0.0,
        solver: str = "auto",
        gate_at_zero: float = 1.0,
        hill_climb_steps: int = 0,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_neurons = n_neurons
        self.ridge = ridge
        self.solver = solver
        self.gate_at_zero = gate_at_zero
        self.hill_climb_steps = hill_climb_steps
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # outputs share the gates, each has its own weights
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        positive_int("n_neurons", self.n_neurons)
        int_at_least("hill_climb_steps", self.hill_climb_steps, 0)
        one_of("solver", self.solver, SOLVERS)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        generator = torch.Generator().manual_seed(seed)
        gate = Gate(at_zero=self.gate_at_zero)
        U = sample_gate_vectors(int(self.n_neurons), X.shape[1], generator=generator)
        y_arr = np.asarray(y, dtype=np.float64)
        if self.hill_climb_steps:
            fit = hill_climb(
                X,
                y_arr,
                U,
                steps=int(self.hill_climb_steps),
                generator=generator,
                gate=gate,
                ridge=self.ridge,
                solver=self.solver,  # type: ignore[arg-type]
            ).fit
        else:
            fit = fit_galu(X, y_arr, U, gate=gate, ridge=self.ridge, solver=self.solver)  # type: ignore[arg-type]
        self.fit_ = fit
        self.coef_ = fit.weight.cpu().numpy()
        self.gate_vectors_ = fit.gate_vectors.cpu().numpy()
        return self

    def predict(self, X):
        check_is_fitted(self, "fit_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.fit_.predict(X).cpu().numpy()

    def to_module(self):
        """The fitted model as a :class:`galu.nn.ShallowGaLU` (float64)."""
        check_is_fitted(self, "fit_")
        return self.fit_.to_module()
