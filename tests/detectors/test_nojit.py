"""The kernels' bodies as plain Python: the reference comparisons once more under
``NUMBA_DISABLE_JIT=1`` (so coverage sees them, and a Numba-only behaviour would show)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ("test_kernels.py", "test_contract.py", "test_boundaries.py", "test_policy.py")


def test_kernels_without_jit_match_references() -> None:
    """The kernel, contract, boundary and policy tests pass with the JIT disabled."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
        *(str(ROOT / "tests" / "detectors" / f) for f in FILES),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout, tail
    assert "failed" not in proc.stdout.splitlines()[-1], tail
