"""Collection rules for the whole tree (the doctests under src/galu and the tests under tests/).

``pip install -e '.[dev]'`` without the ``kernels`` extra has no triton: the one module that
imports it at the top is then left out of doctest collection (its tests skip with a reason), as
it is for a broken or too old triton (``galu.kernels.triton_status``).
"""

import os

# Triton kernels run in Triton's CPU interpreter in tests; this must be decided before triton is
# first imported (on a CUDA machine, run with TRITON_INTERPRET=0 to test the compiled kernels).
os.environ.setdefault("TRITON_INTERPRET", "1")

from galu.kernels import triton_status  # after TRITON_INTERPRET is set

collect_ignore: list[str] = []
if triton_status() is not None:  # missing, broken or too old: the kernel module is not imported
    collect_ignore.append("src/galu/kernels/_triton_gate.py")
