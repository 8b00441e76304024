"""The edge relay (``skyfleet serve --upstream``) between devices and a central server, over an
uplink (a TCP proxy on loopback) that the tests cut, restore, and make lose answers: devices
install while it is down, every report reaches the server in order and is applied once, a
relay killed with reports queued loses none, and the relay cannot forge an update."""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from tests.server._fleet import OLD, Car, register_cars, release, rollout
from tests.server._relay import (
    RelayProcess,
    action,
    drained,
    prefetched,
    relay_status,
    step,
    transitions,
    wait_for,
)
from tests.server._suricatta import (
    SWUPDATE,
    SWUPDATE_SKIP_REASON,
    build_swu,
    start_suricatta,
    stop_suricatta,
)
from tests.server._uplink import CuttableLink
from tests.server._uptane import V1, start_site
from tuf.api import exceptions

from conftest import ADMIN, GATEWAY_TOKEN, LiveServer, add_admin
from skyfleet.server import RelayConfig, ServerConfig, create_app, create_relay_app
from skyfleet.sim import DdiDevice, UptaneDevice
from skyfleet.store import Store, open_store, telemetry_counts, telemetry_history
from skyfleet.store._schema import actions, audit, devices, idempotency_keys

VERSION = "2025.44.25.5"
PAYLOAD = f"{VERSION}/hw3".encode() * 64  # what tests/server/_fleet.release uploads for hw3
#: A device's whole conversation for one update, in order.
INSTALL = [
    ("scheduled", "retrieved"),
    ("retrieved", "downloading"),
    ("downloading", "downloaded"),
    ("downloaded", "installing"),
    ("installing", "rebooting"),
    ("rebooting", "confirmed"),
]


@pytest.fixture
def central_db(tmp_path: Path) -> Iterator[Store]:
    db = open_store(f"sqlite:///{tmp_path / 'central.db'}", artifacts_dir=tmp_path / "central")
    add_admin(db)
    yield db
    db.close()


@pytest.fixture
def central(central_db: Store) -> Iterator[LiveServer]:
    config = ServerConfig(
        gateway_token=GATEWAY_TOKEN,
        poll_sleep_s=1.0,  # suricatta obeys it
        poll_jitter=0.0,
        sweep_interval_s=0.05,
        touch_flush_s=0.05,
    )
    with LiveServer(create_app(config, db=central_db)) as live:
        yield live


@pytest.fixture
def central_api(central: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=central.url, timeout=30.0, headers=ADMIN) as client:
        yield client


@pytest.fixture
def link(central: LiveServer) -> Iterator[CuttableLink]:
    uplink = CuttableLink(central.port)
    yield uplink
    uplink.cut()


def _relay_config(link: CuttableLink, tmp_path: Path) -> RelayConfig:
    return RelayConfig(
        upstream_url=link.url,
        database_url=f"sqlite:///{tmp_path / 'relay.db'}",
        artifacts_dir=tmp_path / "relay-artifacts",
        retry_initial_s=0.1,
        retry_max_s=0.3,
        connect_timeout_s=2.0,
        upstream_timeout_s=10.0,
        ack_wait_s=5.0,
    )


@pytest.fixture
def relay(link: CuttableLink, tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(create_relay_app(_relay_config(link, tmp_path))) as live:
        yield live


def _car_with_rollout(api: httpx.Client) -> tuple[Car, int]:
    car = register_cars(api, {"id": "car-1", "tags": ["eap"]})["car-1"]
    release(api, VERSION, ["hw3"])
    return car, rollout(api, VERSION, ["tag:eap"])


def _device(car: Car) -> DdiDevice:
    return DdiDevice(car.id, car.token, hw="hw3", installed_version=OLD)


def _see_deployment(relay_url: str, car: Car) -> dict[str, object]:
    """The device's poll through the relay (nothing more): the relay sees the deployment."""
    answer = httpx.get(relay_url + car.base, headers=car.auth)
    assert answer.status_code == 200, answer.text
    links: dict[str, object] = answer.json()["_links"]
    assert "deploymentBase" in links, links
    return links


# --- uplink up ------------------------------------------------------------------------------------


def test_a_device_behind_the_relay_completes_a_rollout_and_the_server_sees_it_as_its_own(
    central_api: httpx.Client, central_db: Store, link: CuttableLink, relay: LiveServer
) -> None:
    car, rollout_id = _car_with_rollout(central_api)
    device = _device(car)
    outcomes = [step(relay.url, device) for _ in range(2)]
    assert outcomes == ["updated", "idle"], (outcomes, device.errors)
    done = action(central_api, rollout_id)
    assert done["state"] == "confirmed"
    assert central_api.get(f"/api/v1/devices/{car.id}").json()["installed_version"] == VERSION
    assert transitions(central_api, done["id"]) == INSTALL
    # The links the device follows point at the relay, not at the server behind it.
    poll = httpx.get(relay.url + car.base, headers=car.auth).json()
    assert poll["_links"]["installedBase"]["href"].startswith(f"{relay.url}/DEFAULT/")
    # Each report went upstream with its own key, in order, and the server kept each key once.
    status = relay_status(relay.url)
    assert status["uplink"] == "up" and status["queue_depth"] == 0 and status["dead_letters"] == 0
    seqs = [int(k.split(":")[1]) for k in link.keys]
    assert all(k.startswith(f"{status['relay_id']}:") for k in link.keys)
    assert seqs == sorted(set(seqs)) and len(seqs) == 6  # configData and five feedbacks
    with central_db.read() as conn:
        kept = conn.execute(
            select(idempotency_keys.c.key).where(idempotency_keys.c.device_id == car.id)
        )
        assert {k for (k,) in kept} == set(link.keys)


# --- uplink cut -----------------------------------------------------------------------------------


def test_with_the_uplink_cut_a_device_installs_from_the_cache_and_every_report_arrives_once_in_order(
    central_api: httpx.Client, link: CuttableLink, relay: LiveServer
) -> None:
    car, rollout_id = _car_with_rollout(central_api)
    links = _see_deployment(relay.url, car)
    wait_for(lambda: prefetched(relay.url), "the relay to fetch the deployment and its artifact")
    link.cut()

    # A download resumes with HTTP Range, from the relay's copy.
    deployment = httpx.get(links["deploymentBase"]["href"], headers=car.auth).json()  # type: ignore[index]
    href = deployment["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"]
    assert href.startswith(relay.url)
    part = httpx.get(href, headers={**car.auth, "Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == PAYLOAD[100:]
    assert part.headers["x-skyfleet-relay"] == "cache"
    assert httpx.get(href, headers={**car.auth, "Range": "bytes=0-99"}).content == PAYLOAD[:100]

    device = _device(car)
    assert step(relay.url, device) == "updated", device.errors
    assert device.installed_version == VERSION and not device.pending
    action_id = action(central_api, rollout_id)["id"]
    assert device.reported == {action_id: "confirmed"}
    assert action(central_api, rollout_id)["state"] == "retrieved"  # nothing got through
    status = relay_status(relay.url)
    assert status["uplink"] == "down" and status["queue_depth"] == 6  # configData + 5 feedbacks
    # Still down: the device is not offered the update it just reported installed.
    assert step(relay.url, device) == "idle"
    # Only the token the server accepted opens the cache; a device the relay never saw waits.
    wrong = httpx.get(relay.url + car.base, headers={"Authorization": "TargetToken not-it"})
    assert wrong.status_code == 401 and set(wrong.json()) == {"error"}
    other = register_cars(central_api, {"id": "car-2"})["car-2"]
    unknown = httpx.get(relay.url + other.base, headers=other.auth)
    assert unknown.status_code == 503 and int(unknown.headers["retry-after"]) >= 1

    link.restore()
    wait_for(lambda: drained(relay.url), "the relay to forward its queue")
    assert action(central_api, rollout_id)["state"] == "confirmed"
    assert transitions(central_api, action_id) == INSTALL  # every report, in order, once
    assert central_api.get(f"/api/v1/devices/{car.id}").json()["installed_version"] == VERSION
    assert len(link.keys) == len(set(link.keys)) == 6
    assert step(relay.url, device) == "idle"  # the server's own answer, now


def _updated_at(db: Store, action_id: int) -> float:
    with db.read() as conn:
        return float(
            conn.execute(select(actions.c.updated_at).where(actions.c.id == action_id)).scalar_one()
        )


def _moved_at(db: Store, action_id: int, to_state: str) -> float:
    with db.read() as conn:
        rows = conn.execute(
            select(audit.c.ts).where(audit.c.action_id == action_id, audit.c.to_state == to_state)
        ).all()
    assert len(rows) == 1, rows
    return float(rows[0][0])


def test_a_relay_killed_with_reports_queued_and_answers_lost_delivers_each_report_once(
    central_api: httpx.Client, central_db: Store, link: CuttableLink, tmp_path: Path
) -> None:
    car = register_cars(central_api, {"id": "car-1", "tags": ["eap"]})["car-1"]
    relay = RelayProcess(link.url, tmp_path / "site")
    relay.start()
    try:
        device = _device(car)
        assert step(relay.url, device) == "idle"  # its configData goes up at once
        release(central_api, VERSION, ["hw3"])
        rollout_id = rollout(central_api, VERSION, ["tag:eap"])
        action_id = action(central_api, rollout_id)["id"]
        _see_deployment(relay.url, car)
        wait_for(lambda: prefetched(relay.url), "the relay to fetch the deployment")
        link.cut()
        assert step(relay.url, device) == "updated"
        assert relay_status(relay.url)["queue_depth"] == 5

        relay.kill9()  # with five reports queued
        relay.start()
        assert relay_status(relay.url)["queue_depth"] == 5
        assert step(relay.url, device) == "idle"  # what it reported still hides the update

        # The uplink comes back but loses every answer: the server applies the first report,
        # the relay never hears so, and sends it again with the same key, again and again.
        link.lose_answers = True
        link.restore()
        wait_for(lambda: len(link.keys) >= 4, "the relay to send its first report three times")
        first = link.keys[1]  # [0] was the configData, sent while the uplink was up
        assert link.keys[1:4] == [first] * 3
        assert action(central_api, rollout_id)["state"] == "downloading"
        # Applied once: a repeat would have started the in-progress timeout again.
        assert _updated_at(central_db, action_id) == _moved_at(central_db, action_id, "downloading")

        relay.kill9()  # before it ever learnt that the first report arrived
        link.lose_answers = False
        tries = len(link.keys)
        relay.start()
        wait_for(lambda: drained(relay.url), "the restarted relay to forward its queue")
    finally:
        relay.stop()
    assert link.keys[tries] == first  # sent again after the restart, with the same key
    assert action(central_api, rollout_id)["state"] == "confirmed"
    assert transitions(central_api, action_id) == INSTALL  # nothing lost, nothing twice
    with central_db.read() as conn:
        kept = conn.execute(
            select(idempotency_keys.c.key).where(idempotency_keys.c.device_id == car.id)
        )
        assert sorted(k for (k,) in kept) == sorted(set(link.keys))
    assert len(set(link.keys)) == 6


# --- fairness and batching -----------------------------------------------------------------------


def _telemetry(relay_url: str, car: Car, samples: object) -> None:
    answer = httpx.post(f"{relay_url}{car.base}/telemetry", json=samples, headers=car.auth)
    assert answer.status_code == 200, answer.text


def _stored_ts(db: Store, device_id: str) -> list[float]:
    with db.read() as conn:
        return sorted(s["ts"] for s in telemetry_history(conn, device_id, limit=10_000))


def test_a_device_the_server_answers_429_does_not_hold_up_another_devices_reports(
    tmp_path: Path,
) -> None:
    db = open_store(f"sqlite:///{tmp_path / 'central.db'}", artifacts_dir=tmp_path / "central")
    add_admin(db)
    # Three requests at once per device, then one every 100 s: the busy device gets 429.
    config = ServerConfig(
        gateway_token=GATEWAY_TOKEN, device_burst=3, device_rate_per_s=0.01, sweep_interval_s=0.05
    )
    with (
        LiveServer(create_app(config, db=db)) as central,
        httpx.Client(base_url=central.url, timeout=30.0, headers=ADMIN) as api,
    ):
        link = CuttableLink(central.port)
        try:
            cars = register_cars(api, {"id": "busy"}, {"id": "quiet"})
            busy, quiet = cars["busy"], cars["quiet"]
            with LiveServer(create_relay_app(_relay_config(link, tmp_path))) as relay:
                for car in (busy, quiet):  # one request each: the relay learns the tokens
                    assert httpx.get(relay.url + car.base, headers=car.auth).status_code == 200
                link.cut()
                for n in range(4):  # queued first: the busy device's reports are the oldest
                    answer = httpx.put(
                        f"{relay.url}{busy.base}/configData",
                        json={"mode": "merge", "data": {"n": str(n)}},
                        headers=busy.auth,
                    )
                    assert answer.status_code == 200, answer.text
                ts = time.time() - 5
                _telemetry(relay.url, quiet, {"ts": ts})
                assert relay_status(relay.url)["queue_depth"] == 5
                link.restore()
                # The busy device's third report gets 429 (Retry-After: about 100 s); the
                # quiet device's report goes on at once all the same.
                wait_for(lambda: _stored_ts(db, quiet.id), "the quiet device's report", 10.0)
                assert _stored_ts(db, quiet.id) == [ts]
                wait_for(
                    lambda: relay_status(relay.url)["queue_depth"] == 2, "two reports to wait", 5.0
                )
                time.sleep(1.0)  # the busy device's last two wait for its rate, in order
                assert relay_status(relay.url)["queue_depth"] == 2
                attributes = api.get(f"/api/v1/devices/{busy.id}").json()["attributes"]
                assert attributes == {"n": "1"}, attributes  # in order, the first two only
        finally:
            link.cut()
            db.close()


def test_a_devices_queued_telemetry_goes_up_as_one_list_and_is_stored_once_after_a_kill(
    central_api: httpx.Client, central_db: Store, link: CuttableLink, tmp_path: Path
) -> None:
    car = register_cars(central_api, {"id": "car-1"})["car-1"]
    relay = RelayProcess(link.url, tmp_path / "site")
    relay.start()
    try:
        assert httpx.get(relay.url + car.base, headers=car.auth).status_code == 200
        link.cut()
        start = time.time() - 100
        sent = [start + i for i in range(50)]
        for ts in sent[:40]:
            _telemetry(relay.url, car, {"ts": ts, "soc_pct": 50.0})
        _telemetry(relay.url, car, [{"ts": ts} for ts in sent[40:]])  # a list of ten
        assert relay_status(relay.url)["queue_depth"] == 41

        # The server stores the list, the relay never hears so and sends it again, same key.
        link.lose_answers = True
        link.restore()
        wait_for(lambda: len(link.keys) >= 2, "the relay to send its merged telemetry twice")
        wait_for(lambda: len(_stored_ts(central_db, car.id)) == 50, "the samples to be stored")
        relay.kill9()  # before it learnt that they arrived
        link.lose_answers = False
        tries = len(link.keys)
        relay.start()
        wait_for(lambda: drained(relay.url), "the restarted relay to forward its queue")
    finally:
        relay.stop()
    assert len(set(link.keys)) == 1, link.keys  # one list, one key, all along
    (key,) = set(link.keys)
    assert key.endswith(":1-41"), key  # the first and last of the 41 queued reports
    assert len(link.keys) <= tries + 1
    assert _stored_ts(central_db, car.id) == sent  # every sample, once
    with central_db.read() as conn:
        assert telemetry_counts(conn)["stored"] == 50


# --- trust ----------------------------------------------------------------------------------------


def test_a_relay_cannot_forge_an_update_tampered_metadata_or_bytes_are_refused(
    central_db: Store, tmp_path: Path
) -> None:
    site, close = start_site(central_db, tmp_path / "central-site")
    link = CuttableLink(site.server.port)
    try:
        with LiveServer(create_relay_app(_relay_config(link, tmp_path))) as relay:
            car = site.cars["car-1"]
            roots = {"director_root": site.root("director"), "image_root": site.root("image")}
            payload = f"{V1}/hw3".encode() * 64

            def update(workdir: str) -> list[bytes]:
                base = f"{relay.url}{car.base}"
                with UptaneDevice(
                    car.id, base, car.token, "hw3", workdir=tmp_path / workdir, **roots
                ) as device:
                    return [f.read_bytes() for f in device.update()]

            assert update("through-the-relay") == [payload]
            link.cut()
            assert update("while-down") == [payload]  # the cache, verified end to end

            cache = sqlite3.connect(tmp_path / "relay.db")
            query = "SELECT path, body FROM relay_responses WHERE path LIKE '%/tuf/director/%.targets.json'"
            (path, body), *_ = cache.execute(query).fetchall()
            good = hashlib.sha256(payload).hexdigest()
            evil = hashlib.sha256(b"evil" + payload[4:]).hexdigest()
            assert good.encode() in body
            # The relay points the device at other bytes: the signature no longer holds.
            cache.execute(
                "UPDATE relay_responses SET body = ? WHERE path = ?",
                (body.replace(good.encode(), evil.encode()), path),
            )
            cache.commit()
            with pytest.raises(exceptions.RepositoryError):
                update("tampered-metadata")
            cache.execute("UPDATE relay_responses SET body = ? WHERE path = ?", (body, path))
            cache.commit()
            cache.close()

            # The relay's copy of the bytes changes: the signed hash no longer holds.
            blob = tmp_path / "relay-artifacts" / good
            blob.chmod(0o600)
            blob.write_bytes(b"evil" + payload[4:])
            with pytest.raises(exceptions.LengthOrHashMismatchError):
                update("tampered-bytes")
            assert not (tmp_path / "tampered-bytes" / "targets").exists() or not any(
                (tmp_path / "tampered-bytes" / "targets").iterdir()
            )
            blob.write_bytes(payload)
            assert update("restored") == [payload]  # the control: genuine bytes install
    finally:
        link.cut()
        close()


# --- bad input ------------------------------------------------------------------------------------


def test_bad_reports_to_the_relay_get_a_4xx_json_error_and_nothing_is_queued(
    central_api: httpx.Client, link: CuttableLink, relay: LiveServer
) -> None:
    car, rollout_id = _car_with_rollout(central_api)
    _see_deployment(relay.url, car)
    action_id = action(central_api, rollout_id)["id"]
    feedback = f"{relay.url}{car.base}/deploymentBase/{action_id}/feedback"
    for up in (True, False):
        if not up:
            link.cut()
        for body, status in (
            (b"{not json", 400),
            (b"\xff\xfe", 400),
            (b'{"status": {"execution": "exploded"}}', 422),
            (b'{"status": {"execution": "closed"}}' + b" " * (2 << 20), 413),
        ):
            answer = httpx.post(
                feedback, content=body, headers={**car.auth, "Content-Type": "application/json"}
            )
            assert answer.status_code == status, (up, body[:40], answer.text)
            assert set(answer.json()) == {"error"}
        wrong_method = httpx.put(
            feedback, json={"status": {"execution": "closed"}}, headers=car.auth
        )
        assert wrong_method.status_code == 405
        assert relay_status(relay.url)["queue_depth"] == 0
    link.restore()
    # A token the relay has not seen accepted is the server's to judge: refused, not queued.
    stranger = httpx.post(
        feedback,
        json={"status": {"execution": "download"}},
        headers={"Authorization": "TargetToken x"},
    )
    assert stranger.status_code == 401
    assert relay_status(relay.url)["queue_depth"] == 0
    assert link.keys == []  # nothing was ever forwarded as a report
    assert action(central_api, rollout_id)["state"] == "retrieved"


def test_a_report_the_server_refuses_is_set_aside_with_its_reason_and_the_queue_moves_on(
    central_api: httpx.Client, link: CuttableLink, relay: LiveServer
) -> None:
    car, _rollout_id = _car_with_rollout(central_api)
    _see_deployment(relay.url, car)
    link.cut()
    ghost = httpx.post(
        f"{relay.url}{car.base}/deploymentBase/999999/feedback",
        json={"status": {"execution": "download"}},
        headers=car.auth,
    )
    assert ghost.status_code == 200  # the relay cannot tell while down: queued
    config = httpx.put(
        f"{relay.url}{car.base}/configData",
        json={"mode": "merge", "data": {"site": "pilbara"}},
        headers=car.auth,
    )
    assert config.status_code == 200
    link.restore()
    status = wait_for(lambda: drained(relay.url), "the relay to forward its queue")
    assert status["dead_letters"] == 1
    (dead,) = status["recent_dead_letters"]
    assert dead["status"] == 404 and "999999" in dead["reason"] and dead["kind"] == "feedback"
    attributes = central_api.get(f"/api/v1/devices/{car.id}").json()["attributes"]
    assert attributes == {"site": "pilbara"}  # the report after it went through


# --- a real hawkBit client ------------------------------------------------------------------------


@pytest.mark.skipif(SWUPDATE is None, reason=SWUPDATE_SKIP_REASON)
def test_real_suricatta_installs_and_confirms_through_the_relay_while_the_uplink_is_down(
    central_api: httpx.Client, link: CuttableLink, relay: LiveServer, tmp_path: Path
) -> None:
    car = register_cars(central_api, {"id": "car-suricatta", "hw": "hw3"})["car-suricatta"]
    payload = b"skyfleet firmware through a relay\n" + hashlib.sha256(b"x").digest() * 2048
    target = tmp_path / "device-root" / "opt" / "firmware.bin"
    bundle = build_swu(
        tmp_path / "bundle.swu", version=VERSION, payload=payload, install_path=target
    )
    blob = bundle.read_bytes()
    uploaded = central_api.post(
        "/api/v1/artifacts",
        params={"filename": "update.swu", "sha256": hashlib.sha256(blob).hexdigest()},
        content=blob,
    )
    assert uploaded.status_code == 201, uploaded.text
    body = {"version": VERSION, "artifacts": {"hw3": [uploaded.json()["id"]]}}
    assert central_api.post("/api/v1/releases", json=body).status_code == 201
    rollout_id = rollout(central_api, VERSION, [f"id:{car.id}"], min_finished=1)
    _see_deployment(relay.url, car)
    wait_for(lambda: prefetched(relay.url), "the relay to fetch the bundle")
    link.cut()

    device = {
        "url": relay.url,
        "tenant": "DEFAULT",
        "device_id": car.id,
        "target_token": car.token,
        "workdir": tmp_path / "device",
    }
    proc = start_suricatta(**device)
    try:
        wait_for(lambda: target.is_file() and target.read_bytes() == payload, "the install", 30)
        wait_for(lambda: proc.postupdate_runs() == 1, "the reboot command", 15)
    finally:
        stop_suricatta(proc)
    proc = start_suricatta(**device, confirm=True)  # "after the reboot", still offline
    try:

        def confirmed_through_the_relay() -> bool:
            with sqlite3.connect(tmp_path / "relay.db") as cache:
                query = "SELECT count(*) FROM relay_reported WHERE link LIKE 'deploymentBase/%'"
                return bool(cache.execute(query).fetchone()[0])

        wait_for(confirmed_through_the_relay, "suricatta's confirmation to be queued", 20)
        time.sleep(3)  # three more polls, from the cache: the update is not offered again
        assert proc.postupdate_runs() == 1 and target.read_bytes() == payload
    finally:
        stop_suricatta(proc)
    assert action(central_api, rollout_id)["state"] == "retrieved"  # nothing got through yet

    link.restore()
    wait_for(lambda: drained(relay.url), "the relay to forward its queue")
    action_id = action(central_api, rollout_id)["id"]
    assert action(central_api, rollout_id)["state"] == "confirmed"
    assert central_api.get(f"/api/v1/devices/{car.id}").json()["installed_version"] == VERSION
    states = [to for _from, to in transitions(central_api, action_id)]
    assert states[0] == "retrieved" and states[-2:] == ["rebooting", "confirmed"]
    assert len(states) == len(set(states)), states  # each transition once, in order


# --- attacks --------------------------------------------------------------------------------------


def _raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    """A GET with ``path`` sent byte for byte (httpx would normalise its dot segments)."""
    parts = httpx.URL(url)
    conn = http.client.HTTPConnection(parts.host, parts.port, timeout=15)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_dot_segments_cannot_take_over_another_device_or_reach_the_operator_api(
    central_api: httpx.Client, link: CuttableLink, relay: LiveServer, tmp_path: Path
) -> None:
    cars = register_cars(central_api, {"id": "car-a"}, {"id": "car-b"})
    victim, attacker = cars["car-b"], cars["car-a"]
    # car-a's own token, on a path the relay would read as car-b's: it must not become car-b's.
    takeovers = [
        f"/DEFAULT/controller/v1/{victim.id}/../{attacker.id}",
        f"/DEFAULT/controller/v1/{victim.id}/%2e%2e/{attacker.id}",
        f"/DEFAULT/controller/v1/{victim.id}/.%2E/{attacker.id}",
        f"/DEFAULT/controller/v1/{victim.id}%2F..%2F{attacker.id}",
        f"/DEFAULT/controller/v1/{victim.id}/./",
        f"/DEFAULT/controller/v1/{victim.id}//configData",
        f"/DEFAULT/controller/v1/{victim.id}/tuf/targets/..\\..\\{attacker.id}",
    ]
    for path in takeovers:
        status, body = _raw_get(relay.url, path, attacker.auth)
        assert status == 400 and set(body) == {"error"}, (path, status, body)
    # No token at all, and a path out of the device API: the operator's health and devices.
    smuggles = [
        f"/DEFAULT/controller/v1/{victim.id}/../../../../api/v1/devices",
        f"/DEFAULT/controller/v1/{victim.id}/tuf/targets/../../../../../../api/v1/health",
        "/DEFAULT/controller/v1/../../api/v1/health",
    ]
    for path in smuggles:
        status, body = _raw_get(relay.url, path, {})
        assert status == 400 and set(body) == {"error"}, (path, status, body)
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT count(*) FROM relay_tokens").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM relay_responses").fetchone() == (0,)
    # The control: the attacker's own path works, and is recorded as its own.
    assert httpx.get(relay.url + attacker.base, headers=attacker.auth).status_code == 200
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT device_id FROM relay_tokens").fetchall() == [(attacker.id,)]


def test_a_token_the_server_revoked_sets_aside_all_its_queued_reports_at_one_refusal(
    central_api: httpx.Client,
    central_db: Store,
    link: CuttableLink,
    relay: LiveServer,
    tmp_path: Path,
) -> None:
    car = register_cars(central_api, {"id": "car-1"})["car-1"]
    assert httpx.get(relay.url + car.base, headers=car.auth).status_code == 200
    link.cut()
    for n in range(25):
        queued = httpx.put(
            f"{relay.url}{car.base}/configData",
            json={"mode": "merge", "data": {"n": str(n)}},
            headers=car.auth,
        )
        assert queued.status_code == 200, queued.text
    # The operator re-provisions the device meanwhile: its old token is refused from now on.
    with central_db.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == car.id).values(token_hash="0" * 64))
    link.restore()
    status = wait_for(lambda: drained(relay.url), "the relay to empty its queue")
    assert status["dead_letters"] == 25
    assert len(link.keys) == 1  # one refusal charged, not one per report
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT count(*) FROM relay_tokens").fetchone() == (0,)
    assert central_api.get(f"/api/v1/devices/{car.id}").json()["attributes"] == {}


def test_the_relays_database_syncs_every_commit_so_queued_reports_survive_a_power_cut(
    central_db: Store, relay: LiveServer
) -> None:
    relay_db: Store = relay.server.config.app.state.relay.db.db
    with relay_db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with central_db.read() as conn:  # the server's own store keeps the faster default
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_relay_status_names_no_device_path_or_credentials(
    central_api: httpx.Client, tmp_path: Path
) -> None:
    car = register_cars(central_api, {"id": "car-secretive"})["car-secretive"]
    site = tmp_path / "site"
    link = CuttableLink(int(httpx.URL(str(central_api.base_url)).port or 0))
    upstream = f"http://relay-user:hunter2@127.0.0.1:{link.port}"
    config = RelayConfig(
        upstream_url=upstream,
        database_url=f"sqlite:///{site}.db",
        artifacts_dir=site,
        retry_initial_s=0.1,
        retry_max_s=0.3,
    )
    try:
        with LiveServer(create_relay_app(config)) as relay:
            relay_db: Store = relay.server.config.app.state.relay.db.db
            store_relay = relay.server.config.app.state.relay.db
            # A report the server refused, with the device and its path in the reason.
            store_relay.remember_token(car.id, car.auth["Authorization"], 0.0)
            link.cut()
            queued = httpx.post(
                f"{relay.url}{car.base}/deploymentBase/424242/feedback",
                json={"status": {"execution": "download"}},
                headers=car.auth,
            )
            assert queued.status_code == 200, queued.text
            with relay_db.read() as conn:
                (seq,) = conn.exec_driver_sql("SELECT seq FROM relay_queue").one()
            entry = store_relay.head()
            reason = f"HTTP 404: device {car.id!r} has no action 424242 at {entry.path}"
            store_relay.dead_letter(entry, 404, reason, 1.0, keep=10)
            # The uplink fails: its error may name the upstream URL with its credentials.
            down = httpx.get(relay.url + car.base + "/configData", headers=car.auth)
            status = relay_status(relay.url)
    finally:
        link.cut()
    assert "hunter2" not in down.text and "relay-user" not in down.text
    shown = json.dumps(status)
    for secret in ("hunter2", "relay-user", car.id, "/controller/"):
        assert secret not in shown, (secret, status)
    assert status["upstream"] == f"http://127.0.0.1:{link.port}"
    assert status["uplink"] == "down" and status["last_error"] == "ConnectError"
    (dead,) = status["recent_dead_letters"]
    assert dead["seq"] == seq and dead["kind"] == "feedback" and dead["status"] == 404
    assert "424242" in dead["reason"]


def test_a_404_for_a_request_that_did_not_authenticate_as_a_device_is_not_cached(
    central_api: httpx.Client, link: CuttableLink, relay: LiveServer, tmp_path: Path
) -> None:
    car = register_cars(central_api, {"id": "car-1"})["car-1"]
    strangers = [
        ("/NO-SUCH-TENANT/controller/v1/car-1/installedBase/1", car.auth),
        ("/DEFAULT/controller/v1/nobody/tuf/director/9.root.json", {}),
        (f"{car.base}/no/such/route", {"Authorization": "TargetToken not-its-token"}),
    ]
    for path, headers in strangers:
        answer = httpx.get(relay.url + path, headers=headers)
        assert answer.status_code in (401, 404), (path, answer.status_code, answer.text)
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT count(*) FROM relay_responses").fetchone() == (0,)
    # The control: the device's own 404 (a TUF client's next root) is kept for it.
    assert httpx.get(relay.url + car.base, headers=car.auth).status_code == 200
    mine = httpx.get(f"{relay.url}{car.base}/tuf/director/9.root.json", headers=car.auth)
    assert mine.status_code == 404
    with sqlite3.connect(tmp_path / "relay.db") as db:
        kept = db.execute("SELECT path, status FROM relay_responses WHERE status = 404")
        assert kept.fetchall() == [(f"{car.base}/tuf/director/9.root.json", 404)]
