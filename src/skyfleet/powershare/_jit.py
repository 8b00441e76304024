"""numba's compilers, typed for mypy: ``njit`` for scalar helpers, ``njit_parallel`` for kernels
that spread scenarios over the cores with ``prange``. Compiled code is cached beside the module
(or in numba's user cache), so only the first run on a machine pays for compiling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numba

__all__ = ["compiled_before", "njit", "njit_parallel", "prange"]

F = TypeVar("F", bound=Callable[..., Any])

prange = numba.prange


def compiled_before() -> bool:
    """Whether numba's cache beside this package already holds compiled kernels (if not, the
    first simulation compiles them; a user-wide cache elsewhere is not looked at)."""
    folder = Path(__file__).resolve().parent / "__pycache__"
    return folder.is_dir() and any(folder.glob("_kernel.run-*.nbi"))


def njit(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached."""
    return cast(F, numba.njit(cache=True, fastmath=False)(fn))


def njit_parallel(fn: F) -> F:
    """Compile ``fn`` with ``prange`` loops run on all cores, cached."""
    return cast(F, numba.njit(cache=True, parallel=True)(fn))
