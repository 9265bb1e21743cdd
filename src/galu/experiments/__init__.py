"""Reproduced results: each a registered experiment with a typed config and presets."""

from galu.experiments.base import Experiment, Row, experiments, get_experiment, register
from galu.experiments.config import (
    BaseConfig,
    ConfigError,
    config_table,
    parse_overrides,
    resolve,
)

__all__ = [
    "BaseConfig",
    "ConfigError",
    "Experiment",
    "Row",
    "config_table",
    "experiments",
    "get_experiment",
    "parse_overrides",
    "register",
    "resolve",
]
