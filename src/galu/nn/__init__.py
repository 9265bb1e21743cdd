"""Gated linear networks as ``torch.nn`` modules."""

from galu.nn._dgn import DGN, VARIANTS
from galu.nn._layer import GaLULayer
from galu.nn._networks import DeepGaLU, GaLU0, ReLUNet, ShallowGaLU

__all__ = ["DGN", "VARIANTS", "DeepGaLU", "GaLU0", "GaLULayer", "ReLUNet", "ShallowGaLU"]
