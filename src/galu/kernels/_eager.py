"""Moved to :mod:`galu.ops._glu_eager` in galu 0.2; this alias goes in 0.3."""

from galu.ops._glu_eager import *  # noqa: F403
from galu.ops._glu_eager import (  # noqa: F401
    EXPANDED,
    FFN_VARIANTS,
    GATED,
    NON_GATED,
    expanded_gate,
    ffn_activation,
)
