"""Collection rules for the whole tree (the doctests under src/galu and the tests under tests/).

``pip install -e '.[dev]'`` without the ``kernels`` extra has no triton: the one module that
imports it at the top is then left out of doctest collection (its tests skip with a reason), as
it is for a broken or too old triton (``galu.ops.triton_status``). Likewise the compiled GLN
walks without the ``fast`` extra (numba).
"""

import os

# Triton kernels run in Triton's CPU interpreter in tests; this must be decided before triton is
# first imported (on a CUDA machine, run with TRITON_INTERPRET=0 to test the compiled kernels).
os.environ.setdefault("TRITON_INTERPRET", "1")

from galu.gln._scan import numba_status
from galu.ops import triton_status  # after TRITON_INTERPRET is set

collect_ignore: list[str] = []
if triton_status() is not None:  # missing, broken or too old: the kernel modules are not imported
    collect_ignore += ["src/galu/ops/_glu_triton.py", "src/galu/gln/_triton.py"]
if numba_status() is not None:  # without the `fast` extra the compiled GLN walks are left out
    collect_ignore.append("src/galu/gln/_numba.py")
