"""Moving places: a route read from CSV (``lat,lon[,time]``) or GPX, followed over a run.

Without times, the place moves at a constant speed along the great circles between points; with
times, it follows them. Before the start it waits at the first point, after the end at the last.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from skyfleet.errors import RouteError
from skyfleet.links._geometry import FloatArray, great_circle_km
from skyfleet.links._places import check_lat_lon

DEFAULT_SPEED_KMH = 80.0


@dataclass(frozen=True)
class Route:
    """A track: points (degrees) and the seconds after the start at which each is reached."""

    name: str
    lat_deg: FloatArray
    lon_deg: FloatArray
    t_s: FloatArray

    @property
    def length_km(self) -> float:
        """Length along the great circles between points, km."""
        return float(
            great_circle_km(
                self.lat_deg[:-1], self.lon_deg[:-1], self.lat_deg[1:], self.lon_deg[1:]
            ).sum()
        )

    @property
    def duration_s(self) -> float:
        """Seconds from the first point to the last."""
        return float(self.t_s[-1] - self.t_s[0])

    def latlon_at(self, t_s: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Position at ``t_s`` seconds after the start (scalar or array), degrees."""
        t = np.asarray(t_s, dtype=np.float64)
        lon = np.degrees(np.unwrap(np.radians(self.lon_deg)))
        lat_i = np.interp(t, self.t_s, self.lat_deg)
        lon_i = (np.interp(t, self.t_s, lon) + 180.0) % 360.0 - 180.0
        return np.asarray(lat_i), np.asarray(lon_i)


def _timed(
    name: str,
    lat: list[float],
    lon: list[float],
    times: list[float] | None,
    speed_kmh: float | None,
) -> Route:
    if not lat:
        raise RouteError(f"route {name!r} has no points")
    la, lo = np.asarray(lat), np.asarray(lon)
    for i, (a, b) in enumerate(zip(lat, lon, strict=True), start=1):
        check_lat_lon(a, b, f"route {name!r}: point {i}", RouteError)
    if times is not None and speed_kmh is None:
        if not np.all(np.isfinite(times)):
            raise RouteError(f"route {name!r}: a time is not a finite number")
        t = np.asarray(times) - times[0]
        if np.any(np.diff(t) < 0):
            raise RouteError(f"route {name!r}: times go backwards")
    else:
        speed = DEFAULT_SPEED_KMH if speed_kmh is None else speed_kmh
        if not (np.isfinite(speed) and speed > 0):
            raise RouteError(f"route speed must be a number > 0 km/h, got {speed:g}")
        seg = great_circle_km(la[:-1], lo[:-1], la[1:], lo[1:])
        t = np.concatenate([[0.0], np.cumsum(seg)]) / speed * 3600.0
    return Route(name, la, lo, t)


def _utc_seconds(when: datetime) -> float:
    """Unix seconds of a datetime; one without a zone is UTC (never the machine's zone)."""
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return _utc_seconds(datetime.fromisoformat(text))


def _read_csv(name: str, text: str) -> tuple[list[float], list[float], list[float] | None]:
    lat: list[float] = []
    lon: list[float] = []
    times: list[float] = []
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].lstrip().startswith("#")]
    if rows and rows[0] and rows[0][0].strip().lower() in ("lat", "latitude"):
        rows = rows[1:]
    for i, row in enumerate(rows, start=1):
        try:
            la, lo = float(row[0]), float(row[1])
            if len(row) > 2 and row[2].strip():
                times.append(_parse_time(row[2].strip()))
        except (ValueError, IndexError):
            raise RouteError(
                f"{name}: row {i}: expected lat,lon[,time], got {','.join(row)[:60]!r}"
            ) from None
        lat.append(la)
        lon.append(lo)
    if times and len(times) != len(lat):
        raise RouteError(f"{name}: some rows have a time and some do not")
    return lat, lon, (times or None)


def _read_gpx(name: str, text: str) -> tuple[list[float], list[float], list[float] | None]:
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(text)
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise RouteError(f"{name}: not a readable GPX file ({exc})") from None
    pts: list[Any] = [p for trk in gpx.tracks for seg in trk.segments for p in seg.points]
    pts = pts or [p for rte in gpx.routes for p in rte.points] or list(gpx.waypoints)
    lat = [p.latitude for p in pts]
    lon = [p.longitude for p in pts]
    stamps = [p.time for p in pts]
    times = [_utc_seconds(s) for s in stamps if s is not None]
    return lat, lon, (times if pts and len(times) == len(pts) else None)


def load_route(path: str | Path, speed_kmh: float | None = None) -> Route:
    """Read a route from a CSV (``lat,lon[,time]``; time in seconds or ISO 8601) or GPX file.

    With ``speed_kmh`` (or when the file has no times) the place moves at that constant speed
    (default 80 km/h); otherwise it follows the file's times.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RouteError(f"cannot read route file {str(p)!r}: {exc}") from None
    reader = _read_gpx if p.suffix.lower() == ".gpx" or text.lstrip().startswith("<") else _read_csv
    lat, lon, times = reader(str(p), text)
    return _timed(p.stem, lat, lon, times, speed_kmh)
