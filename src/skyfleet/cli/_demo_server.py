"""The demo's server: a working folder, signing keys and an admin token made the way
``skyfleet serve`` makes them, and the server itself as a child process (uvicorn with the app
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

from skyfleet.cli._serve import ADMIN_TOKEN_FILE
from skyfleet.errors import InputError, SkyfleetError
from skyfleet.server import ServerConfig
from skyfleet.server._app import CONFIG_ENV, config_to_env
from skyfleet.server._signing import check_keys
from skyfleet.store import ensure_admin_token, init_trust, open_store

__all__ = ["DemoServer", "WorkDir", "pick_port"]

_ACTOR = "skyfleet demo"


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


def make_trust(work: WorkDir, now_s: float) -> str:
    """Signing keys, roots and the first admin token in the folder, made with the same
    functions ``skyfleet serve`` uses; returns the admin token."""
    db = open_store(work.database_url)
    try:
        keys = db.home / "skyfleet-keys"
        init_trust(
            db, now_s, keys_dir=keys, root_keys_dir=db.home / "skyfleet-root-keys", actor=_ACTOR
        )
        check_keys(db, keys)
        token_file = db.home / ADMIN_TOKEN_FILE
        ensure_admin_token(db, token_file, now_s, actor=_ACTOR)
        return token_file.read_text().strip()
    finally:
        db.close()


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
                    raise SkyfleetError(f"the demo server stopped at start: {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/api/v1/health").status_code == 200:
                        return
                time.sleep(0.1)
        raise SkyfleetError(
            f"the demo server did not answer within {timeout_s:g} s: {self.log_tail()}"
        )

    def log_tail(self) -> str:
        """The last line the server logged (its error, if it failed)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "nothing logged"

    def stop(self, timeout_s: float = 15.0) -> int | None:
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
