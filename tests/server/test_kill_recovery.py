"""kill -9 the server in the middle of the holiday rollout, restart it, and lose nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from tests.conftest import GATEWAY_TOKEN
from tests.server._fleet import HOLIDAY, register_fleet, release, rollout, status

from skyfleet.sim import DdiDevice, run_rounds

WAVES = ["tag:eap", "hw:hw3 10%", "hw:hw3", "hw:hw4"]
OPTIONS = {"success_pct": 95.0, "error_pct": 10.0, "min_finished": 5, "timeout_s": 600.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``skyfleet serve`` as a child process (so that it can be killed for real)."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "skyfleet",
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            database_url,
            "--artifacts-dir",
            str(workdir / "artifacts"),
            "--gateway-token",
            GATEWAY_TOKEN,
            "--poll",
            "1s",
            "--log-level",
            "warning",
        ]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.workdir, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError((self.workdir / "serve.log").read_text())

    def admin(self) -> dict[str, str]:
        """The operator header with the admin token the first start wrote (mode 600)."""
        token_file = self.workdir / "skyfleet-admin.token"
        assert token_file.stat().st_mode & 0o077 == 0, "the admin token is readable by others"
        return {"Authorization": f"Bearer {token_file.read_text().strip()}"}

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> ServerProcess:
    process = ServerProcess(database_url, tmp_path)
    process.start()
    yield process  # type: ignore[misc]
    process.stop()


def _round(url: str, devices: list[DdiDevice]) -> Counter[str]:
    return asyncio.run(run_rounds(url, devices, 1, concurrency=16))[0]


def test_kill_9_mid_rollout_loses_and_duplicates_nothing(served: ServerProcess) -> None:
    with httpx.Client(base_url=served.url, timeout=30, headers=served.admin()) as api:
        devices = register_fleet(api, hw3=150, hw4=60, eap_each=5)
        release(api, HOLIDAY, ["hw3", "hw4"])
        rollout_id = rollout(api, HOLIDAY, WAVES, **OPTIONS)
        _round(served.url, devices)  # early access updates
        time.sleep(1.5)
        _round(served.url, devices)  # hw3 10% wave

    # Kill the server while a round is in flight: some feedback is cut off mid-request.
    outcome: dict[str, Counter[str]] = {}
    worker = threading.Thread(target=lambda: outcome.update(r=_round(served.url, devices)))
    time.sleep(1.5)
    worker.start()
    time.sleep(0.4)
    served.kill9()
    worker.join()
    assert outcome["r"]["error"] > 0, "the kill should have interrupted some devices"
    served.start()

    with httpx.Client(base_url=served.url, timeout=30, headers=served.admin()) as api:
        for _ in range(12):
            if status(api, rollout_id)["status"] == "complete" and all(
                not d.pending for d in devices
            ):
                break
            _round(served.url, devices)
            time.sleep(1.2)
        _round(served.url, devices)
        final = status(api, rollout_id)
        assert final["status"] == "complete", final
        actions = api.get(
            f"/api/v1/rollouts/{rollout_id}/actions", params={"limit": 100000}
        ).json()["actions"]
        audit = []
        before = None
        while True:
            params = {"rollout_id": rollout_id, "limit": 10000}
            if before is not None:
                params["before_id"] = before
            page = api.get("/api/v1/audit", params=params).json()["entries"]
            if not page:
                break
            audit.extend(page)
            before = page[-1]["id"]
        device_rows = {
            d.device_id: api.get(f"/api/v1/devices/{d.device_id}").json() for d in devices
        }

    by_device = Counter(a["device_id"] for a in actions)
    assert max(by_device.values()) == 1  # no device has two actions in one rollout
    sims = {d.device_id: d for d in devices}
    for action in actions:  # every device ends in the state it reported
        sim = sims[action["device_id"]]
        assert sim.reported.get(action["id"]) == action["state"], action
        assert device_rows[sim.device_id]["installed_version"] == sim.installed_version
    transitions = Counter(
        (e["action_id"], e["from_state"], e["to_state"])
        for e in audit
        if e["event"] == "action.state"
    )
    assert transitions and max(transitions.values()) == 1  # nothing applied twice
