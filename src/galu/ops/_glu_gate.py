"""The GLU gate ``act(a) ⊙ b`` of gated feed-forward layers, and its dispatch.

``glu_gate(a, b, variant, impl=...)`` computes ``act(a) ⊙ b``:

``"eager"``    :func:`galu.nn.ffn_activation` (float32 math, the reference)
``"compile"``  the same function through ``torch.compile`` (fuses on CPU and GPU)
``"triton"``   the fused Triton kernel (:mod:`galu.ops._glu_triton`): CUDA tensors, or CPU
               tensors with ``TRITON_INTERPRET=1`` (Triton's interpreter, for testing)
``"auto"``     Triton for CUDA tensors when Triton is installed and the variant is fused,
               else eager

Fused variants: :data:`FUSED_VARIANTS`, every gated variant.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Callable
from typing import Any

import torch

from galu.ops._glu_eager import GATED, ffn_activation

FUSED_VARIANTS: tuple[str, ...] = GATED  # the Triton kernel fuses every gated variant
IMPLS = ("auto", "eager", "compile", "triton")
_FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # the kernel computes in float32


# The oldest triton the fused kernel is tested with (the `kernels` extra's floor). torch 2.4's
# CUDA wheels pin triton 3.0, whose interpreter returns wrong values for this kernel: with such a
# triton, `auto` uses the eager path and `impl="triton"` says why.
TRITON_MIN = (3, 2)


@functools.cache
def triton_status() -> str | None:
    """``None`` when the fused kernel can run, else why not (triton missing, broken or older
    than :data:`TRITON_MIN`)."""
    hint = "pip install -e '.[kernels]'"
    if importlib.util.find_spec("triton") is None:
        return f"triton is not installed ({hint})"
    try:
        import triton
    except ImportError as exc:
        return f"triton does not import ({exc}); reinstall it ({hint})"
    version = str(getattr(triton, "__version__", "0"))
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or (int(match.group(1)), int(match.group(2))) < TRITON_MIN:
        floor = ".".join(map(str, TRITON_MIN))
        return f"triton {version} is older than {floor}, the oldest the fused kernel supports"
    return None


def triton_available() -> bool:
    """Whether the fused kernel can run: ``triton`` installed, importable and at least
    :data:`TRITON_MIN` (see :func:`triton_status` for the reason when not)."""
    return triton_status() is None


@functools.cache
def _compiled(variant: str) -> Callable[..., torch.Tensor]:
    def f(a: torch.Tensor, b: torch.Tensor, alpha: Any, beta: float) -> torch.Tensor:
        return ffn_activation(variant, a, b, alpha=alpha, beta=beta)

    return torch.compile(f, dynamic=True)


def glu_gate(
    a: torch.Tensor,
    b: torch.Tensor,
    variant: str,
    *,
    alpha: torch.Tensor | float = 0.0,
    beta: float = 1.0,
    impl: str = "auto",
) -> torch.Tensor:
    """``act(a) ⊙ b`` for a gated FFN variant, by the chosen implementation (module doc)."""
    if impl not in IMPLS:
        raise ValueError(f"`impl` (={impl!r}) must be one of {IMPLS}.")
    if variant not in GATED:
        raise ValueError(f"`variant` (={variant!r}) must be a gated variant: {GATED}.")
    if a.shape != b.shape:
        raise ValueError(f"`a` {tuple(a.shape)} and `b` {tuple(b.shape)} must have one shape.")
    if b.device != a.device or b.dtype != a.dtype:
        raise ValueError(f"`b` ({b.dtype} on {b.device}) must match `a` ({a.dtype} on {a.device}).")
    if not a.is_floating_point():
        raise ValueError(f"`a` must be a floating tensor; got {a.dtype}.")
    if not beta > 0:
        raise ValueError(f"`beta` (={beta!r}) must be > 0.")
    if isinstance(alpha, torch.Tensor) and alpha.numel() != 1:
        raise ValueError(
            f"`alpha` must be one scalar (one per module); got shape {tuple(alpha.shape)}."
        )
    if impl == "auto":
        fusable = a.dtype in _FUSED_DTYPES and a.numel() > 0 and variant in FUSED_VARIANTS
        impl = "triton" if a.is_cuda and fusable and triton_available() else "eager"
    if impl == "eager":
        return ffn_activation(variant, a, b, alpha=alpha, beta=beta)
    if impl == "compile":
        return _compiled(variant)(a, b, alpha, beta)
    if variant not in FUSED_VARIANTS:
        raise ValueError(f"variant {variant!r} has no fused kernel; fused: {FUSED_VARIANTS}.")
    reason = triton_status()
    if reason is not None:
        raise RuntimeError(f"impl='triton' cannot run: {reason}.")
    if not a.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "impl='triton' on CPU tensors needs TRITON_INTERPRET=1 (set before triton is imported)."
        )
    if a.dtype not in _FUSED_DTYPES or a.ndim == 0:
        raise ValueError(
            "impl='triton' takes float32/bfloat16/float16 tensors with at least one dimension; "
            f"got {a.dtype} of shape {tuple(a.shape)}."
        )
    if a.numel() == 0:
        return ffn_activation(variant, a, b, alpha=alpha, beta=beta)
    from galu.ops._glu_triton import FusedGate

    if not isinstance(alpha, torch.Tensor):
        alpha = torch.tensor(float(alpha), device=a.device)
    return FusedGate.apply(a, b, alpha.reshape(()), variant, beta)


__all__ = ["FUSED_VARIANTS", "IMPLS", "TRITON_MIN", "glu_gate", "triton_available", "triton_status"]
