"""The demo's scenario as plans: three datacenter sites, a fleet of vehicles driving real routes
through cellular dead zones, and Powershare homes riding through a grid outage.

:func:`build_scenario` turns a seed into a :class:`Scenario`, with no I/O and no clock: the demo
driver turns its plans into simulated devices. Vehicles drive great circles between real cities
(:mod:`._routes`), homes sit in a few US regions, one of which loses its grid for the middle
third of the run (:mod:`._homes`). Every link comes from the links package: cellular coverage
along the routes (built-in approximation) and the satellite link over the chosen constellation.

Times are UNIX seconds, delays ms, distances km.

>>> from datetime import UTC, datetime
>>> datetime.fromtimestamp(DEMO_START_S, UTC).isoformat()
'2026-12-24T06:00:00+00:00'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyfleet.errors import InputError
from skyfleet.links import LinkOptions, Place, builtin_coverage, cellular_mask, link_series_many
from skyfleet.orbits import preset
from skyfleet.sim._homes import HomeDevicePlan, HomePlan, Outage, OutageSummary, plan_homes
from skyfleet.sim._links import LinkSchedule
from skyfleet.sim._routes import (
    CELLULAR_RTT_MS,
    ROUTES,
    VARIANTS,
    WIRED_RTT_MS,
    DrivenRoute,
    VehiclePlan,
    nearest_region,
    route_links,
)

__all__ = [
    "DEMO_START_S",
    "SITES",
    "HomeDevicePlan",
    "HomePlan",
    "Outage",
    "OutageSummary",
    "Scenario",
    "SitePlan",
    "VehiclePlan",
    "build_scenario",
    "check_scenario",
]

#: 2026-12-24T06:00:00Z, when the holiday update goes out, UNIX s.
DEMO_START_S = 1_798_092_000.0
#: The three modular datacenter sites: device id, name, latitude and longitude (degrees).
SITES: tuple[tuple[str, str, float, float], ...] = (
    ("site-mine", "Pilbara iron ore mine", -23.36, 119.73),
    ("site-camp", "Kakuma refugee camp", 3.72, 34.87),
    ("site-ship", "Container ship, North Atlantic", 45.0, -30.0),
)
#: Step of the devices' link schedules, s; the satellite link is computed every SAT_STEP_S.
LINK_STEP_S = 60.0
SAT_STEP_S = 300.0
#: Shares of the fleet: hw3 (the rest hw4) and early access ("eap" tag).
HW3_SHARE = 0.6
EAP_SHARE = 0.1


@dataclass(frozen=True, eq=False)
class SitePlan:
    """A modular datacenter site: a device ``device_id`` at ``lat_deg``, ``lon_deg`` (degrees)
    whose satellite link goes to its nearest cloud region ``region`` (a place spec such as
    ``aws:ap-southeast-3``); ``link`` its schedule, ``rtt_ms`` the round trip per schedule step
    (ms, NaN without a path)."""

    device_id: str
    name: str
    lat_deg: float
    lon_deg: float
    region: str
    link: LinkSchedule
    rtt_ms: np.ndarray[Any, np.dtype[np.float64]] = field(repr=False)

    @property
    def attributes(self) -> dict[str, str]:
        """The site device's attributes: ``lat_deg``, ``lon_deg``, ``region``, ``name``."""
        return {
            "lat_deg": f"{self.lat_deg:g}",
            "lon_deg": f"{self.lon_deg:g}",
            "region": self.region,
            "name": self.name,
        }


@dataclass(frozen=True, eq=False)
class Scenario:
    """The demo's world from ``start_s`` for ``duration_s`` seconds over ``constellation``:
    sites, vehicles (driving, and trucks parked at homes), homes, the grid outage and what
    Powershare did in it (``outage_summary``)."""

    start_s: float
    duration_s: float
    constellation: str
    sites: tuple[SitePlan, ...]
    vehicles: tuple[VehiclePlan, ...]
    homes: tuple[HomePlan, ...]
    outage: Outage
    outage_summary: OutageSummary
    routes: tuple[DrivenRoute, ...] = field(default=(), repr=False)


def _shares(rng: np.random.Generator, n: int, share: float) -> np.ndarray[Any, Any]:
    """A bool per item, exactly ``round(n * share)`` of them True, at random places."""
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[: round(n * share)]] = True
    return flags


def check_scenario(
    vehicles: int, homes: int, duration_s: float, satellite_share: float = 0.9
) -> None:
    """Refuse, with :class:`InputError`, sizes :func:`build_scenario` cannot build: before any
    work, so that a caller can say what is wrong at once."""
    if not 0.0 <= satellite_share <= 1.0:
        raise InputError(f"satellite_share is a fraction 0..1, got {satellite_share:g}")
    if vehicles < 1 or homes < 0:
        raise InputError(f"the demo needs at least 1 vehicle and 0 homes, got {vehicles}, {homes}")
    if homes > vehicles:
        raise InputError(
            f"every home parks one of the vehicles: give at least as many vehicles ({vehicles}) "
            f"as homes ({homes})"
        )
    if not (math.isfinite(duration_s) and duration_s >= 3 * 600.0):
        raise InputError(f"the scenario must last at least 1,800 s, got {duration_s:g}")


def build_scenario(
    *,
    vehicles: int = 2000,
    homes: int = 200,
    start_s: float = DEMO_START_S,
    duration_s: float = 12 * 3600,
    seed: int = 7,
    constellation: str = "starlink-gen1",
    progress: Callable[[int], None] | None = None,
    satellite_share: float = 0.9,
) -> Scenario:
    """The demo's scenario, the same for the same arguments.

    ``vehicles`` in all, of which ``homes`` are trucks parked one at each home (the last ids);
    about 60 % hw3 and 40 % hw4, 10 % tagged ``eap``, whatever their role; a
    ``satellite_share`` of the driving vehicles have a satellite terminal (the others have no
    link out of cellular coverage). The grid outage covers
    the middle third of the run (4 h from 4 h in, for 12 h), rounded to minutes. ``progress``
    is told the percent done (0..100, never falling). Times are UNIX s.
    """
    check_scenario(vehicles, homes, duration_s, satellite_share)
    report = progress or (lambda _pct: None)
    rng = np.random.default_rng(seed)
    width = len(str(vehicles))
    ids = [f"veh-{i + 1:0{width}d}" for i in range(vehicles)]
    hw = np.where(_shares(rng, vehicles, HW3_SHARE), "hw3", "hw4")
    eap = _shares(rng, vehicles, EAP_SHARE)
    terminal = _shares(rng, vehicles, satellite_share)
    n_drive = vehicles - homes
    steps = math.ceil(duration_s / LINK_STEP_S)

    coverage = builtin_coverage()
    speeds = rng.uniform(80.0, 100.0, size=len(ROUTES)).round(1)
    routes = tuple(
        DrivenRoute.plan(a, b, float(v), coverage) for (a, b), v in zip(ROUTES, speeds, strict=True)
    )
    report(10)

    sat = preset(constellation)
    t_sat = np.arange(math.ceil(duration_s / SAT_STEP_S)) * SAT_STEP_S
    sources: list[Any] = [track for r in routes for track in r.variant_tracks(start_s, t_sat)]
    dests = [r.region for r in routes for _ in range(VARIANTS)]
    site_regions = [nearest_region(lat, lon) for _, _, lat, lon in SITES]
    sources += [Place(f"{lat:g},{lon:g}", name, lat, lon) for _, name, lat, lon in SITES]
    dests += site_regions
    series = link_series_many(
        sat, sources, dests, start_s, duration_s, SAT_STEP_S, LinkOptions(mode="best")
    )
    report(40)

    sites = tuple(
        SitePlan(dev, name, lat, lon, region.spec, LinkSchedule.from_link_series(s), s.rtt_ms)
        for (dev, name, lat, lon), region, s in zip(
            SITES, site_regions, series[len(routes) * VARIANTS :], strict=True
        )
    )

    route_of = rng.permutation(np.arange(n_drive) % len(routes))
    variant_of = rng.integers(0, VARIANTS, size=n_drive)
    bin_frac = rng.uniform(size=n_drive)
    plans: list[VehiclePlan | None] = [None] * n_drive
    for ri, route in enumerate(routes):
        for j in range(VARIANTS):
            members = np.flatnonzero((route_of == ri) & (variant_of == j))
            if not members.size:
                continue
            offsets = (j + bin_frac[members]) * 2.0 * route.length_km / VARIANTS
            codes, rtt = route_links(
                route,
                series[ri * VARIANTS + j],
                offsets,
                terminal[members],
                start_s,
                LINK_STEP_S,
                steps,
            )
            for k, m in enumerate(members):
                plans[m] = VehiclePlan(
                    ids[m],
                    str(hw[m]),
                    ("eap",) if eap[m] else (),
                    {"route": route.name},
                    LinkSchedule(start_s, LINK_STEP_S, codes[k]),
                    rtt[k],
                    route=route,
                    offset_km=float(offsets[k]),
                    epoch_s=start_s,
                    satellite_terminal=bool(terminal[m]),
                )
    report(50)

    third_s = round(duration_s / 3.0 / 60.0) * 60.0
    truck_ids = ids[n_drive:]
    home_plans, outage, summary = plan_homes(
        truck_ids,
        [str(h) for h in hw[n_drive:]],
        rng,
        start_s + third_s,
        start_s + 2 * third_s,
        lambda frac: report(50 + int(45 * frac)),
    )
    t = start_s + np.arange(steps) * LINK_STEP_S
    down = (t >= outage.start_s) & (t < outage.end_s)
    for i, home in enumerate(home_plans):
        cell = bool(cellular_mask(coverage, home.lat_deg, home.lon_deg))
        out = down if home.in_outage else np.zeros(steps, dtype=bool)
        link = LinkSchedule.from_masks(start_s, LINK_STEP_S, wired=~out, cellular=out & cell)
        rtt = np.where(out, CELLULAR_RTT_MS if cell else np.nan, WIRED_RTT_MS)
        v = n_drive + i
        plans.append(
            VehiclePlan(
                ids[v],
                str(hw[v]),
                ("eap",) if eap[v] else (),
                {"route": "parked", "home": home.home_id},
                link,
                rtt,
                home_lat_deg=home.lat_deg,
                home_lon_deg=home.lon_deg,
            )
        )
    report(100)
    return Scenario(
        start_s=float(start_s),
        duration_s=float(duration_s),
        constellation=constellation,
        sites=sites,
        vehicles=tuple(p for p in plans if p is not None),
        homes=home_plans,
        outage=outage,
        outage_summary=summary,
        routes=routes,
    )
