"""Abnormal frequency and voltage protection (IEEE 1547-2018 trip elements), and the harness that
certifies it in the manner of IEEE 1547.1.

:func:`protect` is the one implementation the island simulator and the harness both run: eight
elements (of2, of1, uf1, uf2, ov2, ov1, uv1, uv2), each a timer that runs while the sensed value is
beyond its threshold and resets when it comes back; the device trips when a timer reaches its
clearing time after the first sample that saw it beyond (never early: a disturbance shorter than
the clearing time is ridden through).

:func:`trip_tests` drives it the way a test bench drives an inverter: for each element, hold the
quantity just inside the setting for longer than the clearing time (it must not trip), then step
it just past the setting at a random instant within a step (it must trip within the clearing
time, to 1 % or 2 cycles, whichever is larger), five times.

>>> from skyfleet.powershare import TripSettings
>>> rows = trip_tests(TripSettings())
>>> len(rows), all(r.passed for r in rows)
(80, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from skyfleet.powershare._devices import TripSettings
from skyfleet.powershare._jit import njit, njit_parallel, prange

__all__ = ["TripTest", "protect", "trip_tests"]

_OVER = (True, True, False, False, True, True, False, False)


@njit
def protect(f_hz: float, v_pu: float, settings: Any, timers: Any, dt_s: float) -> bool:
    """Advance the eight trip timers by one step of ``dt_s`` with the sensed ``f_hz`` and
    ``v_pu``; True when an element has reached its clearing time. ``settings`` is (8, 2):
    threshold and clearing time per element."""
    tripped = False
    for el in range(8):
        value = f_hz if el < 4 else v_pu
        threshold = settings[el, 0]
        beyond = (
            value > threshold if (el == 0 or el == 1 or el == 4 or el == 5) else value < threshold
        )
        if beyond:
            timers[el] += dt_s  # dt x samples beyond; the first sample starts the clock
            if timers[el] - dt_s >= settings[el, 1] - 1e-9:
                tripped = True
        else:
            timers[el] = 0.0
    return tripped


@njit_parallel
def _bench(
    settings: Any, element: Any, start: Any, level: Any, t_change: Any, hold_s: Any, dt_s: float
) -> Any:
    """Run each test: nominal until ``t_change`` (s), then ``level`` on element's quantity, for
    ``hold_s``; returns the trip time after the change (NaN for no trip)."""
    n = element.shape[0]
    out = np.full(n, np.nan)
    for i in prange(n):
        timers = np.zeros(8)
        steps = int(np.ceil((t_change[i] + hold_s[i]) / dt_s))
        for k in range(steps):
            t_end = (k + 1) * dt_s  # the relay samples at the end of each step
            value = level[i] if t_end >= t_change[i] else start[i]
            f = value if element[i] < 4 else 60.0
            v = value if element[i] >= 4 else 1.0
            if protect(f, v, settings, timers, dt_s):
                out[i] = t_end - t_change[i]
                break
    return out


@dataclass(frozen=True)
class TripTest:
    """One harness run: ``inside`` (held just inside the setting, must not trip) or ``past``
    (stepped just past it, must trip within ``clear_s`` +- ``tolerance_s``)."""

    element: str
    kind: str
    repetition: int
    level: float
    clear_s: float
    tolerance_s: float
    trip_s: float | None

    @property
    def passed(self) -> bool:
        if self.kind == "inside":
            return self.trip_s is None
        return self.trip_s is not None and abs(self.trip_s - self.clear_s) <= self.tolerance_s


def trip_tests(
    settings: TripSettings,
    *,
    dt_s: float = 0.001,
    repetitions: int = 5,
    nominal_hz: float = 60.0,
    margin_hz: float = 0.02,
    margin_pu: float = 0.01,
    seed: int = 1547,
) -> list[TripTest]:
    """Certify ``settings`` as a test bench would, for every element: ``repetitions`` holds just
    inside (``margin`` from the threshold, for twice the clearing time and at least 1 s) and
    ``repetitions`` steps just past it, each at a random instant within a step. ``dt_s`` is the
    relay's sampling interval (1 ms: an inverter samples many times a cycle; the island
    simulator runs the same elements at its own step). The accuracy
    allowed is 1 % of the clearing time or 2 cycles, whichever is larger."""
    rng = np.random.default_rng(seed)
    cycle_s = 1.0 / nominal_hz
    grid = np.array([[v, c] for _, v, c in settings.rows()], dtype=np.float64)
    names, kinds, reps, elements, starts, levels, changes, holds = [], [], [], [], [], [], [], []
    for el, (name, threshold, clear_s) in enumerate(settings.rows()):
        margin = margin_hz if el < 4 else margin_pu
        sign = 1.0 if _OVER[el] else -1.0
        nominal = nominal_hz if el < 4 else 1.0
        for kind, level in (
            ("inside", threshold - sign * margin),
            ("past", threshold + sign * margin),
        ):
            for rep in range(repetitions):
                names.append(name)
                kinds.append(kind)
                reps.append(rep)
                elements.append(el)
                starts.append(nominal)
                levels.append(level)
                changes.append(1.0 + float(rng.uniform(0.0, dt_s)))
                holds.append(max(2.0 * clear_s, 1.0))
    trip = _bench(
        grid,
        np.array(elements, dtype=np.int64),
        np.array(starts),
        np.array(levels),
        np.array(changes),
        np.array(holds),
        float(dt_s),
    )
    rows = []
    for i, name in enumerate(names):
        clear_s = float(grid[elements[i], 1])
        rows.append(
            TripTest(
                element=name,
                kind=kinds[i],
                repetition=reps[i],
                level=round(levels[i], 6),
                clear_s=clear_s,
                tolerance_s=max(0.01 * clear_s, 2 * cycle_s),
                trip_s=None if np.isnan(trip[i]) else float(trip[i]),
            )
        )
    return rows
