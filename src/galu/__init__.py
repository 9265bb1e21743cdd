"""galu: gated linear networks — modules, exact solvers, theory and reproducible experiments."""

from galu.gates import Gate

__version__ = "0.1.0"

__all__ = ["Gate", "__version__"]
