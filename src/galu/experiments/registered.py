"""Importing this module registers every built-in experiment."""

from galu.experiments import generalization, memorization, min_width, real_data  # noqa: F401
