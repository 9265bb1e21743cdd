"""Text as bytes, with nothing to download: the Python standard library's own source, or a local
file."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import torch


def stdlib_text(max_bytes: int) -> bytes:
    """The first ``max_bytes`` bytes of the standard library's ``.py`` files, sorted by path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        out.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    return b"".join(out)[:max_bytes]


def load_text(text_file: str | None, max_bytes: int) -> torch.Tensor:
    """Bytes as an int64 tensor: ``text_file`` if given, else :func:`stdlib_text`."""
    if text_file is not None:
        path = Path(text_file)
        if not path.is_file():
            raise FileNotFoundError(f"`text_file` {text_file!r} does not exist or is not a file.")
        data = path.read_bytes()[:max_bytes]
    else:
        data = stdlib_text(max_bytes)
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64))
