"""The memory guard of the exact fits (estimate, budget, refusal) and the progress hooks."""

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import galu.solvers._memory as memory
from galu.solvers import (
    SOLVERS,
    ConvergenceWarning,
    InsufficientMemoryError,
    estimate_fit_memory,
    fit_galu,
    ridge_path,
    sample_gate_vectors,
)

GiB = 2**30


def _problem(m, d, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, generator=g, dtype=torch.float64)
    return X, y, sample_gate_vectors(k, d, generator=g)


def _peak_rss() -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := current RSS
    except OSError:
        return False
    return True


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_issues_size_is_refused_before_anything_large_is_allocated(solver):
    # m = 10⁶, d = 512, k = 4096: X would be 3.8 GiB and G 30.5 GiB. Stride-0 views cost nothing,
    # so only a fit that allocates before checking could use memory here.
    m, d, k = 10**6, 512, 4096
    X = torch.zeros(1, 1, dtype=torch.float64).expand(m, d)
    y = torch.zeros(1, dtype=torch.float64).expand(m)
    U = torch.ones(k, d, dtype=torch.float64)
    measured = _reset_peak_rss()
    before = _peak_rss()
    with pytest.raises(InsufficientMemoryError) as info:
        fit_galu(X, y, U, solver=solver, memory_limit=16 * GiB)
    if measured and before is not None:
        assert _peak_rss() - before < 64 * 2**20  # nothing of the problem's size was touched
    err = info.value
    assert isinstance(err, MemoryError) and isinstance(err, ValueError)
    assert err.available == 16 * GiB and err.needed > err.available
    ran = "cg" if solver == "auto" else solver
    assert err.solver == ran
    arrow = r" \(→ cg\)" if solver == "auto" else ""
    assert re.match(
        rf"fit_galu\(solver='{solver}'{arrow}\) needs about [\d.]+ [GT]iB at its peak \(.*\), but "
        r"16\.0 GiB is available \(memory_limit=17179869184 \(16\.0 GiB\)\)\. No path fits: the "
        r"leanest, solver='lsqr', needs about 38\.3 GiB \(every path holds the m × k gate "
        r"matrix, 30\.5 GiB\)\. Use fewer samples or gates \(smaller k\), dtype=torch\.float32 "
        r"\(half the memory\), or a device with more memory \(device='cuda'\)\.$",
        str(err),
    ), str(err)


def test_the_default_budget_is_the_free_memory_and_the_message_says_what_fits(monkeypatch):
    m, d, k = 30000, 16, 256
    X, y, U = _problem(m, d, k)
    need = {s: estimate_fit_memory(m, d, k, solver=s, copies_inputs=False).bytes for s in SOLVERS}
    free = (need["cg"] + need["primal"]) // 2  # cg fits, the normal equations do not
    assert need["lsqr"] < need["cg"] < free < need["primal"] < need["dual"]
    monkeypatch.setattr(memory, "available_bytes", lambda device: free)
    with pytest.raises(InsufficientMemoryError) as info:
        fit_galu(X, y, U, solver="primal")
    message = str(info.value)
    assert message.startswith(
        f"fit_galu(solver='primal') needs about {memory.format_bytes(need['primal'])} at its "
        "peak (eigendecomposition 416.0 MiB, ΨᵀΨ (kd × kd) 128.0 MiB, gates G (m × k) 58.6 MiB)"
    )
    assert f"but {memory.format_bytes(free)} is available (free on cpu (MemAvailable))" in message
    assert (
        f"solver='cg' (matrix-free) needs about {memory.format_bytes(need['cg'])} and fits: use "
        "it, with a small `ridge`" in message
    )
    assert message.endswith("set memory_limit= (bytes) or $GALU_MEMORY_LIMIT.")
    # auto picks what fits: the direct paths may use half the free memory, so here it is cg.
    # (A few iterations show the path; memory does not grow with them.)
    with pytest.warns(ConvergenceWarning, match="CG stopped"):
        assert fit_galu(X, y, U, max_iter=5).solver == "cg"
    # With room for lsqr only, auto runs lsqr; with room for nothing, it refuses.
    monkeypatch.setattr(memory, "available_bytes", lambda device: need["lsqr"] + 1)
    with pytest.warns(ConvergenceWarning, match="LSQR stopped"):
        assert fit_galu(X, y, U, max_iter=5).solver == "lsqr"
    monkeypatch.setattr(memory, "available_bytes", lambda device: need["lsqr"] - 1)
    with pytest.raises(InsufficientMemoryError, match=r"No path fits: the leanest, solver='lsqr'"):
        fit_galu(X, y, U)
    # With room for twice the normal equations, auto chooses them (and may try CG first).
    for free, path in ((2 * need["primal"] + 1, "primal"), (2 * need["primal"] - 1, "cg")):
        monkeypatch.setattr(memory, "available_bytes", lambda device, free=free: free)
        assert estimate_fit_memory(m, d, k, solver="auto", copies_inputs=False).solver == path


def test_memory_limit_and_the_environment_variable_override_the_probe(monkeypatch):
    X, y, U = _problem(200, 5, 8)
    with pytest.raises(InsufficientMemoryError, match=r"is available \(GALU_MEMORY_LIMIT=1MiB\)"):
        monkeypatch.setenv("GALU_MEMORY_LIMIT", "1MiB")
        fit_galu(X, y, U)
    with pytest.raises(InsufficientMemoryError, match=r"ridge_path\(solver='primal'\) needs"):
        ridge_path(X, y, U, [0.0, 1.0])
    # memory_limit= wins over the variable; a budget that fits changes nothing in the answer.
    fit = fit_galu(X, y, U, memory_limit=GiB)
    monkeypatch.delenv("GALU_MEMORY_LIMIT")
    assert torch.equal(fit.weight, fit_galu(X, y, U).weight)
    monkeypatch.setenv("GALU_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match=r"`GALU_MEMORY_LIMIT` \(='lots'\) must be a number"):
        fit_galu(X, y, U)
    monkeypatch.setenv("GALU_MEMORY_LIMIT", "2e9")
    assert fit_galu(X, y, U).solver == "primal"
    with pytest.raises(ValueError, match=r"`memory_limit` \(=0\) must be a positive number"):
        fit_galu(X, y, U, memory_limit=0)
    assert memory.parse_bytes("1.5 GiB", "x") == 3 * 2**29
    assert memory.parse_bytes("500MB", "x") == 500 * 10**6


def test_the_estimate_counts_converted_inputs_and_scales_with_the_problem():
    base = estimate_fit_memory(10**5, 64, 256, solver="lsqr", copies_inputs=False)
    copied = estimate_fit_memory(10**5, 64, 256, solver="lsqr", copies_inputs=True)
    assert copied.bytes - base.bytes == (10**5 * 64 + 10**5) * 8  # X and y in float64
    f32 = estimate_fit_memory(10**5, 64, 256, solver="lsqr", dtype=torch.float32)
    assert f32.bytes < 0.55 * copied.bytes + memory._LIBRARY_BUFFERS
    # The square systems: kd × kd for primal, m × m for dual.
    p1 = estimate_fit_memory(10**5, 32, 64, solver="primal", ridge=1.0).bytes
    p2 = estimate_fit_memory(10**5, 32, 128, solver="primal", ridge=1.0).bytes
    assert 3.5 < (p2 - p1) / (3 * (2048**2) * 8) < 4.5  # 3 n² numbers, n doubled
    auto = estimate_fit_memory(500, 100, 50, solver="auto", memory_limit=GiB)
    assert auto.solver == "dual"


# Each case: (solver, m, d, k, ridge, max_iter). The peak is what the process's resident set
# grows by during the fit (VmHWM after resetting it), measured with glibc returning every freed
# block above 64 KiB to the system (MALLOC_MMAP_THRESHOLD_), so that the resident set follows
# the arrays that are alive. Iterative paths run a few iterations: their memory does not grow.
PEAK_CASES = [
    ("primal", 8000, 32, 64, 1.0, None),  # normal equations, Cholesky of the shifted system
    ("primal", 1000, 16, 128, 0.0, None),  # kd > m: singular, the eigendecomposition fallback
    ("dual", 3000, 16, 500, 1.0, None),
    ("svd", 2000, 16, 100, 0.0, None),
    ("lsqr", 100_000, 16, 256, 1.0, 3),
    ("cg", 100_000, 16, 256, 1.0, 3),
]
_MEASURE = textwrap.dedent(
    """
    import json, re, sys, warnings
    import torch
    from galu.solvers import estimate_fit_memory, fit_galu, sample_gate_vectors

    def hwm():
        text = open("/proc/self/status").read()
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", text).group(1)) * 1024

    out = []
    for solver, m, d, k, ridge, max_iter in json.loads(sys.argv[1]):
        g = torch.Generator().manual_seed(0)
        X = torch.randn(m, d, generator=g, dtype=torch.float64)
        y = torch.randn(m, generator=g, dtype=torch.float64)
        U = sample_gate_vectors(k, d, generator=g)
        kw = dict(solver=solver, ridge=ridge, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_galu(X[:64], y[:64], U[:2], **kw)  # warm up: libraries' one-time set-up
            open("/proc/self/clear_refs", "w").write("5")
            start = hwm()
            fit_galu(X, y, U, memory_limit=2**40, **kw)
            peak = hwm() - start
        est = estimate_fit_memory(m, d, k, solver=solver, ridge=ridge, copies_inputs=False)
        out.append(dict(solver=solver, measured=peak, estimate=est.bytes))
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)")
def test_the_estimate_bounds_the_measured_peak_of_every_path():
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="2")
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps(PEAK_CASES)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    for row in rows:
        ratio = row["measured"] / row["estimate"]
        # An upper bound (refusing on it never lets an out-of-memory crash through) that is
        # not loose: at least 70% of it is really used. Measured: 0.78–0.92.
        assert 0.7 <= ratio <= 1.0, (row, ratio)


def test_lsqr_and_cg_report_every_iteration_with_decreasing_residuals():
    X, y, U = _problem(400, 6, 10)
    for solver in ("lsqr", "cg"):
        seen: list[tuple[int, float]] = []
        fit = fit_galu(
            X, y, U, solver=solver, ridge=1e-3, callback=lambda i, r, seen=seen: seen.append((i, r))
        )
        iterations = [i for i, _ in seen]
        residuals = np.array([r for _, r in seen])
        assert iterations == list(range(1, fit.n_iter + 1))
        if solver == "lsqr":  # ‖r̄_k‖ is monotone; it levels off at the least-squares residual
            assert (np.diff(residuals) <= 1e-12 * residuals[:-1]).all()
            assert residuals[-1] < residuals[0]
        else:  # CG minimises the error's energy norm: its residual falls in steps of ~10
            blocks = [residuals[i : i + 10].max() for i in range(0, len(residuals), 10)]
            assert all(b < a for a, b in itertools.pairwise(blocks))
            assert residuals[-1] < 1e-9 * residuals[0]
    # Direct paths have no iterations.
    calls = []
    fit_galu(X, y, U, solver="primal", callback=lambda i, r: calls.append(i))
    assert calls == []
    with pytest.raises(ValueError, match=r"`callback` \(=3\) must be callable"):
        fit_galu(X, y, U, callback=3)


def test_auto_reports_its_cg_attempt_and_verbose_prints_progress(monkeypatch, capsys):
    import galu.solvers._galu as mod

    X, y, U = _problem(400, 6, 10)
    monkeypatch.setattr(mod, "_CG_FIRST_MIN_ITERS", 1)
    monkeypatch.setattr(mod, "_CG_FIRST_SHARE", 1e-3)  # a budget of thousands of iterations
    seen = []
    fit = fit_galu(X, y, U, callback=lambda i, r: seen.append(i), verbose=True)
    assert fit.solver == "cg" and seen == list(range(1, fit.n_iter + 1))
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"fit_galu: solver='primal' \(auto\) for m=400, d=6, k=10, o=1; estimated peak "
        r"[\d.]+ MiB of [\d.]+ [MGT]iB \(free on cpu \(MemAvailable\)\)",
        err[0],
    )
    assert re.fullmatch(
        r"fit_galu: cg iteration 1: relative residual \d\.\d\de[-+]\d\d, .* s", err[1]
    )
    assert re.fullmatch(rf"fit_galu: cg done in [\d.]+ s \({fit.n_iter} iterations\); .*", err[-1])
    # An attempt that gives up says so, and the direct path finishes the fit.
    monkeypatch.setattr(mod, "_CG_FIRST_SHARE", 15.0)  # one CG step
    monkeypatch.setattr(mod, "_cg_steps_expected", lambda *args: 0.0)  # attempt it anyway
    fit = fit_galu(X, y, U, verbose=True)
    err = capsys.readouterr().err
    assert fit.solver == "primal" and "cg stopped after 1 steps; solving by primal" in err
    with pytest.warns(ConvergenceWarning):
        fit_galu(X, y, U, solver="lsqr", max_iter=2, verbose=True)
    assert "lsqr iteration 1: relative residual" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"`verbose` \(='yes'\) must be True or False"):
        fit_galu(X, y, U, verbose="yes")


@pytest.mark.parametrize("m, n", [(400, 20), (400, 100), (150, 600)])
def test_cg_steps_expected_matches_cg_on_a_gaussian_matrix(m, n):
    """The Marchenko–Pastur prediction against plain CG's steps on the normal equations of an
    i.i.d. Gaussian matrix (the smaller side's system), to a relative residual of 1e-10."""
    from galu.solvers._galu import _cg_steps_expected

    rng = np.random.default_rng(m + n)
    A = rng.standard_normal((m, n))
    M = A.T @ A if m >= n else A @ A.T
    b = rng.standard_normal(M.shape[0])
    x, r = np.zeros_like(b), b.copy()
    p, steps = r.copy(), 0
    while np.linalg.norm(r) > 1e-10 * np.linalg.norm(b):
        Mp = M @ p
        alpha = (r @ r) / (p @ Mp)
        x, r_new = x + alpha * p, r - alpha * Mp
        p, r, steps = r_new + (r_new @ r_new) / (r @ r) * p, r_new, steps + 1
    predicted = _cg_steps_expected(m, n, 0.0, 1e-10)
    assert 0.5 * steps <= predicted <= 1.5 * steps
    assert _cg_steps_expected(m, n, 0.1, 1e-10) == 0.0  # with a ridge the attempt decides
    assert _cg_steps_expected(n, n, 0.0, 1e-10) == float("inf")


def test_auto_skips_the_cg_attempt_at_the_interpolation_threshold(monkeypatch, capsys):
    import galu.solvers._galu as mod

    X, y, U = _problem(240, 6, 40)  # kd = m
    monkeypatch.setattr(mod, "_CG_FIRST_MIN_ITERS", 1)
    monkeypatch.setattr(mod, "_CG_FIRST_SHARE", 1e-3)  # a budget of thousands of iterations
    fit = fit_galu(X, y, U, verbose=True)
    assert fit.solver != "cg" and "cg iteration" not in capsys.readouterr().err
    fit = fit_galu(X, y, U, ridge=1e-3, verbose=True)  # a ridge: the attempt runs
    assert "cg iteration" in capsys.readouterr().err
