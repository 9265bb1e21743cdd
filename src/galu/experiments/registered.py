"""Importing this module registers every built-in experiment."""

from galu.experiments import (  # noqa: F401
    dgn_depth,
    generalization,
    memorization,
    min_width,
    real_data,
)
