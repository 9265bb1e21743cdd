"""How much memory a solver path needs, how much the device has, and the refusal in between.

:func:`estimate_fit_memory` models each path of :func:`galu.solvers.fit_galu` as a sequence of
phases — validation, the gate matrix, the square system and its solve, the matrix-free loop,
the final predictions — each a set of arrays alive at once; the estimate is the largest phase.
It counts what the fit allocates (inputs passed in the working dtype on the right device are
not copied, so they do not count: they already use memory the free-memory probe has seen).
For ``λ = 0`` the direct paths count the eigendecomposition fallback, which a singular system
takes, so the estimate is an upper bound there. Measured peaks (VmHWM deltas, CPU, float64)
are 0.78–0.92 of the estimate on every path (``tests/solvers/test_memory.py``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

MEMORY_LIMIT_ENV = "GALU_MEMORY_LIMIT"

# Rows of Ψ formed at once when accumulating ΨᵀΨ: bounds the primal path's working memory.
ROW_BLOCK_BYTES = 64 * 2**20
# Rows of the gate matrix formed at once (its pre-activations and mask are temporaries).
GATE_BLOCK_BYTES = 16 * 2**20
# torch.linalg.eigh of an n × n matrix: the eigenvectors plus LAPACK's syevd workspace
# (1 + 6n + 2n² numbers) — measured 3.24 n² numbers at n = 2048.
_EIGH = 3.25
# Buffers BLAS and LAPACK keep or allocate on the side (MKL's GEMM packing pool: 10–22 MiB
# measured above the arrays galu forms, on every path).
_LIBRARY_BUFFERS = 32 * 2**20
# The rank check after an eigendecomposition solve: torch.unique over the k gate columns
# (copies and sorts the (k, m) matrix) and the singular values of X.
_UNIQUE = 3.0


class InsufficientMemoryError(MemoryError, ValueError):
    """A solver path would need more memory than the budget allows; raised before allocating.

    Attributes:
        needed: estimated peak bytes of the refused path.
        available: the budget in bytes (free device memory, or the limit that was set).
        solver: the refused path.
    """

    def __init__(self, message: str, *, needed: int, available: int, solver: str) -> None:
        super().__init__(message)
        self.needed, self.available, self.solver = needed, available, solver


def format_bytes(n: float) -> str:
    """``12.3 GiB``-style, binary units."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_UNITS.update({"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40})


def parse_bytes(text: str, name: str) -> int:
    """``"8GiB"``, ``"500MB"``, ``"2e9"`` or ``"1073741824"`` → bytes (``name`` for errors)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]i?)?b?\s*", text.lower())
    if match is None:
        raise ValueError(
            f"`{name}` (={text!r}) must be a number of bytes, optionally with a unit: e.g. "
            "'8GiB', '500MB', '2e9'."
        )
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def available_bytes(device: torch.device) -> int:
    """Free bytes on ``device``: ``MemAvailable`` for the CPU, the CUDA driver's view for GPUs."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # Blocks torch's caching allocator holds but does not use are free to this process.
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@dataclass(frozen=True)
class MemoryBudget:
    """What a fit may allocate: ``total`` bytes, and ``direct`` bytes for the square systems that
    ``auto`` chooses freely (half the free memory by default, so that an estimate's error or
    another process does not turn into a crash). ``source`` says where ``total`` came from."""

    total: int
    direct: int
    source: str
    explicit: bool


def memory_budget(device: torch.device, memory_limit: int | None) -> MemoryBudget:
    """``memory_limit`` bytes if given, else ``$GALU_MEMORY_LIMIT``, else the device's free
    memory (:func:`available_bytes`)."""
    if memory_limit is not None:
        if (
            isinstance(memory_limit, bool)
            or not isinstance(memory_limit, int | float)
            or not memory_limit > 0
        ):
            raise ValueError(
                f"`memory_limit` (={memory_limit!r}) must be a positive number of bytes, or None "
                f"(the free memory, or ${MEMORY_LIMIT_ENV})."
            )
        limit = int(memory_limit)
        return MemoryBudget(limit, limit, f"memory_limit={limit} ({format_bytes(limit)})", True)
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        limit = parse_bytes(env, MEMORY_LIMIT_ENV)
        return MemoryBudget(limit, limit, f"{MEMORY_LIMIT_ENV}={env}", True)
    free = available_bytes(device)
    probe = "cudaMemGetInfo" if device.type == "cuda" else "MemAvailable"
    return MemoryBudget(free, free // 2, f"free on {device.type} ({probe})", False)


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak of one path: ``bytes`` in all, and the arrays alive at the peak
    (``parts``: ``(what, bytes)``, largest first)."""

    solver: str
    bytes: int
    parts: tuple[tuple[str, int], ...]

    def describe(self, n: int = 3) -> str:
        shown = [f"{what} {format_bytes(b)}" for what, b in self.parts[:n] if b > 0]
        return ", ".join(shown)


@dataclass(frozen=True)
class FitSize:
    """What a fit's memory depends on: ``m`` samples, ``d`` features, ``k`` gates, ``o``
    outputs, ``item`` bytes per number of the working dtype, the ``ridge``, whether ``cg``
    runs its GEMMs in float32 (``mixed``), and ``copies``, the bytes the input conversion
    allocates."""

    m: int
    d: int
    k: int
    o: int
    item: int
    ridge: float
    mixed: bool
    copies: int = 0


def _largest(solver: str, phases: list[dict[str, float]]) -> MemoryEstimate:
    peak = max(phases, key=lambda p: sum(p.values()))
    parts = sorted(((w, int(b)) for w, b in peak.items() if b > 0), key=lambda p: -p[1])
    return MemoryEstimate(solver, int(sum(peak.values())), tuple(parts))


def path_estimate(solver: str, size: FitSize) -> MemoryEstimate:
    """The phase model of one path (``primal``, ``dual``, ``lsqr``, ``cg``, ``svd``)."""
    m, d, k, o, item = size.m, size.d, size.k, size.o, size.item
    ridge, mixed, copies = size.ridge, size.mixed, size.copies
    n, mk = k * d, m * k * item
    gate_block = (2 * item + 1) * k * min(m, max(1, GATE_BLOCK_BYTES // (k * item)))
    inputs = {"X, y converted": float(copies), "BLAS/LAPACK buffers": float(_LIBRARY_BUFFERS)}
    base = {**inputs, "gates G (m × k)": float(mk)}
    # One Ψ product: an (m, o, min(k, d)) product and its elementwise result.
    product = 2 * m * o * min(k, d) * item + m * o * item
    phases = [
        {**inputs, "finiteness check (m × d)": float(m * d * (item + 2))},  # |X| and two masks
        # G, and the pre-activations and mask of one block of rows (gate_matrix_blocked)
        {**inputs, "gates G (m × k)": float(mk), "gate pre-activations": gate_block},
        {**base, "predictions": float(product + o * n * item)},
    ]
    if solver in ("primal", "dual"):
        side = n if solver == "primal" else m
        name = "ΨᵀΨ (kd × kd)" if solver == "primal" else "kernel K (m × m)"
        sq = float(side * side * item)
        if solver == "primal":
            phases.append({**base, name: sq, "Ψ row block": min(m * n * item, ROW_BLOCK_BYTES)})
        else:
            phases.append({**base, name: sq, "GGᵀ (m × m)": sq})
        if ridge > 0:  # the shifted copy and its Cholesky factor
            phases.append({**base, name: sq, "shifted copy and Cholesky factor": 2 * sq})
        else:  # Cholesky, or (singular systems) the eigendecomposition and the rank check
            phases.append({**base, name: sq, "eigendecomposition": max(1.0, _EIGH) * sq})
            rank = _UNIQUE * mk + m * d * item
            phases.append({**base, name: sq, "rank check": rank})
    elif solver == "svd":
        r = min(m, n)
        # Ψ, LAPACK's column-major copy of it, U (m × r), Vᵀ (r × n) and gesdd's workspace:
        # 3r² + 4r + max(m, n) numbers, and 2r² more where it first reduces by QR (the long
        # side ≥ 11/6 of the short one).
        qr = 2 * r * r if 6 * max(m, n) >= 11 * r else 0
        work = (3 * r * r + 4 * r + max(m, n) + qr) * item
        phases.append(
            {
                **base,
                "Ψ (m × kd)": float(m * n * item),
                "SVD copy of Ψ": float(m * n * item),
                "U, Vᵀ": float((m * r + r * n) * item),
                "SVD workspace": float(work),
            }
        )
    elif solver == "lsqr":
        vectors = (6 * o * n + 3 * m * o) * item  # x, v, w and their updates; u twice
        phases.append({**base, "LSQR vectors": float(vectors), "Ψ products": float(product)})
    elif solver == "cg":
        inner = 4 if mixed else item
        copies_in = (m * d + 2 * m * k) * 4 if mixed else m * k * item  # X, G, Gᵀ (or Gᵀ)
        dual = n > m
        vec = o * m if dual else o * n
        outer = (2 * o * n + 2 * o * m) * item + product  # W, S, R, α and the residual's product
        inner_product = (o * (n + m) + 2 * m * o * min(k, d)) * inner
        if dual:  # Woodbury factor F (m × (d+1)) built with a few float64 copies
            pre_keep, pre_build = m * (d + 3) * inner, 5 * m * (d + 1) * 8
        else:  # Kronecker factors (k², d²) and one Ψᵀ(Ψ w₀)
            pre_keep, pre_build = 3 * (k * k + d * d) * 8, 2 * m * min(k, d) * inner + m * 8
        copy_name = "float32 copies of X, G, Gᵀ" if mixed else "contiguous Gᵀ"
        phases.append({**base, copy_name: float(copies_in), "preconditioner setup": pre_build})
        phases.append(
            {
                **base,
                copy_name: float(copies_in),
                "preconditioner": float(pre_keep),
                "CG vectors and products": float(8 * vec * inner + inner_product + outer),
            }
        )
    else:
        raise ValueError(f"no memory model for solver {solver!r}.")
    return _largest(solver, phases)


def estimate_fit_memory(
    m: int,
    d: int,
    k: int,
    *,
    o: int = 1,
    solver: str = "auto",
    ridge: float = 0.0,
    dtype: torch.dtype = torch.float64,
    mixed_precision: bool | None = None,
    copies_inputs: bool = True,
    device: torch.device | str = "cpu",
    memory_limit: int | None = None,
) -> MemoryEstimate:
    """Estimated peak memory of ``fit_galu`` on ``m`` samples, ``d`` features, ``k`` gates and
    ``o`` outputs (the arguments mean what they mean there). ``copies_inputs``: whether ``X``
    and ``y`` arrive in another dtype or place, so that the fit converts (copies) them.
    ``solver="auto"`` estimates the path ``auto`` would run under this budget (``device``,
    ``memory_limit``), as ``MemoryEstimate.solver`` says."""
    from galu.solvers._galu import _plan  # the same choice fit_galu makes

    item = dtype.itemsize
    mixed = mixed_precision if mixed_precision is not None else dtype == torch.float64
    copies = (m * d + m * o) * item if copies_inputs else 0
    size = FitSize(m, d, k, o, item, ridge, mixed, copies)
    if solver == "auto":
        return _plan(size, memory_budget(torch.device(device), memory_limit)).estimate
    return path_estimate(solver, size)


def refusal(
    caller: str,
    requested: str,
    estimate: MemoryEstimate,
    budget: MemoryBudget,
    fallbacks: tuple[MemoryEstimate, ...],
    *,
    device: torch.device,
    size: FitSize,
) -> InsufficientMemoryError:
    """The error for a path that does not fit: what it needs, what is available, and what to
    do — the first of ``fallbacks`` (matrix-free paths, preferred first) that fits, else how to
    shrink the problem."""
    what = f"solver={requested!r}" + (f" (→ {estimate.solver})" if requested == "auto" else "")
    lines = [
        f"{caller}({what}) needs about {format_bytes(estimate.bytes)} at its peak "
        f"({estimate.describe()}), but {format_bytes(budget.total)} is available "
        f"({budget.source})."
    ]
    fitting = [f for f in fallbacks if f.bytes <= budget.total and f.solver != estimate.solver]
    if fitting:
        lines.append(
            f"solver={fitting[0].solver!r} (matrix-free) needs about "
            f"{format_bytes(fitting[0].bytes)} and fits: use it, with a small `ridge` (e.g. "
            "1e-6) for fast, well-defined convergence."
        )
    else:
        least = min(fallbacks, key=lambda f: f.bytes)
        lines.append(
            f"No path fits: the leanest, solver={least.solver!r}, needs about "
            f"{format_bytes(least.bytes)} (every path holds the m × k gate matrix, "
            f"{format_bytes(size.m * size.k * size.item)}). Use fewer samples or gates "
            "(smaller k)"
            + (", dtype=torch.float32 (half the memory)" if size.item == 8 else "")
            + (", or a device with more memory (device='cuda')" if device.type == "cpu" else "")
            + "."
        )
    if not budget.explicit:
        lines.append(
            f"If the estimate is too cautious, set memory_limit= (bytes) or ${MEMORY_LIMIT_ENV}."
        )
    return InsufficientMemoryError(
        " ".join(lines), needed=estimate.bytes, available=budget.total, solver=estimate.solver
    )
