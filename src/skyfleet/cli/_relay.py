"""``skyfleet serve --upstream URL``: run skyfleet at a site as an edge relay for its devices."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from skyfleet.cli._common import err, parse_duration
from skyfleet.errors import InputError
from skyfleet.server import RelayConfig, create_relay_app
from skyfleet.server._relay_config import RELAY_DEFAULT_URL
from skyfleet.store import DEFAULT_URL, RelayStore, open_store

__all__ = ["serve_relay"]


def serve_relay(
    *,
    upstream: str,
    relay_id: str | None,
    host: str,
    port: int,
    database_url: str,
    artifacts_dir: Path | None,
    uplink_retry: str,
    workers: int,
    log_level: str,
) -> None:
    """Check the settings, open (and migrate) the relay's store, and serve until stopped."""
    import uvicorn

    if workers > 1:
        raise InputError("a relay runs as one process: leave out --workers")
    url = RELAY_DEFAULT_URL if database_url == DEFAULT_URL else database_url
    retry_max_s = parse_duration(uplink_retry, "uplink retry interval")
    if retry_max_s <= 0:
        raise InputError(f"uplink retry interval {uplink_retry!r} must be positive")
    config = RelayConfig(
        upstream_url=upstream,
        relay_id=relay_id,
        database_url=url,
        artifacts_dir=artifacts_dir,
        retry_initial_s=min(1.0, retry_max_s),
        retry_max_s=retry_max_s,
    )
    # Open (create or migrate) the store once here: schema errors are one line and exit 2.
    db = open_store(url, artifacts_dir=artifacts_dir, durable=True)
    try:
        chosen = RelayStore(db).relay_id(relay_id)
        database = db.engine.url.database
        if url.startswith("sqlite") and database and database != ":memory:":
            # The queue holds devices' tokens until it is forwarded: for this user only.
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(database + suffix, 0o600)
    finally:
        db.close()
    err.print(
        f"skyfleet relay {chosen} on http://{host}:{port} for {config.upstream_base} "
        f"(database {url.split('@')[-1]}); status at http://{host}:{port}/relay/status",
        soft_wrap=True,
    )
    uvicorn.run(create_relay_app(config), host=host, port=port, log_level=log_level)
