"""Sites (``/api/v1/sites``): the fleet's modular datacenters with their link estimates now, and
a site's round-trip time over a window against fiber (what the dashboard draws).

A site is a device of kind ``site`` whose attributes give ``lat_deg``, ``lon_deg`` and
``region`` (and optionally ``constellation``). Link estimates come from the links model over
the next ten minutes; they are computed in a worker thread and kept for a minute, so a
dashboard that refreshes often costs one computation a minute.
"""

from __future__ import annotations

import math
import threading
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from skyfleet import store
from skyfleet.errors import InputError, NotFoundError, SkyfleetError
from skyfleet.links import (
    SITE_MODES,
    Place,
    link_estimates,
    link_series_many,
    resolve_place,
    rtt_distribution,
    site_places,
)
from skyfleet.links import LinkOptions as _LinkOptions
from skyfleet.orbits import preset
from skyfleet.server._access import Viewer
from skyfleet.server._errors import error_responses
from skyfleet.server._runtime import Runtime

__all__ = ["cached_estimates", "load_sites", "router"]

router = APIRouter(prefix="/api/v1", tags=["sites"])

ESTIMATE_WINDOW_S = 600.0
ESTIMATE_TTL_S = 60.0
MIN_ESTIMATE_WALL_S = 5.0
MAX_SITES = 10_000
MAX_SERIES_STEPS = 2_880  # a day at 30 s: a few seconds of work on one request thread
MAX_START_S = 4_102_444_800.0  # 2100-01-01
_ERRORS = (401, 403, 503, 400, 422)
_lock = threading.Lock()


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _site_view(row: dict[str, Any]) -> dict[str, Any]:
    attrs = row["attributes"] or {}
    view: dict[str, Any] = {
        "id": row["id"],
        "hw": row["hw"],
        "tags": row["tags"],
        "installed_version": row["installed_version"],
        "last_seen": row["last_seen"],
        "lat_deg": None,
        "lon_deg": None,
        "name": attrs.get("name") or row["id"],
        "region": attrs.get("region"),
        "constellation": attrs.get("constellation") or "starlink-gen1",
    }
    try:
        site, region = site_places(attrs, row["id"])
    except SkyfleetError as exc:
        view["problem"] = str(exc)
        return view
    if site is not None:
        view["lat_deg"], view["lon_deg"] = site.lat_deg, site.lon_deg
    if site is None or region is None:
        view["problem"] = "no location or region: set attributes lat_deg, lon_deg and region"
    return view


def _estimate(views: list[dict[str, Any]], now_s: float) -> None:
    """Fill ``link`` in each view that has a place and a region, per constellation."""
    by_constellation: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        if "problem" not in v:
            by_constellation.setdefault(v["constellation"], []).append(v)
    for name, group in by_constellation.items():
        try:
            con = preset(name)
        except SkyfleetError as exc:
            for v in group:
                v["problem"] = str(exc)
            continue
        sites = [
            Place(f"{v['lat_deg']},{v['lon_deg']}", v["id"], v["lat_deg"], v["lon_deg"])
            for v in group
        ]
        regions = [resolve_place(v["region"]) for v in group]
        found = link_estimates(con, sites, regions, now_s, ESTIMATE_WINDOW_S)
        for v, est in zip(group, found, strict=True):
            v["link"] = {k: est[k] for k in ("fiber_rtt_ms", "internet_rtt_ms", *SITE_MODES)}


def cached_estimates(request: Request, views: list[dict[str, Any]], now_s: float) -> None:
    """Fill the views from the estimates of this minute, computing them at most once: the lock
    is held while computing, so requests that arrive meanwhile wait and then read the cache."""
    # A minute of the server's time, and at least 5 s of the wall clock's: on a simulated clock
    # (the demo's runs 720 times faster) a minute would pass between two dashboard refreshes.
    rt: Runtime = request.app.state.runtime
    ttl_s = max(ESTIMATE_TTL_S, MIN_ESTIMATE_WALL_S * rt.config.time_rate)
    key = (
        math.floor(now_s / ttl_s),
        tuple(
            (v["id"], v["lat_deg"], v["lon_deg"], v["region"], v["constellation"]) for v in views
        ),
    )
    with _lock:
        cached = getattr(request.app.state, "site_estimates", None)
        if cached is None or cached[0] != key:
            computed = [dict(v) for v in views]
            _estimate(computed, key[0] * ttl_s)
            cached = (key, computed)
            request.app.state.site_estimates = cached
    for view, done in zip(views, cached[1], strict=True):
        view.update(done)


def load_sites(rt: Runtime) -> tuple[int, list[dict[str, Any]]]:
    with rt.store.read() as conn:
        total, rows = store.list_devices(conn, kind="site", limit=MAX_SITES)
    return total, [_site_view(r) for r in rows]


@router.get("/sites", summary="Sites and their link estimates", responses=error_responses(*_ERRORS))
async def list_sites(
    request: Request, who: Viewer, estimate: Annotated[bool, Query()] = True
) -> dict[str, Any]:
    """Every device of kind ``site`` (the first 10,000 by id; ``truncated`` says when there are
    more) with its location and region and, with ``estimate``, its
    link over the next ten minutes: per mode (``isl``, ``bent-pipe``) the RTT now and its
    median (ms, null without a path) and availability (%), with the fiber figures."""
    rt = _rt(request)
    total, views = await run_in_threadpool(load_sites, rt)
    if estimate:
        await run_in_threadpool(cached_estimates, request, views, rt.clock())
    return {"total": total, "truncated": total > len(views), "sites": views}


@router.get(
    "/sites/{site_id}/link",
    summary="A site's RTT over a window",
    responses=error_responses(*_ERRORS, 404),
)
async def site_link(
    request: Request,
    who: Viewer,
    site_id: str,
    duration_s: Annotated[float, Query(gt=0, le=86_400)] = 3600.0,
    step_s: Annotated[float, Query(ge=1, le=3600)] = 60.0,
    start_s: Annotated[float | None, Query(ge=0, le=MAX_START_S)] = None,
) -> dict[str, Any]:
    """The site's round-trip time to its region from ``start_s`` (UNIX s, default now) over
    ``duration_s`` at ``step_s`` (at most 2,880 steps): per mode the RTT at each step (null
    where there is no path) and its distribution, with the fiber figures (ms)."""
    rt = _rt(request)
    if duration_s / step_s > MAX_SERIES_STEPS:
        raise InputError(
            f"{duration_s:g} s at {step_s:g} s is {math.ceil(duration_s / step_s):,} steps, more "
            f"than {MAX_SERIES_STEPS:,}: use a longer step_s or a shorter duration_s"
        )

    def compute() -> dict[str, Any]:
        with rt.store.read() as conn:
            row = store.get_device(conn, site_id)
        if row["kind"] != "site":
            raise NotFoundError(f"device {site_id!r} is a {row['kind']}, not a site")
        view = _site_view(row)
        if "problem" in view:
            raise InputError(f"site {site_id!r}: {view['problem']}")
        site, region = site_places(row["attributes"], site_id)
        assert site is not None and region is not None
        start = rt.clock() if start_s is None else start_s
        answer: dict[str, Any] = {**view, "start_unix_s": start, "step_s": step_s}
        for mode in SITE_MODES:
            (s,) = link_series_many(
                preset(view["constellation"]),
                [site],
                [region],
                start,
                duration_s,
                step_s,
                _LinkOptions(mode=mode),
            )
            answer["t_s"] = s.t_s.tolist()
            answer["fiber_rtt_ms"] = round(float(s.fiber_rtt_ms[0]), 3)
            answer["internet_rtt_ms"] = round(float(s.internet_rtt_ms[0]), 3)
            answer[mode] = {
                "rtt_ms": [None if np.isnan(r) else round(float(r), 3) for r in s.rtt_ms],
                "distribution_ms": rtt_distribution(s.rtt_ms),
            }
        return answer

    return await run_in_threadpool(compute)
