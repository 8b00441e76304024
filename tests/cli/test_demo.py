"""``skyfleet demo`` end to end: the real server as a child process, simulated devices over
hawkBit DDI, the judge halting the regression wave, the outage ridden through; Ctrl-C stops
everything cleanly; bad input is one line and status 2."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from tests.cli._run import run
from tests.server._mosquitto import Mosquitto

from skyfleet.cli._demo_fleet import Fleet, Unit
from skyfleet.cli._demo_report import report_tables
from skyfleet.cli._demo_seed import HOLIDAY, REGRESSION_WAVE
from skyfleet.cli._demo_server import WorkDir

SMALL = ["--vehicles", "150", "--homes", "20", "--port", "0"]


def _headless(*extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "skyfleet", "demo", "--headless", "--duration", "25", *SMALL,
         "--json", *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One headless run over HTTP telemetry, shared by the checks below."""
    return _headless("--no-mqtt")


def test_early_access_passes_before_any_hw3_vehicle_gets_the_update(
    report: dict[str, Any],
) -> None:
    eap, *waves = report["rollout"]["groups"]
    assert eap["group"] == "tag:eap" and eap["passed_at"] is not None
    hw3 = [g for g in waves if g["group"].startswith("hw:hw3") and g["started"]]
    assert hw3 and all(g["started_at"] >= eap["passed_at"] for g in hw3)
    firsts = [g["first_confirmed_at"] for g in hw3 if g["first_confirmed_at"] is not None]
    assert firsts and min(firsts) > eap["passed_at"]
    assert all(g["first_update_at"] is None or g["first_update_at"] > eap["passed_at"] for g in hw3)


def test_regression_wave_halts_the_rollout_by_itself_and_later_waves_are_untouched(
    report: dict[str, Any],
) -> None:
    rollout = report["rollout"]
    assert rollout["status"] == "halted", (report["kept_up"], rollout["groups"])
    assert rollout["halted_group"] == REGRESSION_WAVE
    assert rollout["reason"].startswith(f"group {REGRESSION_WAVE}:")
    assert "error" in rollout["reason"]
    regression = rollout["groups"][REGRESSION_WAVE - 1]
    assert regression["failed"] >= 1 and regression["error_rate_pct"] > 10.0
    for later in rollout["groups"][REGRESSION_WAVE:]:
        assert not later["started"] and later["reached"] == 0 and later["devices_updated"] == 0
    for earlier in rollout["groups"][: REGRESSION_WAVE - 1]:
        assert earlier["failed"] == 0 and earlier["confirmed"] > 0


def test_homes_in_the_outage_ride_through(report: dict[str, Any]) -> None:
    outage = report["powershare"]
    assert outage["homes_in_outage"] > 0
    assert outage["source"] == "simulated by skyfleet.powershare before the run"
    assert outage["summary"]["homes_kept_powered"] == outage["homes_in_outage"]
    assert outage["homes_powered_through"] == outage["homes_in_outage"]
    assert outage["summary"]["unserved_kwh"] < 0.1
    # What the server itself stored from the outage homes' devices during the outage.
    seen = outage["server_observed"]
    assert seen["devices"] == 2 * outage["homes_in_outage"]  # a battery and a truck each
    assert seen["devices_reported_island"] == seen["devices"]
    assert seen["devices_reported_tripped"] == 0
    assert seen["island_samples"] >= seen["devices"] * 60  # a sample a minute, hours long
    assert 0.0 < seen["lowest_soc_pct"] <= 100.0
    assert 59.0 < seen["min_freq_hz"] <= seen["max_freq_hz"] < 61.0


def test_devices_reach_the_server_over_ddi_and_report_telemetry(report: dict[str, Any]) -> None:
    server, requests = report["server"], report["requests"]
    assert requests["polls"] > report["scenario"]["vehicles"]
    assert requests["errors"] == 0, requests
    assert server["seen"] > 0.8 * server["devices"]  # the server's own view: devices it heard
    assert server["by_version"].get(HOLIDAY, 0) > 0
    assert server["by_kind"]["home-battery"] == report["scenario"]["homes"]
    assert report["telemetry_via"] == "http"
    assert server["telemetry"]["stored"] == requests["telemetry_samples"] > 0
    assert report["telemetry"]["samples_stored_by_server"] == report["telemetry"]["samples_sent"]
    assert requests["telemetry_refused"] == 0 and requests["step_crashes"] == 0
    shares = report["links"]["vehicle_time_pct"]
    assert shares["satellite"] > 0 and shares["none"] > 0
    assert abs(sum(shares.values()) - 100.0) < 0.1


def test_report_says_how_well_the_fleet_kept_up_and_whether_the_story_completed(
    report: dict[str, Any],
) -> None:
    kept_up, story, rollout = report["kept_up"], report["story"], report["rollout"]
    assert 0.0 <= kept_up["polls_on_time_pct"] <= 100.0
    assert kept_up["max_lag_s"] >= 0.0 and kept_up["poll_interval_s"] > 0
    if kept_up["max_lag_s"] <= kept_up["poll_interval_s"]:
        assert kept_up["polls_on_time_pct"] == 100.0
    assert report["requests"]["steps"] >= report["scenario"]["vehicles"]
    assert story == {  # a machine too loaded to keep up shows in kept_up
        "halted_by_judge": True,
        "halted_wave": REGRESSION_WAVE,
        "regression_wave": REGRESSION_WAVE,
        "completed": True,
    }, (kept_up, rollout["status"], rollout["reason"])
    assert rollout["halted_by"] == "skyfleet"  # the server's judge, not an operator
    start_s = report["scenario"]["start_s"]
    started = [g["started_at"] for g in rollout["groups"] if g["started"]]
    assert started and all(t >= start_s for t in started)  # seeding is stamped at the start
    halted_wave = rollout["groups"][REGRESSION_WAVE - 1]
    assert halted_wave["started_at"] <= rollout["halted_at"]
    assert rollout["halted_at"] <= start_s + report["scenario"]["duration_s"]


def test_report_renders_as_tables(report: dict[str, Any]) -> None:
    console = Console(file=io.StringIO(), width=200)
    for part in report_tables(report):
        console.print(part)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "halted by the judge" in text and "polls on time" in text
    assert "simulated by skyfleet.powershare before the run" in text
    assert "seen by the server" in text


def test_headless_demo_with_telemetry_over_mqtt(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()  # skips (NOT run) without mosquitto, unless required
    try:
        mqtt = _headless("--mqtt", broker.url)
    finally:
        broker.stop()
    assert mqtt["telemetry_via"] == "mqtt"
    assert mqtt["requests"]["mqtt_messages"] > 0
    assert mqtt["server"]["telemetry"]["stored"] > 0
    assert mqtt["rollout"]["status"] == "halted"
    assert mqtt["rollout"]["halted_group"] == REGRESSION_WAVE


def _start_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``skyfleet demo ARGS --port 0 --no-mqtt`` in a child process, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "skyfleet", "demo", *args, "--port", "0", "--no-mqtt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines_until(proc: subprocess.Popen[str], pattern: str, timeout_s: float) -> re.Match[str]:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no {pattern!r} in: {''.join(seen)[-2000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def interactive() -> Iterator[subprocess.Popen[str]]:
    proc = _start_demo("--vehicles", "60", "--homes", "5")
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_ctrl_c_stops_the_fleet_and_the_server_and_removes_the_folder(
    interactive: subprocess.Popen[str],
) -> None:
    url = _lines_until(
        interactive, r"dashboard: (http://127\.0\.0\.1:(\d+))/dashboard/#token=(\S+)", 120
    )
    base, port, token = url.group(1), int(url.group(2)), url.group(3)
    server = _lines_until(interactive, r"server pid (\d+) in (\S+)", 10)
    pid, folder = int(server.group(1)), Path(server.group(2))
    assert folder.is_dir()
    assert httpx.get(f"{base}/api/v1/health", timeout=10).json()["status"] == "ok"
    whoami = httpx.get(
        f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert whoami.json()["role"] == "operator"  # enough to halt and resume, not admin
    assert whoami.json()["name"] == "demo-dashboard"
    _lines_until(interactive, r"x720", 60)  # the fleet is running
    asked = time.monotonic()
    interactive.send_signal(signal.SIGINT)
    _out, err = interactive.communicate(timeout=30)
    assert time.monotonic() - asked < 10  # the server's graceful stop is 3 s, not 15
    assert interactive.returncode == 0, err
    _stopped_cleanly(err)
    assert not _alive(pid)
    assert not folder.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def _stopped_cleanly(err: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert lines[-2:][0].startswith("stopping") and lines[-1].startswith("stopped"), err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["building", "serving"])
def test_a_stop_before_the_fleet_runs_is_clean_too(sig: int, when: str, tmp_path: Path) -> None:
    """Ctrl-C (or SIGTERM) while the scenario is built, or once the server is up and the
    seeding runs: one line, status 0, no server left, no folder left."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = _start_demo("--vehicles", "300", "--homes", "20", env=env)
    try:
        pid = None
        if when == "building":
            deadline = time.monotonic() + 30
            while not list(tmp_path.glob("skyfleet-demo-*")) and time.monotonic() < deadline:
                time.sleep(0.05)  # the folder exists: the scenario is being built
        else:
            pid = int(_lines_until(proc, r"server pid (\d+) in", 120).group(1))
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    _stopped_cleanly(err)
    assert pid is None or not _alive(pid)
    assert not list(tmp_path.glob("skyfleet-demo-*"))


def test_the_server_dying_mid_run_is_one_line_and_status_2_and_its_folder_is_kept(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = _start_demo(
        "--headless", "--duration", "60", "--vehicles", "60", "--homes", "5", env=env
    )
    try:
        found = _lines_until(proc, r"server pid (\d+) in (\S+)", 120)
        pid, folder = int(found.group(1)), Path(found.group(2))
        _lines_until(proc, r"x\d+ · \d+ req/s", 60)  # the fleet is running
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - killed < 12
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: the demo server (pid {pid}) exited with status -9: ")
    assert last.endswith(f"; its folder is kept at {folder}")
    assert (folder / "server.log").is_file() and (folder / "skyfleet.db").is_file()


def test_a_dir_folder_is_private(tmp_path: Path) -> None:
    work = WorkDir.make(tmp_path / "run")
    assert work.keep and stat.S_IMODE(work.path.stat().st_mode) == 0o700


def _refusing_broker() -> tuple[socket.socket, threading.Thread]:
    """A TCP server that answers MQTT CONNECT with CONNACK 'not authorised'."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.recv(1024)
                conn.sendall(bytes([0x20, 0x02, 0x00, 0x05]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


def test_a_broker_that_refuses_the_connection_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock, thread = _refusing_broker()
    try:
        port = sock.getsockname()[1]
        code, _, err = run(
            [
                "demo",
                "--mqtt",
                f"mqtt://127.0.0.1:{port}",
                "--port",
                "0",
                "--vehicles",
                "5",
                "--homes",
                "0",
            ],
            capsys,
        )
    finally:
        sock.close()
        thread.join(timeout=5)
    assert code == 2, err
    assert f"127.0.0.1:{port}" in err and "--no-mqtt" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vehicles", "0"], "--vehicles 0 must be at least 1"),
        (["--rate", "-1"], "--rate -1 must be above 0"),
        (["--homes", "30", "--vehicles", "10"], "as many vehicles"),
        (["--json"], "--json needs --headless"),
        (["--mqtt", "mqtt://127.0.0.1:1", "--no-mqtt"], "contradict"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["demo", *argv], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_busy_port_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run(["demo", "--port", str(port), "--no-mqtt"], capsys)
    assert code == 2
    assert f"port {port}" in err and "busy" in err and len(err.strip().splitlines()) == 1


class _CrashesOnce:
    """A device whose first step raises (a bug in the simulation, not a network error)."""

    device_id, token, installed_version, polls = "v-1", "t", None, 0

    def __init__(self) -> None:
        self.steps = 0

    async def step(self, _client: httpx.AsyncClient, _now_s: float) -> str:
        self.steps += 1
        if self.steps == 1:
            raise RuntimeError("boom")
        return "no-link"


def test_a_step_that_raises_counts_as_an_error_and_the_unit_polls_again() -> None:
    device = _CrashesOnce()
    wall0, start_s = time.time(), 1.8e9
    fleet = Fleet(
        [Unit("vehicle", [device], None, start_s)],  # type: ignore[list-item, arg-type]
        lambda: start_s + (time.time() - wall0) * 100.0,
        poll_s=10.0,  # 0.1 wall s
        telemetry_step_s=600.0,
    )
    asyncio.run(fleet.run("http://127.0.0.1:9", asyncio.Event(), until_wall_s=wall0 + 1.5))
    assert fleet.traffic.crashes == 1 and "boom" in fleet.traffic.last_crash
    assert fleet.traffic.errors >= 1
    assert device.steps >= 3  # rescheduled after the crash, not dropped
