"""The demo's fleet: every simulated device polls the server over hawkBit DDI when its poll is
due (a simulated polling interval with jitter), reaches it only while its plan gives it a link,
and reports its telemetry since the last report in one batch (MQTT when a broker is there,
else HTTP): vehicles their position, link and version, sites their RTT, home devices their
Powershare samples.

A device that is part-way through a download steps again soon (it does not wait for its next
poll), as a real one keeps transferring, and goes before the devices whose poll is due. Everything
runs in one event loop with at most ``concurrency`` steps under way, so the request rate stays
within what the server answers (when it cannot keep up, polls come late: ``max_lag_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from skyfleet.sim import (
    DdiDevice,
    HomePlan,
    LinkSchedule,
    MqttTelemetryPublisher,
    Scenario,
    SitePlan,
    VehiclePlan,
    post_telemetry,
)
from skyfleet.telemetry import Telemetry

__all__ = ["TELEMETRY_HISTORY", "Fleet", "Traffic", "Unit", "make_units"]

MAX_BATCH = 1000  # samples in one report (the server's limit)
DOWNLOAD_RETRY_S = 120.0  # simulated seconds between steps of a device that is downloading
#: Home batteries are in no rollout: they poll this many times less often than the vehicles
#: (their telemetry goes with their home's truck's steps).
SLOW_POLL_FACTOR = 4
SLOW_KINDS = frozenset({"home-battery"})
#: Telemetry samples the demo's server keeps per device: a home's whole 12 h (every minute of
#: the outage, one every 10 simulated minutes else) fits.
TELEMETRY_HISTORY = 1000


@dataclass
class Traffic:
    """What the devices sent and how the server answered; requests per second over the last
    few wall seconds."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    telemetry_samples: int = 0  # sent (MQTT) or accepted by the server (HTTP, 2xx)
    telemetry_reports: int = 0
    telemetry_refused: int = 0  # samples in HTTP reports the server did not accept
    mqtt_messages: int = 0
    lag_s: float = 0.0  # simulated seconds the latest step started after it was due
    max_lag_s: float = 0.0
    steps: int = 0
    steps_on_time: int = 0  # started within one polling interval of their due time
    crashes: int = 0  # steps that raised (a bug): counted as errors, the unit rescheduled
    last_crash: str = ""
    _recent: deque[float] = field(default_factory=deque, repr=False)

    latency_s: Counter[str] = field(default_factory=Counter)
    latency_n: Counter[str] = field(default_factory=Counter)

    async def on_request(self, request: httpx.Request) -> None:
        """httpx event hook: note when a request went out."""
        request.extensions["demo_sent"] = time.monotonic()

    async def on_response(self, response: httpx.Response) -> None:
        """httpx event hook: count one answered request, and how long it took by kind."""
        now = time.monotonic()
        self.requests += 1
        self.by_status[response.status_code] += 1
        self._recent.append(now)
        path = response.request.url.path
        kind = (
            "telemetry"
            if path.endswith("/telemetry")
            else "poll"
            if response.request.method == "GET" and path.count("/") == 4
            else "other"
        )
        self.latency_s[kind] += now - response.request.extensions.get("demo_sent", now)
        self.latency_n[kind] += 1

    def mean_latency_ms(self) -> dict[str, float]:
        """Mean time to answer, ms, by kind of request (poll, telemetry, other)."""
        return {k: round(1000.0 * self.latency_s[k] / n, 1) for k, n in self.latency_n.items() if n}

    def per_s(self, window_s: float = 3.0) -> float:
        """Requests answered per wall second over the last ``window_s``."""
        cutoff = time.monotonic() - window_s
        while self._recent and self._recent[0] < cutoff:
            self._recent.popleft()
        return len(self._recent) / window_s

    @property
    def errors(self) -> int:
        """Answers of 5xx and 429, requests that got no answer, and steps that raised."""
        answered = sum(n for code, n in self.by_status.items() if code >= 500 or code == 429)
        return answered + self.outcomes["error"] + self.crashes

    def on_time_pct(self) -> float | None:
        """Share of the steps (polls) that started within one polling interval of their due
        time, %; None before the first."""
        return 100.0 * self.steps_on_time / self.steps if self.steps else None


@dataclass
class Unit:
    """Devices that report together: one vehicle, one site, or the devices of one home."""

    kind: str  # vehicle, site or home
    devices: list[DdiDevice]
    plan: VehiclePlan | SitePlan | HomePlan
    reported_s: float
    trucks: dict[str, VehiclePlan] = field(default_factory=dict)  # a home's, by device id
    #: Devices that poll :data:`SLOW_POLL_FACTOR` times less often, by id: when they poll next
    #: (simulated UNIX s).
    slow: dict[str, float] = field(default_factory=dict)


def make_units(scenario: Scenario, devices: dict[str, DdiDevice]) -> list[Unit]:
    """The scenario's plans with their simulated devices: a truck parked at a home reports
    with the home (its Powershare samples, with its link and version)."""
    t0 = scenario.start_s
    at_home = {d.device_id for h in scenario.homes for d in h.devices}
    units = [Unit("site", [devices[s.device_id]], s, t0) for s in scenario.sites]
    units += [
        Unit("vehicle", [devices[v.device_id]], v, t0)
        for v in scenario.vehicles
        if v.device_id not in at_home
    ]
    trucks = {v.device_id: v for v in scenario.vehicles if v.device_id in at_home}
    units += [
        Unit(
            "home",
            [devices[d.device_id] for d in h.devices],
            h,
            t0,
            trucks,
            slow={d.device_id: t0 for d in h.devices if d.kind in SLOW_KINDS},
        )
        for h in scenario.homes
    ]
    return units


def _step_index(link: LinkSchedule, t_s: float, size: int) -> int:
    return int(min(max((t_s - link.start_unix_s) // link.step_s, 0), size - 1))


def _home_samples(
    unit: Unit, t0_s: float, t1_s: float, step_s: float
) -> dict[str, list[Telemetry]]:
    """A home's samples: every minute while its grid is down, every ``step_s`` else, and the
    latest; a truck's with its link, RTT and version. Only the samples sent are built."""
    assert isinstance(unit.plan, HomePlan)
    home = unit.plan
    versions = {d.device_id: d.installed_version for d in unit.devices}
    ts = np.arange(math.ceil(t0_s / 60.0), math.ceil(t1_s / 60.0)) * 60.0
    keep = ts % step_s < 60.0
    if home.in_outage:
        keep |= (ts >= home.outage_start_s) & (ts < home.outage_end_s)
    if ts.size:
        keep[-1] = True
    out: dict[str, list[Telemetry]] = {}
    for device_id, kept in home.samples_at(ts[keep][-MAX_BATCH:]).items():
        truck = unit.trucks.get(device_id)
        if truck is not None:
            kept = [
                dataclasses.replace(
                    s,
                    link=truck.link.kind_at(s.ts),
                    rtt_ms=truck.rtt_at(s.ts),
                    version=versions.get(device_id),
                )
                for s in kept
            ]
        if kept:
            out[device_id] = kept
    return out


def _grid(t0_s: float, t1_s: float, step_s: float) -> list[float]:
    """Sample times after ``t0`` up to ``t1`` on a grid of ``step_s``, and ``t1`` itself."""
    first = math.floor(t0_s / step_s) * step_s + step_s
    times = [first + i * step_s for i in range(max(0, math.ceil((t1_s - first) / step_s)))]
    return [*times[-(MAX_BATCH - 1) :], t1_s]


def _samples(unit: Unit, t0_s: float, t1_s: float, step_s: float) -> dict[str, list[Telemetry]]:
    device = unit.devices[0]
    if isinstance(unit.plan, HomePlan):
        return _home_samples(unit, t0_s, t1_s, step_s)
    if isinstance(unit.plan, VehiclePlan):
        plan = unit.plan
        times = _grid(t0_s, t1_s, step_s)
        return {device.device_id: plan.telemetry(times, device.installed_version)}
    site = unit.plan
    samples = []
    for t in _grid(t0_s, t1_s, step_s):
        link = site.link.kind_at(t)
        rtt = float(site.rtt_ms[_step_index(site.link, t, site.rtt_ms.size)])
        samples.append(
            Telemetry(
                ts=t,
                lat_deg=site.lat_deg,
                lon_deg=site.lon_deg,
                link=link,
                rtt_ms=round(rtt, 3) if link != "none" and math.isfinite(rtt) else None,
                version=device.installed_version,
                state="online" if link != "none" else "no-link",
            )
        )
    return {device.device_id: samples}


class Fleet:
    """Runs the units against the server at ``clock()`` (simulated UNIX s)."""

    def __init__(
        self,
        units: Sequence[Unit],
        clock: Callable[[], float],
        *,
        poll_s: float,
        telemetry_step_s: float,
        jitter: float = 0.1,
        concurrency: int = 16,
        publisher: MqttTelemetryPublisher | None = None,
        seed: int = 7,
    ) -> None:
        self.units = list(units)
        self.clock = clock
        self.poll_s = poll_s
        self.telemetry_step_s = telemetry_step_s
        self.jitter = jitter
        self.concurrency = concurrency
        self.publisher = publisher
        self.traffic = Traffic()
        self.updated_at: dict[str, float] = {}  # device id -> simulated time it ran the release
        self._rng = random.Random(seed)
        self._due: list[tuple[float, int]] = []
        self._urgent: list[tuple[float, int]] = []  # devices in the middle of an update

    def _next_poll(self, now_s: float, factor: float = 1.0) -> float:
        jitter = 1.0 + self.jitter * self._rng.uniform(-1.0, 1.0)
        return now_s + factor * self.poll_s * jitter

    def _finished(self, task: asyncio.Task[None], index: int) -> None:
        """A step that raised (a bug, not a network error): count it and put the unit back in
        the schedule, so that it is not dropped from it for good."""
        if task.cancelled() or task.exception() is None:
            return
        self.traffic.crashes += 1
        self.traffic.last_crash = repr(task.exception())[:200]
        heapq.heappush(self._due, (self._next_poll(self.clock()), index))

    async def _report(self, client: httpx.AsyncClient, unit: Unit, now_s: float) -> None:
        samples = _samples(unit, unit.reported_s, now_s, self.telemetry_step_s)
        tokens = {d.device_id: d.token for d in unit.devices}
        for device_id, batch in samples.items():
            if not batch or device_id not in tokens:
                continue
            if self.publisher is not None:
                self.publisher.publish(device_id, batch)
                self.traffic.mqtt_messages += 1
            else:
                answer = await post_telemetry(client, device_id, tokens[device_id], batch)
                if not answer.is_success:
                    self.traffic.telemetry_refused += len(batch)
                    continue
            self.traffic.telemetry_samples += len(batch)
            self.traffic.telemetry_reports += 1
        unit.reported_s = now_s

    async def _step(self, client: httpx.AsyncClient, index: int, due_s: float) -> None:
        unit = self.units[index]
        now_s = self.clock()
        t = self.traffic
        t.lag_s = max(0.0, now_s - due_s)
        t.max_lag_s = max(t.max_lag_s, t.lag_s)
        t.steps += 1
        t.steps_on_time += t.lag_s <= self.poll_s
        outcomes = []
        for device in unit.devices:
            slow_due = unit.slow.get(device.device_id)
            if slow_due is not None:
                if now_s < slow_due:
                    continue
                unit.slow[device.device_id] = self._next_poll(now_s, SLOW_POLL_FACTOR)
            outcome = await device.step(client, now_s)
            outcomes.append(outcome)
            if outcome == "updated":
                self.updated_at[device.device_id] = now_s
        t.outcomes.update(outcomes)
        if any(o not in ("no-link", "error", "silent") for o in outcomes):
            try:
                await self._report(client, unit, now_s)
            except httpx.HTTPError:
                self.traffic.outcomes["error"] += 1
        if "downloading" in outcomes:
            heapq.heappush(self._urgent, (now_s + DOWNLOAD_RETRY_S, index))
        else:
            heapq.heappush(self._due, (self._next_poll(now_s), index))

    def _next_due(self, now_s: float) -> tuple[float, int] | None:
        """The next unit to step now: one in the middle of an update first, then the longest
        overdue."""
        for queue in (self._urgent, self._due):
            if queue and queue[0][0] <= now_s:
                return heapq.heappop(queue)
        return None

    async def run(
        self, base_url: str, stop: asyncio.Event, *, until_wall_s: float | None = None
    ) -> None:
        """Step the units as they fall due until ``stop`` is set or the wall clock reaches
        ``until_wall_s``; the first polls spread over one polling interval from now. At most
        ``concurrency`` steps run at once; a device in the middle of an update goes first."""
        start = self.clock()
        self._due = [
            (start + self._rng.uniform(0.0, self.poll_s), i) for i in range(len(self.units))
        ]
        heapq.heapify(self._due)
        running: set[asyncio.Task[None]] = set()

        # Several small pools rather than one large one: httpcore scans every connection of a
        # pool on each request, which costs more than the request itself past a few of them.
        per_pool = 2
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [self.traffic.on_request],
            "response": [self.traffic.on_response],
        }
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=base_url, timeout=30.0, limits=limits, event_hooks=hooks
                    )
                )
                for _ in range(max(1, self.concurrency // per_pool))
            ]
            while not stop.is_set():
                if until_wall_s is not None and time.time() >= until_wall_s:
                    break
                now_s = self.clock()
                while len(running) < self.concurrency and (picked := self._next_due(now_s)):
                    due_s, index = picked
                    client = clients[index % len(clients)]
                    task = asyncio.create_task(self._step(client, index, due_s))
                    running.add(task)
                    task.add_done_callback(running.discard)
                    task.add_done_callback(functools.partial(self._finished, index=index))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.02)
            stop.set()
            if running:  # steps under way finish (a few requests each); no new ones start
                _done, pending = await asyncio.wait(running, timeout=10.0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    def links_now(self, now_s: float) -> Counter[str]:
        """Vehicles by the link they have at ``now_s``."""
        return Counter(
            u.plan.link.kind_at(now_s) for u in self.units if isinstance(u.plan, VehiclePlan)
        )

    def summary(self) -> dict[str, Any]:
        """What the devices did (for the report)."""
        t = self.traffic
        return {
            "device_requests": t.requests,
            "by_status": {str(k): v for k, v in sorted(t.by_status.items())},
            "errors": t.errors,
            "step_outcomes": dict(sorted(t.outcomes.items())),
            "polls": sum(d.polls for u in self.units for d in u.devices),
            "telemetry_reports": t.telemetry_reports,
            "telemetry_samples": t.telemetry_samples,
            "telemetry_refused": t.telemetry_refused,
            "mqtt_messages": t.mqtt_messages,
            "steps": t.steps,
            "polls_on_time_pct": None if (pct := t.on_time_pct()) is None else round(pct, 2),
            "max_lag_s": round(t.max_lag_s, 1),
            "step_crashes": t.crashes,
            "last_crash": t.last_crash or None,
            "mean_latency_ms": t.mean_latency_ms(),
        }
