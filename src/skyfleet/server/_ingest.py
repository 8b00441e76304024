"""Telemetry ingest: messages in (MQTT, HTTP), checked samples written in batches, one thread.

Every message goes through one queue to one worker thread, which takes what has come in (up to
``max_batch`` samples, waiting ``linger_s`` for more) and writes it in one transaction: the
history, each device's latest state, ``last_seen`` and the counters (see
:func:`skyfleet.store.ingest_telemetry`). Only then is a message acknowledged: an MQTT message
gets its PUBACK (so the broker delivers again whatever a crash lost), an HTTP request its
answer. Parsing happens in the worker, not on the MQTT network thread.

Each device's history is pruned to the newest ``history`` samples once it has taken a tenth of
that again (counted per server process), in the transaction of a later batch: a device holds at
most ``history + 2 * ceil(history / 10)`` samples (the second tenth after a restart, when the
counts start again), plus those another process took over HTTP.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import InterfaceError, OperationalError

from skyfleet import store
from skyfleet.errors import DeviceError, StoreError
from skyfleet.telemetry import Telemetry, device_of_topic, parse_payload

__all__ = ["Source", "TelemetryIngest"]

log = logging.getLogger("skyfleet.telemetry")

#: Devices pruned in one batch's transaction at most (the rest wait for the next batch).
_PRUNE_PER_BATCH = 2000
_RETRY_S = 1.0
_LOG_EVERY_S = 10.0


class Source(Protocol):
    """Where MQTT messages come from: told which of them are stored (their tokens, in order)."""

    def committed(self, tokens: Sequence[Any]) -> None:
        """The messages with these tokens are stored (or were refused for good): ack them."""

    def redeliver(self, tokens: Sequence[Any]) -> None:
        """The messages with these tokens could not be stored now, for no fault of theirs:
        have them delivered again (MQTT: a new connection, as a broker resends unacknowledged
        messages only then)."""


@dataclass(slots=True)
class _Item:
    """One message: from MQTT (``source``, its topic, the raw payload, an ack token) or HTTP
    (no source, the device id, samples already checked, a future to resolve)."""

    source: Source | None
    key: str
    payload: bytes | bytearray | list[Telemetry]
    token: Any


_STOP = _Item(None, "", b"", None)


class TelemetryIngest:
    """The queue and the worker thread that write telemetry to ``db``.

    ``tenant``: whose MQTT topics are accepted. ``history``: samples kept per device.
    """

    def __init__(
        self,
        db: store.Store,
        clock: Callable[[], float] = time.time,
        *,
        tenant: str = "DEFAULT",
        history: int = 360,
        max_batch: int = 5000,
        linger_s: float = 0.05,
    ) -> None:
        if history < 1:
            raise ValueError(f"telemetry history must keep at least 1 sample, not {history}")
        self.db = db
        self.clock = clock
        self.tenant = tenant
        self.history = history
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.prune_after = max(1, math.ceil(history / 10))
        # Unbounded, but MQTT holds at most its receive maximum unacknowledged and HTTP at most a
        # request per connection: the broker stops sending before memory runs out.
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._since_prune: dict[str, int] = {}
        self._due: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last_log = 0.0
        self._invalid_since_log = 0
        self._unknown_since_log = 0
        self._last_invalid = ""

    # --- producers -------------------------------------------------------------------------

    def offer(self, source: Source, topic: str, payload: bytes | bytearray, token: Any) -> None:
        """Queue an MQTT message (any thread); ``source.committed`` gets ``token`` once it is
        stored or refused."""
        self._queue.put(_Item(source, topic, payload, token))

    def submit(self, device_id: str, samples: list[Telemetry]) -> Future[None]:
        """Queue checked samples of an authenticated device; the future resolves when they are
        stored (or fails with :class:`StoreError`)."""
        done: Future[None] = Future()
        if self._stopping or self._thread is None:
            done.set_exception(StoreError("the server is stopping; send the telemetry again"))
        else:
            self._queue.put(_Item(None, device_id, samples, done))
        return done

    # --- the worker --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="skyfleet-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the worker (messages that arrive later stay
        unacknowledged: the broker delivers them again)."""
        if self._thread is None:
            return
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        self._thread = None

    def _run(self) -> None:
        while True:
            batch, stop = self._take()
            if batch:
                try:
                    self._write(batch)
                except Exception:  # never let one batch end ingest
                    log.exception(
                        "a telemetry batch of %d messages was refused; storing it one message "
                        "at a time",
                        len(batch),
                    )
                    try:
                        self._write_singly(batch)
                    except Exception:
                        log.exception("telemetry could not be stored even one message at a time")
                        self._give_back(batch)
            if stop:
                return

    def _take(self) -> tuple[list[_Item], bool]:
        """What has come in: one message, waited for, then, ``linger_s`` later (at once when a
        full batch is waiting), everything else queued, up to ``max_batch`` samples. True once
        the stop mark is reached.

        The worker sleeps rather than waiting on the queue for each message: a waiting reader
        would be woken by every message the MQTT thread queues.
        """
        first = self._queue.get()
        if first is _STOP:
            return [], True
        if self._queue.qsize() < self.max_batch and not self._stopping:
            time.sleep(self.linger_s)
        batch = [first]
        weight = len(first.payload) if first.source is None else 1
        while weight < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            weight += len(item.payload) if item.source is None else 1
        return batch, False

    def _samples(self, batch: list[_Item], now_s: float) -> tuple[list[tuple[str, Telemetry]], int]:
        samples: list[tuple[str, Telemetry]] = []
        invalid = 0
        tenant = self.tenant
        for item in batch:
            payload = item.payload
            if isinstance(payload, list):  # HTTP: checked already
                samples.extend((item.key, s) for s in payload)
                continue
            device_id = device_of_topic(item.key, tenant)
            try:
                if device_id is None:
                    raise DeviceError(f"topic {item.key[:200]!r} is not a telemetry topic")
                parsed = parse_payload(payload, now_s=now_s)
            except DeviceError as exc:
                invalid += 1
                self._last_invalid = f"{device_id or item.key[:200]}: {exc}"
                continue
            if len(parsed) == 1:
                samples.append((device_id, parsed[0]))
            else:
                samples.extend((device_id, s) for s in parsed)
        return samples, invalid

    def _write(self, batch: list[_Item]) -> None:
        while True:
            now = self.clock()
            samples, invalid = self._samples(batch, now)
            due = self._take_due()
            try:
                with self.db.begin() as conn:
                    result = store.ingest_telemetry(conn, now, samples, invalid_messages=invalid)
                    if due:
                        store.prune_telemetry(conn, due, self.history)
                break
            except (OperationalError, InterfaceError, StoreError) as exc:
                self._due.update(due)
                log.warning("cannot store telemetry (%s); retrying in %.0f s", exc, _RETRY_S)
                failed = StoreError("the database is busy or unreachable; retry shortly")
                for item in batch:
                    if item.source is None:
                        item.token.set_exception(failed)
                batch = [item for item in batch if item.source is not None]
                if not batch or self._stopping:
                    return  # MQTT messages stay unacknowledged: the broker delivers them again
                time.sleep(_RETRY_S)
            except Exception:  # not the database being away: something in this batch?
                self._due.update(due)
                raise  # the caller stores it one message at a time
        self._count(result.per_device)
        self._acknowledge(batch)
        self._invalid_since_log += invalid
        self._unknown_since_log += result.unknown_device
        if self._invalid_since_log or self._unknown_since_log:
            self._log_refused()

    def _write_singly(self, batch: list[_Item]) -> None:
        """Store each message of a refused batch in its own transaction; drop (and count as
        invalid) the ones the database still refuses, so that one message cannot stop ingest.

        Raises (with the messages stored so far acknowledged, the rest not) when the database
        is away or refuses even to count the refused messages: then the refusals were not the
        messages' fault, and the caller has them delivered again (:meth:`_give_back`).
        """
        stored: list[_Item] = []
        refused: list[_Item] = []
        try:
            for item in batch:
                if item.source is None and item.token.done():
                    continue  # answered already (the batch failed after answering it)
                now = self.clock()
                try:
                    samples, invalid = self._samples([item], now)
                    with self.db.begin() as conn:
                        result = store.ingest_telemetry(
                            conn, now, samples, invalid_messages=invalid
                        )
                except (OperationalError, InterfaceError):
                    raise  # the database is away: nothing here is this message's fault
                except Exception as exc:
                    refused.append(item)
                    self._last_invalid = f"{item.key[:200]}: refused by the database ({exc})"
                    continue
                stored.append(item)
                self._count(result.per_device)
            if refused:
                with self.db.begin() as conn:
                    store.ingest_telemetry(conn, self.clock(), [], invalid_messages=len(refused))
        finally:
            self._acknowledge(stored)
        for item in refused:
            if item.source is None:
                item.token.set_exception(StoreError("the telemetry could not be stored"))
        if refused:
            self._invalid_since_log += len(refused)
            self._log_refused()
        self._acknowledge([i for i in refused if i.source is not None])

    def _give_back(self, batch: list[_Item]) -> None:
        """Messages that could not be stored, even one at a time, for no fault found in them.

        HTTP requests are answered with an error (the device sends again). MQTT messages are
        not acknowledged as dropped but delivered again on a new connection: the failure may
        pass (a database that refuses everything for a while, a fault outside the message),
        and a dropped message would be lost although it could have been stored; a message that
        is refused on its own is dropped by :meth:`_write_singly` instead, so redelivery does
        not go round for ever on one bad message. Left unacknowledged on the live connection,
        each would hold one of the broker's Receive Maximum slots until the broker stopped
        sending altogether.
        """
        tokens: dict[Source, list[Any]] = {}
        for item in batch:
            if item.source is not None:
                tokens.setdefault(item.source, []).append(item.token)
            elif not item.token.done():
                item.token.set_exception(StoreError("telemetry could not be stored"))
        for source, pending in tokens.items():
            log.warning("%d telemetry messages not stored; asking for them again", len(pending))
            source.redeliver(pending)

    def _count(self, per_device: dict[str, int]) -> None:
        counts = self._since_prune
        every = self.prune_after
        for device_id, n in per_device.items():
            seen = counts.get(device_id, 0) + n
            if seen >= every:
                self._due.add(device_id)
                counts.pop(device_id, None)
            else:
                counts[device_id] = seen

    def _take_due(self) -> list[str]:
        """Devices to prune now, in id order (the lock order of every telemetry write)."""
        if len(self._due) <= _PRUNE_PER_BATCH:
            due, self._due = sorted(self._due), set()
            return due
        return sorted(self._due.pop() for _ in range(_PRUNE_PER_BATCH))

    def _acknowledge(self, batch: list[_Item]) -> None:
        tokens: dict[Source, list[Any]] = {}
        for item in batch:
            if item.source is None:
                if not item.token.done():
                    item.token.set_result(None)
            else:
                tokens.setdefault(item.source, []).append(item.token)
        for source, acks in tokens.items():
            source.committed(acks)

    def _log_refused(self) -> None:
        """Say what was dropped, at most once every ``_LOG_EVERY_S`` (the counters in the
        store have every message)."""
        now = time.monotonic()
        if now - self._last_log < _LOG_EVERY_S:
            return
        self._last_log = now
        if self._invalid_since_log:
            log.warning(
                "dropped %d invalid telemetry messages (the last: %s)",
                self._invalid_since_log,
                self._last_invalid,
            )
        if self._unknown_since_log:
            log.warning(
                "dropped %d telemetry samples of unregistered devices", self._unknown_since_log
            )
        self._invalid_since_log = self._unknown_since_log = 0
