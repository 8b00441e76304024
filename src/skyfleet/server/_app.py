"""The FastAPI application: the operator API, the hawkBit DDI device API, and the judge."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI

from skyfleet import __version__, store
from skyfleet.server import _admin, _dashboard, _ddi, _operator, _sites, _telemetry, _tuf
from skyfleet.server._config import ServerConfig
from skyfleet.server._errors import install_error_handlers
from skyfleet.server._limits import BodyLimit, DeviceRateLimit
from skyfleet.server._poll_path import BasePollShortPath
from skyfleet.server._runtime import Runtime
from skyfleet.server._signing import Signing

__all__ = ["CONFIG_ENV", "app_from_env", "config_to_env", "create_app"]


def create_app(
    config: ServerConfig | None = None,
    *,
    db: store.Store | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """Build the server. The store is opened (and migrated) when the app starts, unless given.
    ``clock`` (UNIX s) defaults to the config's: the wall clock, or the simulated one."""
    config = config or ServerConfig()
    clock = clock or config.clock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if db is not None:
                opened = db
            else:
                opened = await asyncio.to_thread(
                    store.open_store,
                    config.database_url,
                    artifacts_dir=config.artifacts_dir,
                    pool_size=config.pool_size,
                )
                stack.callback(opened.close)
            # One request thread per pooled connection: bursts wait for a thread, not for a new
            # database connection (which costs more than the request itself).
            anyio.to_thread.current_default_thread_limiter().total_tokens = config.pool_size
            signing = await asyncio.to_thread(start_signing, config, opened, clock())
            polls = await store.open_poll_reader(opened)
            stack.push_async_callback(polls.close)
            runtime = Runtime(config, opened, polls, clock, signing)
            app.state.runtime = runtime
            stack.push_async_callback(runtime.polls.aclose)
            stack.push_async_callback(asyncio.to_thread, runtime.flush_seen)
            telemetry = _telemetry.TelemetryService(config, opened, clock)
            telemetry.start()  # the ingest thread, and the MQTT subscriber if configured
            stack.push_async_callback(asyncio.to_thread, telemetry.stop)
            app.state.telemetry = telemetry
            if config.freeze_gc:
                # What start-up made lives as long as the process: leave it out of the cyclic
                # collector's full passes (about 150,000 objects, 60 ms a pass), which otherwise
                # stall every request in flight (bench_checkins: SQLite p99 140 -> 28 ms).
                gc.collect()
                gc.freeze()
            task = asyncio.create_task(runtime.background(), name="skyfleet-judge")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="skyfleet",
        version=__version__,
        summary="Staged, health-gated over-the-air rollouts for a satellite-connected fleet.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BasePollShortPath)
    # Added after the short path, so outside it: base polls are rate-limited too.
    app.add_middleware(
        BodyLimit,
        max_body_bytes=config.max_body_bytes,
        by_prefix=[
            ("/api/v1/artifacts", config.max_upload_bytes, "max_upload_bytes"),
            ("/api/", config.max_operator_body_bytes, "max_operator_body_bytes"),
        ],
    )
    app.add_middleware(
        DeviceRateLimit,
        rate_per_s=config.device_rate_per_s,
        burst=config.device_burst,
        auth_fail_rate_per_s=config.auth_fail_rate_per_s,
        auth_fail_burst=config.auth_fail_burst,
    )
    app.include_router(_operator.router)
    app.include_router(_telemetry.operator_router)
    app.include_router(_sites.router)
    app.include_router(_admin.router)
    app.include_router(_dashboard.router)
    app.include_router(_tuf.router)  # before the DDI routes: its paths are longer
    app.include_router(_telemetry.device_router)
    app.include_router(_ddi.router)
    _dashboard.mount_dashboard(app)
    return app


def start_signing(config: ServerConfig, db: store.Store, now_s: float) -> Signing:
    """The signer for ``db``: keys and roots made first if the store has none (and the config
    allows it), then the image repository brought up to date."""
    keys_dir = config.keys_dir or db.home / "skyfleet-keys"
    if config.init_trust:
        store.init_trust(
            db,
            now_s,
            keys_dir=keys_dir,
            root_keys_dir=config.root_keys_dir or db.home / "skyfleet-root-keys",
            lifetimes=config.lifetimes(),
            actor="skyfleet serve",
        )
    signing = Signing(db, keys_dir, config.lifetimes())
    signing.refresh_image(now_s)
    return signing


CONFIG_ENV = "SKYFLEET_SERVE_CONFIG"


_PATHS = ("artifacts_dir", "keys_dir", "root_keys_dir")


def config_to_env(config: ServerConfig) -> str:
    """The config as the JSON that :func:`app_from_env` reads (for ``serve --workers N``)."""
    data = {k: getattr(config, k) for k in config.__dataclass_fields__}
    for key in _PATHS:
        data[key] = str(data[key]) if data[key] is not None else None
    return json.dumps(data)


def app_from_env() -> FastAPI:
    """The app for one of several uvicorn worker processes; ``serve`` set the config for them."""
    data = json.loads(os.environ[CONFIG_ENV])
    for key in _PATHS:
        if data.get(key):
            data[key] = Path(data[key])
    return create_app(ServerConfig(**data))
