"""The one place where Numba options are set; every kernel is compiled through `kernel`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

#: ``fastmath`` stays off: it lets LLVM assume no NaN, and NaN means "missing" here.
#: ``cache`` keeps compiled kernels on disk (``__pycache__``) so a restart does not recompile.
JIT_OPTIONS: Final[dict[str, Any]] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
}


def kernel(fn: F) -> F:
    """Compile ``fn`` with the project's Numba options (lazily, on first call)."""
    return numba.njit(**JIT_OPTIONS)(fn)  # type: ignore[no-any-return]


def helper(fn: F) -> F:
    """Compile a function that kernels call per sample, inlined into its callers (Numba IR
    inlining: a call with ~20 array arguments otherwise costs more than the work)."""
    return numba.njit(inline="always", **JIT_OPTIONS)(fn)  # type: ignore[no-any-return]


def jit_disabled() -> bool:
    """True under ``NUMBA_DISABLE_JIT=1`` (kernels then run as plain Python)."""
    return bool(numba.config.DISABLE_JIT)
