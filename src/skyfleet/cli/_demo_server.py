"""The demo's server: a working folder, signing keys and an admin token made the way
``skyfleet serve`` makes them (and an operator token for the dashboard), and the server itself as a child process (uvicorn with the app
factory and the config in the environment, the path ``serve --workers N`` takes).

The child runs in a session of its own, so that a Ctrl-C at the terminal reaches the demo
only: the demo stops its devices first, then the server, and waits for it. On Linux the child
is also told to stop when the demo dies, so that no server is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.markup import escape

from skyfleet.cli._serve import GRACEFUL_SHUTDOWN_S, trusted_store
from skyfleet.errors import InputError, SkyfleetError
from skyfleet.server import ServerConfig
from skyfleet.server._app import CONFIG_ENV, config_to_env
from skyfleet.store import create_operator_token

__all__ = [
    "DASHBOARD_TOKEN_NAME",
    "DemoServer",
    "ServerDiedError",
    "Tokens",
    "WorkDir",
    "pick_port",
]

_ACTOR = "skyfleet demo"
#: The operator token the dashboard's URL carries (halt and resume need no more).
DASHBOARD_TOKEN_NAME = "demo-dashboard"


class ServerDiedError(SkyfleetError):
    """The demo's server child exited while the demo needed it."""


@dataclass
class WorkDir:
    """The demo's folder: a fresh temporary one (removed at exit) or ``--dir`` (kept)."""

    path: Path
    keep: bool

    @classmethod
    def make(cls, wanted: Path | None) -> WorkDir:
        """A new temporary folder, or ``wanted``, which must be new or empty."""
        if wanted is None:
            return cls(Path(tempfile.mkdtemp(prefix="skyfleet-demo-")), keep=False)
        if wanted.exists() and (not wanted.is_dir() or any(wanted.iterdir())):
            raise InputError(
                f"--dir {str(wanted)!r} must be a new or empty folder (the demo seeds a new "
                "database there)"
            )
        wanted.mkdir(parents=True, exist_ok=True)
        wanted.chmod(0o700)  # it holds signing keys and tokens
        return cls(wanted.resolve(), keep=True)

    @property
    def database_url(self) -> str:
        """The embedded SQLite store in the folder."""
        return f"sqlite:///{self.path / 'skyfleet.db'}"

    def remove(self) -> None:
        """Remove the folder unless it is to be kept."""
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


def pick_port(host: str, port: int) -> int:
    """``port`` if it is free on ``host``, a free one for 0; :class:`InputError` if taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if port == 0:
                raise InputError(f"cannot listen on {host}: {exc.strerror}") from None
            raise InputError(
                f"port {port} on {host} is busy ({exc.strerror}): stop what uses it, pass "
                "--port N, or --port 0 for any free port"
            ) from None
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Tokens:
    """The admin token (to seed the server) and the dashboard's operator token."""

    admin: str = field(repr=False)
    operator: str = field(repr=False)


def make_trust(work: WorkDir, now_s: float) -> Tokens:
    """Signing keys, roots and the first admin token in the folder, made as ``skyfleet serve``
    makes them, and an operator token for the dashboard."""
    with trusted_store(work.database_url, now_s, actor=_ACTOR) as trust:
        admin = trust.token_file.read_text().strip()
        with trust.db.begin() as conn:
            operator = create_operator_token(
                conn, now_s, name=DASHBOARD_TOKEN_NAME, role="operator", actor=_ACTOR
            )
    return Tokens(admin, operator)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class DemoServer:
    """``uvicorn skyfleet.server._app:app_from_env --factory`` as a child process."""

    config: ServerConfig
    host: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the child and wait until ``/api/v1/health`` answers."""
        env = {**os.environ, CONFIG_ENV: config_to_env(self.config)}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "skyfleet.server._app:app_from_env",
            "--factory",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            str(GRACEFUL_SHUTDOWN_S),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SkyfleetError(
                        f"the demo server stopped at start: {escape(self.log_tail())}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/api/v1/health").status_code == 200:
                        return
                time.sleep(0.1)
        raise SkyfleetError(
            f"the demo server did not answer within {timeout_s:g} s: {escape(self.log_tail())}"
        )

    def exited(self) -> int | None:
        """The child's exit status once it has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def died(self, folder: Path) -> ServerDiedError:
        """The error to raise for a child that exited under the demo (``folder`` kept)."""
        return ServerDiedError(
            f"the demo server (pid {self.pid}) exited with status {self.exited()}: "
            f"{escape(self.log_tail())}; its folder is kept at {folder}"
        )

    def log_tail(self) -> str:
        """The last line the server logged (its error, if it failed)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "nothing logged"

    def stop(self, timeout_s: float = GRACEFUL_SHUTDOWN_S + 5.0) -> int | None:
        """Terminate the child and wait for it (kill it after ``timeout_s``); its status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
