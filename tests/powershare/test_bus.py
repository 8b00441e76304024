"""The island's bus solver (``_bus.solve_bus``) against an independent root finder and against
textbook droop sharing.

Every grid-forming device is a droop curve ``P = clip((F - f) / m, lo, hi)``; the bus settles where
the curves add up to the load. The reference here is scipy's Brent solver on that sum, written out
with numpy, and the closed forms for two parallel droop sources. Frequencies in Hz, powers in W.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from skyfleet.powershare import _bus as kernel


def supplied_w(
    f_hz: float, ef: np.ndarray, em: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> float:
    """What the droop curves supply at ``f_hz`` (W), written independently of the kernel."""
    return float(np.sum(np.clip((ef - f_hz) / em, lo, hi)))


def solve(
    load_w: float, ef: np.ndarray, em: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float]:
    n = len(ef)
    f, served = kernel.solve_bus(
        float(load_w),
        np.ascontiguousarray(ef, dtype=np.float64),
        np.ascontiguousarray(em, dtype=np.float64),
        np.ascontiguousarray(lo, dtype=np.float64),
        np.ascontiguousarray(hi, dtype=np.float64),
        n,
        np.empty(2 * n),
    )
    return float(f), float(served)


def random_droops(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """``n`` droop curves with the orders of magnitude of the catalogue: no-load frequencies in
    the plan's bands (58.9 .. 61 Hz), slopes from 0.075 Hz over 15 kW to 0.6 Hz over 7 kW,
    discharge limits up to 15.4 kW, charge limits up to 5 kW; some discharge-only (lo = 0) and some
    empty (lo = hi = 0, a battery at its reserve)."""
    ef = rng.uniform(58.9, 61.0, n)
    em = rng.uniform(0.075 / 15_400.0, 0.6 / 7_000.0, n)
    hi = rng.uniform(500.0, 15_400.0, n)
    lo = -rng.uniform(0.0, 5_000.0, n)
    kind = rng.integers(0, 4, n)
    lo[kind == 1] = 0.0
    hi[kind == 2] = 0.0
    lo[kind == 2] = 0.0
    return ef, em, lo, hi


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_bus_frequency_matches_brent_root_of_droop_sum(n: int) -> None:
    rng = np.random.default_rng(1000 + n)
    checked = 0
    for _ in range(300):
        ef, em, lo, hi = random_droops(rng, n)
        top, bottom = float(np.sum(hi)), float(np.sum(lo))
        if top - bottom < 1.0:
            continue
        load = float(rng.uniform(bottom, top))
        f_ref = brentq(
            lambda f: supplied_w(f, ef, em, lo, hi) - load,  # noqa: B023 (used at once)
            float(np.min(ef - em * hi)) - 1.0,
            float(np.max(ef - em * lo)) + 1.0,
            xtol=1e-13,
            rtol=4 * np.finfo(float).eps,
            maxiter=500,
        )
        f, served = solve(load, ef, em, lo, hi)
        assert f == pytest.approx(f_ref, abs=1e-6)
        assert served == pytest.approx(load, abs=1e-6)
        assert supplied_w(f, ef, em, lo, hi) == pytest.approx(load, abs=1e-6)
        checked += 1
    assert checked > 200


@pytest.mark.parametrize("seed", range(5))
def test_overloaded_bus_sits_at_lowest_breakpoint_and_supplies_every_limit(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for n in (1, 2, 4, 7):
        ef, em, lo, hi = random_droops(rng, n)
        hi[0] = max(hi[0], 1_000.0)  # at least one source that can supply
        load = float(np.sum(hi)) * rng.uniform(1.01, 3.0) + 10.0
        f, served = solve(load, ef, em, lo, hi)
        # every curve saturates at its upper limit at the lowest of the "full output" points
        assert f == pytest.approx(float(np.min(ef - em * hi)), abs=1e-9)
        assert served == pytest.approx(float(np.sum(hi)), abs=1e-6)
        assert served < load


def test_bus_frequency_falls_as_load_rises() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        ef, em, lo, hi = random_droops(rng, 4)
        loads = np.sort(rng.uniform(np.sum(lo), np.sum(hi), 50))
        freqs = [solve(x, ef, em, lo, hi)[0] for x in loads]
        assert np.all(np.diff(freqs) <= 1e-9)


@pytest.mark.parametrize(
    ("m1", "m2", "load_w"),
    [
        (0.075 / 15_400.0, 0.075 / 10_000.0, 6_000.0),  # two home batteries, full
        (0.15 / 7_000.0, 0.075 / 15_400.0, 3_000.0),  # an empty gen1 and a full gen3
        (0.3 / 11_500.0, 0.6 / 11_500.0, 9_000.0),  # a vehicle at two states of charge
    ],
)
def test_sources_with_equal_no_load_frequency_share_in_inverse_proportion_to_slope(
    m1: float, m2: float, load_w: float
) -> None:
    f0 = 60.0
    ef = np.array([f0, f0])
    em = np.array([m1, m2])
    lo = np.array([-5_000.0, -5_000.0])
    hi = np.array([20_000.0, 20_000.0])
    f, served = solve(load_w, ef, em, lo, hi)
    p1, p2 = (f0 - f) / m1, (f0 - f) / m2
    # textbook parallel droop: P1 / P2 = m2 / m1 and f = F - P / (1/m1 + 1/m2)
    assert p1 / p2 == pytest.approx(m2 / m1, rel=1e-9)
    assert f == pytest.approx(f0 - load_w / (1.0 / m1 + 1.0 / m2), abs=1e-9)
    assert p1 + p2 == pytest.approx(load_w, abs=1e-6)
    assert served == pytest.approx(load_w, abs=1e-6)


def test_source_in_a_lower_band_supplies_nothing_until_the_bus_reaches_its_frequency() -> None:
    # a home battery at 60.2 Hz (0.075 Hz over 15.4 kW) and a vehicle standing by at 59.8 Hz
    home_m, vehicle_m = 0.075 / 15_400.0, 0.3 / 11_500.0
    ef = np.array([60.2, 59.8])
    em = np.array([home_m, vehicle_m])
    lo = np.array([-5_000.0, 0.0])
    hi = np.array([15_400.0, 11_500.0])
    for load in (500.0, 4_000.0, 11_000.0, 15_000.0):
        f, _ = solve(load, ef, em, lo, hi)
        assert f == pytest.approx(60.2 - load * home_m, abs=1e-9)
        assert f > 59.8
    # past the home battery's limit the vehicle takes exactly the rest
    load = 20_000.0
    f, served = solve(load, ef, em, lo, hi)
    assert (59.8 - f) / vehicle_m == pytest.approx(load - 15_400.0, abs=1e-6)
    assert served == pytest.approx(load, abs=1e-6)


def test_surplus_is_absorbed_by_charging_above_no_load_frequency() -> None:
    # one battery (F = 60.1 Hz) and curtailable solar (full at 61 Hz, none above): a net load of
    # -2 kW (solar surplus) lifts the bus above F, where the battery charges 2 kW
    m = 0.075 / 15_400.0
    ef = np.array([60.1])
    em = np.array([m])
    lo = np.array([-5_000.0])
    hi = np.array([15_400.0])
    f, served = solve(-2_000.0, ef, em, lo, hi)
    assert f == pytest.approx(60.1 + 2_000.0 * m, abs=1e-9)
    assert served == pytest.approx(-2_000.0, abs=1e-6)
