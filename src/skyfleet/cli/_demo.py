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
from pathlib import Path
from typing import Annotated, Any

import typer

from skyfleet.cli._client import Api
from skyfleet.cli._common import err, progress_bar
from skyfleet.cli._demo_fleet import Fleet, make_units
from skyfleet.cli._demo_run import Monitor, final_report, show_report
from skyfleet.cli._demo_seed import seed
from skyfleet.cli._demo_server import DemoServer, WorkDir, make_trust, pick_port
from skyfleet.errors import InputError
from skyfleet.server import ServerConfig, sim_clock
from skyfleet.sim import DEMO_START_S, MqttTelemetryPublisher, build_scenario
from skyfleet.telemetry import parse_mqtt_url

__all__ = ["demo"]

SCENARIO_S = 12 * 3600.0
DEFAULT_RATE = 720.0  # the 12 h scenario in a minute (a fleet the machine keeps up with)
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
    dashboard's URL with an operator token;
  - ~2,000 vehicles (hw3, hw4, some in early access) drive real routes through cellular dead
    zones and reach the server over hawkBit DDI only while they have a link; three datacenter
    sites and ~200 Powershare homes report too;
  - the holiday update rolls out: early access, then hw3 waves, then hw4 waves; a regression
    in the hw4 10% wave makes the server's judge halt it;
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


def default_rate(devices: int) -> float:
    """x720, or slower where ``devices`` polling at the longest interval would be more steps a
    second than the machine serves (a round number of simulated seconds per wall second)."""
    fits = STEPS_PER_S * MAX_POLL_S / max(1, devices)
    return DEFAULT_RATE if fits >= DEFAULT_RATE else float(max(10, int(fits // 10) * 10))


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


def demo(
    vehicles: Annotated[int, typer.Option(help="Simulated vehicles.")] = 2000,
    homes: Annotated[int, typer.Option(help="Powershare homes (each with its batteries).")] = 200,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds per wall second (default 720: 12 h a minute, slower for "
            "a fleet larger than the machine serves at that pace; with --headless, the "
            "scenario's length over --duration).",
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
    asked_rate = rate if rate is not None else (SCENARIO_S / duration if headless else None)
    port = pick_port(host, port)
    broker = _broker(mqtt, no_mqtt)
    began = time.monotonic()
    label = f"scenario: {vehicles:,} vehicles, {homes:,} homes"
    with progress_bar(100, label, enabled=not as_json) as tick:
        done = [0]

        def progress(pct: int) -> None:
            if tick is not None and pct > done[0]:
                tick(pct - done[0])
                done[0] = pct

        scenario = build_scenario(
            vehicles=vehicles,
            homes=homes,
            start_s=DEMO_START_S,
            duration_s=SCENARIO_S,
            seed=seed_value,
            progress=progress,
        )
    work = WorkDir.make(work_dir)
    server: DemoServer | None = None
    publisher: MqttTelemetryPublisher | None = None
    interrupted = False
    try:
        token = make_trust(work, scenario.start_s)
        n_devices = len(  # a truck parked at a home is one of the vehicles
            {v.device_id for v in scenario.vehicles}
            | {x.device_id for x in scenario.sites}
            | {d.device_id for h in scenario.homes for d in h.devices}
        )
        sim_rate = asked_rate or default_rate(n_devices)
        if asked_rate is None and sim_rate < DEFAULT_RATE and not as_json:
            err.print(
                f"{n_devices:,} devices: simulated time runs x{sim_rate:g}, not x{DEFAULT_RATE:g}, "
                "so that the fleet keeps up on this machine (--rate sets it)"
            )
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
            sim_start_s=scenario.start_s,
            sim_wall_s=wall0,
            sim_rate=sim_rate,
            # The limit is per wall second; simulated time makes a device poll every
            # poll_s / rate wall seconds and run an update in a few steps: allow it.
            device_rate_per_s=max(1.0, 40.0 * sim_rate / poll_s),
            device_burst=120,
        )
        server = DemoServer(config, host, port, work.path / "server.log")
        server.start()
        url = f"{server.url}/dashboard/#token={token}"
        err.print(f"dashboard: {url}", soft_wrap=True, markup=False)
        err.print(f"server pid {server.pid} in {work.path}", soft_wrap=True, markup=False)
        with Api(server.url, token) as api:
            seeded = seed(api, scenario)
        clock = sim_clock(scenario.start_s, wall0, sim_rate)
        if broker is not None:
            publisher = MqttTelemetryPublisher(broker, client_id=f"skyfleet-demo-sim-{os.getpid()}")
            publisher.connect(timeout_s=5.0)
        fleet = Fleet(
            make_units(scenario, seeded.devices),
            clock,
            poll_s=poll_s,
            telemetry_step_s=TELEMETRY_STEP_S,
            publisher=publisher,
            seed=seed_value,
        )
        monitor = Monitor(server.url, token, seeded.rollout_id, url, sim_rate, scenario, fleet)
        until = wall0 + duration if headless else None
        live = not headless and sys.stdout.isatty()
        timing = asyncio.run(_drive(fleet, monitor, server.url, sim_rate, wall0, until, live))
        interrupted = not headless
        if headless:
            report = final_report(
                monitor, seeded, scenario, timing, sim_rate, began, broker, server.pid
            )
            show_report(report, as_json)
    finally:
        if publisher is not None:
            publisher.flush(timeout_s=5.0)
            publisher.close()
        if server is not None:
            server.stop()
        work.remove()
    if interrupted:
        kept = f"; kept {work.path}" if work.keep else ""
        err.print(
            f"stopped: the fleet, then the server (pid {server.pid if server else '-'}){kept}"
        )


demo.__doc__ = _HELP


async def _drive(
    fleet: Fleet,
    monitor: Monitor,
    base_url: str,
    rate: float,
    wall0: float,
    until_wall_s: float | None,
    live: bool,
) -> dict[str, Any]:
    """Wait for simulated time to start, then run the fleet and the monitor until the end
    (headless) or a Ctrl-C (SIGINT or SIGTERM: the devices stop, nothing is cut half-way)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        ahead_s = wall0 - time.time()  # seeding done before the scenario's start: wait for it
        if ahead_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=ahead_s)
        started_wall, started_sim = time.time(), fleet.clock()
        watcher = asyncio.create_task(monitor.run(stop, live))
        await fleet.run(base_url, stop, until_wall_s=until_wall_s)
        stop.set()
        await watcher
        return {
            "late_start_s": max(0.0, (started_wall - wall0) * rate),
            "fleet_wall_s": time.time() - started_wall,
            "sim_covered_s": fleet.clock() - started_sim,
            "sim_end_s": fleet.clock(),
        }
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
