"""Exact theory: the finite-width kernel renormalisation of globally gated deep linear networks
(and its deep-linear and infinite-width special cases)."""

from galu.theory._ggdln import (
    GGDLNProblem,
    GGDLNTheory,
    SaddlePointWarning,
    action_and_gradient,
    ggdln_problem,
    ggdln_theory,
    path_gates,
    renormalized_kernel,
    solve_ggdln,
)

__all__ = [
    "GGDLNProblem",
    "GGDLNTheory",
    "SaddlePointWarning",
    "action_and_gradient",
    "ggdln_problem",
    "ggdln_theory",
    "path_gates",
    "renormalized_kernel",
    "solve_ggdln",
]
