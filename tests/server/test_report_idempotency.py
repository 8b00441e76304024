"""Device reports with an ``Idempotency-Key`` (what an edge relay sends) are applied once: a
repeat is answered 200 and changes nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import func, select
from tests.server._fleet import Car, register_cars, release, rollout

from conftest import LiveServer
from skyfleet.server import ServerConfig, create_app
from skyfleet.store import Store, claim_idempotency_key
from skyfleet.store._schema import actions, idempotency_keys

VERSION = "2025.44.25.5"


def _feedback(
    api: httpx.Client, car: Car, action_id: int, execution: str, key: str | None
) -> httpx.Response:
    body = {
        "id": str(action_id),
        "status": {"execution": execution, "result": {"finished": "none"}},
    }
    headers = {**car.auth, **({"Idempotency-Key": key} if key is not None else {})}
    return api.post(f"{car.base}/deploymentBase/{action_id}/feedback", json=body, headers=headers)


def _updated_at(db: Store, action_id: int) -> float:
    with db.read() as conn:
        return float(
            conn.execute(select(actions.c.updated_at).where(actions.c.id == action_id)).scalar_one()
        )


def _offered(api: httpx.Client) -> tuple[Car, int]:
    car = register_cars(api, {"id": "car-1", "tags": ["eap"]})["car-1"]
    release(api, VERSION, ["hw3"])
    rollout(api, VERSION, ["tag:eap"])
    links = api.get(car.base, headers=car.auth).json()["_links"]
    deployment = api.get(links["deploymentBase"]["href"], headers=car.auth).json()
    return car, int(deployment["id"])


def test_a_feedback_repeated_with_its_key_is_answered_200_and_applied_once(
    api: httpx.Client, db: Store
) -> None:
    car, action_id = _offered(api)
    assert _feedback(api, car, action_id, "download", "relay-a:1").status_code == 200
    applied_at = _updated_at(db, action_id)
    time.sleep(0.05)
    # The relay lost the answer and sends the same report again: nothing moves, not even the
    # in-progress timeout that any report from the device starts again.
    again = _feedback(api, car, action_id, "download", "relay-a:1")
    assert again.status_code == 200 and again.content == b""
    assert _updated_at(db, action_id) == applied_at
    # The control: the same report under a new key (or none) is a new report, and counts.
    assert _feedback(api, car, action_id, "download", "relay-a:2").status_code == 200
    assert _updated_at(db, action_id) > applied_at
    with db.read() as conn:
        keys = conn.execute(select(idempotency_keys.c.key).order_by(idempotency_keys.c.key))
        assert [k for (k,) in keys] == ["relay-a:1", "relay-a:2"]


def _attributes(api: httpx.Client, device_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/devices/{device_id}")
    assert answer.status_code == 200, answer.text
    attributes: dict[str, Any] = answer.json()["attributes"]
    return attributes


def test_config_data_repeated_with_its_key_is_not_applied_again(api: httpx.Client) -> None:
    car = register_cars(api, {"id": "car-1"})["car-1"]
    url = f"{car.base}/configData"
    merge = {"mode": "merge", "data": {"site": "pilbara"}}
    keyed = {**car.auth, "Idempotency-Key": "relay-a:5"}
    assert api.put(url, json=merge, headers=keyed).status_code == 200
    assert _attributes(api, "car-1") == {"site": "pilbara"}
    remove = {"mode": "remove", "data": {"site": ""}}
    assert api.put(url, json=remove, headers=car.auth).status_code == 200
    assert _attributes(api, "car-1") == {}
    # A late repeat of the first report must not bring back what the second one removed.
    assert api.put(url, json=merge, headers=keyed).status_code == 200
    assert _attributes(api, "car-1") == {}


def test_a_malformed_idempotency_key_is_refused_and_nothing_is_applied(
    api: httpx.Client, db: Store
) -> None:
    car, action_id = _offered(api)
    before = _updated_at(db, action_id)
    for key in ("has space", "x" * 201):
        answer = _feedback(api, car, action_id, "download", key)
        assert answer.status_code == 422, answer.text
        assert set(answer.json()) == {"error"}
    assert _updated_at(db, action_id) == before
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one() == 0


def test_the_server_prunes_keys_older_than_its_ttl_and_keeps_newer_ones(db: Store) -> None:
    now = time.time()
    with db.begin() as conn:
        claim_idempotency_key(conn, "car-1", "relay-a:old", now - 7200)
        claim_idempotency_key(conn, "car-1", "relay-a:new", now - 60)
    config = ServerConfig(idempotency_ttl_s=3600, sweep_interval_s=0.05)

    def kept() -> list[str]:
        with db.read() as conn:
            rows = conn.execute(select(idempotency_keys.c.key).order_by(idempotency_keys.c.key))
            return [k for (k,) in rows]

    with LiveServer(create_app(config, db=db)):
        deadline = time.monotonic() + 10
        while kept() != ["relay-a:new"] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert kept() == ["relay-a:new"]
