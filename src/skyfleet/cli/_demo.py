"""``skyfleet demo``: the whole system on one screen, for real, in about a minute, offline.

It builds the scenario (Starlink, three modular datacenter sites, about 2,000 vehicles on real
routes through cellular dead zones, about 200 Powershare homes and a grid outage), starts the
server on the embedded SQLite store in a working folder, seeds it through the operator API
(devices, artifacts, the holiday release and its health-gated rollout) and runs the fleet on
simulated time: every device speaks hawkBit DDI over HTTP, telemetry goes over MQTT when a
broker answers, else over HTTP. One wave has a regression; the server's judge halts the rollout
by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from skyfleet.cli._client import Api
from skyfleet.cli._common import err, progress_bar
from skyfleet.cli._demo_fleet import TELEMETRY_HISTORY, Fleet, make_units
from skyfleet.cli._demo_run import Monitor, final_report, show_report
from skyfleet.cli._demo_seed import seed
from skyfleet.cli._demo_server import DemoServer, WorkDir, make_trust, pick_port
from skyfleet.errors import InputError
from skyfleet.server import ServerConfig, sim_clock
from skyfleet.sim import (
    DEMO_START_S,
    MqttTelemetryPublisher,
    Scenario,
    build_scenario,
    check_scenario,
)
from skyfleet.telemetry import parse_mqtt_url

__all__ = ["demo"]

SCENARIO_S = 12 * 3600.0
#: The 12 h scenario in a minute. Where the machine cannot serve every poll on time, polls come
#: late (the summary says by how much) rather than the clock slowing down.
DEFAULT_RATE = 720.0
#: The devices' polling interval (and the server's), simulated seconds: as short as the steps
#: the machine serves allow (a wave takes about one interval), between these bounds.
MIN_POLL_S, MAX_POLL_S = 1800.0, 7200.0
#: Device steps (a poll and its telemetry) a second that the server and the simulated fleet
#: keep up with on two shared cores (measured: 150-250 requests/s in all).
STEPS_PER_S = 80.0
#: Simulated seconds between a vehicle's (and a site's) telemetry samples; they go in batches.
TELEMETRY_STEP_S = 600.0
LOCAL_BROKER = "mqtt://127.0.0.1:1883"

_HELP = """Run the whole system for real, offline, in about a minute: the server, a fleet on
simulated time, a staged rollout that halts itself, and a grid outage.

\b
What happens (12 simulated hours, x720 by default):
  - the server starts on SQLite in a temporary folder (--dir keeps one) and prints the
    dashboard's URL with an operator token (enough to halt and resume; the admin token
    that seeds the server stays in the folder);
  - ~2,000 vehicles (hw3, hw4, some in early access) drive real routes through cellular dead
    zones and reach the server over hawkBit DDI only while they have a link; three datacenter
    sites and ~200 Powershare homes report too;
  - the holiday update rolls out: early access, then a tenth of hw3, then of hw4, then the
    rest; a regression in the hw4 tenth makes the server's judge halt it (resume it from the
    dashboard to see the large waves);
  - a grid outage hits a region: its Powershare homes island and stay powered.

\b
Examples:
  skyfleet demo                                   # live summary; Ctrl-C stops
  skyfleet demo --headless --duration 60 --json   # run it through, one JSON report
  skyfleet demo --vehicles 300 --homes 40 --port 0 --dir ./demo-run
  skyfleet demo --mqtt mqtt://broker.local:1883   # telemetry over that broker
"""


def _broker(mqtt: str | None, no_mqtt: bool) -> str | None:
    """The MQTT broker to use: --mqtt (must answer), none, or the local one if it answers."""
    if no_mqtt:
        if mqtt is not None:
            raise InputError("--mqtt and --no-mqtt contradict each other: pass one")
        return None
    url = mqtt or LOCAL_BROKER
    broker = parse_mqtt_url(url)  # a bad URL: one line, exit 2
    try:
        socket.create_connection((broker.host, broker.port), timeout=0.5).close()
    except OSError as exc:
        if mqtt is not None:
            raise InputError(
                f"no MQTT broker answers at {broker.host}:{broker.port} ({exc.__class__.__name__}): "
                "start it, or pass --no-mqtt to send telemetry over HTTP"
            ) from None
        return None
    return url


def poll_interval_s(devices: int, rate: float) -> float:
    """The polling interval, simulated s, for ``devices`` at ``rate`` (simulated s per wall s)."""
    return min(MAX_POLL_S, max(MIN_POLL_S, devices * rate / STEPS_PER_S))


def _check(vehicles: int, homes: int, rate: float | None, duration: float) -> None:
    if vehicles < 1:
        raise InputError(f"--vehicles {vehicles} must be at least 1")
    if homes < 0:
        raise InputError(f"--homes {homes} must be 0 or more")
    if rate is not None and not (rate > 0 and rate <= 1e6):
        raise InputError(
            f"--rate {rate:g} must be above 0 and at most 1,000,000 (720: 12 h a minute)"
        )
    if not (duration > 0 and duration <= 86400):
        raise InputError(f"--duration {duration:g} must be above 0 and at most 86,400 s")
    check_scenario(vehicles, homes, SCENARIO_S)  # what the scenario refuses, before any work


def demo(
    vehicles: Annotated[int, typer.Option(help="Simulated vehicles.")] = 2000,
    homes: Annotated[int, typer.Option(help="Powershare homes (each with its batteries).")] = 200,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds per wall second (default 720: 12 h a minute; with "
            "--headless, the scenario's length over --duration). Where the machine cannot "
            "serve every poll on time, polls come late and the summary says by how much.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Server port (0: any free one).")
    ] = 8000,
    host: Annotated[str, typer.Option(help="Address the server listens on.")] = "127.0.0.1",
    work_dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the server's folder (database, keys, token) here."),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help=f"Telemetry over this MQTT broker (default: {LOCAL_BROKER} if it answers)."
        ),
    ] = None,
    no_mqtt: Annotated[bool, typer.Option("--no-mqtt", help="Telemetry over HTTP only.")] = False,
    seed_value: Annotated[int, typer.Option("--seed", help="Scenario seed.")] = 7,
    headless: Annotated[
        bool,
        typer.Option("--headless", help="No live panel: run for --duration, then print a report."),
    ] = False,
    duration: Annotated[float, typer.Option(help="With --headless: wall seconds to run.")] = 60.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --headless: one JSON object.")
    ] = False,
) -> None:
    _check(vehicles, homes, rate, duration)
    if as_json and not headless:
        raise InputError("--json needs --headless (the live panel is not JSON)")
    run = _Run()
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    _interrupt_on_sigterm()
    try:
        try:
            run.go(
                vehicles=vehicles,
                homes=homes,
                rate=rate if rate is not None else (SCENARIO_S / duration if headless else None),
                port=port,
                host=host,
                work_dir=work_dir,
                mqtt=mqtt,
                no_mqtt=no_mqtt,
                seed_value=seed_value,
                until_s=duration if headless else None,
                as_json=as_json,
            )
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM in a synchronous phase
            _ignore_interrupts()
            run.stopping()
        except Exception:
            _ignore_interrupts()
            if run.server is not None and run.work is not None and run.server.exited() is not None:
                run.work.keep = True  # its server.log says why
                raise run.server.died(run.work.path) from None
            raise
        finally:
            _ignore_interrupts()
            run.close()
    finally:
        for sig, handler in zip((signal.SIGINT, signal.SIGTERM), handlers, strict=True):
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    if run.interrupted:
        kept = f"; kept {run.work.path}" if run.work is not None and run.work.keep else ""
        pid = run.server.pid if run.server is not None and run.server.proc else "-"
        err.print(f"stopped: the fleet, then the server (pid {pid}){kept}", soft_wrap=True)


demo.__doc__ = _HELP


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops the demo as Ctrl-C does (asyncio puts the default back after a run)."""
    signal.signal(signal.SIGTERM, _interrupt)


def _ignore_interrupts() -> None:
    """While the demo cleans up: a second Ctrl-C (or SIGTERM) must not cut it half-way."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _connect(broker: str, explicit: bool) -> MqttTelemetryPublisher | None:
    """A publisher connected to ``broker``; a broker that answers TCP but refuses the MQTT
    connection (credentials, not a broker): one-line error for ``--mqtt``, None (HTTP) else."""
    publisher = MqttTelemetryPublisher(broker, client_id=f"skyfleet-demo-sim-{os.getpid()}")
    try:
        return publisher.connect(timeout_s=5.0)
    except (OSError, TimeoutError) as exc:
        where = parse_mqtt_url(broker)
        if explicit:
            raise InputError(
                f"the MQTT broker at {where.host}:{where.port} did not accept a connection "
                f"({exc.__class__.__name__}: check its address and credentials), or pass "
                "--no-mqtt to send telemetry over HTTP"
            ) from None
        err.print(
            f"{where.host}:{where.port} answers but not as an MQTT broker that lets the demo "
            "in: telemetry goes over HTTP",
            soft_wrap=True,
            markup=False,
        )
        return None


@dataclass
class _Run:
    """One run of the demo: what it started, so that it stops all of it at any point."""

    work: WorkDir | None = None
    server: DemoServer | None = None
    publisher: MqttTelemetryPublisher | None = None
    interrupted: bool = False

    def stopping(self) -> None:
        """Say at once that the demo is stopping (once)."""
        if not self.interrupted:
            self.interrupted = True
            err.print("stopping…")

    def close(self) -> None:
        """Stop the publisher and the server; remove the folder unless kept."""
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                self.publisher.close()
        if self.server is not None:
            self.server.stop()
        if self.work is not None:
            self.work.remove()

    def go(
        self,
        *,
        vehicles: int,
        homes: int,
        rate: float | None,
        port: int,
        host: str,
        work_dir: Path | None,
        mqtt: str | None,
        no_mqtt: bool,
        seed_value: int,
        until_s: float | None,
        as_json: bool,
    ) -> None:
        """Build, start, seed, run; with ``until_s`` (headless) the report at the end."""
        began = time.monotonic()
        port = pick_port(host, port)
        broker = _broker(mqtt, no_mqtt)
        if broker is not None:
            self.publisher = _connect(broker, explicit=mqtt is not None)
            broker = broker if self.publisher is not None else None
        self.work = work = WorkDir.make(work_dir)
        scenario = _build(vehicles, homes, seed_value, progress=not as_json)
        tokens = make_trust(work, scenario.start_s)
        n_devices = len(  # a truck parked at a home is one of the vehicles
            {v.device_id for v in scenario.vehicles}
            | {x.device_id for x in scenario.sites}
            | {d.device_id for h in scenario.homes for d in h.devices}
        )
        sim_rate = rate or DEFAULT_RATE
        poll_s = poll_interval_s(n_devices, sim_rate)
        lead_s = 4.0 + 0.003 * n_devices  # server start and seed, before simulated time starts
        wall0 = time.time() + lead_s
        config = ServerConfig(
            database_url=work.database_url,
            poll_sleep_s=poll_s,
            freeze_gc=True,
            mqtt_url=broker,
            mqtt_client_id=f"skyfleet-demo-{os.getpid()}",
            mqtt_session_expiry_s=60.0,
            telemetry_history=TELEMETRY_HISTORY,
            sim_start_s=scenario.start_s,
            sim_wall_s=wall0,
            sim_rate=sim_rate,
            # The limit is per wall second; simulated time makes a device poll every
            # poll_s / rate wall seconds and run an update in a few steps: allow it.
            device_rate_per_s=max(1.0, 40.0 * sim_rate / poll_s),
            device_burst=120,
        )
        self.server = server = DemoServer(config, host, port, work.path / "server.log")
        server.start()
        url = f"{server.url}/dashboard/#token={tokens.operator}"
        err.print(f"dashboard: {url}", soft_wrap=True, markup=False)
        err.print(f"server pid {server.pid} in {work.path}", soft_wrap=True, markup=False)
        with Api(server.url, tokens.admin) as api:
            seeded = seed(api, scenario, rollout_seed=f"holiday-{seed_value}")
        clock = sim_clock(scenario.start_s, wall0, sim_rate)
        fleet = Fleet(
            make_units(scenario, seeded.devices),
            clock,
            poll_s=poll_s,
            telemetry_step_s=TELEMETRY_STEP_S,
            publisher=self.publisher,
            seed=seed_value,
        )
        monitor = Monitor(
            server.url, tokens.operator, seeded.rollout_id, url, sim_rate, scenario, fleet
        )
        until = wall0 + until_s if until_s is not None else None
        live = until_s is None and sys.stdout.isatty()
        timing = asyncio.run(_drive(self, fleet, monitor, sim_rate, wall0, until, live))
        _interrupt_on_sigterm()
        if server.exited() is not None:
            raise server.died(work.path)
        if self.interrupted or until_s is None:
            self.interrupted = True
            return
        undelivered = None
        if self.publisher is not None:
            self.publisher.flush(timeout_s=5.0)
            undelivered = self.publisher.pending
        report = final_report(
            monitor, seeded, scenario, timing, sim_rate, began, broker, server.pid, undelivered
        )
        show_report(report, as_json)


def _build(vehicles: int, homes: int, seed_value: int, *, progress: bool) -> Scenario:
    label = f"scenario: {vehicles:,} vehicles, {homes:,} homes"
    with progress_bar(100, label, enabled=progress) as tick:
        done = [0]

        def step(pct: int) -> None:
            if tick is not None and pct > done[0]:
                tick(pct - done[0])
                done[0] = pct

        return build_scenario(
            vehicles=vehicles,
            homes=homes,
            start_s=DEMO_START_S,
            duration_s=SCENARIO_S,
            seed=seed_value,
            progress=step,
        )


async def _drive(
    run: _Run,
    fleet: Fleet,
    monitor: Monitor,
    rate: float,
    wall0: float,
    until_wall_s: float | None,
    live: bool,
) -> dict[str, Any]:
    """Wait for simulated time to start, then run the fleet and the monitor until the end
    (headless), a Ctrl-C (SIGINT or SIGTERM: the devices stop, nothing is cut half-way) or the
    server's exit (checked every 0.5 s)."""
    assert run.server is not None
    server = run.server
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        run.stopping()
        stop.set()

    async def watch_server() -> None:
        while not stop.is_set():
            if server.exited() is not None:
                stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)
    watchdog = asyncio.create_task(watch_server())
    try:
        ahead_s = wall0 - time.time()  # seeding done before the scenario's start: wait for it
        if ahead_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=ahead_s)
        started_wall, started_sim = time.time(), fleet.clock()
        watcher = asyncio.create_task(monitor.run(stop, live))
        if not stop.is_set():
            await fleet.run(server.url, stop, until_wall_s=until_wall_s)
        stop.set()
        await watcher
        return {
            "late_start_s": max(0.0, (started_wall - wall0) * rate),
            "fleet_wall_s": time.time() - started_wall,
            "sim_covered_s": fleet.clock() - started_sim,
            "sim_end_s": fleet.clock(),
        }
    finally:
        stop.set()
        await watchdog
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
