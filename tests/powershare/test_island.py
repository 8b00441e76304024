"""The island simulator against energy bookkeeping, closed forms and the frequency plan's promises.

References used here, none of them the simulator's own output: a battery's usable energy
(state of charge above its reserve x capacity x one-way efficiency), the frequency-watt curve of
IEEE 1547 solar (full output up to 60.5 Hz, none at 61 Hz) balanced against the load, the reactive
droop ``V = 1 - n Q / sum(S)`` with the inverters' current limit ``S / |S_load|``, the energy of
load above a vehicle's V2H limit integrated from the load profile, and IEEE 1547-2018 category III
trip settings. Energies in kWh, powers in W, frequency in Hz, voltage in per unit, time in s.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache

import numpy as np
import pytest

from skyfleet.errors import PowershareConfigError
from skyfleet.powershare import (
    FrequencyPlan,
    IslandResult,
    Limits,
    Scenario,
    SolarSpec,
    TripSettings,
    home_battery,
    load_series,
    simulate,
    solar_series,
    vehicle,
)
from skyfleet.powershare._kernel import ROLE_FORMING, ROLE_SYNCING

H = 3600.0
KWH_PER_W_S = 3.6e6  # W x s in a kWh: one record a second summed gives W s
DT = 0.02
PLAN = FrequencyPlan()
CYBERTRUCK = vehicle("cybertruck")
GEN1, GEN2, GEN3 = home_battery("gen1"), home_battery("gen2"), home_battery("gen3")
VEHICLE = "vehicle:cybertruck"

# healthy houses, run together once (record a point a second)
HEALTHY = {
    "home first": Scenario(
        vehicle=CYBERTRUCK, home_batteries=(GEN3,), home_soc_pct=(90.0,), duration_s=2 * H
    ),
    "home low": Scenario(
        vehicle=CYBERTRUCK, home_batteries=(GEN3,), home_soc_pct=(15.0,), duration_s=2 * H
    ),
    "hand-over": Scenario(
        vehicle=CYBERTRUCK, home_batteries=(GEN3,), home_soc_pct=(21.0,), duration_s=1800.0
    ),
    "gen1 to reserve": Scenario(
        vehicle=CYBERTRUCK,
        home_batteries=(GEN1,),
        home_soc_pct=(8.0,),
        load="essential",
        duration_s=1.5 * H,
    ),
    "assist": Scenario(
        vehicle=vehicle("cybertruck", breaker_a=40),
        home_batteries=(GEN3,),
        home_soc_pct=(15.0,),
        load="heavy",
        start_s=17 * H,
        duration_s=3 * H,
    ),
    "gen3 90 + gen3 50": Scenario(
        vehicle=None, home_batteries=(GEN3, GEN3), home_soc_pct=(90.0, 50.0), duration_s=2 * H
    ),
    "gen3 50 + gen3 90": Scenario(
        vehicle=None, home_batteries=(GEN3, GEN3), home_soc_pct=(50.0, 90.0), duration_s=2 * H
    ),
    "gen2 90 + gen3 50": Scenario(
        vehicle=None, home_batteries=(GEN2, GEN3), home_soc_pct=(90.0, 50.0), duration_s=2 * H
    ),
    "solar surplus": Scenario(
        vehicle=CYBERTRUCK,
        home_batteries=(GEN3,),
        home_soc_pct=(100.0,),
        load="essential",
        solar=SolarSpec(rated_w=10_000.0),
        start_s=12 * H,
        duration_s=1800.0,
    ),
    "three homes": Scenario(
        vehicle=CYBERTRUCK,
        home_batteries=(GEN1, GEN2, GEN3),
        home_soc_pct=(60.0, 70.0, 80.0),
        load="heavy",
        duration_s=1800.0,
    ),
}


@cache
def healthy() -> dict[str, IslandResult]:
    names = list(HEALTHY)
    results = simulate([HEALTHY[n] for n in names], record_every_s=1.0)
    return dict(zip(names, results, strict=True))


def device(r: IslandResult, label_start: str) -> int:
    """Index of the first device whose label starts with ``label_start``."""
    return next(i for i, d in enumerate(r.devices) if d.label.startswith(label_start))


def load_w_per_step(sc: Scenario, dt_s: float = DT) -> np.ndarray:
    """The load at every simulator step (W): the profile's second plus the motor starts under way,
    built from the profile directly."""
    p, _, events = load_series(sc.load, start_s=sc.start_s, duration_s=sc.duration_s, seed=sc.seed)
    t = np.arange(round(sc.duration_s / dt_s)) * dt_s
    load = p[np.minimum(t.astype(np.int64), len(p) - 1)].copy()
    for t0, dur, extra_w, _ in events:
        load[(t >= t0) & (t < t0 + dur)] += extra_w
    return load


# --- home battery first; the vehicle takes over -------------------------------------------------


def test_vehicle_stays_out_while_home_battery_has_energy() -> None:
    r = healthy()["home first"]
    home = r.devices[device(r, "home1")]
    assert home.soc_min_pct > PLAN.low_pct
    assert r.devices[0].out_kwh <= 1e-6
    assert r.vehicle_early_kwh == 0.0
    assert home.out_kwh == pytest.approx(r.served_kwh, abs=1e-6)
    assert r.dark_s < 1.0 and r.unserved_kwh < 0.003  # only while the bus was being formed


def test_low_home_battery_holds_its_reserve_while_the_vehicle_carries_the_house() -> None:
    r = healthy()["home low"]
    home = r.devices[device(r, "home1")]
    assert home.soc_start_pct < PLAN.low_pct
    assert home.out_kwh <= 1e-6
    assert home.soc_min_pct == pytest.approx(home.soc_start_pct, abs=1e-6)
    assert r.devices[0].out_kwh == pytest.approx(r.served_kwh, abs=1e-6)
    assert r.dark_s < 2.5 and r.unserved_kwh < 0.003  # only while the bus was being formed


def test_vehicle_takes_over_when_home_battery_reaches_the_hand_over_threshold() -> None:
    r = healthy()["hand-over"]
    s = r.series
    assert s is not None
    home = r.devices[device(r, "home1")]
    # the home battery ran down to the plan's threshold and kept the rest
    assert home.soc_end_pct == pytest.approx(PLAN.low_pct, abs=0.05)
    before = (s["home1:gen3.soc_pct"] > PLAN.low_pct) & (s["t_s"] > 5.0)
    after = s["home1:gen3.soc_pct"] <= PLAN.low_pct
    assert before.any() and after.any()
    vehicle_w = s[f"{VEHICLE}.p_w"]
    assert vehicle_w[before].sum() / KWH_PER_W_S < 0.001  # kWh (one point a second)
    # afterwards the vehicle carries the house: its energy is what the house used
    assert vehicle_w[after].sum() / KWH_PER_W_S == pytest.approx(
        s["served_w"][after].sum() / KWH_PER_W_S, abs=0.001
    )
    assert r.unserved_kwh < 0.001


def test_vehicle_takes_over_when_basic_home_battery_reaches_its_reserve() -> None:
    r = healthy()["gen1 to reserve"]
    s = r.series
    assert s is not None
    gen1 = r.devices[device(r, "home1")]
    assert gen1.firmware == "basic"
    # down to its reserve (within the last per cent, where it tapers off), never below
    assert gen1.reserve_pct - 1e-6 <= gen1.soc_end_pct <= gen1.reserve_pct + PLAN.taper_pct
    soc = s["home1:gen1.soc_pct"]
    has_energy = (soc > gen1.reserve_pct + PLAN.taper_pct) & (s["t_s"] > 5.0)
    assert has_energy.any() and (~has_energy).any()
    vehicle_w = s[f"{VEHICLE}.p_w"]
    assert vehicle_w[has_energy].sum() / KWH_PER_W_S < 0.001  # kWh
    # the vehicle carried everything gen1 did not, and the house never went dark
    assert r.devices[0].out_kwh == pytest.approx(r.served_kwh - gen1.out_kwh, abs=1e-6)
    assert r.devices[0].out_kwh > 0.2
    assert r.dark_s < 2.0
    assert r.unserved_kwh < 0.001


def test_low_home_battery_covers_exactly_what_the_vehicle_cannot() -> None:
    """A 40 A vehicle (7.6 kW) with a low home battery under a heavy load: the home battery only
    gives the load above the vehicle's limit (integrated from the load profile), and the bus then
    sits in the reserve band below ``assist_hz``."""
    sc = HEALTHY["assist"]
    r = healthy()["assist"]
    assert sc.vehicle is not None
    limit_w = sc.vehicle.v2h_w
    load = load_w_per_step(sc)
    t = np.arange(len(load)) * DT
    above = np.where(t > 5.0, np.maximum(0.0, load - limit_w), 0.0)
    expected_kwh = float(above.sum() * DT / H / 1000.0)
    assert expected_kwh > 0.005  # the profile does go over the vehicle's limit
    home = r.devices[device(r, "home1")]
    assert home.out_kwh == pytest.approx(expected_kwh, abs=1e-4)
    assert r.devices[0].max_power_w == pytest.approx(limit_w, abs=1.0)
    assert r.f_min_hz < PLAN.assist_hz
    assert r.unserved_kwh < 0.002


# --- the fuller battery carries more ------------------------------------------------------------


@pytest.mark.parametrize("name", ["gen3 90 + gen3 50", "gen3 50 + gen3 90", "gen2 90 + gen3 50"])
def test_fuller_home_battery_carries_more_and_the_gap_narrows(name: str) -> None:
    r = healthy()[name]
    fuller, emptier = sorted(r.devices, key=lambda d: -d.soc_start_pct)
    assert fuller.out_kwh - fuller.in_kwh > emptier.out_kwh - emptier.in_kwh
    assert fuller.out_kwh > emptier.out_kwh
    gap_start = fuller.soc_start_pct - emptier.soc_start_pct
    gap_end = abs(fuller.soc_end_pct - emptier.soc_end_pct)
    assert gap_end < gap_start / 2


# --- a dead bus ---------------------------------------------------------------------------------


def two_gen3(socs: tuple[float, float], duration_s: float) -> Scenario:
    return Scenario(
        vehicle=None,
        home_batteries=(GEN3, GEN3),
        home_soc_pct=socs,
        load="essential",
        duration_s=duration_s,
    )


def first_time(s: dict[str, np.ndarray], label: str, role: int) -> float:
    idx = np.nonzero(s[f"{label}.role"] == role)[0]
    return float(s["t_s"][idx[0]]) if len(idx) else math.inf


@pytest.mark.parametrize("socs", [(50.0, 90.0), (90.0, 50.0)])
def test_fuller_device_forms_the_dead_bus_and_the_other_synchronises(
    socs: tuple[float, float],
) -> None:
    sc = two_gen3(socs, 10.0)
    r = simulate([sc], record_every_s=DT)[0]
    s = r.series
    assert s is not None
    fuller, emptier = (
        ("home2:gen3", "home1:gen3") if socs[1] > socs[0] else ("home1:gen3", "home2:gen3")
    )
    assert first_time(s, fuller, ROLE_FORMING) < first_time(s, emptier, ROLE_SYNCING)
    assert first_time(s, emptier, ROLE_SYNCING) < first_time(s, emptier, ROLE_FORMING)
    # the emptier one joined the live bus after the synchronisation time
    joined = first_time(s, emptier, ROLE_FORMING) - first_time(s, emptier, ROLE_SYNCING)
    assert joined == pytest.approx(PLAN.sync_s, abs=2 * DT)
    assert r.first_powered_s is not None
    assert r.first_powered_s == pytest.approx(first_time(s, fuller, ROLE_FORMING) - DT, abs=1e-6)
    assert r.first_powered_s <= PLAN.dead_bus_max_s + 5 * PLAN.slot_s
    assert r.collisions == 0


def test_fuller_vehicle_black_starts_sooner() -> None:
    scs = [
        Scenario(vehicle=CYBERTRUCK, vehicle_soc_pct=soc, load="essential", duration_s=5.0)
        for soc in (95.0, 60.0, 30.0)
    ]
    starts = []
    for r in simulate(scs):
        assert r.first_powered_s is not None
        starts.append(r.first_powered_s)
    assert starts[0] < starts[1] < starts[2]
    assert PLAN.dead_bus_min_s <= starts[0]
    assert starts[2] <= PLAN.dead_bus_max_s + 5 * PLAN.slot_s


def test_devices_at_equal_state_of_charge_never_black_start_together() -> None:
    scs = [
        Scenario(
            vehicle=CYBERTRUCK,
            vehicle_soc_pct=soc,
            home_batteries=(GEN3, GEN3, GEN2),
            home_soc_pct=(soc, soc, soc),
            load="essential",
            duration_s=8.0,
        )
        for soc in (25.0, 50.0, 75.0, 100.0)
    ]
    for r in simulate(scs):
        assert r.collisions == 0
        assert r.first_powered_s is not None


@pytest.mark.parametrize("name", ["slot_s", "home_droop_hz", "vehicle_droop_hz", "taper_pct"])
def test_plan_constants_that_are_divided_by_must_be_positive(name: str) -> None:
    with pytest.raises(PowershareConfigError, match=f"{name} must be > 0"):
        FrequencyPlan(**{name: 0.0})


# --- solar surplus ------------------------------------------------------------------------------


def test_solar_surplus_with_full_batteries_curtails_along_frequency_watt_without_trips() -> None:
    sc = HEALTHY["solar surplus"]
    r = healthy()["solar surplus"]
    assert sc.solar is not None
    solar = sc.solar
    load = load_w_per_step(sc, 1.0)
    avail = solar_series(solar.rated_w, start_s=sc.start_s, duration_s=sc.duration_s, seed=sc.seed)
    late = np.arange(len(load)) > solar.enter_service_s + 60
    assert np.all(avail[late] > load[late] + 1_000.0)  # the sun gives more than the house uses
    # the bus rose into the frequency-watt band, and stayed below every over-frequency trip
    assert r.f_max_hz > solar.fw_start_hz
    assert r.f_max_hz <= solar.fw_full_hz + 1e-9
    assert r.f_max_hz < min(t.of1[0] for _, t in r.trip_settings)
    assert all(d.trips == 0 for d in r.devices)
    assert r.solar_trips == 0
    assert all(d.soc_max_pct <= 100.0 + 1e-9 for d in r.devices)
    assert r.devices[0].in_kwh == 0.0  # the vehicle never charges from the island
    assert r.solar_kwh > 0.1
    assert r.violations() == []


def test_curtailed_solar_sets_the_frequency_its_curve_gives_for_the_net_load() -> None:
    """Where solar is partly curtailed: load - battery power = avail x (61 - f) / 0.5, so
    f = 61 - 0.5 (load - P_batteries) / avail (linear, so one second's mean lies within its
    extremes)."""
    sc = HEALTHY["solar surplus"]
    r = healthy()["solar surplus"]
    assert sc.solar is not None and r.series is not None
    s = r.series
    solar = sc.solar
    avail = solar_series(solar.rated_w, start_s=sc.start_s, duration_s=sc.duration_s, seed=sc.seed)
    _, _, events = load_series(sc.load, start_s=sc.start_s, duration_s=sc.duration_s, seed=sc.seed)
    sec = (s["t_s"] - 1.0).astype(np.int64)  # the second each record covers
    quiet = np.ones(len(sec), dtype=bool)
    for t0, dur, _, _ in events:
        quiet &= ~((sec <= t0 + dur) & (sec + 1 >= t0))
    batteries_w = s[f"{VEHICLE}.p_w"] + s["home1:gen3.p_w"]
    in_service = sec > solar.enter_service_s + 10.0
    curtailed = in_service & quiet & (s["solar_w"] > 1.0) & (s["solar_w"] < avail[sec] - 1.0)
    assert curtailed.sum() > 600
    width = solar.fw_full_hz - solar.fw_start_hz
    f_expected = solar.fw_full_hz - width * (s["load_w"] - batteries_w) / avail[sec]
    tol = 0.001
    assert np.all(f_expected[curtailed] >= s["f_min_hz"][curtailed] - tol)
    assert np.all(f_expected[curtailed] <= s["f_max_hz"][curtailed] + tol)


# --- motor starts -------------------------------------------------------------------------------


def test_motor_start_dips_voltage_along_reactive_droop_and_the_island_rides_through() -> None:
    """Every isolated motor start in six half-hours of a typical house on one full gen3: during
    the start, V = (1 - n Q / S) x min(1, S / |P + jQ|) with S the battery's peak rating, Q and P
    the steady load of that second plus the start's extra; before it, V = 1 - n Q / S."""
    scs = [
        Scenario(
            vehicle=None,
            home_batteries=(GEN3,),
            home_soc_pct=(90.0,),
            load="typical",
            duration_s=1800.0,
            seed=seed,
        )
        for seed in range(6)
    ]
    n = PLAN.voltage_droop_pu
    rating_va = GEN3.peak_w  # a full battery on its peak rating (the load stays under continuous)
    checked, dips = 0, []
    for sc, r in zip(scs, simulate(scs, record_every_s=DT), strict=True):
        s = r.series
        assert s is not None
        p, q, events = load_series(
            sc.load, start_s=sc.start_s, duration_s=sc.duration_s, seed=sc.seed
        )
        assert p.max() + events[:, 2].max() < GEN3.continuous_w
        for i, (t0, dur, extra_w, extra_var) in enumerate(events):
            others = np.delete(events[:, 0], i)
            if t0 < 5.0 or t0 + dur > sc.duration_s - 1.0 or np.any(np.abs(others - t0) < 3.0):
                continue
            sec = int(t0)
            if q[int(t0 + dur)] != q[sec]:
                continue  # the steady load changes during the start: keep the formula simple
            qq, pp = q[sec] + extra_var, p[sec] + extra_w
            v_expected = (1.0 - n * qq / rating_va) * min(1.0, rating_va / math.hypot(pp, qq))
            k = np.arange(math.ceil(t0 / DT) + 1, math.floor((t0 + dur) / DT) - 1)
            assert len(k) > 0
            assert s["v_min_pu"][k] == pytest.approx(v_expected, abs=0.002)
            k0 = math.floor(t0 / DT) - 2  # just before it: the steady reactive droop alone
            assert s["v_min_pu"][k0] == pytest.approx(
                1.0 - n * q[int(k0 * DT)] / rating_va, abs=0.002
            )
            dips.append(v_expected)
            checked += 1
        assert all(d.trips == 0 for d in r.devices)
        assert r.dark_s < 2.0
    assert checked >= 8
    assert min(dips) < 0.97  # air-conditioner starts are among them


def test_deep_motor_start_dip_shorter_than_clearing_time_is_ridden_through() -> None:
    """A 10 kW battery starting a 3.5 kW heat pump (six times its running current at 0.3 power
    factor): the inverter current-limits and the voltage falls below uv2 (0.5 pu) for 0.5 s,
    shorter than uv2's 2 s clearing time; nothing trips and the house stays powered."""
    sc = Scenario(
        vehicle=None, home_batteries=(GEN2,), home_soc_pct=(90.0,), load="heavy", duration_s=H
    )
    p, q, events = load_series(sc.load, start_s=sc.start_s, duration_s=sc.duration_s, seed=sc.seed)
    big = events[events[:, 3] > 15_000.0]
    assert len(big) > 0 and np.all(big[:, 1] < TripSettings().uv2[1])
    t0, _, extra_w, extra_var = big[0]
    sag = GEN2.peak_w / math.hypot(p[int(t0)] + extra_w, q[int(t0)] + extra_var)
    assert sag < TripSettings().uv2[0]  # current limit alone takes it under 0.5 pu
    r = simulate([sc])[0]
    assert r.v_min_pu < TripSettings().uv2[0]
    assert r.v_min_pu == pytest.approx(
        min(
            (1 - PLAN.voltage_droop_pu * (q[int(t)] + ev) / GEN2.peak_w)
            * min(1.0, GEN2.peak_w / math.hypot(p[int(t)] + ew, q[int(t)] + ev))
            for t, _, ew, ev in events
        ),
        abs=0.01,
    )
    assert r.devices[0].trips == 0
    assert r.dark_s < 2.0
    assert r.hours_powered == pytest.approx(1.0, abs=2.0 / H)


# --- running until empty ------------------------------------------------------------------------

ENDURANCE = {
    "gen3": Scenario(
        vehicle=None, home_batteries=(GEN3,), home_soc_pct=(100.0,), duration_s=13 * H
    ),
    "cybertruck": Scenario(vehicle=CYBERTRUCK, vehicle_soc_pct=25.0, duration_s=6 * H),
}


@cache
def endurance(name: str) -> IslandResult:
    return simulate([ENDURANCE[name]])[0]


@pytest.mark.parametrize("name", list(ENDURANCE))
def test_battery_alone_delivers_its_usable_energy_before_the_house_goes_dark(name: str) -> None:
    sc = ENDURANCE[name]
    r = endurance(name)
    ((_, spec, soc),) = sc.devices()
    usable_kwh = (soc - spec.reserve_pct) / 100.0 * spec.capacity_kwh
    # the last taper_pct above the reserve is delivered at a tapering power: under a load larger
    # than that, it may stay in the battery (at most the band, 123 Wh for the truck)
    band_kwh = FrequencyPlan().taper_pct / 100.0 * spec.capacity_kwh
    assert r.unserved_kwh > 1.0  # it did run out within the run
    dev = r.devices[0]
    assert usable_kwh * spec.efficiency - band_kwh <= dev.out_kwh <= usable_kwh * spec.efficiency
    assert dev.soc_min_pct >= spec.reserve_pct - 1e-6
    assert dev.soc_end_pct <= spec.reserve_pct + FrequencyPlan().taper_pct + 1e-9
    assert dev.trips == 0  # running out is not a protection trip
    assert r.dark_with_energy_s == 0.0


def test_house_without_solar_never_reports_a_solar_trip() -> None:
    """A battery alone runs down (its voltage sags as it tapers off): there is no solar, so
    nothing may be reported about solar."""
    r = endurance("gen3")
    assert r.scenario.solar is None
    assert r.solar_kwh == 0.0
    assert r.solar_trips == 0
    assert not [v for v in r.violations() if "solar" in v]


# --- invariants ---------------------------------------------------------------------------------


def test_healthy_islands_break_no_invariant() -> None:
    for name, r in healthy().items():
        assert r.violations() == [], name


def test_energy_balances_in_every_healthy_run() -> None:
    for name, r in healthy().items():
        assert r.balance_error < 1e-6, name
        # every step the sources met what was served: served = out - in + solar
        net = sum(d.out_kwh - d.in_kwh for d in r.devices) + r.solar_kwh
        assert net == pytest.approx(r.served_kwh, abs=1e-6), name
        assert r.demand_kwh == pytest.approx(r.served_kwh + r.unserved_kwh, abs=1e-6), name
        for d in r.devices:
            # one-way efficiency: the store gives out / eta and keeps in x eta
            spec = next(x for lab, x, _ in r.scenario.devices() if lab == d.label)
            drop = d.out_kwh / spec.efficiency - d.in_kwh * spec.efficiency
            assert d.stored_drop_kwh == pytest.approx(drop, abs=1e-6), (name, d.label)


def test_bus_stays_inside_the_signalling_band_of_the_plan() -> None:
    for name, r in healthy().items():
        top = PLAN.highest_hz(r.scenario.solar.fw_full_hz if r.scenario.solar else None)
        assert PLAN.lowest_hz() - 1e-9 <= r.f_min_hz, name
        assert r.f_max_hz <= top + 1e-9, name


def test_house_dark_after_a_trip_is_reported_with_energy_left() -> None:
    """gen1 with a 0.1 s undervoltage clearing time on a heavy house: a heat-pump start (at least
    one an hour) sags it under 0.88 pu for 0.5 s, it trips, and the house stays dark for the
    reconnect delay and a dead-bus wait while the battery is nearly full."""
    gen1 = dataclasses.replace(GEN1, trip=TripSettings(uv1=(0.88, 0.1)))
    sc = Scenario(
        vehicle=None, home_batteries=(gen1,), home_soc_pct=(90.0,), load="heavy", duration_s=H
    )
    r = simulate([sc])[0]
    trips = r.devices[0].trips
    assert trips >= 1
    wait_max = PLAN.dead_bus_max_s + 5 * PLAN.slot_s
    assert (
        trips * PLAN.reconnect_s - 1.0
        <= r.dark_with_energy_s
        <= trips * (PLAN.reconnect_s + wait_max)
    )
    found = r.violations()
    assert any("house dark" in v and "usable energy remained" in v for v in found)
    assert any(f"tripped {trips} time(s)" in v for v in found)


def test_solar_trip_is_reported() -> None:
    solar = SolarSpec(rated_w=3_000.0, trip=TripSettings(uv1=(0.88, 0.1)))
    sc = Scenario(
        vehicle=None,
        home_batteries=(GEN1,),
        home_soc_pct=(90.0,),
        load="heavy",
        solar=solar,
        start_s=10 * H,
        duration_s=H,
    )
    r = simulate([sc])[0]
    assert r.solar_trips >= 1
    assert r.devices[0].trips == 0
    assert f"solar tripped {r.solar_trips} time(s)" in r.violations()


def test_role_changes_over_the_limit_are_reported() -> None:
    r = healthy()["hand-over"]
    assert r.role_changes >= 1
    assert r.violations() == []  # within the default of 4 an hour
    found = r.violations(Limits(max_role_changes_per_h=0.0))
    changed = [d for d in r.devices if d.role_changes]
    assert len(found) == len(changed)
    for d in changed:
        assert any(d.label in v and f"changed role {d.role_changes} times" in v for v in found)


def test_step_longer_than_the_start_slot_is_refused() -> None:
    # a 0.5 s step could not tell the devices' 60 ms start slots apart
    with pytest.raises(PowershareConfigError, match="dead-bus slot"):
        simulate([two_gen3((80.0, 80.0), 30.0)], dt_s=0.5)


def test_simultaneous_black_start_is_reported() -> None:
    r = simulate([two_gen3((80.0, 80.0), 30.0)], dt_s=PLAN.slot_s)[0]
    assert r.collisions == 0  # equal states of charge, one slot per step: still in turn
    assert "1 simultaneous black start(s)" in dataclasses.replace(r, collisions=1).violations()


def replaced(r: IslandResult, j: int, **change: float) -> IslandResult:
    devices = list(r.devices)
    devices[j] = dataclasses.replace(devices[j], **change)  # type: ignore[arg-type]
    return dataclasses.replace(r, devices=devices)


def test_every_device_limit_invariant_fires_on_a_result_that_breaks_it() -> None:
    """Over peak, too long above continuous, under the reserve and over 100 %: the simulator's
    clipping never lets these happen, so they are checked on a healthy result with one figure
    changed."""
    r = healthy()["home first"]
    assert r.violations() == []
    j = device(r, "home1")
    d = r.devices[j]
    cases = {
        "over its 15400 W limit": {"max_power_w": d.peak_w * 1.001},
        "stayed above its continuous 11500 W": {"max_above_continuous_s": d.peak_s + 2 * r.dt_s},
        "below its 5.0 % reserve": {"soc_min_pct": d.reserve_pct - 0.01},
        "charged to 100.010 %": {"soc_max_pct": 100.01},
    }
    for words, change in cases.items():
        found = replaced(r, j, **change).violations()
        assert len(found) == 1, (words, found)
        assert d.label in found[0] and words in found[0]
    # at the limits exactly, nothing fires
    edge = {"max_power_w": d.peak_w, "soc_min_pct": d.reserve_pct, "soc_max_pct": 100.0}
    assert replaced(r, j, **edge).violations() == []


def test_vehicle_energy_while_a_home_battery_could_supply_fires() -> None:
    r = healthy()["home first"]
    assert dataclasses.replace(r, vehicle_early_kwh=0.0009).violations() == []
    found = dataclasses.replace(r, vehicle_early_kwh=0.002).violations()
    assert len(found) == 1 and "home battery first" in found[0]


def test_energy_imbalance_fires_with_its_size() -> None:
    r = healthy()["home first"]
    j = device(r, "home1")
    missing_kwh = 0.01 * r.served_kwh  # 1 % of the served energy unaccounted for
    broken = replaced(r, j, loss_kwh=r.devices[j].loss_kwh + missing_kwh)
    assert broken.balance_error == pytest.approx(0.01, abs=1e-6)
    assert broken.violations() == ["energy does not balance: 1.000 % off"]
    assert broken.violations(Limits(balance_tolerance_frac=0.02)) == []


# --- arrays in, arrays out ----------------------------------------------------------------------


def comparable(r: IslandResult) -> dict[str, object]:
    return dataclasses.asdict(dataclasses.replace(r, series=None))


def test_identical_scenarios_in_one_run_give_identical_results_and_match_a_run_alone() -> None:
    sc = Scenario(
        vehicle=CYBERTRUCK, home_batteries=(GEN3,), home_soc_pct=(21.0,), duration_s=600.0, seed=3
    )
    alone = simulate([sc], record_every_s=5.0)[0]
    many = simulate([sc] * 4, record_every_s=5.0)
    assert alone.series is not None
    for r in many:
        assert comparable(r) == comparable(alone)
        assert r.series is not None
        for col, values in alone.series.items():
            np.testing.assert_array_equal(r.series[col], values)


def test_scenarios_of_other_shapes_in_the_same_run_do_not_change_a_result() -> None:
    """A vehicle alone, run beside a house with three home batteries and one with a different
    duration (padding devices, grouping by duration), gives what it gives alone."""
    small = Scenario(vehicle=CYBERTRUCK, load="essential", duration_s=600.0, seed=1)
    big = Scenario(
        vehicle=None,
        home_batteries=(GEN1, GEN3, GEN3),
        home_soc_pct=(50.0, 60.0, 70.0),
        load="heavy",
        duration_s=600.0,
        seed=5,
    )
    other = Scenario(vehicle=None, home_batteries=(GEN2,), duration_s=300.0, seed=2)
    together = simulate([small, big, other, small])
    for sc, r in zip([small, big, other, small], together, strict=True):
        assert comparable(r) == comparable(simulate([sc])[0])
