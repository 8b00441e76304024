"""Attacks on the device API over HTTP: floods, tokens guessed or borrowed from another device,
replayed and forged feedback, path traversal, oversized bodies. Each is refused with the right
4xx and changes nothing: devices, actions, audit log, artifacts and files stay as they were."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server._fleet import OLD, Car, register_cars, release, rollout

from conftest import ADMIN, GATEWAY_TOKEN, LiveServer
from skyfleet.server import ServerConfig, create_app
from skyfleet.store import Store

V1, V2, V3 = "2025.44.1", "2025.45.1", "2025.46.1"
FAST = {"gateway_token": GATEWAY_TOKEN, "sweep_interval_s": 0.05, "touch_flush_s": 0.05}
SUCCESS = {"status": {"execution": "closed", "result": {"finished": "success"}}}


@pytest.fixture
def server(db: Store) -> Iterator[LiveServer]:
    """The server without the failed-authentication limit: these attacks fail many times (the
    rate-limit tests build servers with their own limits)."""
    with LiveServer(create_app(ServerConfig(**FAST, auth_fail_rate_per_s=0.0), db=db)) as live:
        yield live


@contextlib.contextmanager
def serving(db: Store, **limits: Any) -> Iterator[tuple[LiveServer, httpx.Client]]:
    """A server with ``limits`` and an admin client for it."""
    with (
        LiveServer(create_app(ServerConfig(**FAST, **limits), db=db)) as live,
        httpx.Client(base_url=live.url, timeout=30, headers=ADMIN) as api,
    ):
        yield live, api


# --- what must not change ------------------------------------------------------------------------


def _state(api: httpx.Client, files: Path) -> dict[str, Any]:
    devices = api.get("/api/v1/devices", params={"limit": 10_000}).json()["devices"]
    rollouts = api.get("/api/v1/rollouts").json()["rollouts"]
    return {
        "devices": [{k: v for k, v in d.items() if k != "last_seen"} for d in devices],
        "rollouts": rollouts,
        "actions": [api.get(f"/api/v1/rollouts/{r['id']}/actions").json() for r in rollouts],
        "artifacts": api.get("/api/v1/artifacts").json()["artifacts"],
        "releases": api.get("/api/v1/releases").json()["releases"],
        "audit": api.get("/api/v1/audit", params={"limit": 10_000}).json()["entries"],
        "files": sorted(
            str(p.relative_to(files)) for p in files.rglob("*") if "skyfleet.db" not in p.name
        ),
    }


def settled(api: httpx.Client, files: Path) -> dict[str, Any]:
    """The state once the judge (every 50 ms) has nothing left to change."""
    state = _state(api, files)
    for _ in range(50):
        time.sleep(0.1)
        again = _state(api, files)
        if again == state:
            return state
        state = again
    raise AssertionError("the server's state did not settle")


def refused(answer: httpx.Response | http.client.HTTPResponse, *statuses: int) -> None:
    status = answer.status_code if isinstance(answer, httpx.Response) else answer.status
    body = answer.content if isinstance(answer, httpx.Response) else answer.read()
    assert status in statuses, (status, body[:300])
    assert b"SQLite format 3" not in body


# --- a fleet with work in progress ---------------------------------------------------------------


def deployment(api: httpx.Client, car: Car) -> tuple[int, str]:
    """Poll, fetch the offered deployment; the action id and the artifact's download URL."""
    links = api.get(car.base, headers=car.auth).json()["_links"]
    dep = api.get(links["deploymentBase"]["href"], headers=car.auth).json()
    href = dep["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"]
    return int(dep["id"]), httpx.URL(href).path


def feedback(
    api: httpx.Client, car: Car, path: str, body: dict[str, Any] = SUCCESS
) -> httpx.Response:
    return api.post(f"{car.base}/{path}", json=body, headers=car.auth)


def two_cars(api: httpx.Client) -> tuple[Car, Car, dict[str, Any]]:
    """Car A updating to V2; car B, which installed V1, now downloading V3."""
    cars = register_cars(api, {"id": "car-a"}, {"id": "car-b"})
    a, b = cars["car-a"], cars["car-b"]
    for version in (V1, V2, V3):
        release(api, version, ["hw3"])
    rollout(api, V1, ["id:car-b"])
    b1, _ = deployment(api, b)
    assert feedback(api, b, f"deploymentBase/{b1}/feedback").status_code == 200
    rollout(api, V2, ["id:car-a"])
    a2, a2_file = deployment(api, a)
    rollout(api, V3, ["id:car-b"])
    b3, b3_file = deployment(api, b)
    downloading = {"status": {"execution": "download"}}
    assert feedback(api, b, f"deploymentBase/{b3}/feedback", downloading).status_code == 200
    return a, b, {"a2": a2, "a2_file": a2_file, "b1": b1, "b3": b3, "b3_file": b3_file}


# --- rate limits ---------------------------------------------------------------------------------


def test_flooding_device_gets_429_and_others_still_served(db: Store, tmp_path: Path) -> None:
    with serving(db, device_rate_per_s=0.001, device_burst=5) as (_live, api):
        cars = register_cars(api, {"id": "flooder"}, {"id": "neighbour"})
        flooder, neighbour = cars["flooder"], cars["neighbour"]
        before = settled(api, tmp_path)
        assert [api.get(flooder.base, headers=flooder.auth).status_code for _ in range(5)] == [
            200
        ] * 5
        flooded = api.get(flooder.base, headers=flooder.auth)
        refused(flooded, 429)
        assert 1 <= int(flooded.headers["retry-after"]) <= 1000  # one token per 1000 s
        assert "flooder" in flooded.json()["error"]
        report = {"data": {"flood": "yes"}}
        refused(api.put(f"{flooder.base}/configData", json=report, headers=flooder.auth), 429)
        answers = [api.get(neighbour.base, headers=neighbour.auth).status_code for _ in range(5)]
        assert answers == [200] * 5
        assert settled(api, tmp_path) == before


def test_wrong_tokens_for_a_device_do_not_use_up_its_rate(db: Store, tmp_path: Path) -> None:
    limits = {"device_rate_per_s": 0.001, "device_burst": 3, "auth_fail_burst": 1000}
    with serving(db, **limits) as (live, api), httpx.Client(base_url=live.url) as anyone:
        car = register_cars(api, {"id": "car-1"})["car-1"]
        before = settled(api, tmp_path)
        wrong = {"Authorization": "TargetToken guessed-token"}
        for _ in range(10):
            refused(anyone.get(car.base, headers=wrong), 401)
            refused(anyone.put(f"{car.base}/configData", json={"data": {}}, headers=wrong), 401)
        assert [api.get(car.base, headers=car.auth).status_code for _ in range(3)] == [200] * 3
        refused(api.get(car.base, headers=car.auth), 429)  # its own requests do count
        assert settled(api, tmp_path) == before


def test_a_client_guessing_tokens_gets_429_after_its_failed_auth_budget(
    db: Store, tmp_path: Path
) -> None:
    limits = {"auth_fail_rate_per_s": 0.001, "auth_fail_burst": 5}
    guessing = httpx.HTTPTransport(local_address="127.0.0.2")
    with (
        serving(db, **limits) as (live, api),
        httpx.Client(base_url=live.url, transport=guessing) as guesser,
    ):
        car = register_cars(api, {"id": "car-1"})["car-1"]
        before = settled(api, tmp_path)
        for guess in range(5):
            auth = {"Authorization": f"TargetToken guess-{guess}"}
            refused(guesser.get(car.base, headers=auth), 401)
        stopped = guesser.get(car.base, headers={"Authorization": "TargetToken guess-5"})
        refused(stopped, 429)
        assert int(stopped.headers["retry-after"]) >= 1
        assert "127.0.0.2" in stopped.json()["error"]
        # refused before it is checked: a right guess would look the same
        refused(guesser.get(car.base, headers=car.auth), 429)
        gateway = {"Authorization": f"GatewayToken {GATEWAY_TOKEN}"}
        refused(guesser.get("/DEFAULT/controller/v1/new-car", headers=gateway), 429)
        assert api.get(car.base, headers=car.auth).status_code == 200  # other clients go on
        assert settled(api, tmp_path) == before


class Values(dict[str, str]):
    """Path parameters; any not named is '1'."""

    def __missing__(self, key: str) -> str:
        return "1"


# --- tokens --------------------------------------------------------------------------------------


def test_every_device_route_refuses_a_missing_or_wrong_token_and_changes_nothing(
    server: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    a, b, ids = two_cars(api)
    values = Values(tenant="DEFAULT", controller_id=b.id, action_id=str(ids["b3"]))
    values["release_id"], _, values["filename"] = ids["b3_file"].split("/")[-3:]
    wrong_tokens = [
        None,
        "TargetToken wrong-token",
        "TargetToken",
        f"TargetToken {b.token}x",
        f"TargetToken {a.token}",  # another device's
        f"Bearer {b.token}",
        f"GatewayToken {b.token}",
        "GatewayToken not-the-gateway",
        ADMIN["Authorization"],  # an operator's token is no device token
    ]
    routes = [  # every device route the server documents
        (method.upper(), path.format_map(values))
        for path, operations in api.get("/openapi.json").json()["paths"].items()
        if "/controller/v1/" in path
        for method in sorted(operations)
    ]
    assert len(routes) >= 10, routes  # base, deployment, feedback, cancel, configData, ...
    before = settled(api, tmp_path)
    with httpx.Client(base_url=server.url, timeout=30) as anyone:
        for method, url in routes:
            for token in wrong_tokens:
                headers = {"Authorization": token} if token is not None else {}
                body = (SUCCESS | {"data": {"hw": "hw4"}}) if method in ("POST", "PUT") else None
                answer = anyone.request(method, url, json=body, headers=headers)
                refused(answer, 401)
                assert answer.headers["www-authenticate"] == "TargetToken", (method, url)
                if method != "HEAD":
                    assert "TargetToken" in answer.json()["error"], (method, url)
        for method, url in routes:  # the right token gets past the door on every route
            if method in ("GET", "HEAD"):
                assert anyone.request(method, url, headers=b.auth).status_code != 401, url
    assert settled(api, tmp_path) == before


def test_a_devices_token_opens_none_of_another_devices_urls(
    api: httpx.Client, tmp_path: Path
) -> None:
    a, b, ids = two_cars(api)
    b1, b3, b3_file = ids["b1"], ids["b3"], ids["b3_file"]
    before = settled(api, tmp_path)
    on_b = [
        ("GET", ""),
        ("GET", f"/deploymentBase/{b3}"),
        ("POST", f"/deploymentBase/{b3}/feedback"),
        ("GET", f"/cancelAction/{b3}"),
        ("POST", f"/cancelAction/{b3}/feedback"),
        ("PUT", "/configData"),
        ("GET", f"/installedBase/{b1}"),
    ]
    body = SUCCESS | {"data": {"hw": "hw4"}}
    for method, path in on_b:
        json = body if method in ("POST", "PUT") else None
        refused(api.request(method, f"{b.base}{path}", json=json, headers=a.auth), 401)
    for method in ("GET", "HEAD"):
        for url in (b3_file, b3_file + ".MD5SUM"):
            refused(api.request(method, url, headers=a.auth), 401)
    # on its own URLs, B's actions and B's release are not A's to see or move
    on_a = [("GET", f"/deploymentBase/{b3}"), ("POST", f"/deploymentBase/{b3}/feedback")]
    on_a += [("POST", f"/deploymentBase/{b1}/feedback"), ("GET", f"/installedBase/{b1}")]
    on_a += [("GET", f"/cancelAction/{b3}"), ("POST", f"/cancelAction/{b3}/feedback")]
    for method, path in on_a:
        json = SUCCESS if method == "POST" else None
        refused(api.request(method, f"{a.base}{path}", json=json, headers=a.auth), 404)
    own_url = b3_file.replace(f"/{b.id}/", f"/{a.id}/")
    for url in (own_url, own_url + ".MD5SUM"):
        refused(api.get(url, headers=a.auth), 404)
    assert settled(api, tmp_path) == before
    assert api.get(ids["a2_file"], headers=a.auth).status_code == 200  # A's own still works


# --- feedback ------------------------------------------------------------------------------------


def test_replayed_feedback_counts_once(api: httpx.Client, tmp_path: Path) -> None:
    car = register_cars(api, {"id": "car-1"}, {"id": "car-2"})["car-1"]
    release(api, V1, ["hw3"])
    rollout_id = rollout(api, V1, ["hw:hw3"], auto_advance=False)
    action_id, _ = deployment(api, car)
    url = f"{car.base}/deploymentBase/{action_id}/feedback"

    async def at_once(times: int) -> list[int]:
        async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:
            sent = [client.post(url, json=SUCCESS, headers=car.auth) for _ in range(times)]
            return [r.status_code for r in await asyncio.gather(*sent)]

    assert asyncio.run(at_once(6)) == [200] * 6  # the same report, sent six times at once
    after = settled(api, tmp_path)
    for body in (
        SUCCESS,
        {"status": {"execution": "proceeding"}},
        {"status": {"execution": "download"}},
    ):
        assert feedback(api, car, f"deploymentBase/{action_id}/feedback", body).status_code == 200
    failure = {"status": {"execution": "closed", "result": {"finished": "failure"}}}
    refused(feedback(api, car, f"deploymentBase/{action_id}/feedback", failure), 409)
    assert settled(api, tmp_path) == after
    confirmations = [e for e in after["audit"] if e["to_state"] == "confirmed"]
    assert len(confirmations) == 1, confirmations
    group = api.get(f"/api/v1/rollouts/{rollout_id}").json()["groups"][0]
    assert group["counts"]["confirmed"] == 1
    assert api.get("/api/v1/devices/car-1").json()["installed_version"] == V1


def test_forged_feedback_is_refused_and_changes_nothing(api: httpx.Client, tmp_path: Path) -> None:
    cars = register_cars(api, {"id": "car-a"}, {"id": "car-b"})
    a, b = cars["car-a"], cars["car-b"]
    release(api, V1, ["hw3"])
    rollout_id = rollout(api, V1, ["id:car-a", "id:car-b"], auto_advance=False)
    a1, _ = deployment(api, a)
    actions = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    b1 = next(x["id"] for x in actions if x["device_id"] == b.id)  # its group has not started
    before = settled(api, tmp_path)
    cancelled = {"status": {"execution": "canceled"}}
    refused(feedback(api, b, f"deploymentBase/{b1}/feedback"), 409)  # never offered
    refused(api.get(f"{b.base}/deploymentBase/{b1}", headers=b.auth), 404)
    refused(feedback(api, a, f"deploymentBase/{b1}/feedback"), 404)  # not A's action
    refused(feedback(api, a, "deploymentBase/2147483647/feedback"), 404)  # no such action
    refused(feedback(api, a, f"cancelAction/{a1}/feedback"), 409)  # not being cancelled
    refused(feedback(api, a, f"deploymentBase/{a1}/feedback", cancelled), 409)
    refused(api.get(f"{a.base}/cancelAction/{a1}", headers=a.auth), 404)
    assert settled(api, tmp_path) == before
    assert api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"] == actions


# --- path traversal ------------------------------------------------------------------------------


def test_artifact_names_with_folders_or_dot_dots_are_refused_on_upload(
    api: httpx.Client, tmp_path: Path
) -> None:
    before = settled(api, tmp_path)
    names = ["../x.swu", "..", ".", "a/b.swu", "..\\x.swu", "/etc/passwd", "%2e%2e%2fx.swu"]
    names += ["x\x00.swu", "../../skyfleet.db", "C:x.swu"]
    for name in names:
        answer = api.post("/api/v1/artifacts", params={"filename": name}, content=b"payload")
        refused(answer, 400, 422)
    for raw in ("%2e%2e%2fx.swu", "..%2F..%2Fskyfleet.db", "%2E%2E", "a%5Cb.swu"):
        refused(api.post(f"/api/v1/artifacts?filename={raw}", content=b"payload"), 400)
    assert settled(api, tmp_path) == before
    assert not (tmp_path / "x.swu").exists() and not (tmp_path.parent / "x.swu").exists()


def test_download_names_with_traversal_serve_nothing_outside_the_store(
    server: LiveServer, api: httpx.Client, db: Store, tmp_path: Path
) -> None:
    car = register_cars(api, {"id": "car-1"})["car-1"]
    release(api, V1, ["hw3"])
    rollout(api, V1, ["hw:hw3"])
    _, href = deployment(api, car)
    assert api.get(href, headers=car.auth).status_code == 200
    sha256 = api.get("/api/v1/artifacts").json()["artifacts"][0]["sha256"]
    folder = href.rsplit("/", 1)[0]
    names = ["..", "..%2F..%2F..%2Fskyfleet.db", "%2e%2e%2f%2e%2e%2fskyfleet.db"]
    names += ["../../../../skyfleet.db", "..%5C..%5Cskyfleet.db", "%252e%252e%252fskyfleet.db"]
    names += [sha256, f"..%2F{sha256}", f"..%2Fartifacts%2F{sha256}", "%2Fetc%2Fpasswd"]
    names += [f"{V1}-hw3.swu%00.MD5SUM", f"..%2F..%2F{db.artifacts_dir.name}%2F{sha256}"]
    before = settled(api, tmp_path)
    for name in names:  # sent as written: no client normalises the dots away
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("GET", f"{folder}/{name}", headers=car.auth)
            refused(connection.getresponse(), 400, 404, 422)
        finally:
            connection.close()
    assert settled(api, tmp_path) == before


# --- body sizes ----------------------------------------------------------------------------------

SMALL = {"max_upload_bytes": 1000, "max_body_bytes": 2000, "max_operator_body_bytes": 4000}


def test_oversized_uploads_get_413_and_leave_no_file(db: Store, tmp_path: Path) -> None:
    with serving(db, **SMALL) as (_live, api):
        before = settled(api, tmp_path)
        params = {"filename": "big.swu"}
        declared = api.post("/api/v1/artifacts", params=params, content=b"x" * 1001)
        refused(declared, 413)
        assert "1,000 bytes" in declared.json()["error"]
        assert "max_upload_bytes" in declared.json()["error"]
        streamed = api.post("/api/v1/artifacts", params=params, content=iter([b"x" * 300] * 5))
        refused(streamed, 413)
        assert settled(api, tmp_path) == before
        assert not any(db.artifacts_dir.glob("*"))  # no partial upload left behind
        exact = api.post("/api/v1/artifacts", params=params, content=iter([b"x" * 500] * 2))
        assert exact.status_code == 201, exact.text  # the limit itself is allowed


def test_oversized_json_bodies_get_413_and_change_nothing(db: Store, tmp_path: Path) -> None:
    with serving(db, **SMALL) as (_live, api):
        car = register_cars(api, {"id": "car-1"})["car-1"]
        release(api, V1, ["hw3"])
        rollout(api, V1, ["hw:hw3"])
        action_id, _ = deployment(api, car)
        before = settled(api, tmp_path)
        log = {"status": {"execution": "proceeding", "details": ["x" * 2000]}}
        path = f"deploymentBase/{action_id}/feedback"
        refused(feedback(api, car, path, log), 413)
        chunks = iter([b'{"status": {"execution": "proceeding", "details": ["', b"x" * 3000])
        streamed = api.post(
            f"{car.base}/{path}",
            content=chunks,
            headers={**car.auth, "content-type": "application/json"},
        )
        refused(streamed, 413)
        big = {"data": {f"key-{i}": "v" * 50 for i in range(50)}}
        refused(api.put(f"{car.base}/configData", json=big, headers=car.auth), 413)
        many = {"devices": [{"id": f"car-{i:05d}", "installed_version": OLD} for i in range(200)]}
        refused(api.post("/api/v1/devices", json=many), 413)
        assert settled(api, tmp_path) == before
        small = {"data": {f"key-{i}": "v" * 50 for i in range(20)}}  # under the limit: taken
        assert api.put(f"{car.base}/configData", json=small, headers=car.auth).status_code == 200
