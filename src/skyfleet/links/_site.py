"""Planning a fixed site (a modular datacenter): its link to a cloud region by laser links and by
bent-pipe, against fiber, over a window; and a short-window estimate of its link now.

A site plan is two link series over the same window, one per mode, so the two can be compared
step by step. Times are seconds, delays milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyfleet.errors import PlaceError
from skyfleet.links._engine import LinkOptions, Mode
from skyfleet.links._geometry import DEFAULT_FIBER_INFLATION, FloatArray
from skyfleet.links._parallel import Progress
from skyfleet.links._places import Place, check_lat_lon, resolve_place
from skyfleet.links._series import LinkSeries, gaps, handovers, link_series_many
from skyfleet.orbits import Constellation

__all__ = [
    "RTT_PERCENTILES",
    "SITE_MODES",
    "SitePlan",
    "link_estimates",
    "outages",
    "plan_site",
    "rtt_distribution",
    "site_places",
]

#: The two ways a site reaches its region, in the order a plan reports them.
SITE_MODES: tuple[Mode, ...] = ("isl", "bent-pipe")
#: The percentiles a plan reports of the round-trip time.
RTT_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


@dataclass(frozen=True)
class SitePlan:
    """A site's link to its region over one window: ``series[mode]`` for each of
    :data:`SITE_MODES` (the same steps in both)."""

    site: Place
    region: Place
    series: dict[str, LinkSeries]

    def summary(self, top_outages: int = 5) -> dict[str, Any]:
        """The plan as plain data (the CLI's ``--json``): per mode the availability, the RTT
        distribution, handovers and the longest outages; fiber figures for comparison."""
        first = self.series[SITE_MODES[0]]
        fiber_ms = float(np.median(first.fiber_rtt_ms))
        internet_ms = float(np.median(first.internet_rtt_ms))
        modes = {}
        for mode, s in self.series.items():
            n_hand = handovers(s)
            finite = s.rtt_ms[np.isfinite(s.rtt_ms)]
            down = outages(s)
            modes[mode] = {
                "availability_pct": round(100.0 * finite.size / s.t_s.size, 3),
                "rtt_ms": rtt_distribution(s.rtt_ms),
                "median_minus_internet_ms": (
                    round(float(np.median(finite)) - internet_ms, 3) if finite.size else None
                ),
                "faster_than_internet_pct": round(
                    100.0 * float(np.count_nonzero(finite < internet_ms)) / s.t_s.size, 3
                ),
                "handovers": n_hand,
                "handovers_per_hour": round(n_hand / (s.duration_s / 3600.0), 3),
                "outage_s": round(sum(o["duration_s"] for o in down), 3),
                "outages": len(down),
                "longest_outages": down[:top_outages],
            }
        return {
            "site": self.site.spec,
            "site_name": self.site.label,
            "lat_deg": self.site.lat_deg,
            "lon_deg": self.site.lon_deg,
            "region": self.region.spec,
            "constellation": first.constellation,
            "start_unix_s": first.start_unix_s,
            "duration_s": first.duration_s,
            "step_s": first.step_s,
            "steps": int(first.t_s.size),
            "fiber_rtt_ms": round(fiber_ms, 3),
            "internet_rtt_ms": round(internet_ms, 3),
            "modes": modes,
        }


def rtt_distribution(rtt_ms: FloatArray) -> dict[str, float | None]:
    """Minimum, :data:`RTT_PERCENTILES` and maximum of the finite delays, ms (None without any).

    >>> rtt_distribution(np.array([10.0, np.nan, 30.0]))["p50"]
    20.0
    """
    finite = rtt_ms[np.isfinite(rtt_ms)]
    keys = ["min", *(f"p{q}" for q in RTT_PERCENTILES), "max"]
    if not finite.size:
        return dict.fromkeys(keys)
    values = np.percentile(finite, [0, *RTT_PERCENTILES, 100])
    return {k: round(float(v), 3) for k, v in zip(keys, values, strict=True)}


def outages(series: LinkSeries) -> list[dict[str, float]]:
    """The intervals without a path, longest first: ``start_s``, ``end_s`` (exclusive, seconds
    after the window's start) and ``duration_s``. A step without a path counts for a whole step,
    so the shortest outage a plan can see is its step."""
    found = [{**g, "duration_s": g["end_s"] - g["start_s"]} for g in gaps(series)]
    return sorted(found, key=lambda o: (-o["duration_s"], o["start_s"]))


def site_places(attributes: Mapping[str, str], name: str) -> tuple[Place | None, Place | None]:
    """A site device's location and cloud region from its attributes ``lat_deg``, ``lon_deg``
    (decimal degrees, north and east positive) and ``region`` (a place, e.g. ``aws:us-east-1``);
    None for what is not given. Raises :class:`~skyfleet.errors.PlaceError` for a value that
    cannot be used, or a latitude without a longitude.

    >>> site, region = site_places({"lat_deg": "-22.31", "lon_deg": "118.35",
    ...                             "region": "aws:ap-southeast-2"}, "mine")
    >>> site.lat_deg, region.kind
    (-22.31, 'cloud-region')
    """
    lat, lon = attributes.get("lat_deg"), attributes.get("lon_deg")
    site = None
    if (lat is None) != (lon is None):
        raise PlaceError(f"site {name!r}: give both lat_deg and lon_deg, or neither")
    if lat is not None and lon is not None:
        try:
            lat_deg, lon_deg = float(lat), float(lon)
        except ValueError:
            raise PlaceError(
                f"site {name!r}: lat_deg {lat!r} and lon_deg {lon!r} must be decimal degrees"
            ) from None
        check_lat_lon(lat_deg, lon_deg, f"site {name!r}")
        site = Place(f"{lat_deg:g},{lon_deg:g}", name, lat_deg, lon_deg)
    region = attributes.get("region")
    return site, (resolve_place(region) if region is not None else None)


def plan_site(
    constellation: Constellation,
    site: Place,
    region: Place,
    start_unix_s: float,
    duration_s: float,
    step_s: float = 15.0,
    *,
    fiber_inflation: float = DEFAULT_FIBER_INFLATION,
    workers: int = 1,
    progress: Progress | None = None,
) -> SitePlan:
    """The link from ``site`` to ``region`` by laser links and by bent-pipe over one window.

    ``progress`` is called with the number of steps done, twice per step of the window (once
    per mode).
    """
    series: dict[str, LinkSeries] = {}
    for mode in SITE_MODES:
        opts = LinkOptions(mode=mode, fiber_inflation=fiber_inflation)
        series[mode] = link_series_many(
            constellation,
            [site],
            [region],
            start_unix_s,
            duration_s,
            step_s,
            opts,
            workers,
            progress,
        )[0]
    return SitePlan(site, region, series)


def link_estimates(
    constellation: Constellation,
    sites: list[Place],
    regions: list[Place],
    now_unix_s: float,
    window_s: float = 600.0,
    step_s: float = 15.0,
) -> list[dict[str, Any]]:
    """Each site's link to its region over the next ``window_s`` seconds from ``now_unix_s``:
    the RTT now and its median (ms, None without a path), availability (%), and the fiber
    figures, per mode. Sites that share a region share its routing work."""
    if not sites:
        return []
    by_mode = {
        mode: link_series_many(
            constellation, sites, regions, now_unix_s, window_s, step_s, LinkOptions(mode=mode)
        )
        for mode in SITE_MODES
    }
    estimates = []
    for i, site in enumerate(sites):
        first = by_mode[SITE_MODES[0]][i]
        entry: dict[str, Any] = {
            "site": site.spec,
            "region": regions[i].spec,
            "fiber_rtt_ms": round(float(first.fiber_rtt_ms[0]), 3),
            "internet_rtt_ms": round(float(first.internet_rtt_ms[0]), 3),
        }
        for mode in SITE_MODES:
            s = by_mode[mode][i]
            finite = s.rtt_ms[np.isfinite(s.rtt_ms)]
            entry[mode] = {
                "rtt_now_ms": round(float(s.rtt_ms[0]), 3) if np.isfinite(s.rtt_ms[0]) else None,
                "rtt_median_ms": round(float(np.median(finite)), 3) if finite.size else None,
                "availability_pct": round(100.0 * finite.size / s.t_s.size, 3),
            }
        estimates.append(entry)
    return estimates
