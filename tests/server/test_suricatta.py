"""SWUpdate's suricatta, a real hawkBit client, against skyfleet's DDI server on loopback.

Each test registers a device through the operator API, ships a signed ``.swu`` bundle to it in a
rollout, and runs ``swupdate -u`` (suricatta) as that device. What the device did is read back
from the server: the action's state, the device's installed version and the audit log. A small
recording TCP proxy between suricatta and the server shows the HTTP exchanges, and can cut or
slow down the artifact download.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN, LiveServer
from tests.server._suricatta import (
    SWUPDATE,
    SWUPDATE_SKIP_REASON,
    SuricattaProcess,
    build_swu,
    start_suricatta,
    stop_suricatta,
    wait_until,
)

from skyfleet.server import ServerConfig, create_app
from skyfleet.store import Store

pytestmark = pytest.mark.skipif(SWUPDATE is None, reason=SWUPDATE_SKIP_REASON)

OLD = "2025.38.1"
VERSION = "2025.44.25.5"
TENANT = "DEFAULT"
#: Action states a suricatta install passes through, in order (some may be skipped).
PROGRESS = ("retrieved", "downloading", "downloaded", "installing", "rebooting")


# --- a server that tells devices to poll every second ----------------------------------------


@pytest.fixture
def ddi(db: Store) -> Iterator[LiveServer]:
    """skyfleet on loopback, telling devices to poll every second (suricatta obeys)."""
    config = ServerConfig(
        poll_sleep_s=1.0, poll_jitter=0.0, sweep_interval_s=0.05, touch_flush_s=0.05
    )
    with LiveServer(create_app(config, db=db)) as live:
        yield live


@pytest.fixture
def ops(ddi: LiveServer) -> Iterator[httpx.Client]:
    """The operator API of that server."""
    with httpx.Client(base_url=ddi.url, timeout=30.0, headers=ADMIN) as client:
        yield client


def _register(ops: httpx.Client, device_id: str) -> str:
    """Register one hw3 vehicle running OLD; its target token."""
    answer = ops.post(
        "/api/v1/devices",
        json={"devices": [{"id": device_id, "hw": "hw3", "installed_version": OLD}]},
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["devices"][0]["token"]
    return token


def _ship(ops: httpx.Client, bundle: Path, device_id: str) -> int:
    """Upload ``bundle`` as update.swu, release it as VERSION and start a rollout to one device."""
    blob = bundle.read_bytes()
    uploaded = ops.post(
        "/api/v1/artifacts",
        params={"filename": "update.swu", "sha256": hashlib.sha256(blob).hexdigest()},
        content=blob,
    )
    assert uploaded.status_code == 201, uploaded.text
    released = ops.post(
        "/api/v1/releases",
        json={"version": VERSION, "artifacts": {"hw3": [uploaded.json()["id"]]}},
    )
    assert released.status_code == 201, released.text
    created = ops.post(
        "/api/v1/rollouts",
        json={"release": VERSION, "groups": [{"group": f"id:{device_id}", "min_finished": 1}]},
    )
    assert created.status_code == 201, created.text
    rollout_id = int(created.json()["id"])
    started = ops.post(f"/api/v1/rollouts/{rollout_id}/start")
    assert started.status_code == 200, started.text
    return rollout_id


def _action(ops: httpx.Client, rollout_id: int) -> dict[str, Any]:
    """The rollout's only action."""
    answer = ops.get(f"/api/v1/rollouts/{rollout_id}/actions")
    answer.raise_for_status()
    (action,) = answer.json()["actions"]
    result: dict[str, Any] = action
    return result


def _state(ops: httpx.Client, rollout_id: int) -> str:
    return str(_action(ops, rollout_id)["state"])


def _transitions(ops: httpx.Client, device_id: str) -> list[str]:
    """The device's action states from the audit log, oldest first."""
    answer = ops.get("/api/v1/audit", params={"device_id": device_id, "limit": 1000})
    answer.raise_for_status()
    entries = [e for e in answer.json()["entries"] if e["event"] == "action.state"]
    return [str(e["to_state"]) for e in reversed(entries)]


def _device(ops: httpx.Client, device_id: str) -> dict[str, Any]:
    answer = ops.get(f"/api/v1/devices/{device_id}")
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def _bundle(tmp_path: Path, payload: bytes) -> tuple[Path, Path]:
    """A signed bundle of VERSION that installs ``payload``; (bundle, where it installs)."""
    target = tmp_path / "device-root" / "opt" / "firmware.bin"
    swu = build_swu(tmp_path / "bundle.swu", version=VERSION, payload=payload, install_path=target)
    return swu, target


def _payload(size: int) -> bytes:
    """``size`` bytes of deterministic, incompressible-looking data."""
    out = bytearray()
    block = hashlib.sha256(b"skyfleet").digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _installed(target: Path, payload: bytes) -> Callable[[], bool]:
    return lambda: target.is_file() and target.read_bytes() == payload


def _wait(
    what: str,
    predicate: Callable[[], object],
    proc: SuricattaProcess,
    timeout: float,
    proxy: RecordingProxy | None = None,
) -> None:
    """Wait for ``predicate``; on timeout fail with the end of suricatta's log (and the proxy's)."""
    if not wait_until(predicate, timeout=timeout, interval=0.1):
        seen = "" if proxy is None else "\n".join(map(str, proxy.exchanges))
        pytest.fail(
            f"timed out waiting for {what}; suricatta's log:\n{proc.log_text()[-6000:]}\n"
            f"HTTP exchanges:\n{seen}"
        )


def _wait_state(
    ops: httpx.Client,
    rollout_id: int,
    state: str,
    proc: SuricattaProcess,
    timeout: float,
    proxy: RecordingProxy | None = None,
) -> None:
    """Wait until the rollout's only action is in ``state``."""

    def reached() -> bool:
        return _state(ops, rollout_id) == state

    _wait(f"the action to be {state}", reached, proc, timeout, proxy)


@contextlib.contextmanager
def _suricatta(**kwargs: Any) -> Iterator[SuricattaProcess]:
    """Run suricatta for the block; always stopped (by its process group) afterwards."""
    proc = start_suricatta(tenant=TENANT, **kwargs)
    try:
        yield proc
    finally:
        stop_suricatta(proc)


# --- a recording loopback proxy ----------------------------------------------------------------

_REQUEST_RE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n(.*?)\r\n\r\n", re.S)
_STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@dataclass
class Exchange:
    """One HTTP request seen by the proxy and what came back.

    ``status`` is None until the final status line arrived; ``head_bytes`` is the size of the
    response head (status line and headers) and ``response_bytes`` what was passed on in all.
    """

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    at: float = field(default_factory=time.monotonic)
    status: int | None = None
    head_bytes: int = 0
    response_bytes: int = 0
    cut: bool = False


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    pending: bytes = b""
    body_left: int = 0
    current: Exchange | None = None
    response_head: bytes = b""
    artifact: bool = False


@dataclass
class RecordingProxy:
    """A loopback TCP proxy in front of the server that records every HTTP exchange.

    ``cut_after``: the first artifact download (a GET of ``/artifacts/update.swu``) is cut
    after that many response bytes (headers included). ``trickle_s``: artifact downloads are
    forwarded 4 KiB at a time with that many seconds between pieces. Requests are parsed from
    the client's byte stream (curl does not pipeline), so request bodies never look like one.
    """

    upstream_port: int
    cut_after: int | None = None
    trickle_s: float | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _cut_done: bool = False

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)  # accept() wakes up to notice the proxy closing
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RecordingProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closing.set()
        self._threads[0].join(timeout=5)  # the accept loop: no new connections from now on
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def artifact_gets(self) -> list[Exchange]:
        """The artifact downloads seen so far (GETs of the bundle, not its MD5SUM)."""
        with self._lock:
            return [e for e in self.exchanges if e.method == "GET" and _is_artifact(e.path)]

    def statuses(self, path_suffix: str, method: str = "GET") -> list[int | None]:
        """The answers to requests whose path (without query) ends with ``path_suffix``."""
        with self._lock:
            return [
                e.status
                for e in self.exchanges
                if e.method == method and e.path.split("?")[0].endswith(path_suffix)
            ]

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            conn = _Conn(client, upstream)
            self._spawn(self._pump_requests, conn)
            self._spawn(self._pump_responses, conn)

    def _pump_requests(self, conn: _Conn) -> None:
        """Client to server: parse request heads, then forward."""
        while True:
            try:
                data = conn.client.recv(65536)
            except OSError:
                data = b""
            if not data:
                _shutdown_write(conn.upstream)
                return
            self._parse_requests(conn, data)
            try:
                conn.upstream.sendall(data)
            except OSError:
                _close(conn.client)
                return

    def _parse_requests(self, conn: _Conn, data: bytes) -> None:
        """Note each request head in the client's bytes; skip request bodies."""
        while data:
            if conn.body_left:
                skipped = min(conn.body_left, len(data))
                conn.body_left -= skipped
                data = data[skipped:]
                continue
            conn.pending += data
            data = b""
            match = _REQUEST_RE.match(conn.pending)
            if match is None:
                return
            data, conn.pending = conn.pending[match.end() :], b""
            headers = {}
            for line in match.group(3).decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            exchange = Exchange(match.group(1).decode(), match.group(2).decode(), headers)
            with self._lock:
                self.exchanges.append(exchange)
            conn.current, conn.response_head = exchange, b""
            conn.artifact = exchange.method == "GET" and _is_artifact(exchange.path)
            conn.body_left = int(headers.get("content-length", "0") or 0)

    def _pump_responses(self, conn: _Conn) -> None:
        """Server to client: note statuses, cut or slow artifact downloads, forward."""
        while True:
            try:
                data = conn.upstream.recv(4096 if self.trickle_s else 65536)
            except OSError:
                data = b""
            if not data:
                _shutdown_write(conn.client)
                return
            exchange = conn.current
            if exchange is not None:
                if exchange.status is None and len(conn.response_head) < 4096:
                    conn.response_head += data[:4096]
                    self._note_status(exchange, conn.response_head)
                if conn.artifact:
                    with self._lock:
                        cut = self.cut_after is not None and not self._cut_done
                        if cut and exchange.response_bytes + len(data) >= self.cut_after:
                            self._cut_done = exchange.cut = True
                            data = data[: self.cut_after - exchange.response_bytes]
                    if exchange.cut:
                        exchange.response_bytes += len(data)
                        with contextlib.suppress(OSError):
                            conn.client.sendall(data)
                        _close(conn.client)
                        _close(conn.upstream)
                        return
                    if self.trickle_s and self._closing.wait(self.trickle_s):
                        return
                exchange.response_bytes += len(data)
            try:
                conn.client.sendall(data)
            except OSError:
                _close(conn.upstream)
                return

    @staticmethod
    def _note_status(exchange: Exchange, head: bytes) -> None:
        """Set the exchange's final status and head size once its head is complete."""
        offset = 0
        while (match := _STATUS_RE.match(head, offset)) is not None:
            end = head.find(b"\r\n\r\n", offset)
            if end < 0:
                return
            if not match.group(1).startswith(b"1"):  # not an interim "100 Continue"
                exchange.status = int(match.group(1))
                exchange.head_bytes = end + 4
                return
            offset = end + 4


def _is_artifact(path: str) -> bool:
    return path.split("?")[0].endswith("/artifacts/update.swu")


def _shutdown_write(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


# --- the tests -----------------------------------------------------------------------------------


def test_real_suricatta_installs_bundle_and_confirms_after_reboot(
    ddi: LiveServer, ops: httpx.Client, tmp_path: Path
) -> None:
    device_id = "car-suricatta-1"
    token = _register(ops, device_id)
    payload = b"skyfleet firmware " + VERSION.encode() + b"\n" + _payload(64 * 1024)
    swu, target = _bundle(tmp_path, payload)
    rollout_id = _ship(ops, swu, device_id)
    device = {
        "url": ddi.url,
        "device_id": device_id,
        "target_token": token,
        "workdir": tmp_path / "device",
    }

    with _suricatta(**device) as proc:
        _wait("the bundle to be installed", _installed(target, payload), proc, 20)
        _wait_state(ops, rollout_id, "rebooting", proc, 10)
        # then it runs its post-update command (a real device reboots), once
        _wait("the post-update command", lambda: proc.postupdate_runs() == 1, proc, 10)
    assert _device(ops, device_id)["installed_version"] == OLD  # not before it boots the update

    with _suricatta(**device, confirm=True) as proc:  # "after the reboot"
        _wait_state(ops, rollout_id, "confirmed", proc, 15)

    assert _device(ops, device_id)["installed_version"] == VERSION
    assert _device(ops, device_id)["attributes"].get("hw_revision") == "1.0"  # its configData
    states = _transitions(ops, device_id)
    assert states[0] == "retrieved"
    assert states[-2:] == ["rebooting", "confirmed"]
    assert len(states) == len(set(states)), states  # each transition once
    assert [s for s in PROGRESS if s in states] == states[:-1]  # only forward, in order


def test_real_suricatta_resumes_an_interrupted_download(
    ddi: LiveServer, ops: httpx.Client, tmp_path: Path
) -> None:
    device_id = "car-suricatta-resume"
    token = _register(ops, device_id)
    payload = _payload(2 * 1024 * 1024)
    swu, target = _bundle(tmp_path, payload)
    rollout_id = _ship(ops, swu, device_id)
    cut_after = 256 * 1024

    with (
        RecordingProxy(ddi.port, cut_after=cut_after) as proxy,
        _suricatta(
            url=proxy.url, device_id=device_id, target_token=token, workdir=tmp_path / "device"
        ) as proc,
    ):
        _wait("the bundle to be installed", _installed(target, payload), proc, 25, proxy)
        _wait_state(ops, rollout_id, "rebooting", proc, 10, proxy)

    first, *resumed = proxy.artifact_gets()
    assert first.cut and first.status == 200 and "range" not in first.headers
    assert first.response_bytes == cut_after
    received = cut_after - first.head_bytes  # what suricatta had of the bundle when cut
    assert len(resumed) == 1, "suricatta should ask once for the rest of the bundle"
    (rest,) = resumed
    assert rest.headers.get("range") == f"bytes={received}-"
    assert rest.status == 206
    assert rest.response_bytes - rest.head_bytes == swu.stat().st_size - received
    assert _transitions(ops, device_id)[-1] == "rebooting"


def test_real_suricatta_rejects_a_wrong_token(
    ddi: LiveServer, ops: httpx.Client, tmp_path: Path
) -> None:
    device_id = "car-suricatta-wrong-token"
    _register(ops, device_id)
    swu, target = _bundle(tmp_path, b"must never be installed\n")
    rollout_id = _ship(ops, swu, device_id)

    with (
        RecordingProxy(ddi.port) as proxy,
        _suricatta(
            url=proxy.url,
            device_id=device_id,
            target_token="not-the-token-of-this-device-0123456789",
            workdir=tmp_path / "device",
        ) as proc,
    ):
        base = f"/{TENANT}/controller/v1/{device_id}"
        _wait("two refused polls", lambda: len(proxy.statuses(base)) >= 2, proc, 25, proxy)

    answered = [e for e in proxy.exchanges if e.status is not None]  # not cut short by the stop
    assert len(answered) >= 2
    assert {e.status for e in answered} == {401}, proxy.exchanges
    assert {e.path for e in proxy.exchanges} <= {base, f"{base}/configData"}
    assert _state(ops, rollout_id) == "scheduled"
    assert _transitions(ops, device_id) == []
    device = _device(ops, device_id)
    assert device["last_seen"] is None
    assert "hw_revision" not in device["attributes"]  # its configData was refused too
    assert not target.exists()


def test_real_suricatta_acknowledges_a_cancel(
    ddi: LiveServer, ops: httpx.Client, tmp_path: Path
) -> None:
    device_id = "car-suricatta-cancel"
    token = _register(ops, device_id)
    payload = _payload(2 * 1024 * 1024)
    swu, target = _bundle(tmp_path, payload)
    rollout_id = _ship(ops, swu, device_id)

    with (
        RecordingProxy(ddi.port, trickle_s=0.05) as proxy,
        _suricatta(
            url=proxy.url, device_id=device_id, target_token=token, workdir=tmp_path / "device"
        ) as proc,
    ):
        _wait("the download to begin", proxy.artifact_gets, proc, 15, proxy)
        assert _state(ops, rollout_id) in PROGRESS[:-1]
        cancelled = ops.post(f"/api/v1/rollouts/{rollout_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert _state(ops, rollout_id) == "cancelling"
        _wait_state(ops, rollout_id, "cancelled", proc, 15, proxy)  # suricatta acknowledged it
        feedback = [e for e in proxy.exchanges if e.method == "POST"]
        _wait("the last answers", lambda: all(e.status for e in feedback), proc, 5, proxy)

    (download,) = proxy.artifact_gets()
    assert download.response_bytes < swu.stat().st_size  # abandoned half-way
    assert not target.exists()  # nothing installed
    assert _device(ops, device_id)["installed_version"] == OLD
    cancel = f"/{TENANT}/controller/v1/{device_id}/cancelAction/{_action(ops, rollout_id)['id']}"
    assert proxy.statuses(cancel) == [200]
    assert proxy.statuses(f"{cancel}/feedback", method="POST") == [200]
    assert {e.status for e in feedback} == {200}, feedback
    assert _transitions(ops, device_id)[-2:] == ["cancelling", "cancelled"]
