"""Gradient training: one network, or many independent networks in one vectorised pass; a
classifier with validation early stopping."""

from galu.train._classifier import accuracy, fit_classifier
from galu.train._trainer import LOSSES, OPTIMIZERS, TrainResult, train, train_ensemble

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "TrainResult",
    "accuracy",
    "fit_classifier",
    "train",
    "train_ensemble",
]
