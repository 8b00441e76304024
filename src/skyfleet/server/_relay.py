"""An edge relay: skyfleet at a site, serving the devices near it through a satellite uplink
that comes and goes (``skyfleet serve --upstream URL``).

It serves only the device API (``/{tenant}/controller/v1/{device}/...``: DDI and TUF) and
``/relay/status``. Devices keep their own tokens: the relay sends each request upstream with
the device's own ``Authorization``, so the central server authenticates every device itself
and sees it as its own; the relay keeps only the SHA-256 of the token the upstream accepted,
to recognise the device while the uplink is down. It never signs anything: TUF metadata and
bytes reach the device as the central server signed them, and the device verifies them against
the roots it was built with, so a relay (or whoever takes it over) cannot forge an update.

- GETs: :class:`~skyfleet.server._relay_cache.RelayCache` (forward and keep; the cache while
  down; artifacts by SHA-256 with HTTP Range; prefetch).
- Reports: :class:`~skyfleet.server._relay_queue.Forwarder` (a durable queue, forwarded in
  order, exactly once, with idempotency keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from skyfleet import __version__, store
from skyfleet.server._ddi_auth import CONTROLLER_ID
from skyfleet.server._errors import error_response, install_error_handlers
from skyfleet.server._limits import BodyLimit, DeviceRateLimit
from skyfleet.server._relay_cache import RelayCache
from skyfleet.server._relay_config import RelayConfig
from skyfleet.server._relay_paths import BLOB_KINDS, REPORT_KINDS, classify, device_path
from skyfleet.server._relay_queue import Forwarder
from skyfleet.server._relay_uplink import Uplink

__all__ = ["Relay", "create_relay_app"]

_DEVICE_ID = re.compile(CONTROLLER_ID)


@dataclass
class Relay:
    """One relay process's parts: its store, uplink, cache and forwarder."""

    config: RelayConfig
    db: store.RelayStore
    relay_id: str
    uplink: Uplink
    cache: RelayCache
    forwarder: Forwarder

    async def status(self) -> dict[str, Any]:
        """What ``/relay/status`` shows. Anyone who reaches the relay may ask, so it names no
        device, no path and no credentials: counts, states, times, and kinds of failure."""
        stored = await run_in_threadpool(self.db.status)
        stored["recent_dead_letters"] = [
            _dead_letter_shown(d) for d in stored["recent_dead_letters"]
        ]
        uplink = self.uplink
        return {
            "relay_id": self.relay_id,
            "upstream": self.config.upstream_shown,
            "uplink": "up" if uplink.up else "down",
            "down_since": uplink.down_since,
            "retry_in_s": round(uplink.retry_in_s(), 3),
            "last_error": uplink.last_failure,
            "last_sync": uplink.last_sync,
            "forwarded": self.forwarder.sent,
            **stored,
            "prefetching": self.cache.prefetching,
            "prefetch_failures": self.cache.prefetch_failures,
        }


def _dead_letter_shown(dead: dict[str, Any]) -> dict[str, Any]:
    """A dead letter without its device: the kind of report, the status and the reason (with
    the device id and its path blanked out), and when."""
    device_id, path = str(dead["device_id"]), str(dead["path"])
    _tenant, _, rest = path.partition(f"/controller/v1/{device_id}")
    reason = str(dead["reason"]).replace(path, "(path)").replace(device_id, "(device)")
    return {
        "seq": dead["seq"],
        "kind": classify(rest.partition("?")[0]).kind,
        "status": dead["status"],
        "reason": reason,
        "dead_at": dead["dead_at"],
    }


def create_relay_app(
    config: RelayConfig,
    *,
    db: store.Store | None = None,
    wall: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the relay. Its store is opened (and migrated) when the app starts, unless given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            opened = db
            if opened is None:
                opened = await asyncio.to_thread(
                    store.open_store,
                    config.database_url,
                    artifacts_dir=config.artifacts_dir,
                    pool_size=config.pool_size,
                    durable=True,  # a report answered "queued" must survive a power cut
                )
                stack.callback(opened.close)
            relay_db = store.RelayStore(opened)
            relay_id = await asyncio.to_thread(relay_db.relay_id, config.relay_id)
            uplink = Uplink(config, wall=wall)
            stack.push_async_callback(uplink.aclose)
            cache = RelayCache(relay_db, uplink, config, wall)
            stack.push_async_callback(cache.aclose)
            forwarder = Forwarder(relay_db, uplink, config, relay_id, wall)
            app.state.relay = Relay(config, relay_db, relay_id, uplink, cache, forwarder)
            task = asyncio.create_task(forwarder.run(), name="skyfleet-relay-forwarder")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="skyfleet relay",
        version=__version__,
        summary="An edge relay: the device API of a skyfleet server, cached for a site.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_body_bytes=config.max_body_bytes)
    app.add_middleware(
        DeviceRateLimit,
        rate_per_s=config.device_rate_per_s,
        burst=config.device_burst,
        auth_fail_rate_per_s=config.auth_fail_rate_per_s,
        auth_fail_burst=config.auth_fail_burst,
    )

    @app.get("/relay/status", summary="The uplink, the queue and the cache")
    async def relay_status(request: Request) -> dict[str, Any]:
        """Uplink up or down (and since when), the last exchange with the upstream, reports
        queued and refused (dead letters, with the reason), and what the cache holds."""
        relay: Relay = request.app.state.relay
        return await relay.status()

    @app.api_route("/{tenant}/controller/v1/{controller_id}", methods=["GET", "HEAD"])
    async def device_poll(request: Request, tenant: str, controller_id: str) -> Response:
        """The base poll, through the relay."""
        return await _device_request(request, tenant, controller_id, "")

    @app.api_route(
        "/{tenant}/controller/v1/{controller_id}/{rest:path}",
        methods=["GET", "HEAD", "POST", "PUT"],
    )
    async def device_path(request: Request, tenant: str, controller_id: str, rest: str) -> Response:
        """Every other device path (DDI and TUF), through the relay."""
        return await _device_request(request, tenant, controller_id, rest)

    return app


async def _device_request(request: Request, tenant: str, controller_id: str, rest: str) -> Response:
    relay: Relay = request.app.state.relay
    if not _DEVICE_ID.fullmatch(controller_id):
        return error_response(422, f"device id {controller_id!r} is not a usable device id")
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    # Only the device's own path goes upstream, built from the parts checked here: the raw
    # path could name another device or any server path once a client normalised it.
    path = device_path(raw_path.decode("latin-1"), tenant, controller_id, rest)
    prefix = "/".join(path.split("/")[:5])  # /{tenant}/controller/v1/{device}
    where = classify(f"/{rest}")
    method = request.method
    if where.kind in REPORT_KINDS:
        if method != REPORT_KINDS[where.kind]:
            return error_response(
                405, f"{method} is not allowed here: use {REPORT_KINDS[where.kind]}"
            )
        query = request.url.query
        return await relay.forwarder.report(
            request, where, controller_id, path + (f"?{query}" if query else "")
        )
    if method not in ("GET", "HEAD"):
        return error_response(405, f"{method} is not allowed here: use GET")
    if where.kind in BLOB_KINDS:
        return await relay.cache.blob(request, where, controller_id, path)
    return await relay.cache.document(request, where, controller_id, prefix, path)
