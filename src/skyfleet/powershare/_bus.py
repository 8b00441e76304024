"""The bus: where the droop curves of every grid-forming device (and solar's frequency-watt
curve) add up to the load.

Each element supplies ``clip((F - f) / m, lo, hi)`` W at bus frequency ``f`` Hz (``F`` its no-load
frequency in Hz, ``m`` its slope in Hz/W, ``lo <= 0 <= hi`` its limits in W; positive = into the
house). The sum is monotone and piecewise linear in ``f``, so the root lies between two sorted
breakpoints and is found exactly by interpolation, with no iteration and no tolerance.

>>> import numpy as np
>>> f, p = solve_bus(3000.0, np.array([60.0, 60.0]), np.array([1e-4, 2e-4]),
...                  np.zeros(2), np.array([5e3, 5e3]), 2, np.empty(4))
>>> round(f, 3), p
(59.8, 3000.0)
"""

from __future__ import annotations

from typing import Any

from skyfleet.powershare._jit import njit

__all__ = ["solve_bus"]


@njit
def _g(f: float, ef: Any, em: Any, elo: Any, ehi: Any, ne: int) -> float:
    total = 0.0
    for j in range(ne):
        total += min(ehi[j], max(elo[j], (ef[j] - f) / em[j]))
    return total


@njit
def solve_bus(
    load_w: float, ef: Any, em: Any, elo: Any, ehi: Any, ne: int, bp: Any
) -> tuple[float, float]:
    """``(f_hz, supplied_w)``: the frequency where the ``ne`` elements (``ef`` Hz, ``em`` Hz/W,
    ``elo``/``ehi`` W) supply ``load_w``, and what they supply there: the load, or less when
    the island is overloaded (then ``f_hz`` is the lowest breakpoint). ``bp`` is scratch space
    of ``2 * ne`` floats."""
    nb = 0
    for j in range(ne):
        bp[nb] = ef[j] - em[j] * ehi[j]
        bp[nb + 1] = ef[j] - em[j] * elo[j]
        nb += 2
    for a in range(1, nb):  # insertion sort: at most 2 x (devices + solar) breakpoints
        v = bp[a]
        b = a - 1
        while b >= 0 and bp[b] > v:
            bp[b + 1] = bp[b]
            b -= 1
        bp[b + 1] = v
    g_prev = _g(bp[0], ef, em, elo, ehi, ne)
    if load_w >= g_prev:
        return bp[0], g_prev
    for a in range(1, nb):
        g_next = _g(bp[a], ef, em, elo, ehi, ne)
        if g_next <= load_w:
            if g_prev - g_next <= 0.0:
                return bp[a], load_w
            f = bp[a - 1] + (bp[a] - bp[a - 1]) * (g_prev - load_w) / (g_prev - g_next)
            return f, load_w
        g_prev = g_next
    return bp[nb - 1], g_prev
