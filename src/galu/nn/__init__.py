"""Gated linear networks as ``torch.nn`` modules."""

from galu.nn._dgn import DGN, VARIANTS
from galu.nn._ggdln import GGDLN, GlobalGates, ggdln_backward, ggdln_forward
from galu.nn._glu import (
    FFN_VARIANTS,
    FeedForward,
    ffn_activation,
    from_llama_mlp,
    from_torch_glu,
    gated_hidden_size,
    pack_gate_up,
    to_llama_mlp,
)
from galu.nn._layer import GaLULayer
from galu.nn._lm import ByteLM
from galu.nn._networks import DeepGaLU, GaLU0, ReLUNet, ShallowGaLU

__all__ = [
    "DGN",
    "FFN_VARIANTS",
    "GGDLN",
    "VARIANTS",
    "ByteLM",
    "DeepGaLU",
    "FeedForward",
    "GaLU0",
    "GaLULayer",
    "GlobalGates",
    "ReLUNet",
    "ShallowGaLU",
    "ffn_activation",
    "from_llama_mlp",
    "from_torch_glu",
    "gated_hidden_size",
    "ggdln_backward",
    "ggdln_forward",
    "pack_gate_up",
    "to_llama_mlp",
]
