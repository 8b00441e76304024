"""Link series: availability, gaps, handovers on the re-assignment grid, modes, moving places."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import START
from skyfleet.errors import LinkConfigError
from skyfleet.links import (
    LinkOptions,
    decision_steps,
    gateways,
    link_series,
    link_series_many,
    load_route,
    resolve_place,
    summarize,
    time_grid,
)
from skyfleet.orbits import C_KM_S, WalkerConstellation


@pytest.mark.parametrize(
    ("duration", "step"), [(60.0, 0.0), (60.0, -15.0), (-1.0, 15.0), (60.0, float("nan"))]
)
def test_impossible_time_grid_rejected(duration: float, step: float) -> None:
    with pytest.raises(LinkConfigError):
        time_grid(0.0, duration, step)


def test_unknown_mode_rejected() -> None:
    with pytest.raises(LinkConfigError, match="unknown mode 'laser'"):
        LinkOptions(mode="laser")  # type: ignore[arg-type]


def test_no_coverage_beyond_the_shell_is_one_gap_over_the_window(s1: WalkerConstellation) -> None:
    """A 53-degree shell seen above 25 degrees covers up to about 57 degrees of latitude only."""
    s = link_series(s1, resolve_place("80,0"), resolve_place("aws:eu-west-1"), START, 600.0, 60.0)
    summary = summarize(s)
    assert summary["availability_pct"] == 0.0
    assert summary["gaps"] == [{"start_s": 0.0, "end_s": 600.0}]
    assert summary["rtt_ms"]["median"] is None
    assert np.all(s.sat == -1) and np.all(s.hops == 0)


def test_mid_latitude_city_is_always_covered(s1: WalkerConstellation) -> None:
    s = link_series(
        s1, resolve_place("city:Madrid"), resolve_place("aws:eu-south-2"), START, 1800.0, 30.0
    )
    assert summarize(s)["availability_pct"] == 100.0
    assert np.all(s.visible >= 5)


def test_serving_satellite_changes_only_on_the_grid_or_when_lost(s1: WalkerConstellation) -> None:
    """Starlink re-allocates every 15 s; between those instants the terminal keeps its satellite."""
    s = link_series(
        s1, resolve_place("city:Chicago"), resolve_place("aws:us-east-2"), START, 180.0, 1.0
    )
    decide = decision_steps(START + s.t_s, 15.0, 12.0)
    changed = np.flatnonzero(s.sat[1:] != s.sat[:-1]) + 1
    assert changed.size > 0
    assert np.all(decide[changed])  # the satellite stayed in view and on a path between decisions
    assert s.t_s[np.flatnonzero(decide)[1]] == 12.0  # the first re-allocation at :12


def test_bent_pipe_needs_a_gateway_in_the_same_footprint(s1: WalkerConstellation) -> None:
    """In the South Atlantic, over 3,000 km from every gateway, bent-pipe has no path while laser links do."""
    ship, region = resolve_place("-30,-15"), resolve_place("aws:sa-east-1")
    bent = link_series(s1, ship, region, START, 600.0, 60.0, LinkOptions(mode="bent-pipe"))
    isl = link_series(s1, ship, region, START, 600.0, 60.0, LinkOptions(mode="isl"))
    assert summarize(bent)["availability_pct"] == 0.0
    assert summarize(isl)["availability_pct"] == 100.0
    assert np.all(isl.hops >= 3)  # up-link, at least one laser link, down-link


def test_isl_path_beats_fiber_over_the_atlantic(s1: WalkerConstellation) -> None:
    s = link_series(
        s1, resolve_place("city:London"), resolve_place("city:New York"), START, 600.0, 60.0
    )
    summary = summarize(s)
    assert summary["rtt_ms"]["max"] < summary["fiber_rtt_ms"] < summary["internet_rtt_ms"]


def test_detail_paths_match_hops_and_start_at_the_serving_satellite(
    s1: WalkerConstellation,
) -> None:
    s = link_series(
        s1,
        resolve_place("city:Tokyo"),
        resolve_place("aws:us-west-2"),
        START,
        300.0,
        60.0,
        LinkOptions(detail=True),
    )
    assert s.paths is not None
    for k, path in enumerate(s.paths):
        assert path[0] == s.sat[k]
        assert len(path) + 1 == s.hops[k]
        assert s.gateway[k] >= 0  # a cloud region is reached through a gateway


def test_rtt_is_never_below_the_straight_line_light_time(s1: WalkerConstellation) -> None:
    src, dst = resolve_place("city:Sydney"), resolve_place("city:Singapore")
    s = link_series(s1, src, dst, START, 900.0, 60.0)
    from skyfleet.orbits import geodetic_to_ecef

    chord_km = float(
        np.linalg.norm(
            geodetic_to_ecef(src.lat_deg, src.lon_deg) - geodetic_to_ecef(dst.lat_deg, dst.lon_deg)
        )
    )
    assert np.nanmin(s.rtt_ms) > 2 * chord_km / C_KM_S * 1e3


def test_many_sources_share_routing_and_match_single_runs(s1: WalkerConstellation) -> None:
    srcs = [resolve_place("city:Berlin"), resolve_place("city:Lagos"), resolve_place("city:Lima")]
    dsts = [
        resolve_place("aws:eu-central-1"),
        resolve_place("aws:eu-central-1"),
        resolve_place("aws:sa-east-1"),
    ]
    many = link_series_many(s1, srcs, dsts, START, 300.0, 60.0)
    for src, dst, got in zip(srcs, dsts, many, strict=True):
        one = link_series(s1, src, dst, START, 300.0, 60.0)
        np.testing.assert_allclose(got.rtt_ms, one.rtt_ms)


def test_parallel_workers_give_the_same_series(s1: WalkerConstellation) -> None:
    args = (s1, resolve_place("city:Denver"), resolve_place("azure:westus2"), START, 600.0, 5.0)
    one = link_series(*args, workers=1)
    two = link_series(*args, workers=2)
    np.testing.assert_array_equal(one.sat, two.sat)
    np.testing.assert_allclose(one.rtt_ms, two.rtt_ms)


def test_a_vehicle_on_a_route_moves_with_its_link(s1: WalkerConstellation, tmp_path: Path) -> None:
    f = tmp_path / "drive.csv"
    f.write_text("45.0,-100.0\n45.0,-90.0\n")
    route = load_route(f, speed_kmh=3600.0)  # fast, so the run spans the route
    s = link_series(s1, route, resolve_place("aws:us-east-2"), START, 900.0, 30.0)
    assert s.lon_deg[0] == -100.0 and s.lon_deg[-1] > -91.0
    assert np.all(np.diff(s.lon_deg) >= 0)
    assert s.fiber_rtt_ms[-1] < s.fiber_rtt_ms[0]  # closer to Ohio at the end
    assert summarize(s)["availability_pct"] == 100.0


def test_ground_station_rtt_has_the_shape_of_its_times(s1: WalkerConstellation) -> None:
    from skyfleet.links import ground_station_rtt_ms

    lat, lon = [51.5, 40.7, 48.9], [-0.1, -74.0, 2.35]
    one = ground_station_rtt_ms(s1, lat, lon, START)
    many = ground_station_rtt_ms(s1, lat, lon, [START, START + 60.0])
    assert one.shape == (3, 3) and many.shape == (2, 3, 3)
    np.testing.assert_allclose(one, many[0])
    assert np.all(np.diag(one) == 0) and np.all(np.isfinite(one))


@pytest.mark.parametrize(("step_s", "margin"), [(15.0, 1.25), (2.0, 1.25), (15.0, 0.5), (2.0, 0.9)])
def test_bounded_searches_give_exactly_the_unbounded_answer(
    s1: WalkerConstellation, step_s: float, margin: float
) -> None:
    """Bounded Dijkstra searches are a speed-up only: every RTT, satellite and gateway is the
    same. Margins below 1 cut searches short on purpose, so the exactness check must re-run them."""
    from skyfleet.links._engine import run_links

    places = [
        resolve_place(p) for p in ("city:Berlin", "city:Lagos", "-30,-15", "city:Perth", "70,20")
    ]
    regions = [(51.5, -0.1, False), (-33.9, 18.4, False)]
    gws = [(g.lat_deg, g.lon_deg) for g in gateways()]
    lat = np.array([[p.lat_deg] * 60 for p in places])
    lon = np.array([[p.lon_deg] * 60 for p in places])
    times = START + np.arange(60) * step_s
    args = (s1, lat, lon, np.array([0, 1, 1, 1, 0]), regions, gws, times, LinkOptions(mode="isl"))
    fast = run_links(*args, search_margin=margin)
    slow = run_links(*args, search_margin=None)
    np.testing.assert_array_equal(fast["sat"], slow["sat"])
    np.testing.assert_array_equal(fast["gateway"], slow["gateway"])
    np.testing.assert_allclose(fast["rtt_ms"], slow["rtt_ms"], rtol=0, atol=1e-9)
    assert np.isfinite(fast["rtt_ms"]).sum() > 100
    assert slow["exact_reruns"] == 0
    if margin < 1.0:
        assert fast["exact_reruns"] > 10
