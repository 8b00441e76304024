"""Helpers for the edge relay tests: the relay as a child process (to kill it for real), and
reading what the central server and the relay did."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from skyfleet.sim import DdiDevice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something true; that value, or a failure naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def relay_status(relay_url: str) -> dict[str, Any]:
    answer = httpx.get(f"{relay_url}/relay/status", timeout=10)
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status


def prefetched(relay_url: str) -> dict[str, Any] | None:
    """The relay's status once it holds at least one artifact and fetches nothing more."""
    status = relay_status(relay_url)
    return status if status["cached_blobs"] >= 1 and status["prefetching"] == 0 else None


def drained(relay_url: str) -> dict[str, Any] | None:
    """The relay's status once its queue is empty and its uplink up."""
    status = relay_status(relay_url)
    return status if status["queue_depth"] == 0 and status["uplink"] == "up" else None


def step(relay_url: str, device: DdiDevice) -> str:
    """One poll cycle of ``device`` through the relay."""

    async def run() -> str:
        async with httpx.AsyncClient(base_url=relay_url, timeout=15) as client:
            return await device.step(client)

    return asyncio.run(run())


def transitions(api: httpx.Client, action_id: int) -> list[tuple[str, str]]:
    """The action's state transitions in the central server's audit log, oldest first."""
    entries = api.get("/api/v1/audit", params={"limit": 10_000}).json()["entries"]
    return [
        (e["from_state"], e["to_state"])
        for e in reversed(entries)
        if e["event"] == "action.state" and e["action_id"] == action_id
    ]


def action(api: httpx.Client, rollout_id: int) -> dict[str, Any]:
    """The rollout's one action."""
    rows = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


class RelayProcess:
    """``skyfleet serve --upstream URL`` as a child process, so that it can be killed for real."""

    def __init__(self, upstream_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.args = [
            sys.executable,
            "-m",
            "skyfleet",
            "serve",
            "--upstream",
            upstream_url,
            "--port",
            str(self.port),
            "--database-url",
            f"sqlite:///{workdir / 'relay.db'}",
            "--artifacts-dir",
            str(workdir / "relay-artifacts"),
            "--uplink-retry",
            "300ms",
            "--log-level",
            "warning",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "relay.log").open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.workdir, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/relay/status", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError((self.workdir / "relay.log").read_text())

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
