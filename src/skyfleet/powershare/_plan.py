"""The frequency plan: how devices that never exchange a message divide a house's load.

Every grid-forming device is a droop curve ``P = clip((F - f) / m, lo, hi)``: it sets its
no-load frequency ``F`` and slope ``m`` (Hz/W) from its own state of charge, and the bus settles
where the powers add up to the load. The plan puts the devices in frequency bands, so the bus
frequency itself carries the signal (as home batteries already tell solar inverters and cars):

======================  =====================  =============================================
band                    who carries the load   why
======================  =====================  =============================================
60.5 .. 61.0 Hz         solar curtails         batteries full: frequency-watt turns PV down
60.0 .. 60.2 (+droop)   home batteries         home battery first; the fuller one carries more
59.8 .. 59.2 Hz         the vehicle            home batteries low (they moved out of the way)
below 59.1 Hz           home battery reserve   the vehicle is at its limit or empty
======================  =====================  =============================================

A home battery whose firmware cannot signal (``basic``) keeps a fixed droop around 60 Hz; the
vehicle still takes over when it reaches its reserve, because the bus then falls into the
vehicle's band. :func:`check_plan` proves before a run that every band lies inside every
device's trip settings.

>>> plan = FrequencyPlan()
>>> round(plan.lowest_hz(), 3), round(plan.highest_hz(61.0), 3)
(58.95, 61.0)
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import numpy as np

from skyfleet.errors import PowershareConfigError
from skyfleet.powershare._devices import SolarSpec, TripSettings

__all__ = ["FrequencyPlan", "check_plan"]


@dataclass(frozen=True)
class FrequencyPlan:
    """Controller constants shared by every firmware level (Hz, %, s, per unit).

    A device joins a live bus whose frequency lies in ``window_low_hz .. window_high_hz`` and
    whose voltage is at least ``join_low_pu`` (an island sagging under a cold-load pickup needs
    help, so a sag does not keep the others out); solar enters service only inside the stricter
    ``window_low_pu .. window_high_pu`` (IEEE 1547's enter-service range, 0.917 .. 1.05 pu).

    Roles are debounced: the vehicle counts as carrying the house once the bus has sat
    ``support_margin_hz`` below its band for ``support_s``, and hands back once it has sat
    ``release_margin_hz`` above it, in the home band, for ``release_s``; a basic home battery
    counts as following within ``basic_hold_pct`` of its reserve and as forming again
    ``basic_release_pct`` above it.

    ``home_droop_hz`` is the drop across a home battery's peak power at full state of charge
    (twice that when nearly empty: the emptier device carries less); ``vehicle_droop_hz`` the
    same for the vehicle across its V2H limit.
    """

    nominal_hz: float = 60.0
    home_band_hz: float = 0.2
    home_droop_hz: float = 0.075
    low_pct: float = 20.0
    high_pct: float = 35.0
    assist_hz: float = 59.1
    recharge_hz: float = 60.25
    vehicle_hz: float = 59.8
    vehicle_droop_hz: float = 0.3
    dead_bus_min_s: float = 0.2
    dead_bus_max_s: float = 2.0
    slot_s: float = 0.06
    sync_s: float = 2.0
    support_s: float = 10.0
    release_s: float = 120.0
    support_margin_hz: float = 0.002
    release_margin_hz: float = 0.02
    basic_hold_pct: float = 0.5
    basic_release_pct: float = 3.0
    taper_pct: float = 0.1
    peak_recover_ratio: float = 0.1
    voltage_droop_pu: float = 0.05
    reconnect_s: float = 300.0
    window_low_hz: float = 58.8
    window_high_hz: float = 61.1
    window_low_pu: float = 0.917
    window_high_pu: float = 1.05
    join_low_pu: float = 0.6

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise PowershareConfigError(f"frequency plan: {f.name} must be >= 0, got {value}")
        for name in ("home_droop_hz", "vehicle_droop_hz", "slot_s", "taper_pct"):
            if getattr(self, name) <= 0:
                raise PowershareConfigError(f"frequency plan: {name} must be > 0")
        if not self.low_pct < self.high_pct <= 100.0:
            raise PowershareConfigError(
                "frequency plan: the hand-over threshold low_pct must be below high_pct "
                f"(hysteresis), got {self.low_pct} and {self.high_pct}"
            )
        if self.nominal_hz - 2 * self.home_droop_hz < self.vehicle_hz:
            raise PowershareConfigError(
                "frequency plan: a home battery's droop reaches into the vehicle's band "
                f"({self.nominal_hz} - 2 x {self.home_droop_hz} < {self.vehicle_hz} Hz): "
                "the vehicle would supply before the home battery"
            )
        if self.vehicle_hz - 2 * self.vehicle_droop_hz < self.assist_hz:
            raise PowershareConfigError(
                "frequency plan: the vehicle's droop reaches into the home batteries' reserve "
                f"band ({self.vehicle_hz} - 2 x {self.vehicle_droop_hz} < {self.assist_hz} Hz)"
            )
        if self.dead_bus_min_s > self.dead_bus_max_s:
            raise PowershareConfigError("frequency plan: dead_bus_min_s exceeds dead_bus_max_s")

    def as_array(self) -> np.ndarray:
        """The constants in field order, for the simulator's compiled kernel."""
        return np.array(astuple(self), dtype=np.float64)

    def lowest_hz(self) -> float:
        """The lowest frequency a healthy island settles at: every device at its limit."""
        return self.assist_hz - 2 * self.home_droop_hz

    def highest_hz(self, solar_full_hz: float | None = None) -> float:
        """The highest frequency a healthy island settles at: batteries charging at their limit,
        or solar curtailed completely at ``solar_full_hz``."""
        top = max(self.recharge_hz, self.nominal_hz + self.home_band_hz) + 2 * self.home_droop_hz
        return max(top, solar_full_hz) if solar_full_hz is not None else top


PLAN_INDEX = {f.name: i for i, f in enumerate(fields(FrequencyPlan))}
"""Position of each constant in :meth:`FrequencyPlan.as_array`."""


def check_plan(
    plan: FrequencyPlan, trips: list[tuple[str, TripSettings]], solar: SolarSpec | None
) -> None:
    """Raise :class:`~skyfleet.errors.PowershareConfigError` unless every frequency the plan
    uses for signalling lies inside every device's slow trip settings (uf1 .. of1, with 0.1 Hz to
    spare) and solar curtails above the batteries' charging band."""
    low = plan.lowest_hz()
    high = plan.highest_hz(solar.fw_full_hz if solar is not None and solar.rated_w > 0 else None)
    margin = 0.1
    for owner, trip in trips:
        if low - margin < trip.uf1[0] or high + margin > trip.of1[0]:
            raise PowershareConfigError(
                f"{owner}: trip settings uf1={trip.uf1[0]} Hz / of1={trip.of1[0]} Hz cut through "
                f"the signalling band {low:.2f}..{high:.2f} Hz (keep 0.1 Hz to spare)"
            )
        if trip.uv1[0] > plan.window_low_pu or trip.ov1[0] <= 1.0 + plan.voltage_droop_pu:
            raise PowershareConfigError(
                f"{owner}: voltage trip settings uv1={trip.uv1[0]} / ov1={trip.ov1[0]} pu leave no "
                "room for normal operation"
            )
    if solar is not None and solar.rated_w > 0:
        charging_top = plan.highest_hz()
        if solar.fw_start_hz < charging_top:
            raise PowershareConfigError(
                f"solar: frequency-watt starts at {solar.fw_start_hz} Hz, inside the batteries' "
                f"charging band (up to {charging_top:.2f} Hz): solar would be curtailed while "
                "batteries could still charge"
            )
