"""``skyfleet route analyze``: cellular, satellite, both or neither along a route, and the gaps.

Positions and coverage are checked with a haversine written here; the satellite side uses
Starlink shell 1 (53°), which has no satellite in view at 70° N and always one at 47° N.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.cli._run import run

from skyfleet.links import cloud_regions

R_KM = 6371.0088
START = ["--start", "2026-01-01T00:00:00Z", "-c", "starlink-s1"]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * R_KM * math.asin(math.sqrt(a))


# Due north from a tower at 70° N (5 km range) to a second tower (2 km range): 33.4 km at
# 37 km/h, so the first tower is left after 5 km / 37 km/h = 486.5 s.
NORTH = "lat,lon\n70.0,20.0\n70.3,20.0\n"
TOWERS = (
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
    "LTE,242,1,100,1,,20.0,70.0,5000,40,1,0,0,0\n"
    "LTE,242,1,100,2,,20.0,70.3,2000,40,1,0,0,0\n"
)
SPEED_KMH = 37.0


@pytest.fixture
def north(tmp_path: Path) -> tuple[Path, Path]:
    route, cells = tmp_path / "north.csv", tmp_path / "cells.csv"
    route.write_text(NORTH)
    cells.write_text(TOWERS)
    return route, cells


def _north_args(route: Path, cells: Path) -> list[str]:
    return [
        "route",
        "analyze",
        "--route",
        str(route),
        "--speed",
        str(SPEED_KMH),
        "--coverage",
        str(cells),
        "--step",
        "10s",
        *START,
    ]


def test_gaps_start_where_the_vehicle_leaves_a_towers_range(
    north: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "analysis"
    code, out, err = run([*_north_args(*north), "--json", "--out", str(out_dir)], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert s["coverage"].startswith("cells.csv: 2 cells (OpenCelliD")
    assert s["time_s"]["satellite"] == 0.0  # no shell-1 satellite in view at 70° N
    length_km = haversine_km(70.0, 20.0, 70.3, 20.0)
    assert s["distance_km"] == pytest.approx(length_km, abs=0.01)
    assert s["duration_s"] == pytest.approx(length_km / SPEED_KMH * 3600.0, abs=0.5)
    # one gap: from leaving the first tower's 5 km to entering the second's 2 km, within a step
    leave_s = 5.0 / SPEED_KMH * 3600.0
    enter_s = (haversine_km(70.0, 20.0, 70.3, 20.0) - 2.0) / SPEED_KMH * 3600.0
    [gap] = s["gaps"]
    assert leave_s <= gap["start_s"] < leave_s + 10.0
    assert enter_s <= gap["end_s"] < enter_s + 10.0
    assert gap["duration_s"] == pytest.approx(gap["end_s"] - gap["start_s"])
    assert haversine_km(70.0, 20.0, gap["lat_deg"], gap["lon_deg"]) == pytest.approx(5.0, abs=0.11)
    assert s["longest_gap"] == gap
    # the shares add up, and the time series agrees with the haversine, step by step
    pct = s["time_pct"]
    assert pct["cellular_only"] + pct["none"] == pytest.approx(100.0, abs=0.01)
    assert pct["either"] == pytest.approx(100.0 - pct["none"], abs=0.01)
    assert s["time_s"]["none"] == pytest.approx(gap["duration_s"], abs=1e-6)
    with open(out_dir / "route.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == s["steps"] == math.ceil(s["duration_s"] / 10.0)
    for row in rows:
        lat, lon = float(row["lat_deg"]), float(row["lon_deg"])
        d1, d2 = haversine_km(70.0, 20.0, lat, lon), haversine_km(70.3, 20.0, lat, lon)
        assert (row["cellular"] == "True") == (d1 <= 5.0 or d2 <= 2.0)
        assert row["satellite"] == "False" and row["rtt_ms"] == ""
        in_gap = gap["start_s"] <= float(row["time_s"]) < gap["end_s"]
        assert (row["connectivity"] == "none") == in_gap
    assert json.loads((out_dir / "summary.json").read_text()) == s
    assert (out_dir / "route.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gzipped_opencellid_file_reads_the_same(
    north: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    route, cells = north
    packed = tmp_path / "cells.csv.gz"
    packed.write_bytes(gzip.compress(cells.read_bytes()))
    _, plain, _ = run([*_north_args(route, cells), "--json"], capsys)
    code, out, err = run([*_north_args(route, packed), "--json"], capsys)
    assert code == 0, err
    a, b = json.loads(plain), json.loads(out)
    assert a["gaps"] == b["gaps"] and a["time_s"] == b["time_s"]


def test_geojson_polygon_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    route = tmp_path / "north.csv"
    route.write_text(NORTH)
    area = tmp_path / "area.geojson"  # covers up to 70.1° N, 11.1 km from the start
    ring = [[19.0, 69.0], [21.0, 69.0], [21.0, 70.1], [19.0, 70.1]]
    geometry = {"type": "Polygon", "coordinates": [ring]}
    area.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": geometry}))
    args = ["--route", str(route), "--speed", "37", "--coverage", str(area), "--step", "10s"]
    code, out, err = run(["route", "analyze", *args, *START, "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert s["coverage"] == "area.geojson: 1 polygon (GeoJSON)"
    leave_s = haversine_km(70.0, 20.0, 70.1, 20.0) / SPEED_KMH * 3600.0
    [gap] = s["gaps"]
    assert leave_s <= gap["start_s"] < leave_s + 10.0
    assert gap["end_s"] == s["duration_s"]


GPX = (
    '<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">'
    "<trk><trkseg>"
    '<trkpt lat="46.9965" lon="-120.5478"><time>2026-01-01T00:00:00Z</time></trkpt>'
    '<trkpt lat="46.9465" lon="-119.9867"><time>2026-01-01T00:30:00Z</time></trkpt>'
    "</trkseg></trk></gpx>"
)


def test_gpx_route_leaves_a_towns_builtin_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ellensburg, WA (about 20,000 people: 11.8 km in the built-in approximation) east to the
    Columbia at Vantage, 43 km in 30 minutes; shell 1 serves 47° N throughout."""
    f = tmp_path / "ellensburg.gpx"
    f.write_text(GPX)
    code, out, err = run(
        ["route", "analyze", "--route", str(f), "--step", "30s", *START, "--json"], capsys
    )
    assert code == 0, err
    s = json.loads(out)
    assert s["route"] == "ellensburg" and s["duration_s"] == 1800.0
    assert s["coverage"].startswith("built-in approximation, not measured")
    assert s["time_pct"]["satellite"] == 100.0 and s["gaps"] == []
    assert 10.0 < s["time_pct"]["both"] < 50.0  # the town's disc, then satellite only
    assert s["time_pct"]["both"] + s["time_pct"]["satellite_only"] == pytest.approx(100.0)
    assert s["satellite_rtt_ms"]["median"] > 4 * 550 / 299_792.458 * 1e3
    nearest = min(
        cloud_regions(), key=lambda r: haversine_km(46.9965, -120.5478, r.lat_deg, r.lon_deg)
    )
    assert s["destination"] == nearest.spec


def test_summary_table_for_people(
    north: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(_north_args(*north), capsys)
    assert code == 0, err
    for text in (
        "cellular only",
        "satellite only",
        "neither",
        "1 gap with neither; longest",
        "cells.csv",
    ):
        assert text in out


def test_parquet_time_series(
    north: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "pq"
    code, _, err = run([*_north_args(*north), "--out", str(out_dir), "--format", "parquet"], capsys)
    assert code == 0, err
    table = pq.read_table(out_dir / "route.parquet")
    assert table.column_names == [
        "time_s",
        "time_utc",
        "lat_deg",
        "lon_deg",
        "cellular",
        "satellite",
        "connectivity",
        "rtt_ms",
    ]
    assert table.column("rtt_ms").null_count == table.num_rows
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "route.parquet",
        "route.png",
        "summary.json",
    ]


@pytest.mark.parametrize("command", [["route"], ["route", "analyze"]])
def test_route_commands_have_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0 and "Usage" in out


BAD_COVERAGE = [
    ("missing.csv", None, "cannot read coverage file"),
    ("dir.csv", "DIR", "cannot read coverage file"),
    ("cells.csv", TOWERS + "LTE,242,1,100,3,,20.0\n", "cells.csv: line 4: expected OpenCelliD"),
    ("cells.csv", "LTE,242,1,100,3,,20.0,70.0,-1,1,1,0,0,0\n", "line 1: range -1 m"),
    ("pts.geojson", '{"type": "Point", "coordinates": [20, 70]}', "no Polygon or MultiPolygon"),
    ("broken.json", '{"type": ', "not valid JSON"),
    ("cells.txt", TOWERS, "use an OpenCelliD .csv or a GeoJSON"),
    ("cells.csv.gz", TOWERS, "cannot read coverage file"),  # not gzip inside
    ("latin1.csv", "LTE,1,1,1,1,,20.0,70.0,100,1,1,0,0,0,é\n".encode("latin-1"), "cannot read"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_COVERAGE)
def test_bad_coverage_is_one_line_and_status_2_and_writes_nothing(
    name: str,
    content: str | bytes | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    route = tmp_path / "north.csv"
    route.write_text(NORTH)
    cov = tmp_path / name
    if content == "DIR":
        cov.mkdir()
    elif isinstance(content, bytes):
        cov.write_bytes(content)
    elif content is not None:
        cov.write_text(content)
    out_dir = tmp_path / "analysis"
    code, out, err = run([*_north_args(route, cov), "--out", str(out_dir)], capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--route"),
        (["--route", "ROUTE_DIR/nope.gpx"], "cannot read route file"),
        (["--route", "ROUTE_DIR/one.csv"], "takes no time"),
        (["--route", "ROUTE_DIR/north.csv", "--format", "xlsx"], "use csv or parquet"),
        (["--route", "ROUTE_DIR/north.csv", "--step", "0s"], "--step must be greater than zero"),
        (["--route", "ROUTE_DIR/north.csv", "--to", "aws:mars-1"], "unknown cloud region"),
        (["--route", "ROUTE_DIR/north.csv", "-c", "starlonk"], "unknown constellation"),
        (["--route", "ROUTE_DIR/north.csv", "--mode", "laser"], "unknown mode"),
        (["--route", "ROUTE_DIR/north.csv", "--speed", "0"], "speed must be a number > 0"),
        (["--route", "ROUTE_DIR/north.csv", "--start", "soon"], "cannot read start time"),
    ],
)
def test_bad_route_input_is_one_line_and_status_2_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "north.csv").write_text(NORTH)
    (tmp_path / "one.csv").write_text("lat,lon\n70.0,20.0\n")
    out_dir = tmp_path / "analysis"
    argv = [a.replace("ROUTE_DIR", str(tmp_path)) for a in args]
    code, out, err = run(["route", "analyze", *argv, "--out", str(out_dir)], capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists()


def test_out_that_is_a_file_is_refused(
    north: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    code, out, err = run([*_north_args(*north), "--out", str(taken)], capsys)
    assert code == 2 and out == "" and "is a file, not a folder" in err
    assert taken.read_text() == "keep me"
