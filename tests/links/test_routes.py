"""Moving places: routes from CSV and GPX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skyfleet.errors import RouteError
from skyfleet.links import great_circle_km, load_route


def test_route_without_times_moves_at_the_given_speed(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text("lat,lon\n0,0\n0,1\n0,2\n")
    r = load_route(f, speed_kmh=100.0)
    assert r.length_km == pytest.approx(2 * 111.19, rel=1e-3)
    assert r.duration_s == pytest.approx(r.length_km / 100.0 * 3600.0)
    lat, lon = r.latlon_at(np.array([0.0, r.duration_s / 2, 2 * r.duration_s]))
    np.testing.assert_allclose(lon, [0.0, 1.0, 2.0], atol=1e-9)  # waits at the end
    np.testing.assert_allclose(lat, 0.0, atol=1e-12)


def test_route_with_times_follows_them(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text("10,20,2026-01-01T00:00:00Z\n10,21,2026-01-01T01:00:00Z\n")
    r = load_route(f)
    assert r.duration_s == 3600.0
    lat, lon = r.latlon_at(1800.0)
    assert (float(lat), float(lon)) == pytest.approx((10.0, 20.5))


def test_route_crossing_the_dateline_stays_on_the_short_side(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text("0,179\n0,-179\n")
    r = load_route(f, speed_kmh=50.0)
    assert r.length_km < 250
    _, lon = r.latlon_at(r.duration_s / 2)
    assert abs(abs(float(lon)) - 180.0) < 1e-9


def test_gpx_track_is_read(tmp_path: Path) -> None:
    f = tmp_path / "trip.gpx"
    f.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">'
        "<trk><trkseg>"
        '<trkpt lat="47.6" lon="-122.3"><time>2026-01-01T00:00:00Z</time></trkpt>'
        '<trkpt lat="45.5" lon="-122.7"><time>2026-01-01T03:00:00Z</time></trkpt>'
        "</trkseg></trk></gpx>"
    )
    r = load_route(f)
    assert r.duration_s == 3 * 3600.0
    assert r.length_km == pytest.approx(float(great_circle_km(47.6, -122.3, 45.5, -122.7)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no points"),
        ("lat,lon\n10,abc\n", "row 1: expected lat,lon"),
        ("95,0\n", "latitude 95"),
        ("1,1,100\n1,2\n", "some rows have a time"),
        ("1,1,100\n1,2,50\n", "times go backwards"),
        ("1,1,nan\n1,2,50\n", "not a finite number"),
        ("1,1,1e400\n1,2,50\n", "not a finite number"),
        ("1,1\n95,2\n", "point 2: latitude 95"),
    ],
)
def test_bad_route_file_rejected_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(RouteError, match=message):
        load_route(f)


def test_broken_gpx_rejected(tmp_path: Path) -> None:
    f = tmp_path / "bad.gpx"
    f.write_text("<gpx><trk>")
    with pytest.raises(RouteError, match="not a readable GPX"):
        load_route(f)


def test_missing_route_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(RouteError, match="cannot read route file"):
        load_route(tmp_path / "none.csv")


def test_gpx_points_outside_the_globe_rejected(tmp_path: Path) -> None:
    f = tmp_path / "bad.gpx"
    f.write_text(
        '<gpx version="1.1" creator="t"><trk><trkseg><trkpt lat="95" lon="0"/></trkseg></trk></gpx>'
    )
    with pytest.raises(RouteError, match="latitude 95"):
        load_route(f)


@pytest.mark.parametrize("speed", [0.0, -5.0, float("inf"), float("nan")])
def test_impossible_speed_rejected(tmp_path: Path, speed: float) -> None:
    f = tmp_path / "r.csv"
    f.write_text("0,0\n0,1\n")
    with pytest.raises(RouteError, match="speed must be a number > 0"):
        load_route(f, speed_kmh=speed)


def test_route_times_without_a_zone_are_utc_whatever_the_machine_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        f = tmp_path / "r.csv"
        f.write_text("0,0,2026-01-01T00:00:00\n0,1,2026-01-01T02:00:00Z\n")
        assert load_route(f).duration_s == 7200.0
    finally:
        monkeypatch.undo()
        time.tzset()
