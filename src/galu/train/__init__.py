"""Gradient training: one network, or many independent networks in one vectorised pass."""

from galu.train._trainer import OPTIMIZERS, TrainResult, train, train_ensemble

__all__ = ["OPTIMIZERS", "TrainResult", "train", "train_ensemble"]
