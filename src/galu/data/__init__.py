"""Task generators and dataset loaders."""

from galu.data.synthetic import random_regression

__all__ = ["random_regression"]
