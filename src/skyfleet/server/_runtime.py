"""What the routes share: the store, the clock, the last-seen buffer and the judge's wake-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from skyfleet import store
from skyfleet.server._config import ServerConfig
from skyfleet.server._polls import PollBatcher
from skyfleet.server._signing import Signing

__all__ = ["Runtime"]

log = logging.getLogger("skyfleet.server")

_PRUNE_EVERY_S = 3600.0  # how often old idempotency keys are pruned


class Runtime:
    """One server process's state outside the database."""

    def __init__(
        self,
        config: ServerConfig,
        db: store.Store,
        polls: store.PollViewReader,
        clock: Callable[[], float] = time.time,
        signing: Signing | None = None,
    ) -> None:
        self.config = config
        self.store = db
        self.clock = clock
        self.signing = signing or Signing(
            db, config.keys_dir or db.home / "skyfleet-keys", config.lifetimes()
        )
        self.polls = PollBatcher(polls)
        self._seen: dict[str, float] = {}
        self._seen_lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def seen(self, device_id: str, now_s: float) -> None:
        """Note that a device polled; written to the database in the next batch."""
        with self._seen_lock:
            self._seen[device_id] = now_s

    def was_seen(self, device_id: str) -> bool:
        """Whether a poll of the device is waiting in the last-seen buffer."""
        with self._seen_lock:
            return device_id in self._seen

    def flush_seen(self) -> int:
        """Write the buffered last-seen times; returns how many devices were written."""
        with self._seen_lock:
            batch, self._seen = self._seen, {}
        if not batch:
            return 0
        try:
            with self.store.begin() as conn:
                store.touch_devices(conn, batch)  # in id order: no deadlock with ingest
        except BaseException:
            # Not written: back into the buffer for the next flush, keeping the later time
            # where the device polled again meanwhile.
            with self._seen_lock:
                for device_id, seen_s in batch.items():
                    if self._seen.get(device_id, seen_s) <= seen_s:
                        self._seen[device_id] = seen_s
            raise
        return len(batch)

    def kick(self) -> None:
        """Ask the judge to look at the rollouts now (a device just finished); thread-safe."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def prune_idempotency_keys(self) -> int:
        """Forget report keys older than ``idempotency_ttl_s``; returns how many."""
        with self.store.begin() as conn:
            return store.prune_idempotency_keys(conn, self.clock() - self.config.idempotency_ttl_s)

    def sweep_once(self) -> None:
        """Time out silent devices and judge running rollouts, in one transaction."""
        with self.store.begin() as conn:
            store.sweep(conn, self.clock())

    async def background(self) -> None:
        """Judge rollouts every ``sweep_interval_s`` (sooner when kicked), flush last-seen, and
        keep the image repository's signatures fresh."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        last_flush = 0.0
        last_signed = time.monotonic()
        last_pruned = -_PRUNE_EVERY_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.sweep_interval_s)
            self._wake.clear()
            try:
                await asyncio.to_thread(self.sweep_once)
                if time.monotonic() - last_flush >= self.config.touch_flush_s:
                    last_flush = time.monotonic()
                    await asyncio.to_thread(self.flush_seen)
                if time.monotonic() - last_signed >= self.config.trust_refresh_s:
                    last_signed = time.monotonic()
                    await asyncio.to_thread(self.signing.refresh_image, self.clock())
                if time.monotonic() - last_pruned >= _PRUNE_EVERY_S:
                    last_pruned = time.monotonic()
                    await asyncio.to_thread(self.prune_idempotency_keys)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not stop the judge
                log.exception("rollout sweep failed; retrying")
                await asyncio.sleep(self.config.sweep_interval_s)
