"""Regressions from the server's code review, over HTTP: no deployment or download for actions that
ended, out-of-range input is a 4xx (never a 500), concurrent first polls of a gateway device,
configData until a device says what hardware it is, rollback once, and a device that cannot
cancel its own action."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import httpx
import pytest
from tests.server._fleet import Car, register_cars

from conftest import GATEWAY_TOKEN, LiveServer

OLD, VERSION, NEWER = "2025.38.1", "2025.44.25.5", "2025.46.1"
PAYLOAD = bytes(range(256)) * 20 + b"the end of the image"
GATEWAY = {"Authorization": f"GatewayToken {GATEWAY_TOKEN}"}


# --- helpers -------------------------------------------------------------------------------------


_register = register_cars


def _release(api: httpx.Client, version: str, payload: bytes = PAYLOAD) -> int:
    sha = hashlib.sha256(payload).hexdigest()
    uploaded = api.post(
        "/api/v1/artifacts", params={"filename": "image.swu", "sha256": sha}, content=payload
    )
    assert uploaded.status_code == 201, uploaded.text
    body = {"version": version, "artifacts": {"hw3": [uploaded.json()["id"]]}}
    created = api.post("/api/v1/releases", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _started(api: httpx.Client, version: str, groups: list[str], **options: Any) -> int:
    body = {"release": version, "groups": [{"group": g, **options} for g in groups]}
    answer = api.post("/api/v1/rollouts", json=body)
    assert answer.status_code == 201, answer.text
    rollout_id = int(answer.json()["id"])
    _operate(api, rollout_id, "start")
    return rollout_id


def _operate(api: httpx.Client, rollout_id: int, operation: str) -> None:
    answer = api.post(f"/api/v1/rollouts/{rollout_id}/{operation}")
    assert answer.status_code == 200, answer.text


def _links(api: httpx.Client, base: str, auth: dict[str, str]) -> dict[str, Any]:
    answer = api.get(base, headers=auth)
    assert answer.status_code == 200, answer.text
    links: dict[str, Any] = answer.json()["_links"]
    return links


def _actions(api: httpx.Client, rollout_id: int) -> dict[str, dict[str, Any]]:
    rows = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    return {a["device_id"]: a for a in rows}


def _states(api: httpx.Client, rollout_id: int) -> dict[str, str]:
    return {d: a["state"] for d, a in _actions(api, rollout_id).items()}


def _deployment(api: httpx.Client, car: Car) -> dict[str, Any]:
    """Poll, follow the deploymentBase link, and return the deployment."""
    links = _links(api, car.base, car.auth)
    assert "deploymentBase" in links, links
    answer = api.get(links["deploymentBase"]["href"], headers=car.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _download_href(deployment: dict[str, Any]) -> str:
    href: str = deployment["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"][
        "href"
    ]
    return href


def _feedback(
    api: httpx.Client, car: Car, action_id: int, execution: str, finished: str = "none"
) -> httpx.Response:
    body = {
        "id": str(action_id),
        "status": {"execution": execution, "result": {"finished": finished}},
    }
    return api.post(f"{car.base}/deploymentBase/{action_id}/feedback", json=body, headers=car.auth)


def _device(api: httpx.Client, device_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/devices/{device_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _refused(answer: httpx.Response, *statuses: int) -> None:
    """A JSON error ``{"error": ...}`` with one of ``statuses``."""
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    assert set(answer.json()) == {"error"}, answer.text


def _written(api: httpx.Client) -> dict[str, Any]:
    return {
        "releases": api.get("/api/v1/releases").json()["releases"],
        "rollouts": api.get("/api/v1/rollouts").json()["rollouts"],
        "audit": api.get("/api/v1/audit", params={"limit": 10_000}).json()["entries"],
    }


# --- actions that ended have nothing to deploy or download ---------------------------------------


def test_a_cancelled_rollout_offers_no_deployment_and_no_download(api: httpx.Client) -> None:
    cars = _register(
        api,
        {"id": "fetched", "tags": ["eap"]},
        {"id": "idle", "tags": ["eap"]},
        {"id": "later"},
    )
    _release(api, VERSION)
    rollout_id = _started(api, VERSION, ["tag:eap", "hw:hw3"], auto_advance=False)
    fetched = cars["fetched"]
    href = _download_href(_deployment(api, fetched))
    assert api.get(href, headers=fetched.auth).content == PAYLOAD
    _operate(api, rollout_id, "cancel")
    actions = _actions(api, rollout_id)
    assert {d: a["state"] for d, a in actions.items()} == {
        "fetched": "cancelling",
        "idle": "cancelled",
        "later": "cancelled",  # its group never started
    }

    for name in ("idle", "later"):
        car = cars[name]
        deployment = api.get(f"{car.base}/deploymentBase/{actions[name]['id']}", headers=car.auth)
        _refused(deployment, 404)
        download = api.get(href.replace("/fetched/", f"/{name}/"), headers=car.auth)
        _refused(download, 404)
    _refused(api.get(href, headers=fetched.auth), 404)  # asked to stop: no more bytes

    # the device stops; its action is cancelled and stays out of reach
    assert _feedback(api, fetched, actions["fetched"]["id"], "canceled").status_code == 200
    assert _states(api, rollout_id)["fetched"] == "cancelled"
    gone = api.get(
        f"{fetched.base}/deploymentBase/{actions['fetched']['id']}", headers=fetched.auth
    )
    _refused(gone, 404)
    _refused(api.get(href, headers=fetched.auth), 404)
    _refused(api.get(href + ".MD5SUM", headers=fetched.auth), 404)
    assert _states(api, rollout_id) == {
        "fetched": "cancelled",
        "idle": "cancelled",
        "later": "cancelled",
    }


def test_a_failed_or_timed_out_action_has_no_deployment_and_installed_base_is_the_confirmed_one(
    api: httpx.Client,
) -> None:
    cars = _register(api, {"id": "fails"}, {"id": "silent"}, {"id": "ok"})
    _release(api, VERSION)
    rollout_id = _started(api, VERSION, ["hw:hw3"], timeout_s=1.0, error_pct=None)
    deployments = {name: _deployment(api, car) for name, car in cars.items()}
    actions = {name: int(d["id"]) for name, d in deployments.items()}
    href = _download_href(deployments["fails"])
    assert _feedback(api, cars["fails"], actions["fails"], "closed", "failure").status_code == 200
    assert _feedback(api, cars["ok"], actions["ok"], "closed", "success").status_code == 200
    deadline = time.monotonic() + 15
    while _states(api, rollout_id)["silent"] != "timed_out":  # the server's judge, in real time
        assert time.monotonic() < deadline, _states(api, rollout_id)
        time.sleep(0.05)
    assert _states(api, rollout_id) == {"fails": "failed", "silent": "timed_out", "ok": "confirmed"}

    for name in ("fails", "silent"):
        car = cars[name]
        _refused(api.get(f"{car.base}/deploymentBase/{actions[name]}", headers=car.auth), 404)
        _refused(api.get(f"{car.base}/installedBase/{actions[name]}", headers=car.auth), 404)
    _refused(api.get(href, headers=cars["fails"].auth), 404)

    ok = cars["ok"]
    links = _links(api, ok.base, ok.auth)
    assert links["installedBase"]["href"].endswith(f"/installedBase/{actions['ok']}")
    installed = api.get(links["installedBase"]["href"], headers=ok.auth)
    assert installed.status_code == 200, installed.text
    assert installed.json()["deployment"]["chunks"][0]["version"] == VERSION
    assert _states(api, rollout_id)["ok"] == "confirmed"


# --- out-of-range input is a 4xx, never a 500 ----------------------------------------------------

HUGE_IDS = [99_999_999_999_999, 2**63, 10**30]


@pytest.mark.parametrize("huge", HUGE_IDS)
def test_an_out_of_range_id_in_a_path_is_4xx(api: httpx.Client, huge: int) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION)
    _started(api, VERSION, ["hw:hw3"])
    feedback = {"status": {"execution": "closed", "result": {"finished": "success"}}}
    for method, path, body in (
        ("GET", f"/api/v1/rollouts/{huge}", None),
        ("GET", f"/api/v1/rollouts/{huge}/actions", None),
        ("POST", f"/api/v1/rollouts/{huge}/cancel", None),
        ("POST", f"/api/v1/rollouts/{huge}/rollback", None),
        ("GET", f"{car.base}/deploymentBase/{huge}", None),
        ("POST", f"{car.base}/deploymentBase/{huge}/feedback", feedback),
        ("GET", f"{car.base}/installedBase/{huge}", None),
        ("GET", f"{car.base}/cancelAction/{huge}", None),
        ("GET", f"{car.base}/softwaremodules/{huge}/artifacts/image.swu", None),
    ):
        answer = api.request(method, path, json=body, headers=car.auth)
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert "deploymentBase" in _links(api, car.base, car.auth)  # the server still works


BAD_GROUP_VALUES = [
    ('"min_finished": 1000000000000000000000000000000', "min_finished"),
    ('"error_count": 1000000000000000000000000000000', "error_count"),
    ('"error_count": 0', "error_count"),
    ('"timeout_s": 1e999', "timeout_s"),
    ('"timeout_s": -1e999', "timeout_s"),
    ('"timeout_s": 1e300', "timeout_s"),
]


@pytest.mark.parametrize(("value", "name"), BAD_GROUP_VALUES)
def test_an_out_of_range_group_value_is_4xx_naming_it_and_writes_nothing(
    api: httpx.Client, value: str, name: str
) -> None:
    _register(api, {"id": "car-1"})
    _release(api, VERSION)
    before = _written(api)
    raw = f'{{"release": "{VERSION}", "groups": [{{"group": "hw:hw3", {value}}}]}}'
    answer = api.post(
        "/api/v1/rollouts", content=raw.encode(), headers={"content-type": "application/json"}
    )
    _refused(answer, 400, 422)
    assert name in answer.json()["error"]
    assert _written(api) == before


@pytest.mark.parametrize("hw", ["h" * 40, "hw 3", ""])
def test_a_release_with_an_unusable_hardware_key_is_4xx_and_writes_nothing(
    api: httpx.Client, hw: str
) -> None:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    uploaded = api.post(
        "/api/v1/artifacts", params={"filename": "image.swu", "sha256": sha}, content=PAYLOAD
    )
    assert uploaded.status_code == 201, uploaded.text
    before = _written(api)
    for body in (
        {"version": VERSION, "artifacts": {hw: [uploaded.json()["id"]]}},
        {"version": VERSION, "artifacts": {"hw3": [uploaded.json()["id"]]}, "generations": [hw]},
    ):
        _refused(api.post("/api/v1/releases", json=body), 400, 422)
    assert _written(api) == before


# --- gateway devices -----------------------------------------------------------------------------


def _polls_at_once(clients: list[httpx.Client], path: str) -> list[int | str]:
    """GET ``path`` with the gateway token from every client at once; the statuses (or errors)."""
    start = threading.Barrier(len(clients))
    answers: list[int | str] = []

    def poll(client: httpx.Client) -> None:
        try:
            start.wait(timeout=10)
            answer = client.get(path, headers=GATEWAY)
            answers.append(answer.status_code if answer.status_code == 200 else answer.text)
        except BaseException as exc:  # reported by the test
            answers.append(repr(exc))

    threads = [threading.Thread(target=poll, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_concurrent_first_polls_of_an_unknown_device_all_succeed(
    server: LiveServer, api: httpx.Client
) -> None:
    clients = [httpx.Client(base_url=server.url, timeout=30.0) for _ in range(4)]
    try:
        for attempt in range(8):
            device_id = f"gw-race-{attempt}"
            answers = _polls_at_once(clients, f"/DEFAULT/controller/v1/{device_id}")
            assert answers == [200] * len(clients), (attempt, answers)
            assert _device(api, device_id)["hw"] == "unknown"
    finally:
        for client in clients:
            client.close()
    assert api.get("/api/v1/devices").json()["total"] == 8


def _until_seen(api: httpx.Client, device_id: str) -> None:
    """Wait until the server has written the device's last poll (it batches them)."""
    deadline = time.monotonic() + 10
    while _device(api, device_id)["last_seen"] is None:
        assert time.monotonic() < deadline, "the poll was never recorded"
        time.sleep(0.05)


def test_a_gateway_device_is_asked_for_config_data_until_it_reports_its_hardware_then_joins(
    api: httpx.Client,
) -> None:
    _register(api, {"id": "car-1"})
    _release(api, VERSION)
    _release(api, NEWER, PAYLOAD + b"newer")
    rollouts = [_started(api, v, ["hw:hw3"], auto_advance=False) for v in (VERSION, NEWER)]
    base = "/DEFAULT/controller/v1/gw-car"
    first = _links(api, base, GATEWAY)
    assert "configData" in first and "deploymentBase" not in first
    assert "configData" in _links(api, base, GATEWAY)  # polled again: still unknown
    _until_seen(api, "gw-car")
    assert "configData" in _links(api, base, GATEWAY)  # seen, but still unknown
    assert _device(api, "gw-car")["hw"] == "unknown"

    answer = api.put(f"{base}/configData", json={"data": {"hw": "hw3"}}, headers=GATEWAY)
    assert answer.status_code == 200, answer.text
    assert _device(api, "gw-car")["hw"] == "hw3"
    for rollout_id in rollouts:  # every matching rollout, not just the first
        assert _states(api, rollout_id) == {"car-1": "scheduled", "gw-car": "scheduled"}
    links = _links(api, base, GATEWAY)
    assert "configData" not in links
    first_action = _actions(api, rollouts[0])["gw-car"]["id"]
    assert links["deploymentBase"]["href"].split("?")[0].endswith(f"/deploymentBase/{first_action}")


def test_a_device_cannot_change_the_hardware_the_operator_registered(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-4", "hw": "hw4"})["car-4"]
    _register(api, {"id": "car-3"})
    _release(api, VERSION)
    rollout_id = _started(api, VERSION, ["hw:hw3"])
    answer = api.put(f"{car.base}/configData", json={"data": {"hw": "hw3"}}, headers=car.auth)
    assert answer.status_code == 200, answer.text
    assert _device(api, "car-4")["hw"] == "hw4"
    assert "deploymentBase" not in _links(api, car.base, car.auth)
    assert _states(api, rollout_id) == {"car-3": "scheduled"}


# --- rollback once; a device cannot cancel its own action ----------------------------------------


def test_rolling_back_the_same_rollout_twice_is_409(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, OLD, PAYLOAD + b"old")
    _release(api, VERSION)
    rollout_id = _started(api, VERSION, ["hw:hw3"])
    _deployment(api, car)
    first = api.post(f"/api/v1/rollouts/{rollout_id}/rollback", json={"to": OLD})
    assert first.status_code == 201, first.text
    before = _written(api)
    for body in ({"to": OLD}, None):
        again = api.post(f"/api/v1/rollouts/{rollout_id}/rollback", json=body)
        _refused(again, 409)
        assert "already rolled back" in again.json()["error"]
    assert _written(api) == before
    assert len(before["rollouts"]) == 2


def test_a_device_cannot_report_its_action_cancelled_unless_the_server_is_cancelling_it(
    api: httpx.Client,
) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION)
    rollout_id = _started(api, VERSION, ["hw:hw3"])
    action_id = int(_deployment(api, car)["id"])
    assert _feedback(api, car, action_id, "download").status_code == 200
    _refused(_feedback(api, car, action_id, "canceled"), 409)
    assert _states(api, rollout_id) == {"car-1": "downloading"}
    assert api.get(f"/api/v1/rollouts/{rollout_id}").json()["status"] == "running"

    _operate(api, rollout_id, "cancel")
    assert _states(api, rollout_id) == {"car-1": "cancelling"}
    assert _feedback(api, car, action_id, "canceled").status_code == 200
    assert _states(api, rollout_id) == {"car-1": "cancelled"}
