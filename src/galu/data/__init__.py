"""Task generators and dataset loaders."""

from galu.data.datasets import (
    DATASETS,
    IMAGE_SHAPES,
    Dataset,
    load_dataset,
    read_idx,
    write_cifar10_batch,
    write_idx,
)
from galu.data.preprocess import PCAWhitener, whiten_dataset
from galu.data.synthetic import (
    erf_toy,
    matern_gp_sample,
    random_regression,
    rosenbrock,
    rosenbrock_grid,
    standardize,
)

__all__ = [
    "DATASETS",
    "IMAGE_SHAPES",
    "Dataset",
    "PCAWhitener",
    "erf_toy",
    "load_dataset",
    "matern_gp_sample",
    "random_regression",
    "read_idx",
    "rosenbrock",
    "rosenbrock_grid",
    "standardize",
    "whiten_dataset",
    "write_cifar10_batch",
    "write_idx",
]
