"""Planning a site: both modes over one window, outages, the RTT distribution, and the physics
bounds every delay must respect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyfleet.errors import PlaceError
from skyfleet.links import (
    LinkSeries,
    link_estimates,
    outages,
    plan_site,
    resolve_place,
    rtt_distribution,
    site_places,
)
from skyfleet.orbits import WalkerConstellation

START = 1_767_225_600.0
C_KM_S = 299_792.458
R_EARTH_KM = 6371.0


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a sphere of mean radius, written out here (an independent check)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R_EARTH_KM * math.asin(math.sqrt(a))


@pytest.fixture(scope="module")
def mine_plan(s1: WalkerConstellation):  # type: ignore[no-untyped-def]
    site = resolve_place("-22.31,118.35")
    region = resolve_place("aws:ap-southeast-2")
    return plan_site(s1, site, region, START, 1800.0, 15.0)


def test_both_modes_cover_the_same_steps(mine_plan) -> None:  # type: ignore[no-untyped-def]
    isl, bp = mine_plan.series["isl"], mine_plan.series["bent-pipe"]
    assert isl.mode == "isl" and bp.mode == "bent-pipe"
    np.testing.assert_array_equal(isl.t_s, bp.t_s)
    # A laser path may use no laser link, so isl is never slower than bent-pipe (1 us slack).
    both = np.isfinite(isl.rtt_ms) & np.isfinite(bp.rtt_ms)
    assert both.any()
    assert np.all(isl.rtt_ms[both] <= bp.rtt_ms[both] + 1e-3)
    assert np.all(np.isfinite(isl.rtt_ms[np.isfinite(bp.rtt_ms)]))


def test_no_delay_beats_light_in_vacuum_over_the_chord(mine_plan) -> None:  # type: ignore[no-untyped-def]
    """A round trip can never be shorter than twice the straight line between the ends at c."""
    site, region = mine_plan.site, mine_plan.region
    arc_km = _haversine_km(site.lat_deg, site.lon_deg, region.lat_deg, region.lon_deg)
    chord_km = 2 * R_EARTH_KM * math.sin(arc_km / (2 * R_EARTH_KM))
    floor_ms = 2 * chord_km / C_KM_S * 1000.0
    for s in mine_plan.series.values():
        finite = s.rtt_ms[np.isfinite(s.rtt_ms)]
        assert finite.size and finite.min() > floor_ms


def test_fiber_floor_matches_an_independent_great_circle(mine_plan) -> None:  # type: ignore[no-untyped-def]
    s = mine_plan.summary()
    site, region = mine_plan.site, mine_plan.region
    km = _haversine_km(site.lat_deg, site.lon_deg, region.lat_deg, region.lon_deg)
    # Light in fiber at c/1.467; WGS84 against a sphere differs by well under 0.5 %.
    expected_ms = 2 * km / (C_KM_S / 1.467) * 1000.0
    assert s["fiber_rtt_ms"] == pytest.approx(expected_ms, rel=0.005)
    assert s["internet_rtt_ms"] == pytest.approx(2.1 * expected_ms, rel=0.005)


def test_summary_agrees_with_the_series(mine_plan) -> None:  # type: ignore[no-untyped-def]
    s = mine_plan.summary(top_outages=3)
    assert set(s["modes"]) == {"isl", "bent-pipe"}
    for mode, m in s["modes"].items():
        series = mine_plan.series[mode]
        finite = series.rtt_ms[np.isfinite(series.rtt_ms)]
        assert m["availability_pct"] == pytest.approx(100 * finite.size / series.t_s.size, abs=1e-3)
        assert m["rtt_ms"]["p50"] == pytest.approx(float(np.median(finite)), abs=1e-3)
        assert m["outage_s"] == pytest.approx(series.step_s * np.isnan(series.rtt_ms).sum())
        assert len(m["longest_outages"]) <= 3


def _series(rtt: list[float], step_s: float = 10.0) -> LinkSeries:
    n = len(rtt)
    z = np.zeros(n)
    ints = np.zeros(n, dtype=np.int64)
    return LinkSeries(
        "a", "b", "c", "isl", 0.0, step_s, n * step_s, np.arange(n) * step_s, np.array(rtt),
        ints, ints, ints, ints, z, z, z + 5, z + 10,
    )  # fmt: skip


def test_outages_are_longest_first_and_end_at_the_window() -> None:
    nan = float("nan")
    s = _series([20, nan, 20, nan, nan, nan, 20, nan, nan])
    found = outages(s)
    assert [(o["start_s"], o["end_s"], o["duration_s"]) for o in found] == [
        (30.0, 60.0, 30.0),
        (70.0, 90.0, 20.0),
        (10.0, 20.0, 10.0),
    ]


def test_rtt_distribution_matches_numpy_and_ignores_gaps() -> None:
    rng = np.random.default_rng(7)
    rtt = rng.uniform(20, 80, 1000)
    rtt[::7] = np.nan
    d = rtt_distribution(rtt)
    finite = rtt[np.isfinite(rtt)]
    for q in (1, 5, 25, 50, 75, 95, 99):
        assert d[f"p{q}"] == pytest.approx(np.percentile(finite, q), abs=1e-3)
    assert d["min"] == pytest.approx(finite.min(), abs=1e-3)
    assert all(v is None for v in rtt_distribution(np.array([np.nan, np.nan])).values())


def test_estimates_share_a_region_and_report_both_modes(s1: WalkerConstellation) -> None:
    sites = [resolve_place("-22.31,118.35"), resolve_place("-31.95,115.86")]
    regions = [resolve_place("aws:ap-southeast-2")] * 2
    found = link_estimates(s1, sites, regions, START, window_s=120.0)
    assert [e["site"] for e in found] == ["-22.31,118.35", "-31.95,115.86"]
    for e in found:
        for mode in ("isl", "bent-pipe"):
            assert 0.0 <= e[mode]["availability_pct"] <= 100.0
        assert e["internet_rtt_ms"] > e["fiber_rtt_ms"] > 0
    assert link_estimates(s1, [], [], START) == []


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"lat_deg": "91", "lon_deg": "0"}, "latitude 91"),
        ({"lat_deg": "north", "lon_deg": "0"}, "decimal degrees"),
        ({"lat_deg": "10"}, "both lat_deg and lon_deg"),
        ({"region": "aws:moon-1"}, "unknown cloud region"),
    ],
)
def test_bad_site_attributes_are_refused(attributes: dict[str, str], message: str) -> None:
    with pytest.raises(PlaceError, match=message):
        site_places(attributes, "mine")


def test_site_without_location_is_none() -> None:
    assert site_places({}, "mine") == (None, None)
