"""Task generators and dataset loaders."""

from galu.data.datasets import (
    DATASETS,
    IMAGE_SHAPES,
    Dataset,
    DatasetName,
    load_dataset,
    read_idx,
    write_cifar10_batch,
    write_idx,
)
from galu.data.preprocess import PCAWhitener, whiten_dataset
from galu.data.streams import Stream, bayes_probability, load_stream, permuted_tasks
from galu.data.synthetic import (
    erf_toy,
    matern_gp_sample,
    parse_target,
    random_regression,
    rosenbrock,
    rosenbrock_grid,
    standardize,
    target_task,
)
from galu.data.tasks import ggdln_task
from galu.data.text import load_text, stdlib_text

__all__ = [
    "DATASETS",
    "IMAGE_SHAPES",
    "Dataset",
    "DatasetName",
    "PCAWhitener",
    "Stream",
    "bayes_probability",
    "erf_toy",
    "ggdln_task",
    "load_dataset",
    "load_stream",
    "load_text",
    "matern_gp_sample",
    "parse_target",
    "permuted_tasks",
    "random_regression",
    "read_idx",
    "rosenbrock",
    "rosenbrock_grid",
    "standardize",
    "stdlib_text",
    "target_task",
    "whiten_dataset",
    "write_cifar10_batch",
    "write_idx",
]
