"""The relay's reports: feedback, configData and telemetry, queued durably and forwarded in
order, each exactly once.

A report is checked (JSON that parses, the DDI shape), the device authenticated by the hash of
the token the upstream last accepted from it, and the report appended to the queue in the
relay's database in one transaction, before the device gets its answer. One
:class:`Forwarder` sends the queue upstream in order per device: in rotation, the oldest queued
report of each device that is not waiting, each with the device's own ``Authorization`` and
``Idempotency-Key: RELAY-ID.RANDOM:SEQ``. A device's consecutive telemetry reports (same
``Authorization``, nothing else between them) go as one list of up to 1,000 samples, keyed
``RELAY-ID.RANDOM:FIRST-LAST`` (the server keeps one sample per device and time, so a list sent
again is stored once). An entry is deleted only once the upstream answered it: 2xx, or a 4xx
that re-sending cannot change (the entry is then kept as a dead letter, with the reason, for
``/relay/status``; a merged run refused so is tried again report by report). 408, 425, 429,
502, 503 and 504 are tried again, with back-off (or ``Retry-After``), for as long as it takes;
500 up to ``max_server_errors`` times; meanwhile only that device's reports wait. A lost
connection or a timeout marks the uplink down: every device waits. Because the upstream records each key in the
transaction that applies the report, a report sent again after the relay lost the answer (or
was killed before it deleted the entry) is not applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from skyfleet import store
from skyfleet.errors import InputError
from skyfleet.server._ddi_wire import ConfigData, Feedback
from skyfleet.server._errors import DEVICE_AUTH_FAILED, error_response
from skyfleet.server._limits import mark_device
from skyfleet.server._relay_cache import SOURCE_HEADER, forward_headers, refusal
from skyfleet.server._relay_config import RelayConfig
from skyfleet.server._relay_paths import DevicePath, reported_link
from skyfleet.server._relay_uplink import Uplink, UplinkDownError
from skyfleet.telemetry import MAX_SAMPLES

__all__ = ["Delivery", "Forwarder", "parse_report"]

log = logging.getLogger("skyfleet.relay")

#: Upstream answers that a later try may change: the report stays queued.
_TRY_AGAIN = frozenset({408, 425, 429, 502, 503, 504})
#: The most bytes of queued telemetry merged into one request (the server takes 1 MiB).
_MAX_MERGED_BYTES = 512 * 1024
_MODELS: dict[str, type[Feedback] | type[ConfigData]] = {
    "feedback": Feedback,
    "cancel_feedback": Feedback,
    "config_data": ConfigData,
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """The upstream's answer to a forwarded report."""

    status: int
    body: bytes
    content_type: str | None

    def response(self) -> Response:
        """The answer for the device that sent the report (it gets what the upstream said)."""
        return Response(
            self.body,
            status_code=self.status,
            media_type=self.content_type,
            headers={SOURCE_HEADER: "upstream"},
        )


def parse_report(where: DevicePath, raw: bytes) -> Any:
    """The report's JSON, checked against the DDI model of its kind; the errors a server gives
    (400 for JSON that does not parse, 422 for the wrong shape). Raw control characters inside
    strings are accepted, as the server accepts them (SWUpdate's suricatta sends them)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        try:
            parsed = json.loads(raw, strict=False)
        except ValueError as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise InputError(f"the request body is not valid JSON ({why})") from None
    model = _MODELS.get(where.kind)
    if model is not None:
        try:
            model.model_validate(parsed)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from None
    return parsed


class Forwarder:
    """Drains the queue upstream, in order per device, one request at a time, devices in
    rotation; ``wall`` gives UNIX seconds."""

    def __init__(
        self,
        db: store.RelayStore,
        uplink: Uplink,
        config: RelayConfig,
        relay_id: str,
        wall: Callable[[], float],
    ) -> None:
        self.db = db
        self.uplink = uplink
        self.config = config
        self.relay_id = relay_id
        self.wall = wall
        self.sent = 0
        self._wake = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[Delivery | None]] = {}
        self._recent: OrderedDict[int, Delivery] = OrderedDict()
        self._paused: dict[str, float] = {}  # device -> monotonic time its reports go on
        self._last_device = ""  # the rotation: the device served last
        self._pinned: dict[str, tuple[int, int]] = {}  # device -> a failed run's first, last seq
        self._split: dict[str, int] = {}  # device -> last seq of a refused run: send one by one
        uplink.on_up.append(self.kick)  # back up (a device's request found it): forward now

    # --- reports from devices ------------------------------------------------------------------

    async def report(
        self, request: Request, where: DevicePath, device_id: str, path: str
    ) -> Response:
        """Check a device's report, queue it, and answer: the upstream's answer if it comes
        within ``ack_wait_s`` while the uplink is up, else 200 (queued)."""
        raw = await request.body()
        parsed = parse_report(where, raw)
        auth = request.headers.get("authorization")
        verdict = await run_in_threadpool(self.db.token_verdict, device_id, auth)
        if verdict != "ok" or auth is None:
            if not self.uplink.available():
                return refusal(request, verdict, device_id, self.uplink.retry_in_s())
            return await self._pass_through(request, device_id, path, raw)
        mark_device(request.scope)
        seq = await run_in_threadpool(
            self.db.enqueue,
            device_id,
            request.method,
            path,
            request.headers.get("content-type") or "application/json",
            raw,
            auth,
            self.wall(),
            reported_link=reported_link(where, parsed),
            max_queued=self.config.max_queued_per_device,
            max_queued_bytes=self.config.max_queued_bytes_per_device,
        )
        self._wake.set()
        if self.uplink.up and self.config.ack_wait_s > 0:
            delivered = await self._wait_for(seq, self.config.ack_wait_s)
            if delivered is not None:
                return delivered.response()
        return Response(status_code=200, headers={SOURCE_HEADER: "queued"})

    async def _pass_through(
        self, request: Request, device_id: str, path: str, raw: bytes
    ) -> Response:
        """A report from a token the relay cannot check: the upstream decides, now; nothing is
        queued for a device the relay has not seen authenticated."""
        headers = forward_headers(request)
        headers["content-type"] = request.headers.get("content-type") or "application/json"
        try:
            response = await self.uplink.send(request.method, path, headers=headers, content=raw)
        except UplinkDownError as exc:
            return error_response(503, str(exc), {"Retry-After": "1"})
        auth = request.headers.get("authorization")
        if 200 <= response.status_code < 300 and auth:
            await run_in_threadpool(self.db.remember_token, device_id, auth, self.wall())
            mark_device(request.scope)
        elif response.status_code == 401:
            request.scope[DEVICE_AUTH_FAILED] = True
        return Delivery(
            response.status_code, response.content, response.headers.get("content-type")
        ).response()

    async def _wait_for(self, seq: int, timeout_s: float) -> Delivery | None:
        if seq in self._recent:
            return self._recent[seq]
        future: asyncio.Future[Delivery | None] = asyncio.get_running_loop().create_future()
        self._waiters[seq] = future
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(seq, None)

    def _release_waiters(self) -> None:
        """The uplink went down: every device waiting for an answer gets "queued" now."""
        for future in self._waiters.values():
            if not future.done():
                future.set_result(None)

    def _resolve(self, seq: int, delivery: Delivery) -> None:
        self._recent[seq] = delivery
        while len(self._recent) > 256:
            self._recent.popitem(last=False)
        future = self._waiters.get(seq)
        if future is not None and not future.done():
            future.set_result(delivery)

    # --- the forwarding loop -------------------------------------------------------------------

    def kick(self) -> None:
        """Look at the queue now."""
        self._wake.set()

    async def _idle(self, timeout_s: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        self._wake.clear()

    async def run(self) -> None:
        """Forward the queue for ever (until cancelled); probe the uplink while it is down."""
        while True:
            try:
                devices = await run_in_threadpool(self.db.queued_devices)
                if not devices:
                    self._paused.clear()
                    await self._idle(
                        None if self.uplink.up else max(0.05, self.uplink.retry_in_s())
                    )
                    if not self.uplink.up and self.uplink.available():
                        await self.uplink.probe()
                elif not self.uplink.available():
                    await self._idle(max(0.05, self.uplink.retry_in_s()))
                else:
                    await self._forward_one(devices)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not stop the forwarder
                log.exception("forwarding the relay's queue failed; retrying")
                await asyncio.sleep(self.config.retry_initial_s)

    async def _forward_one(self, devices: list[str]) -> None:
        """Send the oldest report (or run of telemetry reports) of the next device in rotation
        that is not paused; wait if every device with reports queued is paused."""
        now = time.monotonic()
        for gone in set(self._paused) - set(devices):
            del self._paused[gone]
        ready = [d for d in devices if self._paused.get(d, 0.0) <= now]
        if not ready:
            await self._idle(max(0.01, min(self._paused.values()) - now))
            return
        device = next((d for d in ready if d > self._last_device), ready[0])
        self._last_device = device
        entries = await run_in_threadpool(self.db.device_head, device, MAX_SAMPLES)
        if not entries:
            return
        batch = self._batch(entries)
        pause_s = await self._deliver(batch)
        if pause_s > 0:
            self._paused[device] = time.monotonic() + pause_s
        else:
            self._paused.pop(device, None)

    def _batch(self, entries: list[store.QueuedRequest]) -> _Batch:
        """The device's oldest report, with the telemetry reports right after it merged into it
        when it is one (same ``Authorization``, up to :data:`MAX_SAMPLES` samples, no other kind
        between them). A run that failed is tried again as it was, so its key stays the same."""
        first = entries[0]
        single = _Batch([first], first.body, f"{self.relay_id}:{first.seq}")
        split = self._split.get(first.device_id)
        if split is not None and first.seq <= split:
            return single  # a merged run was refused: its reports go one by one
        self._split.pop(first.device_id, None)
        pinned = self._pinned.get(first.device_id)
        if pinned is not None and pinned[0] != first.seq:
            pinned = None
            del self._pinned[first.device_id]
        samples = _samples(first)
        if samples is None:
            return single
        taken = [first]
        size = len(first.body)
        for entry in entries[1:]:
            if pinned is not None and entry.seq > pinned[1]:
                break
            if (
                entry.authorization != first.authorization
                or entry.path != first.path
                or entry.method != first.method
            ):
                break
            more = _samples(entry)
            if more is None or len(samples) + len(more) > MAX_SAMPLES:
                break
            size += len(entry.body)
            if size > _MAX_MERGED_BYTES:
                break
            samples.extend(more)
            taken.append(entry)
        if len(taken) == 1:
            return single
        body = json.dumps(samples, separators=(",", ":")).encode()
        key = f"{self.relay_id}:{first.seq}-{taken[-1].seq}"
        return _Batch(taken, body, key, [len(_samples(e) or ()) for e in taken])

    async def _deliver(self, batch: _Batch) -> float:
        """Send one report (or a merged run); returns how long its device waits before the next
        try (0: go on)."""
        entry = batch.entries[0]
        seqs = [e.seq for e in batch.entries]
        headers = {
            "authorization": entry.authorization,
            "idempotency-key": batch.key,
            "content-type": entry.content_type or "application/json",
        }
        try:
            response = await self.uplink.send(
                entry.method, entry.path, headers=headers, content=batch.body
            )
        except UplinkDownError as exc:
            self._release_waiters()
            cause = exc.__cause__
            if isinstance(cause, httpx.TransportError) and not isinstance(
                cause, httpx.ConnectError
            ):
                self._pin(batch)  # it may have arrived: send the same run again
            await run_in_threadpool(self.db.attempt_failed, entry.seq, str(exc))
            return 0.0  # the uplink's own schedule says when to try again
        status = response.status_code
        delivery = Delivery(status, response.content, response.headers.get("content-type"))
        if 200 <= status < 300:
            await run_in_threadpool(self.db.ack, seqs, self.wall())
            self._pinned.pop(entry.device_id, None)
            self.sent += len(seqs)
            if batch.counts is None:
                self._resolve(entry.seq, delivery)
            else:  # each device that waits hears of its own samples
                for seq, count in zip(seqs, batch.counts, strict=True):
                    answer = json.dumps({"accepted": count}).encode()
                    self._resolve(seq, Delivery(status, answer, "application/json"))
            return 0.0
        reason = _reason(response)
        gives_up = status < 500 and status not in _TRY_AGAIN
        if status >= 500 and status not in _TRY_AGAIN:
            gives_up = entry.attempts + 1 >= self.config.max_server_errors
        if gives_up and len(seqs) > 1 and status != 401:
            # One bad sample must not take its neighbours down: try the run report by report.
            self._pinned.pop(entry.device_id, None)
            self._split[entry.device_id] = seqs[-1]
            return 0.0
        if gives_up:
            log.warning(
                "the upstream refused report %s of device %s (%s %s): HTTP %s %s",
                entry.seq,
                entry.device_id,
                entry.method,
                entry.path,
                status,
                reason,
            )
            # A refused token refuses every report queued with it: one answer, not thousands.
            set_aside = self.db.dead_letter_token if status == 401 else self.db.dead_letter
            await run_in_threadpool(
                set_aside,
                entry,
                status,
                f"HTTP {status}: {reason}",
                self.wall(),
                keep=self.config.dead_letters_kept,
            )
            self._pinned.pop(entry.device_id, None)
            self._resolve(entry.seq, delivery)
            return 0.0
        self._release_waiters()
        self._pin(batch)
        await run_in_threadpool(self.db.attempt_failed, entry.seq, f"HTTP {status}: {reason}")
        return _pause_s(response, entry.attempts, self.config)

    def _pin(self, batch: _Batch) -> None:
        """The run may have been applied: its next try carries the same reports (the same key),
        not more that came since."""
        if len(batch.entries) > 1:
            self._pinned[batch.entries[0].device_id] = (
                batch.entries[0].seq,
                batch.entries[-1].seq,
            )


@dataclass(frozen=True, slots=True)
class _Batch:
    """What one request upstream carries: one queued report, or a device's run of telemetry
    reports merged into one list (``counts``: samples from each)."""

    entries: list[store.QueuedRequest]
    body: bytes
    key: str
    counts: list[int] | None = None


def _samples(entry: store.QueuedRequest) -> list[Any] | None:
    """The telemetry samples of a queued report, or None if it is not telemetry that can be
    merged (another kind, or a body that is not a sample or a list of them)."""
    if entry.method != "POST" or not entry.path.endswith("/telemetry"):
        return None
    try:
        body = json.loads(entry.body)
    except ValueError:
        return None
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list) and body and all(isinstance(item, dict) for item in body):
        return body
    return None


def _reason(response: httpx.Response) -> str:
    try:
        found = response.json().get("error")
    except (ValueError, AttributeError):
        found = None
    return str(found) if found else response.text[:500]


def _pause_s(response: httpx.Response, attempts: int, config: RelayConfig) -> float:
    """How long to wait after an answer that says "not now": its ``Retry-After`` (seconds),
    else a back-off doubling from ``retry_initial_s``, at most ``retry_max_s``."""
    retry_after = response.headers.get("retry-after", "")
    if retry_after.isdigit():
        return min(config.retry_max_s, float(retry_after))
    return min(config.retry_max_s, config.retry_initial_s * 2.0 ** min(attempts, 30))
