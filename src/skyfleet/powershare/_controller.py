"""What each device's firmware runs, one implementation per ability level (compiled with numba).

No device sends a message to another. Each reads only its own state of charge and the bus it
senses (frequency in Hz, voltage in per unit, live or dead), and answers with its droop curve:
``(f_dis, f_ch, m)`` means "discharge ``(f_dis - f) / m`` W below ``f_dis``, charge
``(f - f_ch) / m`` W above ``f_ch``", clipped to the device's limits by the simulator. See
:mod:`skyfleet.powershare._plan` for the bands.

- :func:`home_basic` -- older firmware: fixed droop around nominal, no signalling. It runs down
  to its reserve; the bus then falls into the vehicle's band.
- :func:`home_adaptive` -- droop moves with state of charge (the fuller battery carries more) and
  the battery signals "low" by moving out of the way (discharging only below ``assist_hz``, so
  its reserve backs up the vehicle), with hysteresis so it does not flap.
- :func:`vehicle_basic`, :func:`vehicle_adaptive` -- the vehicle stands by just under the home
  band and carries the house when the bus frequency says the home batteries cannot.
- :func:`dead_bus_delay_s` -- on a dead bus, the fuller device waits less before it forms.
- :func:`carrier_role` -- a debounced "am I carrying the house" so roles do not flap.
"""

from __future__ import annotations

import math
from typing import Any

from skyfleet.powershare._jit import njit
from skyfleet.powershare._plan import PLAN_INDEX

__all__ = [
    "carrier_role",
    "dead_bus_delay_s",
    "home_adaptive",
    "home_basic",
    "vehicle_adaptive",
    "vehicle_basic",
]

_NOMINAL = PLAN_INDEX["nominal_hz"]
_BAND = PLAN_INDEX["home_band_hz"]
_HOME_DROOP = PLAN_INDEX["home_droop_hz"]
_LOW = PLAN_INDEX["low_pct"]
_HIGH = PLAN_INDEX["high_pct"]
_ASSIST = PLAN_INDEX["assist_hz"]
_RECHARGE = PLAN_INDEX["recharge_hz"]
_VEHICLE = PLAN_INDEX["vehicle_hz"]
_VEHICLE_DROOP = PLAN_INDEX["vehicle_droop_hz"]
_DB_MIN = PLAN_INDEX["dead_bus_min_s"]
_DB_MAX = PLAN_INDEX["dead_bus_max_s"]
_SLOT = PLAN_INDEX["slot_s"]
_SUPPORT = PLAN_INDEX["support_s"]
_SUPPORT_MARGIN = PLAN_INDEX["support_margin_hz"]
_RELEASE_MARGIN = PLAN_INDEX["release_margin_hz"]
_BASIC_HOLD = PLAN_INDEX["basic_hold_pct"]
_BASIC_RELEASE = PLAN_INDEX["basic_release_pct"]
_RELEASE = PLAN_INDEX["release_s"]


@njit
def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))


@njit
def home_basic(
    soc_pct: float, reserve_pct: float, peak_w: float, plan: Any, following: bool
) -> tuple[float, float, float, bool]:
    """Fixed droop: ``F`` = nominal, slope the worst case of the adaptive firmware. ``following``
    (for the role) is true within ``basic_hold_pct`` of its reserve, false again
    ``basic_release_pct`` above it."""
    m = 2.0 * plan[_HOME_DROOP] / peak_w
    f0 = plan[_NOMINAL]
    following = (
        soc_pct < reserve_pct + plan[_BASIC_RELEASE]
        if following
        else soc_pct <= reserve_pct + plan[_BASIC_HOLD]
    )
    return f0, f0, m, following


@njit
def home_adaptive(
    soc_pct: float, peak_w: float, plan: Any, low: bool
) -> tuple[float, float, float, bool]:
    """State-of-charge-adaptive droop and signalling. ``low`` (the hand-over state) is entered at
    ``low_pct`` and left at ``high_pct``."""
    if low and soc_pct >= plan[_HIGH]:
        low = False
    elif not low and soc_pct <= plan[_LOW]:
        low = True
    x = _unit((soc_pct - plan[_LOW]) / (100.0 - plan[_LOW]))
    m = plan[_HOME_DROOP] / ((0.5 + 0.5 * x) * peak_w)
    if low:
        return plan[_ASSIST], plan[_RECHARGE], m, low
    f0 = plan[_NOMINAL] + plan[_BAND] * x
    return f0, f0, m, low


@njit
def vehicle_basic(v2h_w: float, plan: Any) -> tuple[float, float]:
    """Fixed droop from just under the home band: ``(f_dis, m)``."""
    return plan[_VEHICLE], plan[_VEHICLE_DROOP] / v2h_w


@njit
def vehicle_adaptive(
    soc_pct: float, reserve_pct: float, v2h_w: float, plan: Any
) -> tuple[float, float]:
    """Droop that softens as the pack empties (a fuller vehicle carries more): ``(f_dis, m)``."""
    x = _unit((soc_pct - reserve_pct) / (100.0 - reserve_pct))
    return plan[_VEHICLE], plan[_VEHICLE_DROOP] / ((0.5 + 0.5 * x) * v2h_w)


@njit
def dead_bus_delay_s(soc_pct: float, reserve_pct: float, slot_s: float, plan: Any) -> float:
    """Seconds a device waits on a dead bus before it forms: shorter the fuller it is. The wait
    is rounded up to whole frames of five slots and the device's own slot (1 to 4 x
    ``slot_s``, from its place in the house) added, so two devices of one house never start in
    the same instant, whatever their states of charge."""
    x = _unit((soc_pct - reserve_pct) / (100.0 - reserve_pct))
    base: float = plan[_DB_MIN] + (plan[_DB_MAX] - plan[_DB_MIN]) * (1.0 - x)
    frame: float = 5.0 * plan[_SLOT]
    return frame * math.ceil(base / frame - 1e-9) + slot_s


@njit
def carrier_role(
    f_hz: float,
    f_dis_hz: float,
    carrying: bool,
    below_s: float,
    above_s: float,
    dt_s: float,
    plan: Any,
) -> tuple[bool, float, float]:
    """Debounced "carrying the house": true after the bus has sat below ``f_dis_hz`` for
    ``support_s``, false after it has sat in the band where only a home battery that is not low
    sets the frequency (above the vehicle's, below ``recharge_hz``) for ``release_s``. A motor
    start is not a role change, and neither is solar surplus lifting the bus to where low home
    batteries recharge or solar curtails: the home battery is still low, the sun may go.
    Returns ``(carrying, below_s, above_s)``."""
    if f_hz < f_dis_hz - plan[_SUPPORT_MARGIN]:
        below_s += dt_s
        above_s = 0.0
    elif f_dis_hz + plan[_RELEASE_MARGIN] < f_hz < plan[_RECHARGE]:
        above_s += dt_s
        below_s = 0.0
    else:
        below_s = 0.0
        above_s = 0.0
    if not carrying and below_s >= plan[_SUPPORT]:
        carrying = True
    elif carrying and above_s >= plan[_RELEASE]:
        carrying = False
    return carrying, below_s, above_s
