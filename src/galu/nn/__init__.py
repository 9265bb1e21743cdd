"""Gated linear networks as ``torch.nn`` modules."""

from galu.nn._dgn import DGN, VARIANTS
from galu.nn._ggdln import GGDLN, GlobalGates, ggdln_backward, ggdln_forward
from galu.nn._layer import GaLULayer
from galu.nn._networks import DeepGaLU, GaLU0, ReLUNet, ShallowGaLU

__all__ = [
    "DGN",
    "GGDLN",
    "VARIANTS",
    "DeepGaLU",
    "GaLU0",
    "GaLULayer",
    "GlobalGates",
    "ReLUNet",
    "ShallowGaLU",
    "ggdln_backward",
    "ggdln_forward",
]
