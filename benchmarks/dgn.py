"""Deep gated networks: training-step cost of every variant against a ReLU network, and the
path kernel at scale.

Usage::

    galu bench dgn            # = python benchmarks/dgn.py; about a minute on 2 cores

Rows (``benchmarks/results/dgn.csv``): for each variant and architecture, the median wall time of
one forward + backward pass over a batch (no optimiser step) and the bytes autograd saves for
the backward pass (summed through ``saved_tensors_hooks``: the activation memory of training),
each with its ratio to the ``relu`` variant of the same shape measured in the same run. The
gated variants run two networks; the aim is ≤ 2.2× ReLU. Also: the closed-form path kernel
``H = (XXᵀ) ⊙ Π_l G_l G_lᵀ`` on 5,000 points for 5 layers of width 128 (time, bytes of the
largest temporaries, and the number of paths it did not enumerate).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from _harness import write_rows
from galu.nn import DGN, VARIANTS
from galu.paths import model_path_kernel

OUT = Path(__file__).parent / "results" / "dgn.csv"
SHAPES = {
    # The NPF paper's FC net on MNIST-sized inputs, and a small VCONV-like conv net.
    "fc": dict(in_features=784, widths=(128,) * 5, out=10, x=(256, 784)),
    "conv": dict(in_features=3, widths=(32, 32, 64, 64), out=10, x=(32, 3, 32, 32)),
}


def _saved_bytes(fn) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def step_rows(arch: str, repeats: int) -> list[dict]:
    spec = SHAPES[arch]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*spec["x"], generator=g)
    y = torch.randint(0, spec["out"], (spec["x"][0],), generator=g)
    rows = []
    relu_src = DGN(spec["in_features"], spec["widths"], spec["out"], arch=arch,
                   generator=torch.Generator().manual_seed(1))  # fmt: skip
    for variant in [v for v in VARIANTS if v != "galu"]:
        kw = dict(gating_from=relu_src) if variant == "flnpf" else {}
        net = DGN(spec["in_features"], spec["widths"], spec["out"], variant=variant, arch=arch,
                  generator=torch.Generator().manual_seed(2), **kw)  # fmt: skip

        def fwd_bwd(net=net):
            net.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()

        fwd_bwd()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fwd_bwd()
            times.append(time.perf_counter() - t0)
        rows.append(dict(benchmark="train-step", arch=arch, variant=variant,
                         batch=spec["x"][0], seconds=statistics.median(times),
                         saved_mb=_saved_bytes(fwd_bwd) / 2**20))  # fmt: skip
    base = next(r for r in rows if r["variant"] == "relu")
    for r in rows:
        r["time_vs_relu"] = r["seconds"] / base["seconds"]
        r["memory_vs_relu"] = r["saved_mb"] / base["saved_mb"]
    return rows


def kernel_row(m: int = 5000, d: int = 784, width: int = 128, depth: int = 5) -> dict:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(m, d, generator=g, dtype=torch.float64) / d**0.5
    net = DGN(d, (width,) * depth, 1, variant="galu", generator=g, dtype=torch.float64)
    t0 = time.perf_counter()
    H = model_path_kernel(net, X)
    seconds = time.perf_counter() - t0
    assert torch.isfinite(H).all()
    return dict(benchmark="path-kernel", arch="fc", variant="galu", batch=m, seconds=seconds,
                saved_mb=2 * H.numel() * H.element_size() / 2**20,  # H and one G_l G_lᵀ
                paths=float(d * width**depth))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rows = step_rows("fc", args.repeats) + step_rows("conv", max(3, args.repeats // 3))
    rows.append(kernel_row())
    for r in rows:
        if "time_vs_relu" in r:
            ratio = f"  {r['time_vs_relu']:.2f}× time, {r['memory_vs_relu']:.2f}× memory"
        else:
            ratio = f"  ({r['paths']:.2e} paths not enumerated)"
        head = f"{r['benchmark']:>11} {r['arch']:>4} {r['variant']:>9}"
        print(f"{head}: {r['seconds'] * 1e3:8.1f} ms {r['saved_mb']:8.1f} MiB{ratio}", flush=True)
    write_rows(rows, OUT)


if __name__ == "__main__":
    main()
