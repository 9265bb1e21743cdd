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
from galu.data.synthetic import random_regression

__all__ = [
    "DATASETS",
    "IMAGE_SHAPES",
    "Dataset",
    "PCAWhitener",
    "load_dataset",
    "random_regression",
    "read_idx",
    "whiten_dataset",
    "write_cifar10_batch",
    "write_idx",
]
