"""Gradient training: one network, or many independent networks in one vectorised pass."""

from galu.train._trainer import LOSSES, OPTIMIZERS, TrainResult, train, train_ensemble

__all__ = ["LOSSES", "OPTIMIZERS", "TrainResult", "train", "train_ensemble"]
