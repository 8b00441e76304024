"""``skyfleet serve``: the operator API and the hawkBit DDI device API on one port."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from skyfleet.cli._common import err, parse_duration
from skyfleet.cli._relay import serve_relay
from skyfleet.errors import InputError
from skyfleet.server import ServerConfig, create_app
from skyfleet.server._app import CONFIG_ENV, config_to_env
from skyfleet.server._signing import check_keys
from skyfleet.store import DEFAULT_URL, Store, ensure_admin_token, init_trust, open_store
from skyfleet.telemetry import parse_mqtt_url, telemetry_filter

__all__ = ["ADMIN_TOKEN_FILE", "GRACEFUL_SHUTDOWN_S", "Trust", "serve", "trusted_store"]

ADMIN_TOKEN_FILE = "skyfleet-admin.token"


#: How long a stop (Ctrl-C, SIGTERM) waits for requests in flight before it cancels them.
GRACEFUL_SHUTDOWN_S = 3


@dataclass(frozen=True)
class Trust:
    """A store ready to serve: open, with its signing keys (``made_keys``: made just now, with
    the root keys) and a live admin token (``made_token``: the first one, written to
    ``token_file`` just now)."""

    db: Store
    keys_dir: Path
    root_keys_dir: Path
    token_file: Path
    made_keys: bool
    made_token: bool


@contextlib.contextmanager
def trusted_store(
    database_url: str,
    now_s: float,
    *,
    actor: str,
    artifacts_dir: Path | None = None,
    keys_dir: Path | None = None,
    root_keys_dir: Path | None = None,
    admin_token_file: Path | None = None,
) -> Iterator[Trust]:
    """Open (create or migrate) the store, make its signing keys and roots on a first start,
    check that the keys sign, and make the first admin token; closed on exit. Folders default
    to beside the database. Bad input or keys that cannot sign: one-line errors."""
    db = open_store(database_url, artifacts_dir=artifacts_dir)
    try:
        keys = keys_dir or db.home / "skyfleet-keys"
        root_keys = root_keys_dir or db.home / "skyfleet-root-keys"
        made_keys = init_trust(db, now_s, keys_dir=keys, root_keys_dir=root_keys, actor=actor)
        check_keys(db, keys)  # a key folder that cannot sign: one line now, not a traceback later
        token_file = admin_token_file or db.home / ADMIN_TOKEN_FILE
        made_token = ensure_admin_token(db, token_file, now_s, actor=actor)
        yield Trust(db, keys, root_keys, token_file, bool(made_keys), made_token)
    finally:
        db.close()


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar="SKYFLEET_DATABASE_URL",
            help="sqlite:///PATH (default ./skyfleet.db) or postgresql+psycopg://USER@HOST/DB.",
        ),
    ] = DEFAULT_URL,
    artifacts_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where uploaded artifacts are kept (default: skyfleet-artifacts/ beside the database)."
        ),
    ] = None,
    tenant: Annotated[str, typer.Option(help="The hawkBit tenant in device URLs.")] = "DEFAULT",
    poll: Annotated[
        str, typer.Option(help="Polling interval told to devices, e.g. 5m or 30s.")
    ] = "5m",
    gateway_token: Annotated[
        str | None,
        typer.Option(
            envvar="SKYFLEET_GATEWAY_TOKEN",
            help="DDI gateway token: unknown devices that present it are registered on first poll.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (PostgreSQL only).")
    ] = 1,
    keys_dir: Annotated[
        Path | None,
        typer.Option(help="Online signing keys (default: skyfleet-keys beside the database)."),
    ] = None,
    root_keys_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where a first start puts the root keys (default: skyfleet-root-keys beside "
            "the database); take it offline."
        ),
    ] = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            help="Where the first start writes an admin token "
            "(default: skyfleet-admin.token beside the database)."
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn log level: warning, info, debug.")
    ] = "info",
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            envvar="SKYFLEET_MQTT_URL",
            help="Take device telemetry from this MQTT broker (mqtt://HOST[:PORT], "
            "mqtts://USER:PASSWORD@HOST), topics skyfleet/TENANT/devices/ID/telemetry.",
            rich_help_panel="Telemetry",
        ),
    ] = None,
    telemetry_history: Annotated[
        int,
        typer.Option(
            min=1,
            max=1_000_000,
            help="Telemetry samples kept per device (360: an hour at one every 10 s).",
            rich_help_panel="Telemetry",
        ),
    ] = 360,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="Run as an edge relay for the devices at this site: cache what they are "
            "assigned from this central server (http://HOST:PORT) and queue their reports "
            "while the uplink is down. Its own database defaults to ./skyfleet-relay.db.",
            rich_help_panel="Edge relay",
        ),
    ] = None,
    relay_id: Annotated[
        str | None,
        typer.Option(
            help="The relay's name in the idempotency keys of what it forwards, followed by "
            "a random part made once per relay database (default: relay).",
            rich_help_panel="Edge relay",
        ),
    ] = None,
    uplink_retry: Annotated[
        str,
        typer.Option(
            help="Longest wait between tries of an uplink that is down, e.g. 30s.",
            rich_help_panel="Edge relay",
        ),
    ] = "30s",
) -> None:
    """Run the server: operator API under /api/v1 (docs at /docs) and the device API.

    Devices speak hawkBit DDI at /{tenant}/controller/v1/{device-id}, so SWUpdate's suricatta
    and other hawkBit clients work unchanged. The operator API needs a token: the first start
    writes an admin token to skyfleet-admin.token; make others with 'skyfleet token create'.
    Example:

      skyfleet serve --port 8000 --database-url postgresql+psycopg://postgres@127.0.0.1/fleet

    At a site, as an edge relay for the devices near it (see /relay/status):

      skyfleet serve --upstream http://fleet.example.com:8000 --host 0.0.0.0
    """
    import uvicorn

    if upstream is not None:
        serve_relay(
            upstream=upstream,
            relay_id=relay_id,
            host=host,
            port=port,
            database_url=database_url,
            artifacts_dir=artifacts_dir,
            uplink_retry=uplink_retry,
            workers=workers,
            log_level=log_level,
        )
        return

    poll_s = parse_duration(poll, "polling interval")
    if poll_s < 1:
        raise InputError(f"polling interval {poll!r} must be at least 1 s")
    if workers > 1 and database_url.startswith("sqlite"):
        raise InputError("--workers > 1 needs PostgreSQL; SQLite serves from one process")
    broker = parse_mqtt_url(mqtt) if mqtt is not None else None  # a bad URL: one line, exit 2
    config = ServerConfig(
        database_url=database_url,
        artifacts_dir=artifacts_dir,
        tenant=tenant,
        poll_sleep_s=poll_s,
        gateway_token=gateway_token,
        keys_dir=keys_dir,
        root_keys_dir=root_keys_dir,
        freeze_gc=True,
        mqtt_url=mqtt,
        telemetry_history=telemetry_history,
    )
    # Open (create or migrate) the store once here, so schema errors are one line and exit 2.
    with trusted_store(
        database_url,
        time.time(),
        actor="skyfleet serve",
        artifacts_dir=artifacts_dir,
        keys_dir=keys_dir,
        root_keys_dir=root_keys_dir,
        admin_token_file=admin_token_file,
    ) as trust:
        if trust.made_keys:
            err.print(
                f"made the signing keys: online in {trust.keys_dir}, root keys in "
                f"{trust.root_keys_dir}; take the root keys offline ('skyfleet trust "
                "rotate-root' needs them)",
                soft_wrap=True,
            )
        if trust.made_token:
            err.print(
                f"created the first admin token in {trust.token_file} (readable by you only); "
                f"for the CLI: export SKYFLEET_TOKEN=$(cat {trust.token_file})",
                soft_wrap=True,
            )
    err.print(
        f"skyfleet serving on http://{host}:{port} (database {database_url.split('@')[-1]}); "
        f"API docs at http://{host}:{port}/docs"
    )
    if broker is not None:
        err.print(
            f"telemetry from the MQTT broker at {broker.host}:{broker.port}, "
            f"topics {telemetry_filter(tenant)}"
        )
    if gateway_token is None:
        err.print(
            "no --gateway-token: only devices registered with 'skyfleet device register' can poll"
        )
    if workers > 1:
        os.environ[CONFIG_ENV] = config_to_env(config)
        uvicorn.run(
            "skyfleet.server._app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    else:
        uvicorn.run(
            create_app(config),
            host=host,
            port=port,
            log_level=log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
