"""Household loads and solar against the packaged profile data and closed forms.

Reference figures: the catalogue's own descriptions (typical about 30 kWh a day, essential about
10, heavy about 45), the expected daily energy worked out by hand from the profile parameters in
``skyfleet/data/powershare.json``, motor starting current of 3 to 6 times running current for 0.1
to 1 s, and a clear-sky shape integrated with scipy. Powers in W, energies in kWh, times in s.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import numpy as np
import pytest
from scipy.integrate import quad

from skyfleet.errors import PowershareConfigError
from skyfleet.powershare import load_names, load_series, solar_series

DAY_S = 86_400.0
SEEDS = range(16)


def profile(name: str) -> dict[str, Any]:
    """The profile as packaged, read straight from the JSON file (not through skyfleet)."""
    text = resources.files("skyfleet.data").joinpath("powershare.json").read_text()
    return json.loads(text)["loads"][name]  # type: ignore[no-any-return]


def daily_kwh(name: str) -> np.ndarray:
    return np.array(
        [load_series(name, start_s=0.0, duration_s=DAY_S, seed=s)[0].sum() / 3.6e6 for s in SEEDS]
    )


def expected_daily_kwh(name: str) -> float:
    """Mean daily energy from the profile's parameters: base plus the hourly shape (linearly
    interpolated, so its daily mean is the mean of the 24 points), appliances (Poisson count a
    day x power x run time), and cycling motors (renewal-reward: the long-run fraction of time on
    is the run time over the mean period, and periods are drawn from 0.8 to 1.2 x nominal)."""
    p = profile(name)
    shape = np.mean(p["daily_shape"])
    kwh = 24.0 * (p["base_kw"] + p["shape_kw"] * shape)
    kwh += sum(a["kw"] * a["per_day"] * a["minutes"] / 60.0 for a in p["appliances"])
    kwh += sum(24.0 * m["kw"] * m["on_min"] / m["period_min"] for m in p["motors"])
    return float(kwh)


@pytest.mark.parametrize(("name", "kwh"), [("typical", 30.0), ("essential", 10.0), ("heavy", 45.0)])
def test_daily_energy_is_what_the_catalogue_says(name: str, kwh: float) -> None:
    mean = float(daily_kwh(name).mean())
    assert mean == pytest.approx(kwh, rel=0.15)


@pytest.mark.parametrize("name", ["typical", "essential", "heavy"])
def test_daily_energy_matches_the_profile_parameters(name: str) -> None:
    # 16 days: the appliances' Poisson counts leave a few per cent of spread in the mean
    assert float(daily_kwh(name).mean()) == pytest.approx(expected_daily_kwh(name), rel=0.08)


def test_profiles_are_the_packaged_ones() -> None:
    text = resources.files("skyfleet.data").joinpath("powershare.json").read_text()
    assert load_names() == sorted(json.loads(text)["loads"])
    assert {"typical", "essential", "heavy"} <= set(load_names())


def test_night_load_is_base_shape_and_motor_duty() -> None:
    # 02:00 .. 04:00: no appliance runs (their hours start at 05:00), so the mean load is the
    # base, the shape between its 2, 3 and 4 o'clock points, and the motors' duty cycles
    p = profile("typical")
    window = slice(2 * 3600, 4 * 3600)
    means = [
        load_series("typical", start_s=0.0, duration_s=DAY_S, seed=s)[0][window].mean()
        for s in SEEDS
    ]
    sh = p["daily_shape"]
    shape = (sh[2] + 2 * sh[3] + sh[4]) / 4.0  # mean of the linear interpolation over 2..4 h
    motors_kw = sum(m["kw"] * m["on_min"] / m["period_min"] for m in p["motors"])
    expected_w = 1000.0 * (p["base_kw"] + p["shape_kw"] * shape + motors_kw)
    assert float(np.mean(means)) == pytest.approx(expected_w, rel=0.08)


@pytest.mark.parametrize("name", ["typical", "essential", "heavy"])
def test_motor_starts_draw_their_starting_current_for_their_starting_time(name: str) -> None:
    prof = profile(name)
    pf = prof["power_factor"]
    motors = {m["start_s"]: m for m in prof["motors"]}
    assert len(motors) == len(prof["motors"])  # starting times tell the motors apart
    _, _, events = load_series(name, start_s=0.0, duration_s=DAY_S, seed=3)
    assert events.shape[1] == 4
    assert np.all(np.diff(events[:, 0]) >= 0.0)
    assert np.all((events[:, 0] >= 0.0) & (events[:, 0] < DAY_S))
    counts = dict.fromkeys(motors, 0)
    for _t, dur, extra_w, extra_var in events:
        motor = motors[float(dur)]
        counts[float(dur)] += 1
        run_w = 1000.0 * motor["kw"]
        run_var = run_w * math.tan(math.acos(pf))
        start_va = math.hypot(run_w + extra_w, run_var + extra_var)
        # the JSON: start_multiple x the running apparent power, at start_pf
        assert start_va == pytest.approx(motor["start_multiple"] * run_w / pf, abs=1.0)
        assert (run_w + extra_w) / start_va == pytest.approx(motor["start_pf"], abs=1e-6)
        # and the physics: 3 to 6 x running current for 0.1 to 1 s
        assert 3.0 - 1e-9 <= start_va / math.hypot(run_w, run_var) <= 6.0 + 1e-9
        assert 0.1 <= dur <= 1.0
    for dur, motor in motors.items():
        per_day = 1440.0 / motor["period_min"]
        assert abs(counts[dur] - per_day) <= 0.1 * per_day + 1.0


def test_same_seed_gives_the_same_series_and_another_seed_another() -> None:
    kw = {"start_s": 18 * 3600.0, "duration_s": 6 * 3600.0}
    a = load_series("typical", seed=11, **kw)
    b = load_series("typical", seed=11, **kw)
    c = load_series("typical", seed=12, **kw)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(
        solar_series(8_000.0, seed=4, start_s=0.0, duration_s=DAY_S),
        solar_series(8_000.0, seed=4, start_s=0.0, duration_s=DAY_S),
    )


def test_load_has_one_value_a_second_at_its_power_factor_before_appliances() -> None:
    p, q, _ = load_series("essential", start_s=0.0, duration_s=1_800.5, seed=2)
    assert p.shape == q.shape == (1_801,)
    assert np.all(p > 0) and np.all(q > 0)
    # 00:00 .. 00:30 nothing but base, shape and motors runs; motors run at the house's 0.95
    ratio = q / p
    assert np.allclose(ratio, math.tan(math.acos(0.95)), rtol=1e-9)


def test_clear_sky_solar_peaks_at_85_percent_of_rating_at_1_pm_and_is_dark_at_night() -> None:
    rated = 10_000.0
    p = solar_series(rated, start_s=0.0, duration_s=DAY_S, seed=0, clouds=False)
    assert p[13 * 3600] == pytest.approx(0.85 * rated, abs=0.01)
    assert p.max() == pytest.approx(0.85 * rated, abs=0.01)
    assert np.all(p[: 6 * 3600 + 1] == 0.0)
    assert np.all(p[20 * 3600 :] < 1e-6)
    # daily energy: 0.85 x rating x the integral of sin^1.3 over the 14 h day
    integral, _ = quad(lambda h: math.sin(math.pi * (h - 6.0) / 14.0) ** 1.3, 6.0, 20.0)
    assert p.sum() / 3.6e6 == pytest.approx(0.85 * rated / 1000.0 * integral, abs=0.01)


def test_clouds_only_shade_and_never_below_a_fifth() -> None:
    rated = 6_000.0
    clear = solar_series(rated, start_s=0.0, duration_s=DAY_S, seed=5, clouds=False)
    cloudy = solar_series(rated, start_s=0.0, duration_s=DAY_S, seed=5)
    assert np.all(cloudy <= clear + 1e-9)
    assert np.all(cloudy >= 0.2 * clear - 1e-9)
    assert cloudy.sum() < clear.sum()
    assert np.all(solar_series(0.0, start_s=0.0, duration_s=600.0, seed=0) == 0.0)


@pytest.mark.parametrize(
    ("start_s", "duration_s"),
    [(0.0, 0.0), (0.0, -5.0), (-1.0, 60.0), (86_400.0, 60.0), (0.0, math.inf)],
)
def test_outage_outside_a_day_or_without_length_is_refused(
    start_s: float, duration_s: float
) -> None:
    with pytest.raises(PowershareConfigError):
        load_series("typical", start_s=start_s, duration_s=duration_s, seed=0)
    with pytest.raises(PowershareConfigError):
        solar_series(1_000.0, start_s=start_s, duration_s=duration_s, seed=0)
