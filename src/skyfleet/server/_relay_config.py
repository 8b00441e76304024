"""Edge relay settings: data with safe defaults (the CLI and tests build them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from skyfleet.errors import InputError

__all__ = ["RELAY_DEFAULT_URL", "RelayConfig"]

#: The relay's database when none is given: its own file, apart from a server's ``skyfleet.db``.
RELAY_DEFAULT_URL = "sqlite:///skyfleet-relay.db"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How ``skyfleet serve --upstream URL`` runs.

    ``upstream_url``: the central skyfleet server (``http://`` or ``https://``, with a path
    prefix if it is mounted under one). ``relay_id``: the first part of the ``Idempotency-Key``
    of every report it forwards (``RELAY-ID.RANDOM:SEQ``; ``relay`` when None); ``RANDOM`` is
    made once per relay database and kept in it, so that keys never repeat across databases. ``database_url`` and
    ``artifacts_dir``: the relay's own store (cached answers, the queue) and its cached
    artifact bytes (default ``skyfleet-artifacts`` beside the database).

    Uplink: ``connect_timeout_s`` to open a connection upstream, ``upstream_timeout_s`` for
    each read or write on it; a failure marks the uplink down, and it is tried again after
    ``retry_initial_s``, doubling up to ``retry_max_s`` (device requests meanwhile are answered
    from the cache at once). A report the upstream answered with a server error (500) is tried
    ``max_server_errors`` times, then set aside as dead (502, 503, 504 and lost connections are
    an outage: tried until they pass). While the uplink is up, a device's report waits up to
    ``ack_wait_s`` for the upstream's answer, which the device then gets; past that (or while
    down) it gets 200 at once and the report stays queued.

    ``prefetch``: fetch a deployment and its artifacts as soon as a device's poll offers it, so
    that the device can install while the uplink is down. ``max_cached_body_bytes``: larger
    JSON answers pass through uncached. ``dead_letters_kept``: how many refused reports
    ``/relay/status`` keeps. A device with ``max_queued_per_device`` reports, or
    ``max_queued_bytes_per_device`` bytes of them, waiting gets 429 (a device in a loop must
    not fill the relay's disk while the uplink is down). Limits as the server's (:class:`~skyfleet.server.ServerConfig`):
    device bodies up to ``max_body_bytes``; ``device_burst`` requests at once, then
    ``device_rate_per_s`` a second, per device; failed authentications by client address.
    """

    upstream_url: str
    relay_id: str | None = None
    database_url: str = RELAY_DEFAULT_URL
    artifacts_dir: Path | None = None
    pool_size: int = 8
    # --- uplink ---
    connect_timeout_s: float = 5.0
    upstream_timeout_s: float = 30.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    max_server_errors: int = 10
    ack_wait_s: float = 5.0
    # --- cache ---
    prefetch: bool = True
    max_cached_body_bytes: int = 4 << 20
    dead_letters_kept: int = 1000
    max_queued_per_device: int = 10_000
    max_queued_bytes_per_device: int = 64 << 20
    # --- limits ---
    max_body_bytes: int = 1 << 20
    device_rate_per_s: float = 1.0
    device_burst: int = 60
    auth_fail_rate_per_s: float = 0.5
    auth_fail_burst: int = 30

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(
                f"upstream URL {self.upstream_url!r} must be http:// or https:// with a host, "
                "e.g. http://fleet.example.com:8000"
            )
        if parts.query or parts.fragment:
            raise InputError(f"upstream URL {self.upstream_url!r} must not have a query")
        for name in (
            "connect_timeout_s",
            "upstream_timeout_s",
            "retry_initial_s",
            "retry_max_s",
        ):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise InputError(f"{name} must be a positive number of seconds, not {value}")
        if (
            self.ack_wait_s < 0
            or min(
                self.max_server_errors,
                self.dead_letters_kept,
                self.max_queued_per_device,
                self.max_queued_bytes_per_device,
            )
            < 1
        ):
            raise InputError(
                "ack_wait_s must be >= 0; max_server_errors, dead_letters_kept, "
                "max_queued_per_device and max_queued_bytes_per_device at least 1"
            )

    @property
    def upstream_base(self) -> str:
        """The upstream URL without a trailing slash: request paths are appended to it."""
        return self.upstream_url.rstrip("/")

    @property
    def upstream_shown(self) -> str:
        """:attr:`upstream_base` without credentials (``user:password@``), to show.

        >>> RelayConfig("https://relay:s3cret@fleet.example.com:8443/x/").upstream_shown
        'https://fleet.example.com:8443/x'
        """
        parts = urlsplit(self.upstream_base)
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=host).geturl()
