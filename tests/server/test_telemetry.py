"""Remote monitoring end to end: devices publish telemetry through a real Mosquitto on loopback
(or post it over HTTP) into a live server on SQLite and PostgreSQL; the operator reads the fleet
status and a device's history. Restarting the broker, or killing the server, loses nothing
published with QoS 1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from tests.server._mosquitto import REQUIRE_MQTT, SYSTEM_BROKER, Mosquitto, free_port, reachable

from conftest import ADMIN, GATEWAY_TOKEN, LiveServer, _reset_pg, add_admin
from skyfleet.server import ServerConfig, create_app
from skyfleet.server._mqtt import LEASE_TIMEOUT_S, _Lease
from skyfleet.sim import MqttTelemetryPublisher, simulated_sample
from skyfleet.store import Store, get_device, open_store
from skyfleet.store._schema import telemetry
from skyfleet.telemetry import Telemetry

HISTORY = 5  # samples kept per device by the servers here


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Clock:
    """The server's clock: the real time, moved on by ``offset_s``."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


@dataclass
class Monitored:
    """A live server subscribed to a broker, its operator client, and its own tenant."""

    url: str
    app: FastAPI
    api: httpx.Client
    broker_url: str
    tenant: str
    clock: Clock

    def register(self, *ids: str, **fields: Any) -> dict[str, str]:
        """Register devices; their target tokens."""
        answer = self.api.post(
            "/api/v1/devices", json={"devices": [{"id": i, **fields} for i in ids]}
        )
        assert answer.status_code == 201, answer.text
        return {d["id"]: d["token"] for d in answer.json()["devices"]}

    def publisher(self) -> MqttTelemetryPublisher:
        return MqttTelemetryPublisher(
            self.broker_url, tenant=self.tenant, client_id=f"pub-{uuid.uuid4().hex[:10]}"
        )

    def status(self, **params: Any) -> dict[str, Any]:
        answer = self.api.get("/api/v1/fleet/status", params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.status(limit=0)["telemetry"]
        return counts

    def wait_counted(self, name: str, n: int) -> None:
        _wait(f"{name} >= {n}", lambda: self.counts()[name] >= n)

    def history(self, device_id: str) -> list[dict[str, Any]]:
        answer = self.api.get(f"/api/v1/devices/{device_id}/telemetry", params={"limit": 1000})
        assert answer.status_code == 200, answer.text
        history: list[dict[str, Any]] = answer.json()["history"]
        return history


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database, emptied (for tests only PostgreSQL can run)."""
    _reset_pg(pg_database)
    return pg_database


@pytest.fixture
def pg_db(pg_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(pg_url, artifacts_dir=tmp_path / "artifacts")
    add_admin(opened)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'one.db'}", artifacts_dir=tmp_path / "artifacts")
    add_admin(opened)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker of this module's own (the one a test restarts is its own too)."""
    own = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield own
    own.stop()


@contextlib.contextmanager
def _server(db: Store, broker_url: str, **config: Any) -> Iterator[Monitored]:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    clock = Clock()
    settings = {
        "tenant": tenant,
        "gateway_token": GATEWAY_TOKEN,
        "mqtt_url": broker_url,
        "mqtt_client_id": f"skyfleet-{tenant}",
        "mqtt_session_expiry_s": 300.0,
        "telemetry_history": HISTORY,
        "sweep_interval_s": 0.05,
        "touch_flush_s": 0.05,
        **config,
    }
    app = create_app(ServerConfig(**settings), db=db, clock=clock)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, headers=ADMIN) as api:
        subscriber = app.state.telemetry.subscriber
        assert subscriber.subscribed.wait(10), "the server did not subscribe"
        yield Monitored(live.url, app, api, broker_url, tenant, clock)


@pytest.fixture
def monitored(db: Store, broker: Mosquitto) -> Iterator[Monitored]:
    with _server(db, broker.url) as server:
        yield server


# --- the MQTT path -------------------------------------------------------------------------------


def test_published_telemetry_appears_in_fleet_status_history_and_device_list(
    monitored: Monitored,
) -> None:
    monitored.register("car-1", "car-2", "car-3", installed_version="2025.38.1")
    now = monitored.clock()
    with monitored.publisher() as pub:
        for k in range(3):
            pub.publish("car-1", simulated_sample("car-1", now - 30 + k))
        pub.publish("car-2", Telemetry(now - 5, link="cellular", rtt_ms=80.0, version="2025.40"))
        assert pub.flush()
    monitored.wait_counted("stored", 4)

    status = monitored.status(silent_after_s=600)
    assert status["by_state"] == {"online": 2, "silent": 0, "never_seen": 1}
    assert status["by_link"]["cellular"] >= 1
    assert status["by_link"]["unreported"] == 1  # car-3 never reported
    assert status["rtt_ms_mean_by_link"]["cellular"] is not None
    assert status["by_version"]["2025.40"] == 1
    assert status["by_version"]["2025.38.1"] == 1  # car-3: the version it was registered with
    history = monitored.history("car-1")
    assert [round(s["ts"] - now) for s in history] == [-28, -29, -30]  # newest first
    expected = simulated_sample("car-1", now - 28).to_json()
    assert {k: history[0][k] for k in expected} == expected
    listed = {d["id"]: d for d in monitored.api.get("/api/v1/devices").json()["devices"]}
    assert listed["car-2"]["telemetry"]["rtt_ms"] == 80.0
    assert listed["car-3"]["telemetry"] is None
    assert listed["car-2"]["last_seen"] is not None
    one = monitored.api.get("/api/v1/devices/car-2").json()
    assert one["telemetry"]["link"] == "cellular"
    assert monitored.api.get("/api/v1/devices/ghost/telemetry").status_code == 404


def test_published_power_and_frequency_reach_the_history_and_the_latest_sample(
    monitored: Monitored,
) -> None:
    monitored.register("home-1", kind="home-battery", hw="gen2")
    monitored.register("car-1")
    now = monitored.clock()
    with monitored.publisher() as pub:
        pub.publish(
            "home-1",
            [
                Telemetry(now - 20, soc_pct=64.5, freq_hz=50.02, power_w=2400.0, state="grid"),
                Telemetry(now - 10, soc_pct=65.0, freq_hz=49.5, power_w=-3300.5, state="island"),
            ],
        )
        pub.publish("car-1", Telemetry(now - 5, link="satellite", rtt_ms=40.0))
        assert pub.flush()
    monitored.wait_counted("stored", 3)
    answer = monitored.api.get("/api/v1/devices/home-1/telemetry").json()
    assert [(s["freq_hz"], s["power_w"], s["state"]) for s in answer["history"]] == [
        (49.5, -3300.5, "island"),  # charging
        (50.02, 2400.0, "grid"),  # discharging into the house
    ]
    assert (answer["latest"]["freq_hz"], answer["latest"]["power_w"]) == (49.5, -3300.5)
    vehicle = monitored.api.get("/api/v1/devices/car-1/telemetry").json()
    assert (vehicle["latest"]["freq_hz"], vehicle["latest"]["power_w"]) == (None, None)
    assert vehicle["history"][0]["power_w"] is None  # the key is there, null: not reported


def test_history_keeps_only_the_newest_samples_of_each_device(monitored: Monitored) -> None:
    monitored.register("car-1", "car-2")
    now = monitored.clock()
    with monitored.publisher() as pub:
        for k in range(40):
            pub.publish("car-1", Telemetry(now - 100 + k, soc_pct=float(k)))
            if k % 10 == 9:  # in several batches, as a fleet's samples come
                assert pub.flush()
                time.sleep(0.2)
        pub.publish("car-2", Telemetry(now))
        assert pub.flush()
    monitored.wait_counted("stored", 41)
    # a device's history is pruned in a later batch: one more message makes sure one came
    with monitored.publisher() as pub:
        pub.publish("car-2", Telemetry(now + 1))
    monitored.wait_counted("stored", 42)
    history = monitored.history("car-1")
    prune_every = 1  # a tenth of HISTORY, rounded up
    assert HISTORY <= len(history) <= HISTORY + 2 * prune_every
    assert [s["soc_pct"] for s in history[:HISTORY]] == [39.0, 38.0, 37.0, 36.0, 35.0]
    assert len(monitored.history("car-2")) == 2


def test_an_older_sample_never_moves_the_latest_state_back(monitored: Monitored) -> None:
    monitored.register("car-1")
    now = monitored.clock()
    with monitored.publisher() as pub:
        pub.publish("car-1", Telemetry(now - 10, link="satellite", soc_pct=40.0))
        assert pub.flush()
        monitored.wait_counted("stored", 1)
        pub.publish("car-1", Telemetry(now - 60, link="cellular", soc_pct=90.0))  # late
    monitored.wait_counted("stale", 1)
    latest = monitored.api.get("/api/v1/devices/car-1/telemetry").json()["latest"]
    assert (latest["link"], latest["soc_pct"]) == ("satellite", 40.0)
    assert [s["soc_pct"] for s in monitored.history("car-1")] == [40.0, 90.0]


def test_invalid_messages_are_counted_and_dropped_and_ingest_goes_on(monitored: Monitored) -> None:
    monitored.register("car-1")
    now = monitored.clock()
    bad = [
        b"not json",
        b"\xff\xfe\x00",
        b'{"ts": NaN}',
        json.dumps({"ts": now, "soc_pct": 140}).encode(),
        json.dumps({"ts": now, "link": "carrier-pigeon"}).encode(),
        json.dumps({"ts": now, "freq_hz": 100.5}).encode(),
        json.dumps({"ts": now, "freq_hz": "50"}).encode(),
        json.dumps({"ts": now, "power_w": -1.5e6}).encode(),
        json.dumps({"ts": now, "power_w": True}).encode(),
        b'{"ts": 1767225600, "power_w": Infinity}',
        json.dumps({"ts": now + 3600}).encode(),  # a clock an hour fast
        json.dumps([{"ts": now}] * 1001).encode(),
        b"{" * 50_000,
    ]
    with monitored.publisher() as pub:
        for payload in bad:
            pub.publish("car-1", payload)
        pub.publish("ghost", Telemetry(now))  # an unregistered device
        pub.publish("car-1", Telemetry(now, rtt_ms=33.0))  # and a good one after them all
        assert pub.flush()
    monitored.wait_counted("stored", 1)
    counts = monitored.counts()
    assert counts["invalid_messages"] == len(bad)
    assert counts["unknown_device"] == 1
    [stored] = monitored.history("car-1")
    assert (stored["rtt_ms"], stored["freq_hz"], stored["power_w"]) == (33.0, None, None)


def test_devices_silent_longer_than_the_threshold_are_flagged(monitored: Monitored) -> None:
    monitored.register("car-quiet", "car-chatty", "car-never")
    with monitored.publisher() as pub:
        pub.publish("car-quiet", Telemetry(monitored.clock(), link="satellite", soc_pct=12.0))
        assert pub.flush()
        monitored.wait_counted("stored", 1)
        monitored.clock.offset_s = 20 * 60.0  # twenty minutes later
        pub.publish("car-chatty", Telemetry(monitored.clock(), link="wired"))
        assert pub.flush()
    monitored.wait_counted("stored", 2)
    status = monitored.status(silent_after_s=600)
    assert status["by_state"] == {"online": 1, "silent": 1, "never_seen": 1}
    [quiet] = status["silent"]
    assert (quiet["id"], quiet["link"], quiet["soc_pct"]) == ("car-quiet", "satellite", 12.0)
    assert 1190 < quiet["silent_s"] < 1300
    assert monitored.status(silent_after_s=3600)["by_state"]["silent"] == 0


def _refuse(db: Store, table: str, column: str | None = None) -> Callable[[], None]:
    """Make the database refuse every write to ``table`` (to ``column`` of it), as a broken
    schema or a faulty extension would (not the database being away); returns the undo."""
    of = f" OF {column}" if column else ""
    with db.begin() as conn:
        if db.dialect == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_u BEFORE UPDATE{of} ON {table}"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            if column is None:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER refuse_i BEFORE INSERT ON {table}"
                    " BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
                " AS $$BEGIN RAISE EXCEPTION 'refused'; END$$"
            )
            events = f"UPDATE{of}" if column else "INSERT OR UPDATE"
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_u BEFORE {events} ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )

    def undo() -> None:
        with db.begin() as conn:
            if db.dialect == "sqlite":
                conn.exec_driver_sql("DROP TRIGGER refuse_u")
                if column is None:
                    conn.exec_driver_sql("DROP TRIGGER refuse_i")
            else:
                conn.exec_driver_sql(f"DROP TRIGGER refuse_u ON {table}")
                conn.exec_driver_sql("DROP FUNCTION refuse()")

    return undo


def test_a_batch_that_cannot_be_stored_even_singly_is_delivered_again_not_left_unacked(
    monitored: Monitored, db: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # Left unacknowledged on the live connection, the messages would never come again (a
    # broker resends only on a new connection) and each would hold a Receive Maximum slot.
    monitored.register("car-1")
    now = monitored.clock()
    undo = _refuse(db, "telemetry_counters")  # every telemetry transaction fails, even alone
    with monitored.publisher() as pub:
        for k in range(3):
            pub.publish("car-1", Telemetry(now - 10 + k))
        assert pub.flush()
    _wait(
        "a refused batch",
        lambda: any(
            r.name == "skyfleet.telemetry" and r.levelname == "ERROR" for r in caplog.records
        ),
    )
    time.sleep(0.3)  # the single-message writes fail too
    undo()
    _wait("the messages delivered again and stored", lambda: len(monitored.history("car-1")) == 3)


def test_last_seen_times_a_failed_flush_could_not_write_are_written_by_a_later_one(
    monitored: Monitored, db: Store
) -> None:
    token = monitored.register("car-1")["car-1"]
    undo = _refuse(db, "devices", "last_seen")
    poll = httpx.get(
        f"{monitored.url}/{monitored.tenant}/controller/v1/car-1",
        headers={"Authorization": f"TargetToken {token}"},
    )
    assert poll.status_code == 200, poll.text
    time.sleep(0.5)  # flushed every 50 ms: some flushes fail
    with db.read() as conn:
        assert get_device(conn, "car-1")["last_seen"] is None
    undo()
    _wait("the poll's last-seen time", lambda: monitored.status()["by_state"]["online"] == 1)


def test_the_subscription_lease_check_cannot_hang(pg_db: Store) -> None:
    db = pg_db  # the lease is a PostgreSQL advisory lock
    lease = _Lease(db, f"lease-{uuid.uuid4().hex[:8]}")
    assert lease.acquire()
    try:
        assert lease._conn is not None
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            lease._conn.execute("SELECT pg_sleep(30)")  # a server that does not answer
        assert time.monotonic() - started < LEASE_TIMEOUT_S + 2
    finally:
        lease.release()


# --- the HTTP path -------------------------------------------------------------------------------


def test_a_device_posts_telemetry_only_as_itself(monitored: Monitored) -> None:
    tokens = monitored.register("car-1", "car-2")
    base = f"{monitored.url}/{monitored.tenant}/controller/v1"
    sample = {"ts": monitored.clock(), "link": "cellular", "rtt_ms": 70.5}

    def post(device: str, auth: str | None, body: Any = sample) -> httpx.Response:
        headers = {"Authorization": auth} if auth else {}
        return httpx.post(f"{base}/{device}/telemetry", json=body, headers=headers)

    as_car1 = f"TargetToken {tokens['car-1']}"
    assert post("car-2", as_car1).status_code == 401  # car-1's token opens nothing of car-2's
    assert post("car-2", None).status_code == 401
    assert post("car-2", "TargetToken not-a-token").status_code == 401
    refused = post("car-1", as_car1, {**sample, "soc_pct": -3})
    assert refused.status_code == 400
    assert "soc_pct" in refused.json()["error"]
    assert post("car-1", as_car1, [sample, {"ts": "yesterday"}]).status_code == 400
    assert monitored.history("car-2") == [] and monitored.history("car-1") == []

    answer = post("car-1", as_car1, [sample, {**sample, "ts": sample["ts"] - 10}])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 2}  # answered once stored: readable at once
    assert len(monitored.history("car-1")) == 2
    gateway = post("car-2", f"GatewayToken {GATEWAY_TOKEN}")
    assert gateway.status_code == 200, gateway.text
    assert [s["rtt_ms"] for s in monitored.history("car-2")] == [70.5]
    wrong_tenant = httpx.post(
        f"{monitored.url}/OTHER/controller/v1/car-1/telemetry",
        json=sample,
        headers={"Authorization": as_car1},
    )
    assert wrong_tenant.status_code == 404


def test_posted_power_and_frequency_come_back_in_the_devices_telemetry(
    monitored: Monitored,
) -> None:
    token = monitored.register("home-1", kind="home-battery", hw="gen2")["home-1"]
    now = monitored.clock()
    samples = [
        {"ts": now - 10, "soc_pct": 80.0, "freq_hz": 50.0, "power_w": -7000},
        {"ts": now, "soc_pct": 79.5, "freq_hz": 0, "power_w": 1_000_000, "state": "island"},
    ]
    answer = httpx.post(
        f"{monitored.url}/{monitored.tenant}/controller/v1/home-1/telemetry",
        json=samples,
        headers={"Authorization": f"TargetToken {token}"},
    )
    assert answer.status_code == 200, answer.text
    body = monitored.api.get("/api/v1/devices/home-1/telemetry").json()
    assert [(s["freq_hz"], s["power_w"]) for s in body["history"]] == [
        (0.0, 1_000_000.0),
        (50.0, -7000.0),
    ]
    assert {k: body["latest"][k] for k in ("soc_pct", "freq_hz", "power_w", "state")} == {
        "soc_pct": 79.5,
        "freq_hz": 0.0,
        "power_w": 1_000_000.0,
        "state": "island",
    }


#: Bodies a device may not post (``TS``: the server's time), and what the error must name.
BAD_POWER_OR_FREQUENCY = [
    (b'{"ts": TS, "freq_hz": -0.5}', "freq_hz"),
    (b'{"ts": TS, "freq_hz": 100.01}', "freq_hz"),
    (b'{"ts": TS, "freq_hz": NaN}', "NaN"),
    (b'{"ts": TS, "freq_hz": "50"}', "freq_hz"),
    (b'{"ts": TS, "freq_hz": false}', "freq_hz"),
    (b'{"ts": TS, "power_w": 1000000.1}', "power_w"),
    (b'{"ts": TS, "power_w": -2e6}', "power_w"),
    (b'{"ts": TS, "power_w": 1e999}', "power_w"),
    (b'{"ts": TS, "power_w": -Infinity}', "Infinity"),
    (b'{"ts": TS, "power_w": [1]}', "power_w"),
    (b'[{"ts": TS, "power_w": 10}, {"ts": TS, "power_w": "10 W"}]', "power_w"),
]


def test_posted_power_or_frequency_out_of_range_or_of_the_wrong_kind_is_a_400_naming_it(
    monitored: Monitored,
) -> None:
    token = monitored.register("home-1", kind="home-battery", hw="gen2")["home-1"]
    headers = {"Authorization": f"TargetToken {token}", "Content-Type": "application/json"}
    for body, field in BAD_POWER_OR_FREQUENCY:  # one server for them all
        refused = httpx.post(
            f"{monitored.url}/{monitored.tenant}/controller/v1/home-1/telemetry",
            content=body.replace(b"TS", str(monitored.clock()).encode()),
            headers=headers,
        )
        assert refused.status_code == 400, (body, refused.text)
        error = refused.json()["error"]
        assert field in error and "\n" not in error, (body, error)
    assert monitored.history("home-1") == []  # nothing of it stored


# --- restarts --------------------------------------------------------------------------------


def _stored(db_url: str, folder: Path) -> set[tuple[str, float]]:
    reader = open_store(db_url, artifacts_dir=folder / "reader", migrate=False)
    try:
        with reader.read() as conn:
            rows = conn.execute(select(telemetry.c.device_id, telemetry.c.ts)).all()
    finally:
        reader.close()
    return {(r[0], r[1]) for r in rows}


def test_a_broker_restart_loses_nothing_published_with_qos_1(db: Store, tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    own = Mosquitto(tmp_path / "broker").start()
    try:
        with _server(db, own.url, telemetry_history=1000) as monitored:
            devices = [f"car-{i}" for i in range(5)]
            monitored.register(*devices)
            now = monitored.clock()
            sent = set()
            with monitored.publisher() as pub:
                for k in range(300):
                    device, ts = devices[k % 5], now - 300 + k
                    pub.publish(device, Telemetry(ts, soc_pct=50.0))
                    sent.add((device, ts))
                    if k == 120:
                        own.restart()  # while messages are in flight both ways
                assert pub.flush(30), "the broker never acknowledged everything"
            _wait("every sample stored", lambda: monitored.counts()["stored"] >= len(sent))
            with db.read() as conn:
                rows = conn.execute(select(telemetry.c.device_id, telemetry.c.ts)).all()
            assert {(r[0], r[1]) for r in rows} == sent
    finally:
        own.stop()


class ServerProcess:
    """``skyfleet serve --mqtt URL`` as a child process, so that it can be killed for real."""

    def __init__(self, database_url: str, workdir: Path, broker_url: str, tenant: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.args = [
            sys.executable, "-m", "skyfleet", "serve", "--port", str(self.port),
            "--database-url", database_url, "--artifacts-dir", str(workdir / "artifacts"),
            "--tenant", tenant, "--mqtt", broker_url, "--log-level", "warning",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.workdir, stdout=log, stderr=log)
        _wait("the server to start", self._healthy, timeout_s=30)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def admin(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {(self.workdir / 'skyfleet-admin.token').read_text().strip()}"
        }


def test_a_killed_server_loses_nothing_published_with_qos_1(
    database_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    server = ServerProcess(database_url, tmp_path, broker.url, tenant)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers=server.admin()) as api:
            devices = [f"car-{i}" for i in range(10)]
            assert (
                api.post(
                    "/api/v1/devices", json={"devices": [{"id": d} for d in devices]}
                ).status_code
                == 201
            )
            now = time.time()
            sent = set()
            with MqttTelemetryPublisher(
                broker.url, tenant=tenant, client_id=f"pub-{tenant}"
            ) as pub:
                pub.publish(devices[0], Telemetry(now - 1000))  # the subscription is in place
                sent.add((devices[0], now - 1000))
                _wait(
                    "the first sample",
                    lambda: api.get("/api/v1/fleet/status").json()["telemetry"]["stored"] >= 1,
                )
                for k in range(600):
                    if k == 200:
                        server.kill9()  # mid-stream: batches in flight, acks not sent
                    device, ts = devices[k % 10], now - 600 + k
                    pub.publish(device, Telemetry(ts, rtt_ms=float(k)))
                    sent.add((device, ts))
                assert pub.flush(30)  # the broker has it all, for the server's session
        server.start()  # the broker delivers what the dead server never acknowledged
        _wait("every sample stored", lambda: len(_stored(database_url, tmp_path)) >= len(sent), 30)
        assert _stored(database_url, tmp_path) == sent
    finally:
        server.stop()


def test_only_one_server_process_subscribes_and_another_takes_over(
    pg_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    database_url = pg_url  # several server processes need PostgreSQL
    stores = [open_store(database_url, artifacts_dir=tmp_path / n) for n in ("a", "b")]
    tenant = f"t{uuid.uuid4().hex[:8]}"
    config = ServerConfig(tenant=tenant, mqtt_url=broker.url, mqtt_client_id=f"skyfleet-{tenant}")
    apps = [create_app(config, db=st) for st in stores]
    servers = [LiveServer(app) for app in apps]
    try:
        with contextlib.ExitStack() as stack:
            for live in servers:
                stack.enter_context(live)
            subscribers = [app.state.telemetry.subscriber for app in apps]
            _wait("a subscriber", lambda: any(s.subscribed.is_set() for s in subscribers))
            # The other keeps trying and must never get in: two clients with one client id
            # would take the session from each other, back and forth.
            ever = set()
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                ever |= {i for i, s in enumerate(subscribers) if s.subscribed.is_set()}
                time.sleep(0.01)
            assert len(ever) == 1, ever
            holder = ever.pop()
            servers[holder].__exit__(None, None, None)  # its lock goes with its connection
            _wait("the takeover", subscribers[1 - holder].subscribed.is_set, timeout_s=15)
    finally:
        for st in stores:
            st.close()


def test_telemetry_through_the_stock_broker_of_this_machine(sqlite_db: Store) -> None:
    db = sqlite_db  # once: the broker is what is tested here
    if not reachable(*SYSTEM_BROKER):
        message = "no Mosquitto listens on 127.0.0.1:1883: the stock-broker test was NOT run"
        if REQUIRE_MQTT:
            pytest.fail(message)
        pytest.skip(message)
    with _server(db, "mqtt://127.0.0.1:1883", mqtt_session_expiry_s=30.0) as monitored:
        monitored.register("car-1")
        with monitored.publisher() as pub:
            for k in range(50):
                pub.publish("car-1", Telemetry(monitored.clock() - 50 + k))
            assert pub.flush()
        monitored.wait_counted("stored", 50)
