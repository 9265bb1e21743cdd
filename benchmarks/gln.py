"""Gated Linear Networks: samples/s of exact online training, against pygln and DeepMind.

Usage::

    galu bench gln                     # = python benchmarks/gln.py; ~6 min on 2 cores
    galu bench gln -- --quick          # fewer configurations (~2 min)
    galu bench gln -- --device cuda    # on a GPU: the fused Triton walk (see gpu_check.sh)

The anchors' numbers in ``results/gln.csv`` come from the anchor environment that
``benchmarks/_gln_anchors.py`` describes (torch 2.13.0 CPU, pygln, jax 0.10.2, dm-haiku, chex,
rlax, tfp-nightly, numba), where this file was run as ``python benchmarks/gln.py``.

The anchors are optional: ``pip install --no-deps ../shared/anchors/pygln`` makes pygln's NumPy
and PyTorch backends importable (``benchmarks/_gln_anchors.py`` aliases ``np.int``, which new
NumPy removed); DeepMind's JAX code runs when jax, dm-haiku, chex, rlax and
tensorflow-probability import.

Streams. ``digits-64``: scikit-learn's digits, pixels / 16 (1 437 training examples in a seeded
order, 360 test). ``digits-784``: the same images upsampled to 28 × 28 (bilinear), so d = 784 like
MNIST with real labels. Every implementation sees the same stream at batch 1 (exact online
learning: pygln's backends agree at batch 1) and is scored on the same test set; galu's GLN
takes ``σ(standardised x)`` as base predictions and the standardised input as side information,
pygln its own base predictor (each row min-max rescaled) on the [0, 1] input.

Rows (``benchmarks/results/gln.csv``): implementation, configuration, samples, seconds,
samples/s, test and prequential accuracy, and ``vs_pygln`` / ``vs_deepmind`` = samples/s over
the fastest pygln backend / DeepMind loop on the same configuration measured in the same run.
Also the scaling of galu's walk with
C and width, and ``gln-reference.csv`` / ``.png``: each engine's largest deviation from the
independent NumPy float64 reference (``tests/gln/reference.py``) per example of a stream.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _harness import write_rows

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _gln_anchors import (  # noqa: E402
    deepmind_available,
    deepmind_online,
    pygln_available,
    pygln_online,
)
from galu.gln import BernoulliGLN  # noqa: E402
from galu.gln._scan import numba_status  # noqa: E402

OUT = HERE / "results"
CONFIGS = {
    # name: (stream, hidden layers, C)
    "16x16-C4-d64": ("digits-64", (16, 16), 4),
    "16x16-C4-d784": ("digits-784", (16, 16), 4),
    "128x128-C4-d784": ("digits-784", (128, 128), 4),
}


def stream(name: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    if name == "digits-784":
        from scipy.ndimage import zoom

        X = np.stack([zoom(im.reshape(8, 8), 3.5, order=1).ravel() for im in X]).clip(0, 1)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm], y[perm]
    return X[:1437], y[:1437], X[1437:], y[1437:]


def galu_online(
    X,
    y,
    Xt,
    yt,
    hidden,
    C,
    *,
    engine="auto",
    dtype=torch.float32,
    device="cpu",
    lr=0.01,
    seed=0,
    warm=True,
) -> dict:
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)

    def feats(A):
        z = torch.from_numpy((A - mu) / sd).to(dtype)
        return torch.sigmoid(z), z

    def build():
        return BernoulliGLN(
            X.shape[1],
            X.shape[1],
            (*hidden, 1),
            num_outputs=10,
            context_dim=C,
            lr=lr,
            engine=engine,
            dtype=dtype,
            device=device,
            generator=torch.Generator().manual_seed(seed),
        )

    base, side = feats(X)
    yy = torch.from_numpy(y)
    if warm:  # compile / load kernels outside the timing
        build().update(base[:8].to(device), side[:8].to(device), yy[:8].to(device))
    net = build()
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    pred = net.update(base.to(device), side.to(device), yy.to(device)).predictions
    if device != "cpu":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    bt, st = feats(Xt)
    acc = float((net.predict(bt.to(device), st.to(device)).argmax(1).cpu().numpy() == yt).mean())
    return dict(
        samples=len(y),
        seconds=secs,
        samples_per_s=len(y) / secs,
        accuracy=acc,
        online_accuracy=float((pred.argmax(1).cpu().numpy() == y).mean()),
    )


def speed_rows(configs: list[str], max_seconds: float, engines: list[str]) -> list[dict]:
    rows = []
    why = pygln_available()
    for cfg in configs:
        name, hidden, C = CONFIGS[cfg]
        X, y, Xt, yt = stream(name)
        for engine, dtype in engines:
            r = galu_online(X, y, Xt, yt, hidden, C, engine=engine, dtype=dtype)
            rows.append(dict(config=cfg, implementation=f"galu-{engine}-{str(dtype)[6:]}", **r))
            print(
                f"{cfg:18s} {rows[-1]['implementation']:24s} {r['samples_per_s']:9.0f}/s "
                f"acc {r['accuracy']:.3f}",
                flush=True,
            )
        if (dm := deepmind_available()) is None:
            for loop in ("python", "scan"):
                r = deepmind_online(
                    X,
                    y,
                    Xt,
                    yt,
                    layer_sizes=list(hidden),
                    context_map_size=C,
                    learning_rate=0.01,
                    num_classes=10,
                    seed=0,
                    loop=loop,
                    max_seconds=max_seconds,
                )
                rows.append(
                    dict(
                        config=cfg,
                        implementation=f"deepmind-{loop}",
                        **{
                            k: r[k]
                            for k in (
                                "samples",
                                "seconds",
                                "samples_per_s",
                                "accuracy",
                                "online_accuracy",
                            )
                        },
                    )
                )
                print(
                    f"{cfg:18s} {'deepmind-' + loop:24s} {r['samples_per_s']:9.0f}/s "
                    f"acc {r['accuracy']:.3f} ({r['samples']} samples)",
                    flush=True,
                )
        else:
            print(f"DeepMind's code skipped: {dm}")
        if why is not None:
            print(f"pygln skipped: {why}")
            continue
        for backend in ("numpy", "pytorch"):
            r = pygln_online(
                backend,
                X,
                y,
                Xt,
                yt,
                layer_sizes=list(hidden),
                context_map_size=C,
                learning_rate=0.01,
                num_classes=10,
                seed=0,
                max_seconds=max_seconds,
            )
            rows.append(
                dict(
                    config=cfg,
                    implementation=f"pygln-{backend}",
                    **{
                        k: r[k]
                        for k in (
                            "samples",
                            "seconds",
                            "samples_per_s",
                            "accuracy",
                            "online_accuracy",
                        )
                    },
                )
            )
            print(
                f"{cfg:18s} {'pygln-' + backend:24s} {r['samples_per_s']:9.0f}/s "
                f"acc {r['accuracy']:.3f} ({r['samples']} samples)",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    for anchor in ("pygln", "deepmind"):
        part = frame[frame.implementation.str.startswith(anchor)]
        if not part.empty:
            best = part.groupby("config").samples_per_s.max()
            frame[f"vs_{anchor}"] = frame.samples_per_s / frame.config.map(best)
    return frame.to_dict("records")


def _median_run(*args, repeats: int = 3, **kw) -> dict:
    runs = [galu_online(*args, **kw) for _ in range(repeats)]
    best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return dict(best, repeats=repeats)


def scaling_rows(quick: bool) -> list[dict]:
    """galu's walk (auto engine, float32) against C and width at d = 784, median of 3 runs."""
    X, y, Xt, yt = stream("digits-784")
    rows = []
    for C in (0, 2, 4, 6) if quick else (0, 1, 2, 3, 4, 5, 6, 7, 8):
        r = _median_run(X, y, Xt, yt, (16, 16), C)
        rows.append(dict(config=f"16x16-C{C}-d784", sweep="C", C=C, width=16, **r))
    for w in (16, 64) if quick else (8, 16, 32, 64, 128, 256):
        r = _median_run(X, y, Xt, yt, (w, w), 4)
        rows.append(dict(config=f"{w}x{w}-C4-d784", sweep="width", C=4, width=w, **r))
    for r in rows:
        print(f"scaling {r['config']:18s} {r['samples_per_s']:9.0f}/s acc {r['accuracy']:.3f}")
    return rows


def reference_rows() -> list[dict]:
    """Per example, the largest |galu − reference| over the predictions, for every engine."""
    from tests.gln import reference as ref

    rng = np.random.default_rng(0)
    T, n0, d, A, sizes = 300, 8, 6, 4, (6, 5, 1)
    base, side = rng.uniform(size=(T, n0)), rng.normal(size=(T, d))
    labels = rng.integers(0, A, size=T)
    rows = []
    engines = ["numpy", "torch"] + (["numba"] if numba_status() is None else [])
    if os.environ.get("TRITON_INTERPRET") == "1":
        engines.append("triton")
    for engine in engines:
        net = BernoulliGLN(
            n0,
            d,
            sizes,
            num_outputs=A,
            context_dim=3,
            lr=0.1,
            engine=engine,
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(1),
        )
        W0 = [w.numpy().copy() for w in net.weights]
        V = [v.numpy() for v in torch.split(net.contexts.normals, list(sizes), dim=1)]
        b = [o.numpy() for o in torch.split(net.contexts.offsets, list(sizes), dim=1)]
        got = net.update(
            torch.from_numpy(base), torch.from_numpy(side), torch.from_numpy(labels)
        ).predictions.numpy()
        want, _, _ = ref.bernoulli_sequential(
            W0,
            V,
            b,
            base,
            side,
            np.eye(A)[labels],
            np.full(T, 0.1),
            eps=net.eps,
            beta=net.beta,
            bias_logit=float(np.log(net.bias / (1 - net.bias))),
            skip_rule=net.skip_rule,
        )
        err = np.abs(got - want).max(1)
        rows += [dict(engine=engine, t=t + 1, max_abs_error=float(e)) for t, e in enumerate(err)]
        print(f"reference: {engine:6s} max |galu − reference| over {T} examples: {err.max():.2e}")
    return rows


def plot(speed: pd.DataFrame, scaling: pd.DataFrame, refrows: pd.DataFrame) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 4, figsize=(18, 4), dpi=120)
    ax = axes[0]
    impls = list(dict.fromkeys(speed.implementation))
    cfgs = list(dict.fromkeys(speed.config))
    width = 0.8 / len(impls)
    for i, impl in enumerate(impls):
        vals = [
            speed[(speed.config == c) & (speed.implementation == impl)].samples_per_s.mean()
            for c in cfgs
        ]
        ax.bar(np.arange(len(cfgs)) + i * width, vals, width, label=impl)
    ax.set_xticks(np.arange(len(cfgs)) + 0.4 - width / 2, cfgs, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("training samples / s (batch 1, exact)")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title("online training throughput, 10 classes", fontsize=9)
    for ax, sweep, marker in ((axes[1], "C", "o"), (axes[2], "width", "s")):
        part = scaling[scaling.sweep == sweep]
        ax.plot(part[sweep], part.samples_per_s, marker=marker, color="C0")
        ax.set_yscale("log")
        if sweep == "width":
            ax.set_xscale("log", base=2)
        ax.set_xlabel("C (hyperplanes per neuron)" if sweep == "C" else "hidden width (C = 4)")
        ax.set_ylabel("samples / s (galu, float32, median of 3)")
        ax.grid(alpha=0.3)
        ax.set_title(f"10 × [w, w, 1], d = 784: scaling with {sweep}", fontsize=9)
    ax = axes[3]
    for engine, grp in refrows.groupby("engine"):
        ax.semilogy(grp.t, grp.max_abs_error.clip(lower=1e-18), label=engine, lw=0.8)
    ax.axhline(1e-12, color="k", ls=":", lw=0.8)
    ax.set_xlabel("example t")
    ax.set_ylabel("max |galu − NumPy reference| (float64)")
    ax.set_title("exactness: every engine vs the reference loop", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = OUT / "gln.png"
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)
    return paths


def gpu_rows() -> list[dict]:
    """The fused walk on CUDA at 10 × [128, 128, 1], C = 4, d = 784 (the issue's GPU target)."""
    X, y, Xt, yt = stream("digits-784")
    X4, y4 = np.concatenate([X] * 8), np.concatenate([y] * 8)  # 11 496 examples: steady state
    rows = []
    for hidden in ((16, 16), (128, 128)):
        for engine in ("triton", "torch"):
            r = galu_online(X4, y4, Xt, yt, hidden, 4, engine=engine, device="cuda")
            rows.append(
                dict(
                    config=f"{hidden[0]}x{hidden[1]}-C4-d784",
                    implementation=f"galu-{engine}-cuda",
                    **r,
                )
            )
            print(
                f"cuda {rows[-1]['config']:18s} {engine:7s} {r['samples_per_s']:9.0f}/s "
                f"acc {r['accuracy']:.3f}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=90.0,
        help="cap on each pygln pass (it reports the samples it saw)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--parts",
        default="speed,scaling,reference",
        help="comma-separated subset to measure; the others are read from results/",
    )
    args = parser.parse_args()
    if args.device == "cuda":
        frame = write_rows(gpu_rows(), OUT / "gln-gpu.csv", device="cuda")
        print(frame.to_string(index=False))
        return
    engines = [("auto", torch.float32), ("auto", torch.float64)]
    if not args.quick:
        engines += [("numpy", torch.float64), ("torch", torch.float64)]
    configs = list(CONFIGS) if not args.quick else ["16x16-C4-d64", "16x16-C4-d784"]
    parts = set(args.parts.split(","))
    if "speed" in parts:
        write_rows(speed_rows(configs, args.max_seconds, engines), OUT / "gln.csv")
    if "scaling" in parts:
        write_rows(scaling_rows(args.quick), OUT / "gln-scaling.csv")
    if "reference" in parts:
        write_rows(reference_rows(), OUT / "gln-reference.csv")
    speed = pd.read_csv(OUT / "gln.csv")
    scaling = pd.read_csv(OUT / "gln-scaling.csv")
    refrows = pd.read_csv(OUT / "gln-reference.csv")
    paths = plot(speed, scaling, refrows)
    cols = [
        c
        for c in (
            "config",
            "implementation",
            "samples",
            "samples_per_s",
            "accuracy",
            "online_accuracy",
            "vs_pygln",
            "vs_deepmind",
        )
        if c in speed
    ]
    print(speed[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("wrote", OUT / "gln.csv", *paths)


if __name__ == "__main__":
    main()
