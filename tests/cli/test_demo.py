"""``skyfleet demo`` end to end: the real server as a child process, simulated devices over
hawkBit DDI, the judge halting the regression wave, the outage ridden through; Ctrl-C stops
everything cleanly; bad input is one line and status 2."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.cli._run import run
from tests.server._mosquitto import Mosquitto

from skyfleet.cli._demo_seed import HOLIDAY, REGRESSION_WAVE

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
    hw3 = [g for g in waves if g["group"].startswith("hw:hw3")]
    assert hw3 and all(g["started_at"] >= eap["passed_at"] for g in hw3)
    firsts = [g["first_confirmed_at"] for g in hw3 if g["first_confirmed_at"] is not None]
    assert firsts and min(firsts) > eap["passed_at"]
    assert all(g["first_update_at"] is None or g["first_update_at"] > eap["passed_at"] for g in hw3)


def test_regression_wave_halts_the_rollout_by_itself_and_later_waves_are_untouched(
    report: dict[str, Any],
) -> None:
    rollout = report["rollout"]
    assert rollout["status"] == "halted"
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
    assert outage["summary"]["homes_kept_powered"] == outage["homes_in_outage"]
    assert outage["homes_powered_through"] == outage["homes_in_outage"]
    assert outage["summary"]["unserved_kwh"] < 0.1


def test_devices_reach_the_server_over_ddi_and_report_telemetry(report: dict[str, Any]) -> None:
    server, requests = report["server"], report["requests"]
    assert requests["polls"] > report["scenario"]["vehicles"]
    assert requests["errors"] == 0
    assert server["seen"] > 0.8 * server["devices"]  # the server's own view: devices it heard
    assert server["by_version"].get(HOLIDAY, 0) > 0
    assert server["by_kind"]["home-battery"] == report["scenario"]["homes"]
    assert report["telemetry_via"] == "http"
    assert server["telemetry"]["stored"] == requests["telemetry_samples"] > 0
    shares = report["links"]["vehicle_time_pct"]
    assert shares["satellite"] > 0 and shares["none"] > 0
    assert abs(sum(shares.values()) - 100.0) < 0.1
    assert report["effective_rate"] > 0.8 * report["rate"]


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyfleet", "demo", "--vehicles", "60", "--homes", "5",
         "--port", "0", "--no-mqtt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
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
    assert whoami.json()["role"] == "admin"
    _lines_until(interactive, r"x720", 60)  # the fleet is running
    interactive.send_signal(signal.SIGINT)
    _out, err = interactive.communicate(timeout=30)
    assert interactive.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err.strip().splitlines()[-1]
    assert not _alive(pid)
    assert not folder.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


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
