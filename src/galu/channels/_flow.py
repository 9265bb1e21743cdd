"""Training to convergence: full-batch gradient flow ``dθ/dt = −∇L(θ)`` for many networks at once.

Near a channel to infinity the flow is stiff (the sharpness grows as ``1/ε²`` while the loss
decreases as ``ε²``), so an explicit integrator would need ``~ε²``-sized steps for ever longer
times. :func:`gradient_flow` integrates with RODAS4 (Hairer & Wanner 1996, §IV.7: a six-stage,
L-stable, stiffly accurate Rosenbrock method of order 4 with an embedded order-3 error estimate)
using the analytic Hessian, one adaptive step size per network, and advances a whole batch of
networks in lockstep: each iteration forms every active network's Hessian with batched GEMMs and
factors its ``(P × P)`` stage matrix with one batched LU. In Hairer and Wanner's transformed
variables, with ``M = I/(γh) + H`` (the Jacobian of ``−∇L`` is ``−H``),

    M uᵢ = −∇L(θ + Σ_{j<i} a_ij u_j) + Σ_{j<i} (c_ij/h) u_j,      i = 1 … 6,
    θ ← θ + Σ_{j≤5} a_6j u_j + u₆,     error estimate u₆.

A network stops when its parameter norm reaches ``norm_bound`` (``"diverged"``: a channel
candidate, as the paper's ODE solver stops at norm 10³), its gradient falls below ``gtol``
(``"converged"``), or at ``t_max`` / ``max_steps``. Inside a channel the gradient itself becomes
tiny (its slope falls as ``ε³``), so a loose ``gtol`` can stop a network in a channel and call it
converged; the default 1e-12 is far below what the channels we measured reached before the norm
bound, and detection looks at the end state, not at the status.

:func:`gradient_flow_scipy` integrates one network with SciPy's BDF or LSODA and the same analytic
gradient and Hessian: the independent reference (tests compare the two) and the one-at-a-time
baseline of the benchmark. :func:`descend` runs full-batch gradient descent or Adam for the
comparison the paper draws (finite step sizes stall at the channel's entrance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from galu._validate import int_at_least, positive_int, positive_number
from galu.channels._activations import Activation, activation
from galu.channels._mlp import derivatives
from galu.progress import Progress

# RODAS4 in Hairer and Wanner's transformed form (ODE II, §IV.7; their code rodas.f): γ, the
# stage-argument coefficients a_ij (row 6 also gives the solution before the last stage) and
# the coupling coefficients c_ij.
_GAMMA = 0.25
_A = (
    (),
    (1.544,),
    (0.9466785280815826, 0.2557011698983284),
    (3.314825187068521, 2.896124015972201, 0.9986419139977817),
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895),
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895, 1.0),
)
_C = (
    (),
    (-5.6688,),
    (-2.430093356833875, -0.2063599157091915),
    (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
    (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616),
    (
        8.083246795921522,
        -7.981132988064893,
        -31.52159432874371,
        16.31930543123136,
        -6.058818238834054,
    ),
)


_STOP_REASONS = ("diverged", "converged", "max_time", "max_steps")  # the order of the stop rules


@dataclass(frozen=True)
class FlowResult:
    """End states of a batch of networks.

    Attributes:
        theta: final parameters ``(E, P)``.
        loss: final losses ``(E,)``.
        grad_norm: final gradient norms ``(E,)``.
        time: flow time reached ``(E,)`` (steps taken for :func:`descend`).
        steps: accepted steps ``(E,)``.
        status: why each network stopped (``"diverged"`` at the norm bound, ``"converged"``
            below ``gtol``, ``"max_time"``, ``"max_steps"``; ``"steps"`` for :func:`descend`;
            ``"failed"`` when SciPy's solver gave up in :func:`gradient_flow_scipy`).
        update: the last accepted step ``θ_end − θ_prev`` ``(E, P)``: the direction of motion
            that channel detection inspects.
        trace: per network, ``(time, loss, parameter norm)`` rows recorded every ``trace_every``
            accepted steps (empty unless asked for).
        seconds: wall-clock time of the whole batch.
    """

    theta: torch.Tensor
    loss: torch.Tensor
    grad_norm: torch.Tensor
    time: torch.Tensor
    steps: torch.Tensor
    status: list[str]
    update: torch.Tensor
    trace: list[list[tuple[float, float, float]]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def norm(self) -> torch.Tensor:
        """Parameter norms ``(E,)``."""
        return torch.linalg.vector_norm(self.theta, dim=1)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        positive_number(name, value, finite=True)


def _check_data(E: int, Xa: torch.Tensor, y: torch.Tensor) -> None:
    """Inputs ``(n, D)`` or ``(E, n, D)``, targets ``(n,)`` or ``(E, n)``, with matching ``n``."""
    if Xa.ndim not in (2, 3) or y.ndim not in (1, 2):
        raise ValueError(
            f"`Xa` must be (n, D) or (E, n, D) and `y` (n,) or (E, n); got shapes "
            f"{tuple(Xa.shape)} and {tuple(y.shape)}."
        )
    for name, t, batched in (("Xa", Xa, Xa.ndim == 3), ("y", y, y.ndim == 2)):
        if batched and t.shape[0] != E:
            raise ValueError(
                f"`{name}` has one data set per network ({t.shape[0]}) but there are {E} "
                f"networks; shape {tuple(t.shape)}."
            )
    if Xa.shape[-2] != y.shape[-1]:
        raise ValueError(
            f"`Xa` has {Xa.shape[-2]} inputs but `y` has {y.shape[-1]} targets "
            f"(shapes {tuple(Xa.shape)}, {tuple(y.shape)})."
        )


def _select(t: torch.Tensor, idx: torch.Tensor, *, per_network: bool) -> torch.Tensor:
    return t[idx] if per_network else t


def gradient_flow(
    theta0: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str | Activation,
    *,
    norm_bound: float = 1e3,
    gtol: float = 1e-12,
    t_max: float = 1e16,
    max_steps: int = 20_000,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    h0: float = 1e-2,
    trace_every: int = 0,
    progress: bool = False,
) -> FlowResult:
    """Integrate the gradient flow of ``E`` networks (``theta0`` ``(E, P)``) to their end states.

    Args:
        theta0: initial parameters, one row per network (see :mod:`galu.channels._mlp`).
        Xa, y: augmented inputs ``(n, d + 1)`` or ``(E, n, d + 1)`` and targets ``(n,)`` or
            ``(E, n)``.
        act: activation name or :class:`Activation`.
        norm_bound: stop a network when ``‖θ‖`` reaches this (the paper's 10³).
        gtol: stop a network when ``‖∇L‖`` falls below this.
        t_max, max_steps: per-network limits on flow time and accepted steps (and on
            ``4 × max_steps`` attempted ones).
        rtol, atol: local error tolerances of the adaptive step (RMS over parameters).
        h0: first step size tried.
        trace_every: record ``(t, L, ‖θ‖)`` every this many accepted steps (0: never).
        progress: show a progress bar of finished networks.
    """
    _check_positive(norm_bound=norm_bound, gtol=gtol, t_max=t_max, rtol=rtol, atol=atol, h0=h0)
    if theta0.ndim != 2:
        raise ValueError(f"`theta0` must be (E, P); got shape {tuple(theta0.shape)}.")
    int_at_least("max_steps", max_steps, 1)
    int_at_least("trace_every", trace_every, 0)
    _check_data(theta0.shape[0], Xa, y)
    sigma = activation(act)
    start = time.perf_counter()
    theta = theta0.clone()
    E, P = theta.shape
    per_x, per_y = Xa.ndim == 3, y.ndim == 2
    h = torch.full((E,), h0, dtype=theta.dtype, device=theta.device)
    t = torch.zeros(E, dtype=theta.dtype, device=theta.device)
    steps = torch.zeros(E, dtype=torch.long)
    tries = torch.zeros(E, dtype=torch.long)  # attempted steps, accepted or not
    rejected = torch.zeros(E, dtype=torch.bool)  # whether the last attempt was rejected
    update = torch.zeros_like(theta)
    status: list[str] = [""] * E
    final_loss = torch.zeros(E, dtype=theta.dtype, device=theta.device)
    final_grad = torch.zeros(E, dtype=theta.dtype, device=theta.device)
    trace: list[list[tuple[float, float, float]]] = [[] for _ in range(E)]
    eye = torch.eye(P, dtype=theta.dtype, device=theta.device)
    active = torch.arange(E)
    bar = Progress("gradient flow", E, enabled=progress)
    while active.numel():
        th = theta[active]
        Xs, ys = _select(Xa, active, per_network=per_x), _select(y, active, per_network=per_y)
        L, g, H = derivatives(th, Xs, ys, sigma, hessian=True)
        assert H is not None
        gnorm = torch.linalg.vector_norm(g, dim=1)
        pnorm = torch.linalg.vector_norm(th, dim=1)
        rules = _stop_rules(pnorm, gnorm, t[active], steps[active], tries[active],
                            norm_bound=norm_bound, gtol=gtol, t_max=t_max,
                            max_steps=max_steps)  # fmt: skip
        stop = rules.any(0)
        if bool(stop.any()):
            done = torch.nonzero(stop).flatten()
            first = rules.to(torch.int8).argmax(0)
            for j in done.tolist():
                status[int(active[j])] = _STOP_REASONS[int(first[j])]
            final_loss[active[done]], final_grad[active[done]] = L[done], gnorm[done]
            keep = ~stop
            active, th, L, g, H = active[keep], th[keep], L[keep], g[keep], H[keep]
            Xs, ys = _select(Xa, active, per_network=per_x), _select(y, active, per_network=per_y)
            bar.advance(len(done))
            if not active.numel():
                break
        hs = h[active].clamp(max=(t_max - t[active]).clamp(min=1e-300))
        t_start = t[active].clone()  # trace rows pair the state before the step with its time
        step, error, info = _rodas4_step(th, g, H, hs, Xs, ys, sigma, eye)
        new = th + step
        ok, factor = _step_control(th, new, error, info, rejected[active], rtol=rtol, atol=atol)
        rejected[active] = ~ok
        acc = active[ok]
        theta[acc] = new[ok]
        update[acc] = step[ok]
        t[acc] += hs[ok]
        steps[acc] += 1
        tries[active] += 1
        h[active] = hs * factor
        if trace_every:
            for j in torch.nonzero(ok).flatten().tolist():
                e = int(active[j])
                if steps[e] % trace_every == 0:
                    trace[e].append((float(t_start[j]), float(L[j]), float(pnorm[j])))
    bar.close()
    return FlowResult(
        theta,
        final_loss,
        final_grad,
        t,
        steps,
        status,
        update,
        trace if trace_every else [],
        time.perf_counter() - start,
    )


def _stop_rules(
    pnorm: torch.Tensor,
    gnorm: torch.Tensor,
    t: torch.Tensor,
    steps: torch.Tensor,
    tries: torch.Tensor,
    *,
    norm_bound: float,
    gtol: float,
    t_max: float,
    max_steps: int,
) -> torch.Tensor:
    """``(4, E)`` booleans, the stop rules in priority order (:data:`_STOP_REASONS`): norm
    bound, vanishing gradient, flow time, step count. A network stops at the first that holds."""
    return torch.stack(
        [
            (pnorm >= norm_bound).cpu(),
            (gnorm <= gtol).cpu(),
            (t >= t_max).cpu(),
            (steps >= max_steps) | (tries >= 4 * max_steps),
        ]
    )


def _rodas4_step(
    th: torch.Tensor,
    g: torch.Tensor,
    H: torch.Tensor,
    hs: torch.Tensor,
    Xs: torch.Tensor,
    ys: torch.Tensor,
    sigma: Activation,
    eye: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One RODAS4 step of size ``hs`` for every network: ``(step, error estimate, LU info)``.
    The six stages share one factorisation of ``M = I/(γh) + H``."""
    lu, piv, info = torch.linalg.lu_factor_ex(eye / (_GAMMA * hs)[:, None, None] + H)
    us: list[torch.Tensor] = []
    for i in range(6):
        if i == 0:
            rhs = -g
        else:
            arg = th + sum(_A[i][j] * us[j] for j in range(i))
            _, gi, _ = derivatives(arg, Xs, ys, sigma)
            rhs = -gi + sum(_C[i][j] * us[j] for j in range(i)) / hs[:, None]
        us.append(torch.linalg.lu_solve(lu, piv, rhs[..., None])[..., 0])
    step = sum(_A[5][j] * us[j] for j in range(5)) + us[5]
    return step, us[5], info


def _step_control(
    th: torch.Tensor,
    new: torch.Tensor,
    error: torch.Tensor,
    info: torch.Tensor,
    rejected: torch.Tensor,
    *,
    rtol: float,
    atol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept a step whose RMS scaled error is ≤ 1; the next step size's factor."""
    scale = atol + rtol * torch.maximum(th.abs(), new.abs())
    en = torch.sqrt(((error / scale) ** 2).mean(1))
    ok = (info == 0) & torch.isfinite(en) & (en <= 1.0)
    en = torch.where(torch.isfinite(en), en, torch.full_like(en, 1e6))
    factor = (0.9 * en.clamp(min=1e-10) ** -0.25).clamp(0.2, 6.0)
    # No growth right after a rejection: without this rule the step size cycled between
    # accepted steps with error 0.04 and rejected ones 6× longer (a third of all attempts
    # were rejections on the channels we measured).
    factor = torch.where(
        ok, torch.where(rejected, factor.clamp(max=1.0), factor), factor.clamp(max=0.5)
    )
    return ok, factor


def gradient_flow_scipy(
    theta0: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str | Activation,
    *,
    method: Literal["BDF", "LSODA", "Radau"] = "BDF",
    norm_bound: float = 1e3,
    gtol: float = 1e-12,
    t_max: float = 1e16,
    max_steps: int = 200_000,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> FlowResult:
    """One network's gradient flow (``theta0`` ``(P,)`` or ``(1, P)``) with SciPy's stiff solver
    (``method``), the analytic gradient and the analytic Hessian as Jacobian. The stopping rules
    of :func:`gradient_flow` are checked after every step of the solver (SciPy's event location
    on the dense output failed to bracket the gradient-norm event on some runs). Besides the
    statuses of :func:`gradient_flow`, ``"failed"`` means SciPy's solver gave up (step size
    underflow)."""
    from scipy.integrate import BDF, LSODA, Radau

    if not (theta0.ndim == 1 or (theta0.ndim == 2 and theta0.shape[0] == 1)):
        raise ValueError(
            f"`theta0` must be one network, shape (P,) or (1, P); got {tuple(theta0.shape)}."
        )
    _check_positive(norm_bound=norm_bound, gtol=gtol, t_max=t_max, rtol=rtol, atol=atol)
    int_at_least("max_steps", max_steps, 1)
    if Xa.ndim != 2 or y.ndim != 1 or Xa.shape[0] != y.shape[0]:
        raise ValueError(
            f"`Xa` must be (n, D) and `y` (n,); got shapes {tuple(Xa.shape)} and {tuple(y.shape)}."
        )
    sigma = activation(act)
    th0 = theta0.reshape(1, -1).double()
    Xd, yd = Xa.double(), y.double()

    def fun(_t: float, th: np.ndarray) -> np.ndarray:
        return -derivatives(torch.from_numpy(th)[None], Xd, yd, sigma)[1][0].numpy()

    def jac(_t: float, th: np.ndarray) -> np.ndarray:
        H = derivatives(torch.from_numpy(th)[None], Xd, yd, sigma, hessian=True)[2]
        assert H is not None
        return -H[0].numpy()

    solvers = {"BDF": BDF, "LSODA": LSODA, "Radau": Radau}
    if method not in solvers:
        raise ValueError(f"`method` (={method!r}) must be one of {tuple(solvers)}.")
    start = time.perf_counter()
    solver = solvers[method](fun, 0.0, th0[0].numpy().copy(), t_max, rtol=rtol, atol=atol, jac=jac)
    prev = solver.y.copy()
    steps, reason = 0, ""
    while not reason:
        if np.linalg.norm(solver.y) >= norm_bound:
            reason = "diverged"
        elif np.linalg.norm(fun(solver.t, solver.y)) <= gtol:
            reason = "converged"
        elif solver.status != "running":
            reason = "max_time" if solver.status == "finished" else "failed"
        elif steps >= max_steps:
            reason = "max_steps"
        else:
            prev = solver.y.copy()
            solver.step()
            steps += 1
    theta = torch.from_numpy(solver.y.copy())[None]
    L, g, _ = derivatives(theta, Xd, yd, sigma)
    return FlowResult(
        theta,
        L,
        torch.linalg.vector_norm(g, dim=1),
        torch.tensor([solver.t], dtype=torch.float64),
        torch.tensor([steps]),
        [reason],
        theta - torch.from_numpy(prev)[None],
        [],
        time.perf_counter() - start,
    )


def descend(
    theta0: torch.Tensor,
    Xa: torch.Tensor,
    y: torch.Tensor,
    act: str | Activation,
    *,
    optimizer: Literal["gd", "adam"] = "gd",
    lr: float = 1e-2,
    steps: int = 10_000,
) -> FlowResult:
    """Full-batch gradient descent or Adam (β = 0.9, 0.999) for ``steps`` steps, all networks at
    once; ``status`` is ``"steps"`` and ``time`` counts steps."""
    if optimizer not in ("gd", "adam"):
        raise ValueError(f"`optimizer` (={optimizer!r}) must be 'gd' or 'adam'.")
    _check_positive(lr=lr)
    positive_int("steps", steps)
    if theta0.ndim != 2:
        raise ValueError(f"`theta0` must be (E, P); got shape {tuple(theta0.shape)}.")
    _check_data(theta0.shape[0], Xa, y)
    sigma = activation(act)
    start = time.perf_counter()
    theta = theta0.clone()
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    update = torch.zeros_like(theta)
    for k in range(1, steps + 1):
        _, g, _ = derivatives(theta, Xa, y, sigma)
        if optimizer == "gd":
            update = -lr * g
        else:
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            update = -lr * (m / (1 - 0.9**k)) / ((v / (1 - 0.999**k)).sqrt() + 1e-8)
        theta = theta + update
    L, g, _ = derivatives(theta, Xa, y, sigma)
    E = theta.shape[0]
    return FlowResult(
        theta,
        L,
        torch.linalg.vector_norm(g, dim=1),
        torch.full((E,), float(steps), dtype=theta.dtype),
        torch.full((E,), steps),
        ["steps"] * E,
        update,
        [],
        time.perf_counter() - start,
    )
