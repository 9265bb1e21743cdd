"""Alternating least squares for vector outputs through a shared GaLU hidden layer.

Model (Fiat, Malach & Shalev-Shwartz 2019, vector targets): with fixed gates ``G = gate(X Uᵀ)``,

    f(x) = B ((A x) ⊙ g(x)),      A: (k, d) hidden weights,  B: (o, k) readout,

is bilinear in ``(A, B)``. Each half-step is an exact (ridge) least-squares problem:

* **B-step** — hidden activations ``H = (X Aᵀ) ⊙ G`` (m × k) are fixed:
  ``Bᵀ = (HᵀH + λI)⁻¹ HᵀY``.
* **A-step** — ``f_o(x) = Σ_i B_{oi} g_i(x) <a_i, x>`` is linear in ``vec(A)`` with design
  ``Ψ diag(B_o ⊗ 1_d)`` per output, so the normal equations are

      [(ΨᵀΨ) ⊙ ((BᵀB) ⊗ 1_{d×d}) + λI] vec(A) = Σ_o (B_o ⊗ 1_d) ⊙ (Ψᵀ y_o)     (derived)

  ``ΨᵀΨ`` and ``ΨᵀY`` depend only on the data and the gates: they are formed once, and every
  A-step costs one Hadamard product and one (kd × kd) solve.

Each half-step minimises ``‖f(X) − Y‖² + λ(‖A‖² + ‖B‖²)`` exactly over its block, so the
objective never increases (a test asserts it). ``λ > 0`` also removes the scale ambiguity
``(cA, B/c)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from galu import ops
from galu._validate import positive_int, positive_number
from galu.gates import Gate
from galu.solvers._galu import _spd_solve, _validate, normal_equations


@dataclass(frozen=True)
class ALSResult:
    """Result of :func:`fit_galu_als`.

    Attributes:
        hidden_weight: ``A`` ``(k, d)``.
        readout: ``B`` ``(o, k)``.
        gate_vectors: fixed gate vectors ``(k, d)``.
        gate: the gate function.
        ridge: ``λ``.
        objective: ``‖f(X) − Y‖²/(m·o) + λ(‖A‖² + ‖B‖²)/(m·o)`` after the initial B-step and
            after every full (A, B) sweep.
        train_mse: final mean squared error over samples and outputs.
        n_iter: sweeps run.
        converged: whether the relative objective decrease fell below ``tol``.
    """

    hidden_weight: torch.Tensor
    readout: torch.Tensor
    gate_vectors: torch.Tensor
    gate: Gate
    ridge: float
    objective: list[float] = field(default_factory=list)
    train_mse: float = math.nan
    n_iter: int = 0
    converged: bool = False

    def predict(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Outputs ``(n, o)``."""
        A = self.hidden_weight
        xt = torch.as_tensor(
            np.array(x) if isinstance(x, np.ndarray) else x, dtype=A.dtype, device=A.device
        )
        g = ops.gate_matrix(xt, self.gate_vectors, self.gate)
        return ops.gated_linear(xt, A, g) @ self.readout.T

    def to_module(self):
        """A one-hidden-layer :class:`galu.nn.DeepGaLU` with these weights and gates."""
        from galu.nn import DeepGaLU, GaLULayer

        k, d = self.hidden_weight.shape
        o = self.readout.shape[0]
        net = DeepGaLU(
            d,
            k,
            o,
            gate=self.gate,
            generator=torch.Generator(),
            dtype=self.hidden_weight.dtype,
            device=self.hidden_weight.device,
        )
        layer = net.layers[0]
        assert isinstance(layer, GaLULayer)
        with torch.no_grad():
            layer.weight.copy_(self.hidden_weight)
            layer.gate_vectors.copy_(self.gate_vectors)
            net.readout.weight.copy_(self.readout)
        return net


def _b_step(X, G, A, Y, ridge):
    H = ops.gated_linear(X, A, G)  # (m, k)
    Bt, _ = _spd_solve(H.T @ H, H.T @ Y, ridge)  # (k, o)
    return Bt.T  # (o, k)


def _a_step(PtP, PtY, B, d, ridge):
    k = B.shape[1]
    BtB = B.T @ B  # (k, k)
    lhs = PtP * torch.kron(BtB, torch.ones((d, d), dtype=B.dtype, device=B.device))
    rhs = (PtY * B.T.repeat_interleave(d, dim=0)).sum(dim=1, keepdim=True)  # (kd, 1)
    a, _ = _spd_solve(lhs, rhs, ridge)
    return a.reshape(k, d)


def fit_galu_als(
    X: torch.Tensor | np.ndarray,
    Y: torch.Tensor | np.ndarray,
    gate_vectors: torch.Tensor | np.ndarray,
    *,
    generator: torch.Generator,
    gate: Gate | None = None,
    ridge: float = 1e-6,
    max_iter: int = 100,
    tol: float = 1e-8,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> ALSResult:
    """Fit ``f(x) = B((A x) ⊙ gate(U x))`` to targets ``Y`` ``(m, o)`` by alternating exact
    least squares.

    ``A`` starts from ``U(-1/√d, 1/√d)`` drawn from ``generator``; a B-step comes first, then
    sweeps of (A-step, B-step) until the relative decrease of the objective is below ``tol`` or
    ``max_iter`` sweeps ran. ``ridge`` (default ``1e-6``) fixes the ``(cA, B/c)`` scale freedom.
    Memory ``(kd)²`` numbers (the A-step's normal matrix).
    """
    Xt, Yt, U = _validate(X, Y, gate_vectors, ridge, "primal", dtype, device)
    positive_int("max_iter", max_iter)
    positive_number("tol", tol)
    gate = gate if gate is not None else Gate()
    Y2 = Yt[:, None] if Yt.ndim == 1 else Yt  # (m, o)
    m, d = Xt.shape
    k = U.shape[0]
    scale = m * Y2.shape[1]
    G = ops.gate_matrix(Xt, U, gate)  # (m, k)
    PtP, PtY = normal_equations(Xt, G, Y2)
    gen_device = generator.device
    bound = 1.0 / math.sqrt(d)
    A = (torch.rand((k, d), generator=generator, dtype=dtype, device=gen_device) * 2 - 1) * bound
    A = A.to(Xt.device)

    def objective(A: torch.Tensor, B: torch.Tensor) -> tuple[float, float]:
        sq = float(((ops.gated_linear(Xt, A, G) @ B.T - Y2) ** 2).sum())
        reg = ridge * float((A**2).sum() + (B**2).sum())
        return (sq + reg) / scale, sq / scale

    B = _b_step(Xt, G, A, Y2, ridge)
    obj, mse = objective(A, B)
    history = [obj]
    converged = False
    sweeps = 0
    while sweeps < max_iter and not converged:
        sweeps += 1
        A = _a_step(PtP, PtY, B, d, ridge)
        B = _b_step(Xt, G, A, Y2, ridge)
        obj, mse = objective(A, B)
        previous = history[-1]
        history.append(obj)
        converged = previous - obj <= tol * max(abs(previous), 1e-300)
    return ALSResult(A, B, U, gate, float(ridge), history, mse, sweeps, converged)
