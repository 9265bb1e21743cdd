"""Gated Linear Networks (Veness et al.): online, backprop-free learning with local convex losses.

``BernoulliGLN`` (binary and one-vs-all classification), ``DendriticGLN`` (branches whose active
weights are summed), ``GaussianGLN`` (regression with product-of-Gaussians neurons), their
half-space contexts, the exact fast training scans, the export to a backprop-trainable gated deep
linear network, and scikit-learn estimators. See ``docs/gln.md``.
"""

from galu.gln._bernoulli import BATCH_MODES, BernoulliGLN, GLNUpdate, table_bytes
from galu.gln._contexts import HalfSpaces
from galu.gln._dendritic import DendriticGLN
from galu.gln._estimator import GLNClassifier, GLNRegressor
from galu.gln._export import LogitGatedNetwork
from galu.gln._gaussian import GaussianGLN, GaussianUpdate
from galu.gln._math import LearningRate
from galu.gln._scan import SKIP_RULES

__all__ = [
    "BATCH_MODES",
    "SKIP_RULES",
    "BernoulliGLN",
    "DendriticGLN",
    "GLNClassifier",
    "GLNRegressor",
    "GLNUpdate",
    "GaussianGLN",
    "GaussianUpdate",
    "HalfSpaces",
    "LearningRate",
    "LogitGatedNetwork",
    "table_bytes",
]
