"""Importing this module registers every built-in experiment."""

from galu.experiments import memorization, min_width  # noqa: F401
