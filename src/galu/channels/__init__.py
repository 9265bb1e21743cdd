"""Flat channels to infinity: train MLPs to true convergence, detect the channels their gradient
flow ends in, and convert them into the gated linear units at their end (Martinelli et al. 2025;
``docs/channels.md``).

``gradient_flow``          batched stiff (Rosenbrock) integration of full-batch gradient flow
``gradient_flow_scipy``    one network with SciPy's BDF/LSODA (the reference)
``descend``                full-batch GD / Adam for comparison
``detect_channels``        the paper's three criteria, multi-neuron groups, limit quantities
``glu_limit``, ``refine``  the explicit ``c σ(w·x̃) + (v·x̃) σ'(w·x̃)`` network and its training
``jump``                   halve a channel's ε keeping ``c`` and ``v``
"""

from galu.channels._activations import ACTIVATIONS, Activation, activation
from galu.channels._detect import Channel, ChannelReport, detect_channels
from galu.channels._flow import FlowResult, descend, gradient_flow, gradient_flow_scipy
from galu.channels._limit import LimitNetwork, LimitUnit, glu_limit, jump, refine
from galu.channels._mlp import (
    augment,
    derivatives,
    forward,
    glorot_init,
    hvp,
    loss,
    n_params,
    pack,
    top_eigenvalue,
    unpack,
)

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Channel",
    "ChannelReport",
    "FlowResult",
    "LimitNetwork",
    "LimitUnit",
    "activation",
    "augment",
    "derivatives",
    "descend",
    "detect_channels",
    "forward",
    "glorot_init",
    "glu_limit",
    "gradient_flow",
    "gradient_flow_scipy",
    "hvp",
    "jump",
    "loss",
    "n_params",
    "pack",
    "refine",
    "top_eigenvalue",
    "unpack",
]
