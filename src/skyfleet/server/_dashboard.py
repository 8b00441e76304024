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
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response as StarletteResponse
from starlette.types import Scope

from skyfleet import store
from skyfleet.errors import SkyfleetError
from skyfleet.links import gateways, resolve_place
from skyfleet.orbits import OMEGA_EARTH_RAD_S, gmst_rad, preset
from skyfleet.rollout import allowed_operations
from skyfleet.server._access import BEARER, Viewer, check_operator
from skyfleet.server._ddi_auth import runtime
from skyfleet.server._errors import error_responses
from skyfleet.server._runtime import Runtime
from skyfleet.server._sites import cached_estimates, load_sites

__all__ = ["PAGE_HEADERS", "mount_dashboard", "router"]

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])

#: Devices the state lists (by id); ``truncated`` says when there are more.
MAX_DEVICES = 20_000
MAX_ROLLOUTS = 20
AUDIT_ENTRIES = 50
#: How long one build of the state serves every caller, wall-clock seconds.
STATE_TTL_S = 1.0
_ERRORS = (401, 403, 503, 400, 422)


#: Sent with every file of the page: it runs only its own scripts and styles and talks only to
#: this server (a device id or an audit entry that holds markup can run nothing), and it is
#: never framed or asked for from another page's referrer.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: an upgraded server serves its own page
}


class _Page(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> StarletteResponse:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the packaged page at ``/dashboard/`` (``/`` and ``/dashboard`` redirect there)."""
    folder = resources.files("skyfleet.server") / "dashboard"
    app.mount(
        "/dashboard/",
        _Page(directory=str(folder), html=True, check_dir=False),
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
    _, sites = load_sites(rt)
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
    rt = runtime(request)
    now_s = rt.clock()
    shells = _shells(constellation)  # an unknown preset: 400 naming the ones there are
    gws = gateways()
    return {
        "now_s": now_s,
        "time_rate": rt.config.time_rate,
        "constellation": shells,
        "earth": {
            "gmst_rad": float(gmst_rad(now_s)),
            "rotation_rad_s": OMEGA_EARTH_RAD_S,
        },
        "gateways": {
            "id": [g.spec.removeprefix("gateway:") for g in gws],
            "lat_deg": [g.lat_deg for g in gws],
            "lon_deg": [g.lon_deg for g in gws],
        },
        "regions": await run_in_threadpool(_regions, rt),
    }


def build_state(request: Request) -> dict[str, Any]:
    """The state the page draws (see the module docstring), without ``now_s``; runs on a
    worker thread."""
    rt = runtime(request)
    now_s = rt.clock()
    silent_s = 2.0 * rt.config.poll_sleep_s * (1.0 + rt.config.poll_jitter)
    with rt.store.read() as conn:
        total, columns = store.dashboard_devices(conn, limit=MAX_DEVICES)
        rollouts = []
        for r in store.list_rollouts(conn)[:MAX_ROLLOUTS]:
            view = store.get_rollout(conn, r["id"], now_s=now_s, out_of_contact_s=silent_s)
            view["operations"] = allowed_operations(view["status"])
            rollouts.append(view)
        audit = store.list_audit(conn, limit=AUDIT_ENTRIES)
        fleet = store.fleet_status(conn, now_s, silent_after_s=silent_s, limit=0)
    _, sites = load_sites(rt)
    cached_estimates(request, sites, now_s)
    return {
        "time_rate": rt.config.time_rate,
        "total": total,
        "truncated": total > len(columns["id"]),
        "devices": columns,
        "rollouts": rollouts,
        "sites": sites,
        "audit": audit,
        "fleet": {**fleet["by_state"], "by_link": fleet["by_link"], "by_kind": fleet["by_kind"]},
    }


class _SharedState:
    """One build of the state serves every page and stream for :data:`STATE_TTL_S` of wall
    time: the build costs the same for one viewer or fifty. It is kept as JSON; each answer is
    stamped with the server's time when it is sent, so that a page on a fast simulated clock
    is not behind by the time the build took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.built_at = -math.inf
        self.body = b"{}"

    def answer(self, request: Request) -> bytes:
        with self.lock:  # who comes while it builds waits, then reads the same build
            if time.monotonic() - self.built_at >= STATE_TTL_S:
                state = build_state(request)
                self.body = json.dumps(state, separators=(",", ":")).encode()
                self.built_at = time.monotonic()
            body = self.body
        now = json.dumps(runtime(request).clock()).encode()
        return b'{"now_s":' + now + b"," + body[1:]


def _shared(request: Request) -> _SharedState:
    shared: _SharedState | None = getattr(request.app.state, "dashboard_state", None)
    if shared is None:
        shared = request.app.state.dashboard_state = _SharedState()
    return shared


@router.get(
    "/state",
    summary="The fleet now, for the dashboard",
    responses={**error_responses(*_ERRORS), 200: {"content": {"application/json": {}}}},
    response_class=Response,
)
async def dashboard_state(request: Request, who: Viewer) -> Response:
    """Every device (the first 20,000 by id) as columns: ``id``, ``kind``, ``hw``, ``tags``,
    ``home``, ``lat_deg``, ``lon_deg`` (degrees), ``link``, ``rtt_ms`` (ms), ``version``,
    ``update`` (its latest rollout action's state, ``none`` without one), ``last_seen`` (UNIX s);
    the newest 20 rollouts as ``GET /rollouts/{id}`` gives them, each with the ``operations``
    its status allows; the sites with their link estimates; the newest 50 audit entries; and
    the fleet's counts (online, silent, never seen, by link and kind). ``now_s`` is the server's
    time (UNIX s) when the answer was sent, ``time_rate`` how many of its seconds pass per
    wall-clock second. One build serves every caller for a second."""
    body = await run_in_threadpool(_shared(request).answer, request)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get(
    "/events",
    summary="The dashboard's state as server-sent events",
    responses={**error_responses(*_ERRORS), 200: {"content": {"text/event-stream": {}}}},
    response_class=StreamingResponse,
)
async def dashboard_events(
    request: Request,
    who: Viewer,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    interval_s: Annotated[float, Query(ge=1.0, le=60.0)] = 2.0,
) -> StreamingResponse:
    """``event: state`` with the JSON of ``GET /state`` at once and then every ``interval_s``
    (wall-clock seconds). The token is checked again before each event: a revoked token ends
    the stream (the next request gets the 401)."""
    rt = runtime(request)
    token = credentials.credentials if credentials else None
    shared = _shared(request)

    async def stream() -> AsyncIterator[bytes]:
        while not await request.is_disconnected():
            try:
                await run_in_threadpool(check_operator, rt, token, "viewer")
            except SkyfleetError:
                return
            body = await run_in_threadpool(shared.answer, request)
            yield b"event: state\ndata: " + body + b"\n\n"
            await asyncio.sleep(interval_s)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
