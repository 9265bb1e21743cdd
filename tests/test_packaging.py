"""Packaging: the files a user and an index expect, one version everywhere, and a test suite that
collects without the optional `kernels` extra."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import galu

ROOT = Path(__file__).resolve().parents[1]


def test_license_citation_changelog_and_type_marker_are_consistent():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(r'^version: "?([^"\n]+)"?$', cff, re.M).group(1) == galu.__version__
    assert re.search(r"^license: (.+)$", cff, re.M).group(1) == "Apache-2.0"
    assert meta["version"] == galu.__version__
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
    assert (Path(galu.__file__).parent / "py.typed").exists()


def test_the_suite_collects_without_triton(tmp_path):
    """`pip install -e '.[dev]'` has no triton: a triton that fails to import stands in for it."""
    fake = tmp_path / "triton"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('triton is not installed')\n")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "src/galu", "tests/kernels"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "error" not in res.stdout.lower().split("collected")[-1]
    assert "tests/kernels/test_triton_gate.py" in res.stdout  # collected, then skipped


def test_a_triton_older_than_the_floor_counts_as_unavailable(monkeypatch):
    # torch 2.4's CUDA wheels pin triton 3.0, whose interpreter computes this kernel wrongly:
    # such a triton must send `auto` to the eager path and make impl="triton" say why.
    import importlib.machinery
    import types

    import torch

    import galu.kernels as kernels

    fake = types.ModuleType("triton")
    fake.__spec__ = importlib.machinery.ModuleSpec("triton", loader=None)
    for version, usable in (
        ("3.0.0", False),
        ("3.1.9", False),
        ("3.2.0", True),
        ("3.9.0+git1", True),
    ):
        fake.__version__ = version
        monkeypatch.setitem(sys.modules, "triton", fake)
        kernels.triton_status.cache_clear()
        assert kernels.triton_available() is usable, version
        if not usable:
            assert kernels.triton_status() == (
                f"triton {version} is older than 3.2, the oldest the fused kernel supports"
            )
            a = b = torch.ones(2, 4)
            assert torch.equal(
                kernels.gate(a, b, "swiglu"), kernels.gate(a, b, "swiglu", impl="eager")
            )
            with pytest.raises(
                RuntimeError, match=rf"impl='triton' cannot run: triton {version} is"
            ):
                kernels.gate(a, b, "swiglu", impl="triton")
    kernels.triton_status.cache_clear()
