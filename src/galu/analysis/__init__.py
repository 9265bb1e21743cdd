"""Measurements on trained or sampled models, reused by experiments, benchmarks and users:
channel rows and the jump procedure (:mod:`galu.channels` models), Wilson intervals, the GGDLN
theory-vs-GP-vs-sampler evaluation, gate-flip and kernel-alignment metrics."""

from galu.analysis._channels import channel_fractions, jump_series, network_rows, train_networks
from galu.analysis._gates import flipped_fraction, kernel_alignment, label_kernel
from galu.analysis._ggdln import evaluate_ggdln
from galu.analysis._intervals import wilson_interval
from galu.analysis._online import prequential_curve

__all__ = [
    "channel_fractions",
    "evaluate_ggdln",
    "flipped_fraction",
    "jump_series",
    "kernel_alignment",
    "label_kernel",
    "network_rows",
    "prequential_curve",
    "train_networks",
    "wilson_interval",
]
