"""Server settings: data with safe defaults (the CLI and tests build them; nothing reads os.environ)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skyfleet.store import DEFAULT_URL

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How ``skyfleet serve`` runs.

    ``poll_sleep_s``: the polling interval told to devices (DDI ``config.polling.sleep``), spread
    by ``poll_jitter`` (a fraction, e.g. 0.1 = ±10%) so a fleet does not poll in step.
    ``gateway_token``: the DDI gateway token; a device unknown to the server that presents it is
    registered on its first poll. ``sweep_interval_s``: how often rollouts are judged and silent
    devices timed out. ``touch_flush_s``: how often last-seen times are written (in one batch).
    ``pool_size``: database connections per server process, and as many request threads, so
    that a burst of requests queues for a thread instead of opening connections.
    """

    database_url: str = DEFAULT_URL
    artifacts_dir: Path | None = None
    tenant: str = "DEFAULT"
    poll_sleep_s: float = 300.0
    poll_jitter: float = 0.1
    gateway_token: str | None = None
    sweep_interval_s: float = 1.0
    touch_flush_s: float = 1.0
    max_upload_bytes: int = 4 << 30
    pool_size: int = 16
