"""The hawkBit DDI device API over HTTP: authentication, polling, deployments, downloads with
resume, feedback, cancel, configData and installedBase."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
from tests.server._fleet import Car, register_cars

from conftest import GATEWAY_TOKEN
from skyfleet.server import ServerConfig

VERSION = "2025.44.25.5"
OLD = "2025.38.1"
PAYLOAD = bytes(range(256)) * 40 + b"the end of the image"
OTHER_PAYLOAD = b"a build for another release " * 30


# --- helpers -------------------------------------------------------------------------------------


_register = register_cars


def _release(api: httpx.Client, version: str, payload: bytes, name: str = "image.swu") -> int:
    sha = hashlib.sha256(payload).hexdigest()
    uploaded = api.post(
        "/api/v1/artifacts", params={"filename": name, "sha256": sha}, content=payload
    )
    assert uploaded.status_code == 201, uploaded.text
    body = {"version": version, "artifacts": {"hw3": [uploaded.json()["id"]]}}
    created = api.post("/api/v1/releases", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _rollout(api: httpx.Client, version: str, groups: list[str], **options: Any) -> int:
    body = {"release": version, "groups": [{"group": g, **options} for g in groups]}
    answer = api.post("/api/v1/rollouts", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _operate(api: httpx.Client, rollout_id: int, operation: str) -> None:
    answer = api.post(f"/api/v1/rollouts/{rollout_id}/{operation}")
    assert answer.status_code == 200, answer.text


def _poll(api: httpx.Client, car: Car) -> dict[str, Any]:
    answer = api.get(car.base, headers=car.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _action_ids(api: httpx.Client, rollout_id: int) -> dict[str, int]:
    actions = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    return {a["device_id"]: int(a["id"]) for a in actions}


def _states(api: httpx.Client, rollout_id: int) -> dict[str, str]:
    actions = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    return {a["device_id"]: a["state"] for a in actions}


def _deployment(api: httpx.Client, car: Car) -> dict[str, Any]:
    """Poll, follow the deploymentBase link, and return the deployment."""
    links = _poll(api, car)["_links"]
    assert "deploymentBase" in links, links
    answer = api.get(links["deploymentBase"]["href"], headers=car.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _feedback(
    api: httpx.Client,
    car: Car,
    action_id: int,
    execution: str,
    finished: str = "none",
    details: tuple[str, ...] = (),
    kind: str = "deploymentBase",
) -> httpx.Response:
    body = {
        "id": str(action_id),
        "status": {
            "execution": execution,
            "result": {"finished": finished},
            "details": list(details),
        },
    }
    return api.post(f"{car.base}/{kind}/{action_id}/feedback", json=body, headers=car.auth)


def _device(api: httpx.Client, device_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/devices/{device_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _unauthorized(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert set(answer.json()) == {"error"}
    assert "TargetToken" in answer.json()["error"]
    assert answer.headers["www-authenticate"].startswith("TargetToken")


def _seconds(hh_mm_ss: str) -> int:
    hours, minutes, seconds = hh_mm_ss.split(":")
    assert len(hours) == len(minutes) == len(seconds) == 2, hh_mm_ss
    assert 0 <= int(minutes) < 60 and 0 <= int(seconds) < 60, hh_mm_ss
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


# --- authentication ------------------------------------------------------------------------------


def test_a_poll_without_the_right_token_is_401_with_a_json_error(api: httpx.Client) -> None:
    cars = _register(api, {"id": "car-1"}, {"id": "car-2"})
    car, other = cars["car-1"], cars["car-2"]
    _unauthorized(api.get(car.base))
    _unauthorized(api.get(car.base, headers={"Authorization": "TargetToken wrong-token"}))
    _unauthorized(api.get(car.base, headers=other.auth))  # another device's token
    _unauthorized(api.get(car.base, headers={"Authorization": f"Bearer {car.token}"}))
    _unauthorized(api.get(car.base, headers={"Authorization": "GatewayToken not-the-gateway"}))
    _unauthorized(api.get("/DEFAULT/controller/v1/nobody", headers=car.auth))
    assert _poll(api, car)["config"]["polling"]["sleep"]


def test_an_unknown_tenant_is_404(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    answer = api.get(f"/ELSEWHERE/controller/v1/{car.id}", headers=car.auth)
    assert answer.status_code == 404
    assert "ELSEWHERE" in answer.json()["error"]


def test_an_unknown_device_with_the_gateway_token_is_registered_on_first_poll(
    api: httpx.Client,
) -> None:
    assert api.get("/api/v1/devices/gw-car").status_code == 404
    gateway = {"Authorization": f"GatewayToken {GATEWAY_TOKEN}"}
    first = api.get("/DEFAULT/controller/v1/gw-car", headers=gateway)
    assert first.status_code == 200, first.text
    device = _device(api, "gw-car")
    assert device["id"] == "gw-car"
    assert "token_hash" not in device
    again = api.get("/DEFAULT/controller/v1/gw-car", headers=gateway)
    assert again.status_code == 200
    assert api.get("/api/v1/devices").json()["total"] == 1


def test_an_unknown_device_with_a_wrong_gateway_token_is_not_registered(
    api: httpx.Client,
) -> None:
    wrong = {"Authorization": f"GatewayToken {GATEWAY_TOKEN}x"}
    _unauthorized(api.get("/DEFAULT/controller/v1/intruder", headers=wrong))
    assert api.get("/api/v1/devices").json()["total"] == 0


# --- polling and offering ------------------------------------------------------------------------


def test_base_poll_gives_the_polling_interval_as_hh_mm_ss_within_the_jitter(
    api: httpx.Client,
) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    defaults = ServerConfig()
    low = defaults.poll_sleep_s * (1 - defaults.poll_jitter)
    high = defaults.poll_sleep_s * (1 + defaults.poll_jitter)
    sleeps = {_seconds(_poll(api, car)["config"]["polling"]["sleep"]) for _ in range(20)}
    assert all(low - 1 <= s <= high + 1 for s in sleeps), sleeps
    assert len(sleeps) > 1  # spread, so a fleet does not poll in step


def test_deployment_is_offered_only_once_the_group_started_and_the_rollout_runs(
    api: httpx.Client,
) -> None:
    cars = _register(api, {"id": "first"}, {"id": "second"})
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["id:first", "id:second"], auto_advance=False)
    assert "deploymentBase" not in _poll(api, cars["first"])["_links"]  # created, not started
    _operate(api, rollout_id, "start")
    links = _poll(api, cars["first"])["_links"]
    assert "deploymentBase" in links
    assert (
        f"/deploymentBase/{_action_ids(api, rollout_id)['first']}"
        in links["deploymentBase"]["href"]
    )
    assert "deploymentBase" not in _poll(api, cars["second"])["_links"]  # group 2 not started


def test_halting_stops_offering_to_devices_that_have_not_retrieved_yet(api: httpx.Client) -> None:
    cars = _register(api, {"id": "early"}, {"id": "late"})
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["hw:hw3"])
    _operate(api, rollout_id, "start")
    _deployment(api, cars["early"])
    _operate(api, rollout_id, "halt")

    assert "deploymentBase" in _poll(api, cars["early"])["_links"]  # already in its hands
    assert "deploymentBase" not in _poll(api, cars["late"])["_links"]
    late_action = _action_ids(api, rollout_id)["late"]
    refused = api.get(
        f"{cars['late'].base}/deploymentBase/{late_action}", headers=cars["late"].auth
    )
    assert refused.status_code == 404
    assert _states(api, rollout_id) == {"early": "retrieved", "late": "scheduled"}

    _operate(api, rollout_id, "resume")
    assert "deploymentBase" in _poll(api, cars["late"])["_links"]


def test_deployment_lists_artifacts_with_hashes_size_and_download_links(
    api: httpx.Client,
) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["hw:hw3"])
    _operate(api, rollout_id, "start")
    deployment = _deployment(api, car)

    assert deployment["id"] == str(_action_ids(api, rollout_id)["car-1"])
    [chunk] = deployment["deployment"]["chunks"]
    assert chunk["version"] == VERSION
    [artifact] = chunk["artifacts"]
    assert artifact["filename"] == "image.swu"
    assert artifact["size"] == len(PAYLOAD)
    assert artifact["hashes"] == {
        "sha1": hashlib.sha1(PAYLOAD).hexdigest(),
        "md5": hashlib.md5(PAYLOAD).hexdigest(),
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
    }
    download = api.get(artifact["_links"]["download-http"]["href"], headers=car.auth)
    assert download.status_code == 200
    assert download.content == PAYLOAD
    assert _states(api, rollout_id) == {"car-1": "retrieved"}


def test_an_interrupted_download_resumes_with_a_range_request(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION, PAYLOAD)
    _operate(api, _rollout(api, VERSION, ["hw:hw3"]), "start")
    href = _deployment(api, car)["deployment"]["chunks"][0]["artifacts"][0]["_links"][
        "download-http"
    ]["href"]
    for offset in (1, 1000, len(PAYLOAD) - 1):
        tail = api.get(href, headers={**car.auth, "Range": f"bytes={offset}-"})
        assert tail.status_code == 206
        assert tail.content == PAYLOAD[offset:]
        assert tail.headers["content-range"] == f"bytes {offset}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
    received = PAYLOAD[:777]  # what arrived before the link dropped
    rest = api.get(href, headers={**car.auth, "Range": f"bytes={len(received)}-"})
    assert (
        hashlib.sha256(received + rest.content).hexdigest() == hashlib.sha256(PAYLOAD).hexdigest()
    )


def test_the_md5sum_file_gives_the_artifacts_md5_line(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION, PAYLOAD)
    _operate(api, _rollout(api, VERSION, ["hw:hw3"]), "start")
    links = _deployment(api, car)["deployment"]["chunks"][0]["artifacts"][0]["_links"]
    assert links["md5sum-http"]["href"] == links["download-http"]["href"] + ".MD5SUM"
    answer = api.get(links["md5sum-http"]["href"], headers=car.auth)
    assert answer.status_code == 200
    assert answer.text == f"{hashlib.md5(PAYLOAD).hexdigest()}  image.swu\n"


def test_a_device_cannot_download_an_artifact_of_a_release_it_was_not_assigned(
    api: httpx.Client,
) -> None:
    cars = _register(api, {"id": "assigned"}, {"id": "outsider"}, {"id": "queued"})
    _release(api, VERSION, PAYLOAD)
    _release(api, "2025.45.1", OTHER_PAYLOAD, "other.swu")
    _operate(api, _rollout(api, VERSION, ["id:assigned", "id:queued"], auto_advance=False), "start")
    _operate(api, _rollout(api, "2025.45.1", ["id:outsider"]), "start")
    _deployment(api, cars["outsider"])
    links = _deployment(api, cars["assigned"])["deployment"]["chunks"][0]["artifacts"][0]["_links"]
    for name in ("outsider", "queued"):
        for href in (links["download-http"]["href"], links["md5sum-http"]["href"]):
            answer = api.get(href.replace("/assigned/", f"/{name}/"), headers=cars[name].auth)
            assert answer.status_code == 404, (name, href)
            assert "image.swu" in answer.json()["error"]
    # the release's own artifact under another release's id is not served either
    wrong_release = links["download-http"]["href"].replace(
        "/softwaremodules/", "/softwaremodules/9"
    )
    assert api.get(wrong_release, headers=cars["assigned"].auth).status_code == 404


# --- feedback ------------------------------------------------------------------------------------


def test_feedback_drives_the_action_to_confirmed_and_sets_the_installed_version(
    api: httpx.Client,
) -> None:
    car = _register(api, {"id": "car-1"}, {"id": "car-2"})["car-1"]
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["hw:hw3"])
    _operate(api, rollout_id, "start")
    action_id = int(_deployment(api, car)["id"])

    steps = [
        ("download", "none", (), "downloading"),
        ("downloaded", "none", (), "downloaded"),
        ("proceeding", "none", ("writing image",), "installing"),
        ("proceeding", "none", ("rebooting into the new image",), "rebooting"),
        ("closed", "success", (), "confirmed"),
    ]
    for execution, finished, details, state in steps:
        answer = _feedback(api, car, action_id, execution, finished, details)
        assert answer.status_code == 200, answer.text
        assert _states(api, rollout_id)["car-1"] == state
    assert _device(api, "car-1")["installed_version"] == VERSION
    assert _device(api, "car-2")["installed_version"] == OLD

    # the same final report again, and a late progress report, change nothing
    audit = api.get("/api/v1/audit", params={"device_id": "car-1"}).json()["entries"]
    assert _feedback(api, car, action_id, "closed", "success").status_code == 200
    assert api.get("/api/v1/audit", params={"device_id": "car-1"}).json()["entries"] == audit
    group = api.get(f"/api/v1/rollouts/{rollout_id}").json()["groups"][0]
    assert (group["counts"]["confirmed"], group["total"]) == (1, 2)


def test_malformed_feedback_is_refused_and_changes_nothing(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["hw:hw3"])
    _operate(api, rollout_id, "start")
    action_id = int(_deployment(api, car)["id"])
    url = f"{car.base}/deploymentBase/{action_id}/feedback"
    bad = api.post(url, json={"status": {"execution": "exploded"}}, headers=car.auth)
    assert bad.status_code == 422
    assert "execution" in bad.json()["error"]
    broken = api.post(url, content=b"{", headers={**car.auth, "content-type": "application/json"})
    assert broken.status_code == 400
    assert set(broken.json()) == {"error"}
    other = api.post(
        f"{car.base}/deploymentBase/{action_id + 100}/feedback",
        json={"status": {"execution": "closed", "result": {"finished": "success"}}},
        headers=car.auth,
    )
    assert other.status_code == 404
    assert _states(api, rollout_id) == {"car-1": "retrieved"}


def test_cancelling_a_rollout_asks_devices_in_progress_to_stop(api: httpx.Client) -> None:
    cars = _register(api, {"id": "busy"}, {"id": "idle"})
    busy = cars["busy"]
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["hw:hw3"])
    _operate(api, rollout_id, "start")
    action_id = int(_deployment(api, busy)["id"])
    assert _feedback(api, busy, action_id, "download").status_code == 200
    _operate(api, rollout_id, "cancel")
    assert _states(api, rollout_id) == {"busy": "cancelling", "idle": "cancelled"}

    links = _poll(api, busy)["_links"]
    assert "deploymentBase" not in links
    assert links["cancelAction"]["href"].endswith(f"{busy.base}/cancelAction/{action_id}")
    cancel = api.get(links["cancelAction"]["href"], headers=busy.auth)
    assert cancel.status_code == 200
    assert cancel.json() == {"id": str(action_id), "cancelAction": {"stopId": str(action_id)}}

    # the device refuses at first (it is mid-write), then stops
    rejected = _feedback(api, busy, action_id, "rejected", kind="cancelAction")
    assert rejected.status_code == 200
    assert _states(api, rollout_id)["busy"] == "cancelling"
    closed = _feedback(api, busy, action_id, "closed", "success", kind="cancelAction")
    assert closed.status_code == 200
    assert _states(api, rollout_id)["busy"] == "cancelled"
    assert "cancelAction" not in _poll(api, busy)["_links"]
    gone = api.get(f"{busy.base}/cancelAction/{action_id}", headers=busy.auth)
    assert gone.status_code == 404
    assert _device(api, "busy")["installed_version"] == OLD


def test_installed_base_link_appears_after_confirmation(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1"})["car-1"]
    _release(api, VERSION, PAYLOAD)
    rollout_id = _rollout(api, VERSION, ["hw:hw3"])
    _operate(api, rollout_id, "start")
    action_id = int(_deployment(api, car)["id"])
    assert "installedBase" not in _poll(api, car)["_links"]
    assert api.get(f"{car.base}/installedBase/{action_id}", headers=car.auth).status_code == 404
    assert _feedback(api, car, action_id, "closed", "success").status_code == 200

    links = _poll(api, car)["_links"]
    assert "deploymentBase" not in links
    assert links["installedBase"]["href"].endswith(f"/installedBase/{action_id}")
    installed = api.get(links["installedBase"]["href"], headers=car.auth)
    assert installed.status_code == 200
    body = installed.json()
    assert body["id"] == str(action_id)
    assert body["deployment"]["chunks"][0]["version"] == VERSION
    assert body["actionHistory"]["status"] == "FINISHED"


# --- configData ----------------------------------------------------------------------------------


def _wait_until_config_data_link_goes(api: httpx.Client, car: Car) -> dict[str, Any]:
    deadline = time.monotonic() + 5.0
    links = _poll(api, car)["_links"]
    while "configData" in links and time.monotonic() < deadline:
        time.sleep(0.05)
        links = _poll(api, car)["_links"]
    return links


def test_config_data_merges_attributes_and_is_asked_for_only_until_the_device_is_seen(
    api: httpx.Client,
) -> None:
    car = _register(api, {"id": "car-1", "attributes": {"site": "berlin", "region": "us"}})["car-1"]
    links = _poll(api, car)["_links"]
    assert links["configData"]["href"].endswith(f"{car.base}/configData")
    answer = api.put(
        links["configData"]["href"],
        json={"mode": "merge", "data": {"region": "eu", "modem": "gen3"}},
        headers=car.auth,
    )
    assert answer.status_code == 200, answer.text
    assert _device(api, "car-1")["attributes"] == {
        "site": "berlin",
        "region": "eu",
        "modem": "gen3",
    }
    assert "configData" not in _wait_until_config_data_link_goes(api, car)


def test_config_data_from_another_device_is_refused(api: httpx.Client) -> None:
    cars = _register(api, {"id": "car-1"}, {"id": "car-2"})
    answer = api.put(
        f"{cars['car-1'].base}/configData", json={"data": {"x": "1"}}, headers=cars["car-2"].auth
    )
    _unauthorized(answer)
    assert _device(api, "car-1")["attributes"] == {}


def test_config_data_replace_mode_keeps_only_the_attributes_sent(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1", "attributes": {"site": "berlin", "region": "us"}})["car-1"]
    answer = api.put(
        f"{car.base}/configData",
        json={"mode": "replace", "data": {"region": "eu"}},
        headers=car.auth,
    )
    assert answer.status_code == 200, answer.text
    assert _device(api, "car-1")["attributes"] == {"region": "eu"}


def test_config_data_remove_mode_drops_the_attributes_named(api: httpx.Client) -> None:
    car = _register(api, {"id": "car-1", "attributes": {"site": "berlin", "region": "us"}})["car-1"]
    answer = api.put(
        f"{car.base}/configData", json={"mode": "remove", "data": {"region": ""}}, headers=car.auth
    )
    assert answer.status_code == 200, answer.text
    assert _device(api, "car-1")["attributes"] == {"site": "berlin"}


def test_config_data_hw_and_version_set_the_device_fields(api: httpx.Client) -> None:
    gateway = {"Authorization": f"GatewayToken {GATEWAY_TOKEN}"}
    assert api.get("/DEFAULT/controller/v1/gw-car", headers=gateway).status_code == 200
    answer = api.put(
        "/DEFAULT/controller/v1/gw-car/configData",
        json={"data": {"hw": "hw3", "version": OLD, "region": "eu"}},
        headers=gateway,
    )
    assert answer.status_code == 200, answer.text
    device = _device(api, "gw-car")
    assert (device["hw"], device["installed_version"]) == ("hw3", OLD)
    assert device["attributes"] == {"region": "eu"}


def test_config_data_with_an_unusable_version_is_400_and_changes_nothing(
    api: httpx.Client,
) -> None:
    car = _register(api, {"id": "car-1", "attributes": {"site": "berlin"}})["car-1"]
    answer = api.put(
        f"{car.base}/configData",
        json={"data": {"version": "not a version", "region": "eu"}},
        headers=car.auth,
    )
    assert answer.status_code == 400, answer.text
    assert "not a version" in answer.json()["error"]
    device = _device(api, "car-1")
    assert (device["installed_version"], device["attributes"]) == (OLD, {"site": "berlin"})
