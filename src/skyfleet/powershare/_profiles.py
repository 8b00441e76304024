"""Household loads and solar production during an outage, one value per second.

Loads come from the packaged profiles (``typical`` about 30 kWh a day, ``essential`` about 10,
``heavy`` about 45): a base load with a daily shape, appliances switched on at random times of
their usual hours, and motors (air conditioner, well pump, refrigerator) that cycle and draw 3 to 6
times their running power for 0.1 to 1 s when they start, at a poor power factor. Solar is a
clear-sky day shape with passing clouds. Everything is drawn from a seeded generator, so a
scenario is reproducible from its seed.

Powers in W (load positive), reactive power in var, times in s from the start of the outage;
``start_s`` is the time of day the outage starts (s after local midnight).

>>> p, q, events = load_series("essential", start_s=0.0, duration_s=86_400.0, seed=1)
>>> bool(8.0 < p.sum() / 3.6e6 < 12.0)  # kWh in a day
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from skyfleet.data import read_json
from skyfleet.errors import PowershareConfigError, UnknownDeviceError

__all__ = ["LOAD_NAMES", "load_names", "load_series", "solar_series"]


def _profiles() -> dict[str, Any]:
    data: dict[str, Any] = read_json("powershare.json")["loads"]
    return data


def load_names() -> list[str]:
    """Names of the packaged load profiles."""
    return sorted(_profiles())


LOAD_NAMES = tuple(load_names())


def _check(start_s: float, duration_s: float) -> int:
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise PowershareConfigError(f"outage duration must be positive, got {duration_s} s")
    if not (math.isfinite(start_s) and 0 <= start_s < 86_400):
        raise PowershareConfigError(
            f"outage start must be a time of day (0..86400 s), got {start_s}"
        )
    return math.ceil(duration_s)


def load_series(
    name: str, *, start_s: float, duration_s: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_w, q_var, events)``: steady load per second, and motor starts as rows of
    ``(t_s, duration_s, extra_w, extra_var)`` sorted by time."""
    profiles = _profiles()
    if name not in profiles:
        raise UnknownDeviceError(
            f"unknown load profile {name!r}: use one of {', '.join(load_names())}"
        )
    prof = profiles[name]
    n = _check(start_s, duration_s)
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    hour = ((start_s + t) / 3600.0) % 24.0
    shape = np.asarray(prof["daily_shape"], dtype=np.float64)
    hours = np.arange(25, dtype=np.float64)
    p = 1000.0 * (
        prof["base_kw"] + prof["shape_kw"] * np.interp(hour, hours, np.append(shape, shape[0]))
    )
    p *= 1.0 + 0.05 * np.repeat(rng.standard_normal(n // 60 + 1), 60)[:n]  # minute-to-minute noise
    pf = float(prof["power_factor"])
    q = p * math.tan(math.acos(pf))
    first_day = math.floor(start_s / 86_400.0)
    days = range(first_day, math.floor((start_s + n) / 86_400.0) + 1)
    for app in prof["appliances"]:
        lo_h, hi_h = app["hours"]
        for day in days:
            for _ in range(rng.poisson(app["per_day"])):
                t0 = int(day * 86_400 + rng.uniform(lo_h, hi_h) * 3600.0 - start_s)
                a, b = max(0, t0), min(n, t0 + int(app["minutes"] * 60))
                if a < b:  # (a negative b would slice from the end)
                    p[a:b] += 1000.0 * app["kw"]
                    q[a:b] += 1000.0 * app["kw"] * math.tan(math.acos(0.98))
    events: list[tuple[float, float, float, float]] = []
    for motor in prof["motors"]:
        period = motor["period_min"] * 60.0
        on = motor["on_min"] * 60.0
        run_w = 1000.0 * motor["kw"]
        start_va = motor["start_multiple"] * run_w / pf
        start_pf = motor["start_pf"]
        extra_w = start_va * start_pf - run_w
        extra_var = start_va * math.sin(math.acos(start_pf)) - run_w * math.tan(math.acos(pf))
        t0 = -rng.uniform(0.0, period)
        while t0 < n:
            a, b = max(0, int(t0)), min(n, int(t0 + on))
            if a < b:
                p[a:b] += run_w
                q[a:b] += run_w * math.tan(math.acos(pf))
            if t0 >= 0:
                events.append((t0, float(motor["start_s"]), extra_w, extra_var))
            t0 += period * rng.uniform(0.8, 1.2)
    ev = np.array(sorted(events), dtype=np.float64).reshape(-1, 4)
    return p, q, ev


def solar_series(
    rated_w: float, *, start_s: float, duration_s: float, seed: int, clouds: bool = True
) -> np.ndarray:
    """Available AC solar power per second (W): a summer clear-sky shape (sunrise 06:00, sunset
    20:00, so the sun is highest at 13:00 summer time) at 85 % of the rating then, times a
    passing-cloud factor."""
    n = _check(start_s, duration_s)
    if rated_w <= 0:
        return np.zeros(n)
    rng = np.random.default_rng(seed + 7919)
    t = np.arange(n, dtype=np.float64)
    hour = ((start_s + t) / 3600.0) % 24.0
    sun = np.clip(np.sin(np.pi * (hour - 6.0) / 14.0), 0.0, None) ** 1.3
    p = 0.85 * rated_w * sun
    if clouds:
        minutes = n // 60 + 2
        shade = np.empty(minutes)
        level = 0.0
        for i in range(minutes):  # an AR(1) process, one value a minute
            level = 0.9 * level + 0.3 * rng.standard_normal()
            shade[i] = level
        factor = np.clip(
            1.0 - 0.5 * np.clip(np.interp(t / 60.0, np.arange(minutes), shade), 0, None), 0.2, 1.0
        )
        p *= factor
    return p
