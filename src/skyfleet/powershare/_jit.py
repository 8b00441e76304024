"""numba's compilers, typed for mypy: ``njit`` for scalar helpers, ``njit_parallel`` for kernels
that spread scenarios over the cores with ``prange``. Compiled code is cached beside the module
(or in numba's user cache), so only the first run on a machine pays for compiling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

__all__ = ["njit", "njit_parallel", "prange"]

F = TypeVar("F", bound=Callable[..., Any])

prange = numba.prange


def njit(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached."""
    return cast(F, numba.njit(cache=True, fastmath=False)(fn))


def njit_parallel(fn: F) -> F:
    """Compile ``fn`` with ``prange`` loops run on all cores, cached."""
    return cast(F, numba.njit(cache=True, parallel=True)(fn))
