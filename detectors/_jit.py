"""The one place where Numba options are set; every kernel is compiled through `kernel`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numba

#: ``fastmath`` stays off: it lets LLVM assume no NaN, and NaN means "missing" here.
#: ``cache`` keeps compiled kernels on disk (``__pycache__``) so a restart does not recompile.
JIT_OPTIONS: Final[dict[str, Any]] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
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
