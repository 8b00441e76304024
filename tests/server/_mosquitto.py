"""A Mosquitto broker of the tests' own, on a free loopback port, that a test may restart."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: The broker already running on this machine (stock settings), if any.
SYSTEM_BROKER = ("127.0.0.1", 1883)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


#: CI sets SKYFLEET_REQUIRE_MQTT=1: there a missing broker fails the MQTT tests, never skips them.
REQUIRE_MQTT = os.environ.get("SKYFLEET_REQUIRE_MQTT") == "1"


class Mosquitto:
    """``mosquitto -c CONFIG`` with persistence in ``folder``, so that a restart keeps the
    sessions and the messages queued for them (as a broker in service is set up)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            message = "mosquitto is not installed: the MQTT tests were NOT run"
            if REQUIRE_MQTT:
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # run as root, mosquitto becomes the user 'mosquitto', who cannot write here
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            f"log_dest file {folder}/mosquitto.log\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not start: {self.log()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM: the broker writes its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text()[-2000:] if path.exists() else ""
