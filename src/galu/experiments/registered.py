"""Importing this module registers every built-in experiment."""

from galu.experiments import (  # noqa: F401
    channels,
    dgn_depth,
    dgn_variants,
    gate_adaptation,
    gaussian_gln,
    generalization,
    ggdln,
    gln,
    glu_lm,
    memorization,
    min_width,
    real_data,
)
