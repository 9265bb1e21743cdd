"""Importing this module registers every built-in experiment."""

from galu.experiments import memorization  # noqa: F401
