"""GLU-family FFNs: forward + backward throughput and activation memory, eager vs
``torch.compile`` vs the fused Triton gate (CUDA), with Liger-Kernel where it is installed.

Usage::

    galu bench glu                         # = python benchmarks/glu.py; CPU: a few minutes
    galu bench glu -- --shapes small llama7b --tokens 32768     # on a CUDA GPU

Rows (``benchmarks/results/glu-<device>.csv``), one per shape × variant × implementation:

* ``ffn_ms`` (eager for every variant; ``compile``/``triton`` rows only for gated variants,
  whose gate is what they replace): median wall time of one forward + backward pass of the
  whole FFN over ``tokens`` tokens (inputs require grad; the gradient of ``out.sum()``),
  ``tokens_per_s`` from it, and its ratio to ``eager`` of the same variant in the same run;
* ``act_bytes``: activation memory, i.e. the distinct storages autograd saves for backward
  (through ``saved_tensors_hooks``; weights excluded, the input included), and on CUDA
  ``peak_bytes`` (``max_memory_allocated`` above the
  inputs);
* gate only (gated variants): ``gate_ms`` for ``act(a) ⊙ b`` forward + backward on ``(tokens,
  F)`` halves of a packed projection, the bytes it must move (read a, b, dout; write out, da,
  db: ``6·T·F·elem``), ``gate_gbps``, and on CUDA ``bw_fraction`` = that over a plain
  ``copy_`` of the same bytes measured in the same run (the practical bandwidth limit).

Shapes: ``small`` (d 1024, d_ff 4096; gated F = 2731 → 2816 rounded to 256) and ``llama7b``
(d 4096, gated F 11008; non-gated d_ff 16512). Dtype: float32 on CPU, bfloat16 on CUDA.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd
import torch

from _harness import times, write_rows
from galu.nn import FeedForward
from galu.nn._glu import GATED
from galu.ops import glu_gate, triton_available

OUT = Path(__file__).parent / "results"
SHAPES = {"small": (1024, 4096, 2816), "llama7b": (4096, 16512, 11008)}
VARIANTS = ("relu", "gelu", "swish", "glu", "bilinear", "reglu", "geglu", "swiglu", "xglu2-silu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, reps: int) -> float:
    fn()  # warm-up (and compilation)
    fn()
    return statistics.median(times(fn, repeats=reps, device=device))


def _saved_bytes(fn, params) -> int:  # type: ignore[no-untyped-def]
    """Bytes of the distinct storages autograd saves for backward, weights excluded: the
    activation memory of training."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def ffn_rows(
    shape: str, tokens: int, device: torch.device, dtype: torch.dtype, reps: int, impls: list[str]
) -> list[dict]:
    d, d_ff, F_gated = SHAPES[shape]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d, generator=g).to(device=device, dtype=dtype)
    rows = []
    for variant in VARIANTS:
        F = F_gated if variant in GATED else d_ff
        base_ms = None
        for impl in impls:
            if impl in ("triton", "compile") and variant not in GATED:
                continue  # only the gate is fused or compiled; a non-gated FFN is eager
            if impl == "triton" and device.type != "cuda":
                continue
            if impl == "liger" and variant != "swiglu":
                continue
            ffn = _make(variant, d, F, impl, device, dtype)
            if ffn is None:
                continue
            xin = x.detach().requires_grad_(True)

            def step(ffn=ffn, xin=xin) -> None:  # type: ignore[no-untyped-def]
                ffn(xin).sum().backward()

            ms = _time(step, device, reps) * 1e3
            row = dict(
                shape=shape,
                variant=variant,
                impl=impl,
                d=d,
                F=F,
                tokens=tokens,
                ffn_ms=ms,
                tokens_per_s=tokens / ms * 1e3,
                act_bytes=_saved_bytes(lambda ffn=ffn, xin=xin: ffn(xin), ffn.parameters()),
            )
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step()
                row["peak_bytes"] = torch.cuda.max_memory_allocated() - base
            if impl == "eager":
                base_ms = ms
            row["vs_eager"] = ms / base_ms if base_ms else float("nan")
            rows.append(row)
            print(row, flush=True)
    return rows


def _make(variant: str, d: int, F: int, impl: str, device, dtype):  # type: ignore[no-untyped-def]
    if impl == "liger":
        try:
            from liger_kernel.transformers.swiglu import LigerSwiGLUMLP  # type: ignore
        except ImportError:
            return None
        cfg = type("Cfg", (), dict(hidden_size=d, intermediate_size=F, hidden_act="silu"))()
        return LigerSwiGLUMLP(cfg).to(device=device, dtype=dtype)
    return FeedForward(d, F, variant, impl=impl, generator=torch.Generator().manual_seed(1)).to(
        device=device, dtype=dtype
    )


def gate_rows(
    shape: str, tokens: int, device: torch.device, dtype: torch.dtype, reps: int, impls: list[str]
) -> list[dict]:
    _, _, F = SHAPES[shape]
    g = torch.Generator().manual_seed(2)
    h = torch.randn(tokens, 2 * F, generator=g).to(device=device, dtype=dtype)
    dout = torch.randn(tokens, F, generator=g).to(device=device, dtype=dtype)
    moved = 6 * tokens * F * h.element_size()
    src = torch.empty(moved // 2 // h.element_size(), dtype=dtype, device=device)
    dst = torch.empty_like(src)
    copy_s = _time(lambda: dst.copy_(src), device, reps)  # reads + writes `moved` bytes
    rows = []
    for variant in ("swiglu", "geglu", "reglu", "xglu2-silu"):
        for impl in impls:
            if impl == "liger" or (impl == "triton" and device.type != "cuda"):
                continue
            hh = h.detach().requires_grad_(True)

            def step(hh=hh, variant=variant, impl=impl) -> None:  # type: ignore[no-untyped-def]
                a, b = hh.split(F, dim=-1)
                glu_gate(a, b, variant, impl=impl).backward(dout)

            s = _time(step, device, reps)
            row = dict(
                shape=shape,
                variant=variant,
                impl=f"gate-{impl}",
                tokens=tokens,
                F=F,
                gate_ms=s * 1e3,
                gate_gbps=moved / s / 1e9,
                copy_gbps=moved / copy_s / 1e9,
                bw_fraction=copy_s / s,
            )
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES))
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--impls", nargs="+", default=["eager", "compile", "triton", "liger"])
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shapes = args.shapes or (["small", "llama7b"] if device.type == "cuda" else ["small"])
    tokens = args.tokens or (32768 if device.type == "cuda" else 1024)
    if "triton" in args.impls and not triton_available():
        print("triton is not installed: skipping the fused kernel")
    rows: list[dict] = []
    for shape in shapes:
        rows += ffn_rows(shape, tokens, device, dtype, args.reps, args.impls)
        rows += gate_rows(shape, tokens, device, dtype, args.reps, args.impls)
    df = pd.DataFrame(rows)
    df["dtype"] = str(dtype).replace("torch.", "")
    print(df.to_string(index=False))
    write_rows(df, OUT / f"glu-{device.type}.csv", device=device)


if __name__ == "__main__":
    main()
