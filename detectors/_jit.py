"""The one place where Numba options are set; every kernel is compiled through `kernel`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numba

#: ``fastmath`` stays off: it lets LLVM assume no NaN, and NaN means "missing" here.
#: ``cache`` keeps compiled kernels on disk (``__pycache__``) so a restart does not recompile.
#: ``_nrt`` off: kernels never allocate (callers pass every array), and with Numba's
#: reference-counting runtime on, each array handed to an inlined helper costs an atomic
#: incref/decref pair per call unless LLVM's refcount pruning happens to see through the
#: control flow. It often did not: the signal-quality kernel spent ~85 of its ~100 ms per
#: 600 k samples on them, and adding one early return to `policy.step_rules` made every
#: kernel that calls it 10x slower. Without the runtime a kernel that allocates fails to
#: compile instead of silently slowing down. ``_nrt`` is a private target option (listed in
#: ``numba/core/options.py``, used by Numba's own tests); numba is pinned, and if a release
#: drops it every kernel fails to compile at warm-up, loudly.
JIT_OPTIONS: Final[dict[str, Any]] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
    "_nrt": False,
}


def kernel(fn: Callable[..., Any]) -> Any:
    """Compile ``fn`` with the project's Numba options (lazily, on first call).

    Typed ``Any``: a kernel is dispatched on its arguments' runtime types.
    """
    return numba.njit(**JIT_OPTIONS)(fn)


def helper(fn: Callable[..., Any]) -> Any:
    """Compile a function that kernels call per sample, inlined into its callers (Numba IR
    inlining: a call with ~20 array arguments otherwise costs more than the work)."""
    return numba.njit(inline="always", **JIT_OPTIONS)(fn)
