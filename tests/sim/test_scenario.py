"""The demo's scenario: fleet shares, vehicles on great circles between real cities, links from
the links package, trucks at home, and Powershare homes through the grid outage."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from skyfleet.errors import InputError
from skyfleet.links import builtin_coverage, cellular_mask, cloud_regions, resolve_place
from skyfleet.powershare import TripSettings
from skyfleet.sim import DEMO_START_S, Scenario, VehiclePlan, build_scenario
from skyfleet.sim._homes import GRID_STATE, ISLAND_STATES

R_KM = 6_371.0088  # IUGG mean Earth radius
AUSTRALIA = ("AU",)


def _haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * R_KM * np.arcsin(np.sqrt(a))


def _bearing_rad(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    return np.arctan2(
        np.sin(dl) * np.cos(p2), np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    )


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    t0 = time.perf_counter()
    sc = build_scenario(vehicles=100, homes=40, seed=3)
    print(f"build_scenario(vehicles=100, homes=40, 12 h): {time.perf_counter() - t0:.2f} s")
    return sc


def _driving(sc: Scenario) -> list[VehiclePlan]:
    return [v for v in sc.vehicles if "home" not in v.attributes]


def _steps(sc: Scenario, every_s: float = 60.0) -> np.ndarray:
    return sc.start_s + np.arange(0.0, sc.duration_s, every_s)


def test_fleet_has_the_asked_counts_and_hardware_and_early_access_shares(
    scenario: Scenario,
) -> None:
    vs = scenario.vehicles
    assert len(vs) == 100 and len({v.device_id for v in vs}) == 100
    hw3 = sum(v.hw == "hw3" for v in vs) / len(vs)
    assert {v.hw for v in vs} == {"hw3", "hw4"} and abs(hw3 - 0.6) <= 0.02
    eap = sum("eap" in v.tags for v in vs) / len(vs)
    assert abs(eap - 0.1) <= 0.02
    trucks = [v for v in vs if "home" in v.attributes]
    assert len(trucks) == len(scenario.homes) == 40
    home_trucks = {d.device_id for h in scenario.homes for d in h.devices if d.kind == "vehicle"}
    assert home_trucks == {v.device_id for v in trucks}
    assert all(v.attributes.get("route") for v in _driving(scenario))
    assert len({v.attributes["route"] for v in _driving(scenario)}) >= 15


def test_positions_lie_on_the_great_circle_between_the_route_cities(scenario: Scenario) -> None:
    t = _steps(scenario, 600.0)
    for v in _driving(scenario):
        assert v.route is not None
        a_name, b_name = v.attributes["route"].split("-")
        cc_a, cc_b = v.route.a.spec.split(",")[-1], v.route.b.spec.split(",")[-1]
        a, b = resolve_place(f"city:{a_name},{cc_a}"), resolve_place(f"city:{b_name},{cc_b}")
        lat, lon = v.position_at(t)
        assert lat.shape == t.shape
        # cross-track and along-track distance from first principles (spherical trigonometry)
        d13 = _haversine_km(a.lat_deg, a.lon_deg, lat, lon) / R_KM
        th13 = _bearing_rad(a.lat_deg, a.lon_deg, lat, lon)
        th12 = _bearing_rad(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
        xt_km = np.arcsin(np.sin(d13) * np.sin(th13 - th12)) * R_KM
        at_km = np.arccos(np.clip(np.cos(d13) / np.cos(xt_km / R_KM), -1, 1)) * R_KM
        length_km = _haversine_km(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
        assert np.abs(xt_km).max() < 1.0, v.device_id
        assert at_km.max() <= length_km + 1.0
        # scalar in, scalar out, and the same point
        one = v.position_at(float(t[3]))
        assert isinstance(one[0], float) and one == pytest.approx((lat[3], lon[3]))


def test_vehicles_drive_between_80_and_100_kmh_and_turn_at_the_ends(scenario: Scenario) -> None:
    t = _steps(scenario, 60.0)
    turned = 0
    for v in _driving(scenario):
        lat, lon = v.position_at(t)
        step_km = _haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:])
        speed_kmh = step_km / (60.0 / 3600.0)
        cruising = speed_kmh > speed_kmh.max() * 0.999
        assert np.all((speed_kmh[cruising] > 80.0 - 0.5) & (speed_kmh[cruising] < 100.0 + 0.5))
        assert np.count_nonzero(~cruising) <= 2 * (1 + scenario.duration_s // 3600)
        turned += int(np.count_nonzero(~cruising))
    assert turned > 0  # short routes are driven back and forth


def test_outback_vehicles_lose_cellular_and_the_schedule_follows_the_coverage(
    scenario: Scenario,
) -> None:
    cov = builtin_coverage()
    t = _steps(scenario, 60.0)
    outback = [v for v in _driving(scenario) if v.route and v.route.a.spec.endswith(AUSTRALIA)]
    assert outback
    agree, total = 0, 0
    for v in outback:
        lat, lon = v.position_at(t)
        covered = cellular_mask(cov, lat, lon)
        kinds = v.link.kind_at(t)
        assert np.count_nonzero(~covered) > 0.5 * t.size  # long stretches without cells
        agree += int(np.count_nonzero((kinds == "cellular") == covered))
        total += t.size
        expected_off = "satellite" if v.satellite_terminal else "none"
        assert set(kinds[~covered & (kinds != "cellular")]) <= {expected_off}
    assert agree >= 0.99 * total  # coverage is looked up every 250 m along the route


def test_vehicles_without_a_terminal_have_no_link_out_of_coverage(scenario: Scenario) -> None:
    cov = builtin_coverage()
    t = _steps(scenario, 60.0)
    bare = [v for v in _driving(scenario) if not v.satellite_terminal]
    assert bare
    off_ok, off_all = 0, 0
    for v in bare:
        kinds = v.link.kind_at(t)
        assert set(kinds) <= {"cellular", "none"}
        off = kinds[~cellular_mask(cov, *v.position_at(t))]
        off_ok += int(np.count_nonzero(off == "none"))
        off_all += off.size
    assert off_all > 0 and off_ok >= 0.99 * off_all  # coverage is looked up every 250 m


def test_telemetry_reports_position_link_and_rtt(scenario: Scenario) -> None:
    v = _driving(scenario)[0]
    for t in _steps(scenario, 1800.0):
        s = v.telemetry_at(float(t), "2026.12.1")
        assert (s.lat_deg, s.lon_deg) == pytest.approx(v.position_at(float(t)), abs=1e-6)
        assert s.link == v.link.kind_at(float(t)) and s.version == "2026.12.1"
        assert (s.rtt_ms is None) == (s.link == "none") and s.state == "driving"
        assert s.rtt_ms is None or 0.0 < s.rtt_ms < 500.0


def test_a_batch_of_telemetry_matches_sample_by_sample(scenario: Scenario) -> None:
    times = list(scenario.start_s + np.arange(0.0, scenario.duration_s, 997.0))
    for plan in scenario.vehicles[::7]:
        assert plan.telemetry(times, "2026.1") == [plan.telemetry_at(t, "2026.1") for t in times]


def test_trucks_are_parked_at_home_wired_and_on_cellular_in_the_outage(scenario: Scenario) -> None:
    homes = {h.home_id: h for h in scenario.homes}
    t = _steps(scenario, 60.0)
    down = (t >= scenario.outage.start_s) & (t < scenario.outage.end_s)
    for v in scenario.vehicles:
        if "home" not in v.attributes:
            continue
        h = homes[v.attributes["home"]]
        lat, lon = v.position_at(t)
        assert np.all(lat == h.lat_deg) and np.all(lon == h.lon_deg)
        kinds = v.link.kind_at(t)
        assert np.all(kinds[~down] == "wired") if h.in_outage else np.all(kinds == "wired")
        if h.in_outage:
            assert set(kinds[down]) <= {"cellular", "none"}
        assert v.telemetry_at(float(t[0]), None).state == "parked"


def test_outage_is_4_hours_from_a_third_in_and_covers_its_homes(scenario: Scenario) -> None:
    o = scenario.outage
    assert o.start_s == scenario.start_s + scenario.duration_s / 3
    assert o.end_s - o.start_s == scenario.duration_s / 3
    for h in scenario.homes:
        inside = _haversine_km(h.lat_deg, h.lon_deg, o.lat_deg, o.lon_deg) <= o.radius_km
        assert h.in_outage == bool(inside)
    assert 0 < sum(h.in_outage for h in scenario.homes) < len(scenario.homes)


def _all_samples(sc: Scenario) -> dict[str, tuple[Any, list[Any]]]:
    out = {}
    for h in sc.homes:
        for dev_id, samples in h.samples_between(sc.start_s, sc.start_s + sc.duration_s).items():
            out[dev_id] = (h, samples)
    return out


def test_island_states_only_inside_the_outage_window(scenario: Scenario) -> None:
    o = scenario.outage
    for h, samples in _all_samples(scenario).values():
        for s in samples:
            inside = o.start_s <= s.ts < o.end_s
            if h.in_outage and inside:
                assert s.state in ISLAND_STATES, (s.ts, s.state)
            else:
                assert s.state == GRID_STATE and s.freq_hz is not None
                assert abs(s.freq_hz - 60.0) < 0.05


def test_home_battery_discharges_before_the_truck(scenario: Scenario) -> None:
    trucks_used = 0
    for h in (h for h in scenario.homes if h.in_outage):
        samples = h.samples_between(scenario.outage.start_s, scenario.outage.end_s)
        battery, truck = (samples[d.device_id] for d in h.devices)
        hb_soc = np.array([s.soc_pct for s in battery])
        tr_soc = np.array([s.soc_pct for s in truck])
        hb_start, tr_start = (d.soc_start_pct for d in h.devices)
        assert hb_soc[0] < hb_start  # the home battery carries the house from the start
        truck_drop = np.flatnonzero(tr_soc < tr_start - 0.01)
        if truck_drop.size:
            trucks_used += 1
            first = truck_drop[0]
            assert np.flatnonzero(hb_soc < hb_start - 0.01)[0] < first
            assert hb_soc[first] < 40.0  # it took over from a low home battery
    assert trucks_used > 0


def test_frequencies_within_the_trip_limits_and_no_home_goes_dark(scenario: Scenario) -> None:
    summary = scenario.outage_summary
    trips = TripSettings()
    assert summary.freq_limits_hz == (trips.uf1[0], trips.of1[0])
    outage_homes = [h for h in scenario.homes if h.in_outage]
    assert summary.homes_in_outage == len(outage_homes)
    assert summary.homes_kept_powered == sum(bool(h.powered_through) for h in outage_homes)
    assert summary.homes_kept_powered == summary.homes_in_outage and not summary.limits_crossed
    o = scenario.outage
    freqs: list[float] = []
    socs: list[float] = []
    for h in outage_homes:
        for samples in h.samples_between(o.start_s, o.end_s).values():
            f = [s.freq_hz for s in samples]
            assert all(x is not None for x in f[1:])  # powered after the black start minute
            freqs += [x for x in f if x is not None]
            socs += [s.soc_pct for s in samples if s.soc_pct is not None]
    low, high = summary.freq_limits_hz
    assert low < summary.min_freq_hz <= min(freqs) and max(freqs) <= summary.max_freq_hz < high
    assert summary.lowest_soc_pct <= min(socs) + 1e-6
    assert summary.lowest_soc_pct >= 5.0 - 1e-6  # every catalogue device keeps a 5 % reserve
    assert summary.home_battery_kwh > summary.vehicle_kwh > 0.0


def test_samples_come_one_per_minute(scenario: Scenario) -> None:
    h = scenario.homes[0]
    t0 = scenario.start_s + 30.5
    samples = h.samples_between(t0, t0 + 600.0)
    assert len(samples) == 2
    for series in samples.values():
        ts = np.array([s.ts for s in series])
        assert ts.size == 10 and np.all(np.diff(ts) == 60.0) and np.all(ts % 60.0 == 0.0)
        assert ts[0] >= t0 and ts[-1] < t0 + 600.0
        assert all(s.lat_deg == h.lat_deg and s.lon_deg == h.lon_deg for s in series)
    assert h.samples_between(t0, t0) == {d.device_id: [] for d in h.devices}


def test_sites_reach_their_nearest_cloud_region(scenario: Scenario) -> None:
    regions = cloud_regions()
    names = [s.name for s in scenario.sites]
    assert (
        len(names) == 3
        and any("mine" in n for n in names)
        and any("ship" in n.lower() for n in names)
    )
    for s in scenario.sites:
        d = _haversine_km(
            s.lat_deg, s.lon_deg, [r.lat_deg for r in regions], [r.lon_deg for r in regions]
        )
        assert _haversine_km(s.lat_deg, s.lon_deg, *_latlon(s.region)) == pytest.approx(
            d.min(), abs=1e-6
        )
        assert s.rtt_ms.size == s.link.codes.size
        sat = s.link.codes == 2
        assert np.array_equal(sat, np.isfinite(s.rtt_ms))
        assert np.nanmedian(s.rtt_ms) > 2.0 * d.min() / 300.0  # no faster than light there and back


def _latlon(spec: str) -> tuple[float, float]:
    p = resolve_place(spec)
    return p.lat_deg, p.lon_deg


def test_same_seed_same_scenario_other_seed_another() -> None:
    a, b, c = (build_scenario(vehicles=30, homes=5, duration_s=1800.0, seed=s) for s in (1, 1, 2))
    t = a.start_s + np.arange(0.0, 1800.0, 300.0)

    def fingerprint(sc: Scenario) -> list[Any]:
        out: list[Any] = []
        for v in sc.vehicles:
            out += [v.device_id, v.hw, v.tags, v.attributes, *np.round(v.position_at(t), 9).ravel()]
            out += list(v.link.kind_at(t))
        for h in sc.homes:
            out += [h.home_id, h.lat_deg, h.lon_deg]
            out += [
                s.to_json()
                for ss in h.samples_between(sc.start_s, sc.start_s + 1800.0).values()
                for s in ss
            ]
        return out

    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_default_start_is_the_holiday_morning() -> None:
    assert datetime(2026, 12, 24, 6, tzinfo=UTC).timestamp() == DEMO_START_S


@pytest.mark.parametrize(
    ("vehicles", "homes", "duration_s"), [(10, 11, 3600.0), (0, 0, 3600.0), (10, 2, 60.0)]
)
def test_impossible_sizes_are_refused(vehicles: int, homes: int, duration_s: float) -> None:
    with pytest.raises(InputError):
        build_scenario(vehicles=vehicles, homes=homes, duration_s=duration_s)
