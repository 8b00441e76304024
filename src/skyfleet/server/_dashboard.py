"""The dashboard: its page (packaged static files at ``/dashboard/``, nothing from elsewhere) and
the three routes it reads (``/api/v1/dashboard/...``).

- ``map``: what changes slowly or not at all: the constellation's shells (the page moves the
  satellites itself, with the same circular-orbit maths as :class:`skyfleet.orbits.WalkerShell`),
  the Earth's rotation angle at the server's time, the gateways and the sites' cloud regions.
- ``state``: the fleet now: every device as columns (position, link, version, update state),
  the rollouts with their groups, the sites with their link estimates, the newest audit entries
  and the fleet's counts.
- ``events``: the same state as server-sent events, every ``interval_s`` seconds.

The server's time (``now_s``) is simulated in the demo; ``time_rate`` says how fast it runs
against the wall clock, so the page can keep its own clock between updates.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles

from skyfleet import store
from skyfleet.errors import SkyfleetError
from skyfleet.links import gateways, resolve_place
from skyfleet.orbits import gmst_rad, preset
from skyfleet.server._access import Viewer, check_operator
from skyfleet.server._errors import error_responses
from skyfleet.server._runtime import Runtime
from skyfleet.server._sites import _cached_estimates, _load_sites

__all__ = ["EARTH_ROTATION_RAD_S", "mount_dashboard", "router"]

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])

#: The Earth's rotation rate against the stars (IERS), rad/s.
EARTH_ROTATION_RAD_S = 7.292_115_146_7e-5
#: Devices the state lists (by id); ``truncated`` says when there are more.
MAX_DEVICES = 20_000
MAX_ROLLOUTS = 20
AUDIT_ENTRIES = 50
_ERRORS = (401, 403, 503, 400, 422)


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def mount_dashboard(app: FastAPI) -> None:
    """Serve the packaged page at ``/dashboard/`` (``/`` and ``/dashboard`` redirect there)."""
    folder = resources.files("skyfleet.server") / "dashboard"
    app.mount(
        "/dashboard/",
        StaticFiles(directory=str(folder), html=True, check_dir=False),
        name="dashboard",
    )

    def to_dashboard() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=307)

    for path in ("/", "/dashboard"):
        app.add_api_route(path, to_dashboard, methods=["GET"], include_in_schema=False)


def _shells(name: str) -> dict[str, Any]:
    con = preset(name)
    return {
        "name": con.name,
        "size": con.size,
        "shells": [
            {
                "name": s.name,
                "radius_km": s.radius_km,
                "inclination_deg": s.inclination_deg,
                "planes": s.planes,
                "sats_per_plane": s.sats_per_plane,
                "phasing": s.phasing,
                "raan0_deg": s.raan0_deg,
                "epoch_unix_s": s.epoch_unix_s,
                "raan_rate_rad_s": s.raan_rate_rad_s,
                "arglat_rate_rad_s": s.arglat_rate_rad_s,
            }
            for s in con.shells
        ],
    }


def _regions(rt: Runtime) -> list[dict[str, Any]]:
    """The cloud regions the sites name (a region that does not resolve is left out: the sites
    panel says what is wrong with that site)."""
    _, sites = _load_sites(rt)
    found: dict[str, dict[str, Any]] = {}
    for site in sites:
        region = site.get("region")
        if not isinstance(region, str) or region in found:
            continue
        try:
            place = resolve_place(region)
        except SkyfleetError:
            continue
        found[region] = {"id": region, "lat_deg": place.lat_deg, "lon_deg": place.lon_deg}
    return list(found.values())


@router.get("/map", summary="What the dashboard's map draws", responses=error_responses(*_ERRORS))
async def dashboard_map(
    request: Request,
    who: Viewer,
    constellation: Annotated[str, Query(max_length=64)] = "starlink-gen1",
) -> dict[str, Any]:
    """The constellation's Walker shells (radius km, inclination deg, planes, satellites per
    plane, phasing, right ascension at the epoch, and the J2 drift rates in rad/s) for the page
    to propagate; the Greenwich sidereal angle (rad) at ``now_s`` and the Earth's rotation rate
    (rad/s); the gateways; and the cloud regions the sites use (degrees)."""
    rt = _rt(request)
    now_s = rt.clock()
    shells = _shells(constellation)  # an unknown preset: 400 naming the ones there are
    gws = gateways()
    return {
        "now_s": now_s,
        "time_rate": rt.config.sim_rate if rt.config.sim_start_s is not None else 1.0,
        "constellation": shells,
        "earth": {
            "gmst_rad": float(gmst_rad(now_s)),
            "rotation_rad_s": EARTH_ROTATION_RAD_S,
        },
        "gateways": {
            "id": [g.spec.removeprefix("gateway:") for g in gws],
            "lat_deg": [g.lat_deg for g in gws],
            "lon_deg": [g.lon_deg for g in gws],
        },
        "regions": await run_in_threadpool(_regions, rt),
    }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def build_state(request: Request) -> dict[str, Any]:
    """The state the page draws (see the module docstring); runs on a worker thread."""
    rt = _rt(request)
    now_s = rt.clock()
    silent_s = 2.0 * rt.config.poll_sleep_s * (1.0 + rt.config.poll_jitter)
    with rt.store.read() as conn:
        total, columns = store.dashboard_devices(conn, limit=MAX_DEVICES)
        rollouts = [
            store.get_rollout(conn, r["id"], now_s=now_s, out_of_contact_s=silent_s)
            for r in store.list_rollouts(conn)[:MAX_ROLLOUTS]
        ]
        audit = store.list_audit(conn, limit=AUDIT_ENTRIES)
        fleet = store.fleet_status(conn, now_s, silent_after_s=silent_s, limit=0)
    columns["rtt_ms"] = [_finite(v) for v in columns["rtt_ms"]]
    _, sites = _load_sites(rt)
    _cached_estimates(request, sites, now_s)
    return {
        "now_s": now_s,
        "time_rate": rt.config.sim_rate if rt.config.sim_start_s is not None else 1.0,
        "total": total,
        "truncated": total > len(columns["id"]),
        "devices": columns,
        "rollouts": rollouts,
        "sites": sites,
        "audit": audit,
        "fleet": {
            **fleet["by_state"],
            "by_link": fleet["by_link"],
            "by_kind": fleet["by_kind"],
        },
    }


@router.get(
    "/state", summary="The fleet now, for the dashboard", responses=error_responses(*_ERRORS)
)
async def dashboard_state(request: Request, who: Viewer) -> dict[str, Any]:
    """Every device (the first 20,000 by id) as columns: ``id``, ``kind``, ``hw``, ``tags``,
    ``home``, ``lat_deg``, ``lon_deg`` (degrees), ``link``, ``rtt_ms`` (ms), ``version``,
    ``update`` (its latest rollout action's state, ``none`` without one), ``last_seen`` (UNIX s);
    the newest 20 rollouts as ``GET /rollouts/{id}`` gives them; the sites with their link
    estimates; the newest 50 audit entries; and the fleet's counts (online, silent, never seen,
    by link). ``now_s`` is the server's time (UNIX s), ``time_rate`` how many of its seconds
    pass per wall-clock second."""
    return await run_in_threadpool(build_state, request)


@router.get(
    "/events",
    summary="The dashboard's state as server-sent events",
    responses={**error_responses(*_ERRORS), 200: {"content": {"text/event-stream": {}}}},
    response_class=StreamingResponse,
)
async def dashboard_events(
    request: Request,
    who: Viewer,
    interval_s: Annotated[float, Query(ge=0.5, le=60.0)] = 2.0,
) -> StreamingResponse:
    """``event: state`` with the JSON of ``GET /state`` at once and then every ``interval_s``
    (wall-clock seconds). The token is checked again before each event: a revoked token ends
    the stream (the next request gets the 401)."""
    rt = _rt(request)
    auth = request.headers.get("authorization", "")
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=auth[7:])

    async def stream() -> AsyncIterator[str]:
        while not await request.is_disconnected():
            try:
                await run_in_threadpool(check_operator, rt, credentials.credentials, "viewer")
            except SkyfleetError:
                return
            state = await run_in_threadpool(build_state, request)
            yield f"event: state\ndata: {json.dumps(state, separators=(',', ':'))}\n\n"
            await asyncio.sleep(interval_s)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
