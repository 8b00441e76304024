"""The demo's vehicles: real city pairs, driven back and forth along the great circle between
them, and the link each vehicle has on the way.

A route is the great-circle path between two GeoNames cities (not the roads: a road bends, this
does not), driven at a constant speed between 80 and 100 km/h and turned at each end. Cellular
coverage along a route is looked up once, every :data:`CELL_GRID_KM` along it, in the links
package's built-in coverage (:func:`~skyfleet.links.builtin_coverage`); each vehicle then reads
it at its own place at every step. The satellite link is computed for a few *variants* per route
(:data:`VARIANTS`, tracks spread evenly along the round trip): a vehicle uses the satellite link
(availability and RTT) of its variant's track, which is at most ``2 * length / VARIANTS`` km of
driving away from it.

Times are UNIX seconds, distances km, speeds km/h, delays ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyfleet.links import (
    LinkSeries,
    Place,
    Route,
    builtin_coverage,
    cellular_mask,
    cloud_regions,
    great_circle_km,
    resolve_place,
)
from skyfleet.sim._links import LINK_KINDS, LinkSchedule
from skyfleet.telemetry import Telemetry

__all__ = [
    "CELLULAR_RTT_MS",
    "CELL_GRID_KM",
    "ROUTES",
    "VARIANTS",
    "WIRED_RTT_MS",
    "DrivenRoute",
    "VehiclePlan",
    "nearest_region",
]

#: City pairs the vehicles drive (``city:`` place names): outback, desert, tundra and bush
#: roads with long stretches out of reach of any town's cells, and two busy corridors.
ROUTES: tuple[tuple[str, str], ...] = (
    ("Perth,AU", "Darwin,AU"),
    ("Adelaide,AU", "Alice Springs,AU"),
    ("Alice Springs,AU", "Darwin,AU"),
    ("Perth,AU", "Adelaide,AU"),
    ("Brisbane,AU", "Mount Isa,AU"),
    ("Kalgoorlie,AU", "Port Hedland,AU"),
    ("Salt Lake City,US", "Reno,US"),
    ("Denver,US", "Salt Lake City,US"),
    ("Las Vegas,US", "Salt Lake City,US"),
    ("Reno,US", "Boise,US"),
    ("Billings,US", "Rapid City,US"),
    ("Albuquerque,US", "Flagstaff,US"),
    ("Edmonton,CA", "Yellowknife,CA"),
    ("Prince George,CA", "Whitehorse,CA"),
    ("Whitehorse,CA", "Fairbanks,US"),
    ("Nairobi,KE", "Lodwar,KE"),
    ("Windhoek,NA", "Keetmanshoop,NA"),
    ("Gaborone,BW", "Maun,BW"),
    ("Kiruna,SE", "Tromsø,NO"),
    ("Trondheim,NO", "Bodø,NO"),
    ("Salta,AR", "Antofagasta,CL"),
    ("Berlin,DE", "Munich,DE"),
    ("Los Angeles,US", "San Diego,US"),
)
#: Satellite-link tracks computed per route.
VARIANTS = 8
#: Spacing of the cellular coverage lookup along a route, km.
CELL_GRID_KM = 0.25
#: Round figures for the RTT over a rural 4G/LTE link and over a home's wired broadband, ms.
CELLULAR_RTT_MS = 55.0
WIRED_RTT_MS = 18.0
#: The fleet's backend regions; a vehicle's satellite link goes to the one nearest its route.
FLEET_REGIONS = (
    "aws:us-west-2",
    "aws:ca-central-1",
    "aws:eu-north-1",
    "aws:af-south-1",
    "aws:ap-southeast-2",
    "aws:sa-east-1",
)


def nearest_region(lat_deg: float, lon_deg: float, specs: tuple[str, ...] | None = None) -> Place:
    """The cloud region nearest a point (great circle), among ``specs`` or every packaged one.

    >>> nearest_region(-33.9, 151.2, ("aws:us-west-2", "aws:ap-southeast-2")).spec
    'aws:ap-southeast-2'
    """
    regions = [resolve_place(s) for s in specs] if specs else cloud_regions()
    d = great_circle_km(
        lat_deg, lon_deg, [r.lat_deg for r in regions], [r.lon_deg for r in regions]
    )
    return regions[int(np.argmin(d))]


def _unit(lat_deg: float, lon_deg: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    return np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])


def great_circle_point(
    a: tuple[float, float], b: tuple[float, float], frac: Any
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Latitude and longitude (degrees) at ``frac`` (0 at ``a``, 1 at ``b``; scalar or array)
    of the great-circle arc from ``a`` to ``b`` (each ``(lat_deg, lon_deg)``).

    >>> [round(float(x), 6) for x in great_circle_point((0.0, 0.0), (0.0, 90.0), 0.5)]
    [0.0, 45.0]
    """
    ua, ub = _unit(*a), _unit(*b)
    omega = math.acos(max(-1.0, min(1.0, float(ua @ ub))))
    f = np.asarray(frac, dtype=np.float64)
    if omega < 1e-12:
        p = np.multiply.outer(np.ones_like(f), ua)
    else:
        wa = np.sin((1.0 - f) * omega) / math.sin(omega)
        wb = np.sin(f * omega) / math.sin(omega)
        p = np.multiply.outer(wa, ua) + np.multiply.outer(wb, ub)
    lat = np.degrees(np.arcsin(np.clip(p[..., 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(p[..., 1], p[..., 0]))
    return lat, lon


@dataclass(frozen=True, eq=False)
class DrivenRoute:
    """A route as driven: the two cities, the length of the great circle between them (km), the
    speed (km/h), the region its vehicles' satellite link goes to, and cellular coverage every
    :data:`CELL_GRID_KM` along it (``cell_grid[i]`` at ``i * CELL_GRID_KM`` km from ``a``)."""

    name: str
    a: Place
    b: Place
    length_km: float
    speed_kmh: float
    region: Place
    cell_grid: np.ndarray[Any, np.dtype[np.bool_]] = field(repr=False)

    @classmethod
    def plan(cls, a_spec: str, b_spec: str, speed_kmh: float, coverage: Any = None) -> DrivenRoute:
        """The route between two cities (``city:`` names without the prefix, e.g.
        ``"Perth,AU"``) at ``speed_kmh``, with cellular coverage along it (``coverage``: a
        :class:`~skyfleet.links.CellCoverage`, the built-in approximation unless given)."""
        a, b = resolve_place(f"city:{a_spec}"), resolve_place(f"city:{b_spec}")
        length = float(great_circle_km(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg))
        grid = np.arange(0.0, length + CELL_GRID_KM, CELL_GRID_KM)
        lat, lon = great_circle_point(
            (a.lat_deg, a.lon_deg), (b.lat_deg, b.lon_deg), np.minimum(grid / length, 1.0)
        )
        mid_lat, mid_lon = great_circle_point((a.lat_deg, a.lon_deg), (b.lat_deg, b.lon_deg), 0.5)
        name = f"{a.label.split(',')[0]}-{b.label.split(',')[0]}"
        return cls(
            name,
            a,
            b,
            length,
            speed_kmh,
            nearest_region(float(mid_lat), float(mid_lon), FLEET_REGIONS),
            cellular_mask(coverage or builtin_coverage(), lat, lon),
        )

    def along_km(self, offset_km: Any, elapsed_s: Any) -> Any:
        """Distance from ``a`` (km) of a vehicle that was ``offset_km`` into its round trip
        (0 .. 2 * length: out to ``b`` and back) ``elapsed_s`` seconds ago."""
        cycle = 2.0 * self.length_km
        d = np.mod(np.asarray(offset_km) + self.speed_kmh * np.asarray(elapsed_s) / 3600.0, cycle)
        return np.where(d <= self.length_km, d, cycle - d)

    def position(self, along_km: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Latitude and longitude (degrees) ``along_km`` km from ``a`` along the great circle."""
        return great_circle_point(
            (self.a.lat_deg, self.a.lon_deg),
            (self.b.lat_deg, self.b.lon_deg),
            np.clip(np.asarray(along_km) / self.length_km, 0.0, 1.0),
        )

    def cellular_at(self, along_km: Any) -> Any:
        """Whether there is cellular coverage ``along_km`` km from ``a`` (to the nearest
        :data:`CELL_GRID_KM`)."""
        i = np.rint(np.asarray(along_km) / CELL_GRID_KM).astype(np.int64)
        return self.cell_grid[np.clip(i, 0, self.cell_grid.size - 1)]

    def variant_offsets_km(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Where each variant's track starts in the round trip, km (bin centres)."""
        return (np.arange(VARIANTS) + 0.5) * 2.0 * self.length_km / VARIANTS

    def variant_tracks(self, start_s: float, t_s: np.ndarray[Any, Any]) -> list[Route]:
        """The variants' tracks as links :class:`~skyfleet.links.Route` objects sampled at
        ``t_s`` (s after ``start_s``; the links package interpolates between them)."""
        out = []
        for j, off in enumerate(self.variant_offsets_km()):
            lat, lon = self.position(self.along_km(off, t_s))
            out.append(Route(f"{self.name}#{j}", lat, lon, np.asarray(t_s, dtype=np.float64)))
        return out


@dataclass(frozen=True, eq=False)
class VehiclePlan:
    """One simulated vehicle: its identity, where it is when, and which link it has.

    ``attributes`` carry ``route`` (the route's name, ``"parked"`` for a truck at a home) and,
    for a truck, ``home``. ``satellite_terminal``: whether it has one (without, it has no link
    outside cellular coverage). ``link`` is its link schedule; ``rtt_ms`` the round-trip time over
    that link per schedule step (ms; NaN without a link). A driving vehicle is ``offset_km``
    into its round trip on ``route`` at ``epoch_s`` (UNIX s); a parked one (``route`` None)
    stays at ``home_lat_deg``, ``home_lon_deg``.
    """

    device_id: str
    hw: str
    tags: tuple[str, ...]
    attributes: dict[str, str]
    link: LinkSchedule
    rtt_ms: np.ndarray[Any, np.dtype[np.float64]] = field(repr=False)
    route: DrivenRoute | None = field(default=None, repr=False)
    offset_km: float = 0.0
    epoch_s: float = 0.0
    home_lat_deg: float = math.nan
    home_lon_deg: float = math.nan
    satellite_terminal: bool = True

    def position_at(self, t_s: Any) -> tuple[Any, Any]:
        """Latitude and longitude (degrees) at UNIX time ``t_s`` (scalar or array; floats for
        a scalar, arrays of its shape else)."""
        t = np.asarray(t_s, dtype=np.float64)
        if self.route is None:
            lat = np.full(t.shape, self.home_lat_deg)
            lon = np.full(t.shape, self.home_lon_deg)
        else:
            lat, lon = self.route.position(self.route.along_km(self.offset_km, t - self.epoch_s))
        if t.ndim == 0:
            return float(lat), float(lon)
        return lat, lon

    def rtt_at(self, t_s: float) -> float | None:
        """Round-trip time over the link at ``t_s`` (ms; None without a link)."""
        i = int(
            np.clip((t_s - self.link.start_unix_s) // self.link.step_s, 0, self.rtt_ms.size - 1)
        )
        rtt = float(self.rtt_ms[i])
        return round(rtt, 3) if math.isfinite(rtt) and self.link.connected(t_s) else None

    def telemetry_at(self, t_s: float, version: str | None) -> Telemetry:
        """What the vehicle reports at ``t_s``: position, link kind, RTT (ms, None without a
        link), the ``version`` installed and its state (``driving`` or ``parked``)."""
        return self.telemetry([t_s], version)[0]

    def telemetry(self, t_s: Sequence[float], version: str | None) -> list[Telemetry]:
        """What the vehicle reports at each of the UNIX times ``t_s``, as :meth:`telemetry_at`
        does for one, worked out for all of them at once."""
        t = np.asarray(t_s, dtype=np.float64).reshape(-1)
        lat, lon = self.position_at(t)
        kinds = self.link.kind_at(t)
        up = self.link.connected(t)
        step = np.clip((t - self.link.start_unix_s) // self.link.step_s, 0, self.rtt_ms.size - 1)
        rtt = self.rtt_ms[step.astype(np.int64)]
        has_rtt = np.isfinite(rtt) & up
        state = "parked" if self.route is None else "driving"
        return [
            Telemetry(
                ts,
                lat_deg=round(a, 6),
                lon_deg=round(b, 6),
                link=kind,
                rtt_ms=round(r, 3) if ok else None,
                version=version,
                state=state,
            )
            for ts, a, b, kind, r, ok in zip(
                t.tolist(),
                np.asarray(lat).tolist(),
                np.asarray(lon).tolist(),
                kinds.tolist(),
                rtt.tolist(),
                has_rtt.tolist(),
                strict=True,
            )
        ]


def route_links(
    route: DrivenRoute,
    variant: LinkSeries,
    offsets_km: np.ndarray[Any, Any],
    terminal: np.ndarray[Any, Any],
    start_s: float,
    step_s: float,
    steps: int,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Link codes and RTTs (ms, NaN without a link), shape ``(vehicles, steps)``, for the
    vehicles at ``offsets_km`` of one variant: cellular where the vehicle itself has coverage
    (cheaper than satellite airtime), else the variant's satellite link for the vehicles with a
    satellite ``terminal`` (one bool each), else none."""
    t = np.arange(steps) * step_s
    cell = route.cellular_at(route.along_km(offsets_km[:, None], t[None, :]))
    i = np.clip(np.floor((start_s + t - variant.start_unix_s) / variant.step_s), 0, None)
    sat_rtt = variant.rtt_ms[np.minimum(i.astype(np.int64), variant.rtt_ms.size - 1)]
    sat = np.isfinite(sat_rtt)[None, :] & np.asarray(terminal, dtype=bool)[:, None]
    codes = np.where(
        cell, LINK_KINDS.index("cellular"), np.where(sat, LINK_KINDS.index("satellite"), 0)
    ).astype(np.int8)
    rtt = np.where(cell, CELLULAR_RTT_MS, np.where(sat, sat_rtt[None, :], np.nan))
    return codes, rtt
