"""Server settings: data with safe defaults (the CLI and tests build them; nothing reads os.environ)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skyfleet.rollout import Lifetimes
from skyfleet.store import DEFAULT_URL

__all__ = ["ServerConfig", "sim_clock"]

_LIFETIMES = Lifetimes()  # Uptane's guidance: a year for roots, a day for the rest


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

    Limits (per server process; with ``--workers N`` each process has its own): a device may send
    ``device_burst`` requests at once, then ``device_rate_per_s`` a second (the defaults, 60 and
    1/s, never bother a device that polls every few minutes, fetches an update and resumes its
    download with HTTP Range a few times; a device in a loop gets 429 with ``Retry-After``).
    Requests that fail device authentication (401) are charged to the client's IP address
    instead: ``auth_fail_burst`` at once, then ``auth_fail_rate_per_s`` a second, so that
    nobody can use up a device's rate by knowing its id and guessing tokens is slow (every
    device behind that address waits too). A rate of 0 turns that limit off. Request bodies
    (bytes): artifact uploads up to ``max_upload_bytes``, other operator API bodies up to
    ``max_operator_body_bytes`` (enough to register about 100,000 devices at once), anything
    else (device feedback, configData) up to ``max_body_bytes``; larger ones get 413.

    ``freeze_gc``: once started, move every object start-up made out of the garbage collector's
    reach (``gc.freeze``), so that its full passes stay short; for a server process of its own
    (``skyfleet serve`` sets it), not for an app embedded in a larger program.

    Signing: ``keys_dir`` holds the online keys (default ``skyfleet-keys`` beside the
    database). With ``init_trust``, a store without roots gets keys and roots on start, the
    root keys in ``root_keys_dir`` (default ``skyfleet-root-keys`` beside the database; take it
    offline). ``*_expiry_s`` are the metadata lifetimes (root a year, the others a day, as
    Uptane advises); the image repository is checked every ``trust_refresh_s`` and signed again
    half-way to expiry.

    Telemetry: with ``mqtt_url`` (``mqtt://HOST[:PORT]``, ``mqtts://USER:PASSWORD@HOST``) the
    server subscribes to its tenant's telemetry topics as ``mqtt_client_id`` (default
    ``skyfleet-{tenant}``), a session the broker keeps ``mqtt_session_expiry_s`` after a
    disconnect; devices may also post telemetry over HTTP. ``telemetry_history``: samples kept
    per device (360: an hour at one every 10 s).

    ``idempotency_ttl_s``: how long the server remembers the ``Idempotency-Key`` of a report
    (an edge relay re-sends with the same key what it cannot be sure arrived), so that it is
    applied once; keys older than that are pruned (hourly).

    Simulated time (the demo): with ``sim_start_s`` set, the server's clock reads UNIX time
    ``sim_start_s`` until the wall-clock time ``sim_wall_s``, then runs ``sim_rate`` times faster
    than the wall clock (:func:`sim_clock`). Every process that shares these three numbers
    shares the clock (the demo's simulated devices do).
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
    # --- limits ---
    device_rate_per_s: float = 1.0
    device_burst: int = 60
    auth_fail_rate_per_s: float = 0.5
    auth_fail_burst: int = 30
    max_body_bytes: int = 1 << 20
    max_operator_body_bytes: int = 32 << 20
    # --- signing (TUF / Uptane) ---
    keys_dir: Path | None = None
    root_keys_dir: Path | None = None
    init_trust: bool = True
    root_expiry_s: float = _LIFETIMES.root_s
    targets_expiry_s: float = _LIFETIMES.targets_s
    snapshot_expiry_s: float = _LIFETIMES.snapshot_s
    timestamp_expiry_s: float = _LIFETIMES.timestamp_s
    trust_refresh_s: float = 60.0
    # --- process ---
    freeze_gc: bool = False
    # --- telemetry ---
    mqtt_url: str | None = None
    mqtt_client_id: str | None = None
    mqtt_session_expiry_s: float = 86400.0
    telemetry_history: int = 360
    # --- edge relays ---
    idempotency_ttl_s: float = 30 * 86400.0
    # --- simulated time ---
    sim_start_s: float | None = None
    sim_wall_s: float = 0.0
    sim_rate: float = 1.0

    @property
    def time_rate(self) -> float:
        """Seconds of the server's clock per wall-clock second (1 unless simulated)."""
        return 1.0 if self.sim_start_s is None else self.sim_rate

    def clock(self) -> Callable[[], float]:
        """The server's clock, UNIX seconds: the wall clock, or the simulated one.

        >>> ServerConfig(sim_start_s=1e9, sim_wall_s=time.time() - 10.0, sim_rate=60.0).clock()() > 1e9 + 599
        True
        """
        if self.sim_start_s is None:
            return time.time
        return sim_clock(self.sim_start_s, self.sim_wall_s, self.sim_rate)

    def lifetimes(self) -> Lifetimes:
        """The metadata lifetimes these settings ask for."""
        return Lifetimes(
            root_s=self.root_expiry_s,
            targets_s=self.targets_expiry_s,
            snapshot_s=self.snapshot_expiry_s,
            timestamp_s=self.timestamp_expiry_s,
        )


def sim_clock(start_s: float, wall_s: float, rate: float) -> Callable[[], float]:
    """A clock that reads UNIX time ``start_s`` until wall-clock time ``wall_s`` and from then
    on runs ``rate`` times faster than the wall clock (what happens before the start, such as
    seeding the demo, is stamped with the start).

    >>> import time
    >>> sim_clock(1e9, time.time() + 60.0, 720.0)()  # not started yet
    1000000000.0
    """

    def now() -> float:
        return start_s + max(0.0, time.time() - wall_s) * rate

    return now
