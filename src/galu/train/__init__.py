"""Gradient training: one network, or many independent networks in one vectorised pass; a
classifier with validation early stopping; the minibatch-epoch loop; posterior sampling."""

from galu.train._classifier import accuracy, fit_classifier
from galu.train._diagnostics import effective_sample_size, split_rhat
from galu.train._loop import minibatch_epochs
from galu.train._online import fisher_diagonal, train_online
from galu.train._posterior import (
    PosteriorSamples,
    default_langevin_lr,
    gibbs_ggdln,
    langevin,
    langevin_ggdln,
    relu_forward,
)
from galu.train._trainer import (
    LOSSES,
    OPTIMIZERS,
    TrainResult,
    embed_zero_padded,
    train,
    train_ensemble,
)

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "PosteriorSamples",
    "TrainResult",
    "accuracy",
    "default_langevin_lr",
    "effective_sample_size",
    "embed_zero_padded",
    "fisher_diagonal",
    "fit_classifier",
    "gibbs_ggdln",
    "langevin",
    "langevin_ggdln",
    "minibatch_epochs",
    "relu_forward",
    "split_rhat",
    "train",
    "train_ensemble",
    "train_online",
]
