"""Gradient flow to convergence: networks per second, vectorised vs one network at a time.

Usage::

    galu bench channels            # = python benchmarks/channels.py; a few minutes on 2 cores

For each configuration the same ``E`` initialisations (Glorot normal, float64) are integrated
to their end states three ways, in the same process:

``batched``   ``gradient_flow`` on all ``E`` networks at once (lockstep, one adaptive step each);
``one-by-one`` the same integrator called once per network;
``scipy-bdf`` SciPy's BDF integrator per network with the analytic gradient and Hessian (the
              usual way to integrate a stiff gradient flow in Python), timed on the first
              ``--scipy-networks`` networks and extrapolated.

Every method stops a network at the norm bound 10³, at a gradient below 1e-12, or after 10 000
steps (the quick sweep's cap).

Rows (``benchmarks/results/channels.csv``): configuration, method, seconds, networks per second,
the speed-up over ``one-by-one`` measured in the same run, the fraction of networks ending in a
channel, and how many end states agree with ``one-by-one`` (same status and channel verdict).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _harness import write_rows
from galu.channels import augment, detect_channels, glorot_init, gradient_flow, gradient_flow_scipy
from galu.data import target_task
from galu.seeding import generator

RESULTS = Path(__file__).parent / "results"
CONFIGS = [  # (d, r, activation, target, n, E)
    (2, 4, "erf", "matern-0.5", 256, 24),
    (4, 4, "softplus", "matern-2", 256, 24),
    (2, 8, "erf", "rosenbrock", 256, 16),
]
# Every method stops a network after this many steps (the quick sweep's cap), so a few very long
# channels do not dominate the comparison.
MAX_STEPS = 10_000


def _verdicts(res, D):
    reps = detect_channels(res.theta, D, res.update)
    return [(s, rep.at_channel) for s, rep in zip(res.status, reps, strict=True)]


def run(config, scipy_limit: int) -> list[dict]:
    d, r, act, target, n, E = config
    X, y = target_task(d, n, target, 0)
    Xa = augment(X)
    theta0 = glorot_init(E, r, d + 1, generator=generator(0, "bench-channels", d, r))
    rows = []
    t0 = time.perf_counter()
    batched = gradient_flow(theta0, Xa, y, act, max_steps=MAX_STEPS)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [gradient_flow(theta0[e : e + 1], Xa, y, act, max_steps=MAX_STEPS) for e in range(E)]
    t_alone = time.perf_counter() - t0
    ref = [v for res in alone for v in _verdicts(res, d + 1)]
    got = _verdicts(batched, d + 1)
    base = dict(d=d, r=r, activation=act, target=target, n=n, networks=E)
    rows.append(
        dict(
            base,
            method="batched",
            seconds=t_batch,
            mean_steps=float(batched.steps.float().mean()),
            agree=sum(a == b for a, b in zip(got, ref, strict=True)),
            channel_fraction=sum(v for _, v in got) / E,
        )
    )
    rows.append(
        dict(
            base,
            method="one-by-one",
            seconds=t_alone,
            mean_steps=sum(float(res.steps[0]) for res in alone) / E,
            agree=E,
            channel_fraction=sum(v for _, v in ref) / E,
        )
    )
    k = min(E, scipy_limit)
    t0 = time.perf_counter()
    sp = [gradient_flow_scipy(theta0[e], Xa, y, act, max_steps=MAX_STEPS) for e in range(k)]
    t_sp = time.perf_counter() - t0
    sv = [v for res in sp for v in _verdicts(res, d + 1)]
    rows.append(
        dict(
            base,
            method="scipy-bdf",
            seconds=t_sp * E / k,
            measured_networks=k,
            mean_steps=sum(float(res.steps[0]) for res in sp) / k,
            agree=sum(a[1] == b[1] for a, b in zip(sv, ref[:k], strict=True)),
            channel_fraction=sum(v for _, v in sv) / k,
        )
    )
    for row in rows:
        row["networks_per_second"] = E / row["seconds"]
        row["speedup_vs_one_by_one"] = t_alone / row["seconds"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scipy-networks",
        type=int,
        default=8,
        help="networks timed with SciPy per configuration (extrapolated)",
    )
    args = parser.parse_args()
    rows = []
    for config in CONFIGS:
        rows += run(config, args.scipy_networks)
        for row in rows[-3:]:
            print(
                f"d={row['d']} r={row['r']} {row['activation']:>8} {row['target']:>11} "
                f"{row['method']:>10}: {row['seconds']:8.2f} s  "
                f"{row['networks_per_second']:7.2f} nets/s  x{row['speedup_vs_one_by_one']:.2f} "
                f"agree {row['agree']}  channels {row['channel_fraction']:.2f}",
                flush=True,
            )
    write_rows(rows, RESULTS / "channels.csv")


if __name__ == "__main__":
    main()
