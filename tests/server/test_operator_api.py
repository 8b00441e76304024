"""The operator API over HTTP: each bad input gets a 4xx JSON error naming the problem and writes
nothing; the happy path from upload to a started rollout; the OpenAPI document."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
from tests.server._fleet import members, register_fleet, release

from skyfleet.store import Store

V1, V2 = "2025.44.25.5", "2025.46.1"


# --- helpers -------------------------------------------------------------------------------------


def _written(api: httpx.Client) -> dict[str, Any]:
    """Everything the operator API can count, to compare before and after a refused request."""
    return {
        "devices": api.get("/api/v1/devices").json()["total"],
        "artifacts": api.get("/api/v1/artifacts").json()["artifacts"],
        "releases": api.get("/api/v1/releases").json()["releases"],
        "rollouts": api.get("/api/v1/rollouts").json()["rollouts"],
        "audit": api.get("/api/v1/audit", params={"limit": 10_000}).json()["entries"],
    }


def _refused(answer: httpx.Response, status: int, *names: str) -> str:
    """Check a JSON error ``{"error": ...}`` with ``status`` that names each of ``names``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"}
    message: str = body["error"]
    for name in names:
        assert name in message, message
    return message


def _upload(api: httpx.Client, payload: bytes, name: str = "update.swu") -> dict[str, Any]:
    sha = hashlib.sha256(payload).hexdigest()
    answer = api.post(
        "/api/v1/artifacts", params={"filename": name, "sha256": sha}, content=payload
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _release(api: httpx.Client, version: str, generations: tuple[str, ...] = ("hw3",)) -> None:
    sets = {
        hw: [_upload(api, f"{version}/{hw}".encode() * 50, f"{hw}.swu")["id"]] for hw in generations
    }
    answer = api.post("/api/v1/releases", json={"version": version, "artifacts": sets})
    assert answer.status_code == 201, answer.text


def _devices(api: httpx.Client, *specs: dict[str, Any]) -> None:
    answer = api.post("/api/v1/devices", json={"devices": list(specs)})
    assert answer.status_code == 201, answer.text


def _rollout(api: httpx.Client, version: str, groups: list[str]) -> int:
    body = {"release": version, "groups": [{"group": g} for g in groups]}
    answer = api.post("/api/v1/rollouts", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the happy path ------------------------------------------------------------------------------


def test_upload_release_rollout_and_start_give_a_status_with_per_group_counts(
    api: httpx.Client, db: Store
) -> None:
    payloads = {"hw3": b"hw3 image " * 300, "hw4": b"hw4 image " * 200}
    uploaded = {hw: _upload(api, data, f"{hw}.swu") for hw, data in payloads.items()}
    for hw, art in uploaded.items():
        assert art["sha256"] == hashlib.sha256(payloads[hw]).hexdigest()
        assert art["sha1"] == hashlib.sha1(payloads[hw]).hexdigest()
        assert art["md5"] == hashlib.md5(payloads[hw]).hexdigest()
        assert art["size"] == len(payloads[hw])
        assert (db.artifacts_dir / art["sha256"]).read_bytes() == payloads[hw]

    created = api.post(
        "/api/v1/releases",
        json={
            "version": V1,
            "notes": "holiday update",
            "artifacts": {hw: [a["id"]] for hw, a in uploaded.items()},
        },
    )
    assert created.status_code == 201, created.text
    release = api.get(f"/api/v1/releases/{V1}").json()
    assert release["generations"] == ["hw3", "hw4"]
    assert {hw: [a["sha256"] for a in arts] for hw, arts in release["artifacts"].items()} == {
        hw: [a["sha256"]] for hw, a in uploaded.items()
    }

    fleet = [
        {"id": "eap-1", "hw": "hw3", "tags": ["eap"]},
        {"id": "eap-2", "hw": "hw4", "tags": ["eap"]},
        {"id": "car-1", "hw": "hw3"},
        {"id": "car-2", "hw": "hw3"},
        {"id": "car-3", "hw": "hw4"},
        {"id": "old-1", "hw": "hw2"},  # no artifact for hw2: never assigned
    ]
    registered = api.post("/api/v1/devices", json={"devices": fleet})
    assert registered.status_code == 201, registered.text
    tokens = registered.json()["devices"]
    assert [t["id"] for t in tokens] == [d["id"] for d in fleet]
    assert all(len(t["token"]) >= 16 for t in tokens)  # generated once, shown once

    groups = ["tag:eap", "hw:hw3", "hw:hw4"]
    rollout_id = _rollout(api, V1, groups)
    assert api.get(f"/api/v1/rollouts/{rollout_id}").json()["status"] == "created"
    started = api.post(f"/api/v1/rollouts/{rollout_id}/start")
    assert started.status_code == 200, started.text

    status = api.get(f"/api/v1/rollouts/{rollout_id}").json()
    assert status["status"] == "running"
    assert status["release"] == V1
    assert [g["group"] for g in status["groups"]] == groups
    assert [g["started"] for g in status["groups"]] == [True, False, False]
    eap = [d for d in fleet if "eap" in d.get("tags", [])]
    hw3 = [d for d in fleet if d not in eap and d["hw"] == "hw3"]
    hw4 = [d for d in fleet if d not in eap and d["hw"] == "hw4"]
    assert [g["total"] for g in status["groups"]] == [len(eap), len(hw3), len(hw4)]
    for group in status["groups"]:
        assert group["counts"]["scheduled"] == group["total"]
        assert sum(group["counts"].values()) == group["total"]
    assert status["total"] == len(eap) + len(hw3) + len(hw4)

    members = api.get(f"/api/v1/rollouts/{rollout_id}/actions", params={"group": 1}).json()
    assert sorted(a["device_id"] for a in members["actions"]) == sorted(d["id"] for d in eap)
    events = [e["event"] for e in api.get("/api/v1/audit").json()["entries"]]
    for event in ("artifact.upload", "release.create", "rollout.create", "rollout.status"):
        assert event in events


def test_health_names_the_database(api: httpx.Client, db: Store) -> None:
    health = api.get("/api/v1/health").json()
    assert health["status"] == "ok"
    assert health["database"] == db.dialect


def test_openapi_document_lists_the_operator_and_device_paths(api: httpx.Client) -> None:
    answer = api.get("/openapi.json")
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    for path in (
        "/api/v1/devices",
        "/api/v1/artifacts",
        "/api/v1/releases",
        "/api/v1/rollouts",
        "/api/v1/rollouts/{rollout_id}",
        "/api/v1/rollouts/{rollout_id}/rollback",
        "/api/v1/audit",
        "/{tenant}/controller/v1/{controller_id}",
        "/{tenant}/controller/v1/{controller_id}/deploymentBase/{action_id}",
        "/{tenant}/controller/v1/{controller_id}/deploymentBase/{action_id}/feedback",
        "/{tenant}/controller/v1/{controller_id}/cancelAction/{action_id}",
        "/{tenant}/controller/v1/{controller_id}/configData",
        "/{tenant}/controller/v1/{controller_id}/softwaremodules/{release_id}/artifacts/{filename}",
    ):
        assert path in paths, path
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))  # each operation named once


# --- bad input: a clear 4xx, nothing written -----------------------------------------------------


def test_a_rollout_of_an_unknown_release_is_404_and_writes_nothing(api: httpx.Client) -> None:
    _devices(api, {"id": "car-1"})
    before = _written(api)
    answer = api.post("/api/v1/rollouts", json={"release": "9.9.9", "groups": [{"group": "*"}]})
    _refused(answer, 404, "9.9.9")
    _refused(api.get("/api/v1/releases/9.9.9"), 404, "9.9.9")
    assert _written(api) == before


def test_a_duplicate_release_version_is_refused_and_writes_nothing(api: httpx.Client) -> None:
    _release(api, V1)
    artifact = _upload(api, b"another build")
    before = _written(api)
    answer = api.post(
        "/api/v1/releases", json={"version": V1, "artifacts": {"hw4": [artifact["id"]]}}
    )
    _refused(answer, 400, V1, "already exists")
    assert _written(api) == before


def test_a_release_with_an_unknown_artifact_is_404_and_writes_nothing(api: httpx.Client) -> None:
    artifact = _upload(api, b"build")
    before = _written(api)
    answer = api.post(
        "/api/v1/releases", json={"version": V1, "artifacts": {"hw3": [artifact["id"], 4242]}}
    )
    _refused(answer, 404, "4242")
    assert _written(api) == before


def test_an_upload_whose_declared_sha256_differs_is_400_and_leaves_no_file(
    api: httpx.Client, db: Store
) -> None:
    before = _written(api)
    files_before = _files(db.artifacts_dir)
    declared = hashlib.sha256(b"what the operator meant to send").hexdigest()
    answer = api.post(
        "/api/v1/artifacts",
        params={"filename": "update.swu", "sha256": declared},
        content=b"what actually arrived" * 1000,
    )
    _refused(answer, 400, "sha256", declared)
    assert _written(api) == before
    assert _files(db.artifacts_dir) == files_before


BAD_UPLOADS = [
    ({"filename": "update.swu", "sha256": "not-a-hash"}, 422, "sha256"),
    ({"filename": "../escape.swu"}, 400, "../escape.swu"),
    ({"filename": "a:b.swu"}, 400, "a:b.swu"),
    ({}, 422, "filename"),
]


def test_an_upload_with_bad_parameters_is_refused_and_leaves_no_file(
    api: httpx.Client, db: Store
) -> None:
    before = _written(api)
    files_before = _files(db.artifacts_dir)
    for params, status, name in BAD_UPLOADS:
        answer = api.post("/api/v1/artifacts", params=params, content=b"bytes")
        _refused(answer, status, name)
    assert _written(api) == before
    assert _files(db.artifacts_dir) == files_before


BAD_GROUPS = [
    ("color:red", "color:red"),
    ("hw:hw3 150%", "150%"),
    ("kind:boat", "boat"),
    ("10% hw:hw3", "last term"),
    ("version<", "version<"),
]


def test_a_malformed_group_filter_is_400_naming_it_and_writes_nothing(api: httpx.Client) -> None:
    _release(api, V1)
    _devices(api, {"id": "car-1"})
    before = _written(api)
    for group, name in BAD_GROUPS:
        body = {"release": V1, "groups": [{"group": "tag:eap"}, {"group": group}]}
        _refused(api.post("/api/v1/rollouts", json=body), 400, name)
    assert _written(api) == before


def test_impossible_group_thresholds_are_400_and_write_nothing(api: httpx.Client) -> None:
    _release(api, V1)
    before = _written(api)
    body = {"release": V1, "groups": [{"group": "hw:hw3", "success_pct": 120.0}]}
    _refused(api.post("/api/v1/rollouts", json=body), 400, "120")
    assert _written(api) == before


def test_a_body_that_is_not_json_is_400_and_writes_nothing(api: httpx.Client) -> None:
    before = _written(api)
    for path in ("/api/v1/devices", "/api/v1/releases", "/api/v1/rollouts"):
        answer = api.post(
            path,
            content=b'{"devices": [{"id": "car-1"',
            headers={"content-type": "application/json"},
        )
        _refused(answer, 400, "not valid JSON")
    assert _written(api) == before


def test_a_body_with_an_unknown_or_invalid_field_is_422_naming_it(api: httpx.Client) -> None:
    before = _written(api)
    unknown = api.post("/api/v1/devices", json={"devices": [{"id": "car-1", "colour": "red"}]})
    _refused(unknown, 422, "colour")
    slash = api.post("/api/v1/devices", json={"devices": [{"id": "a/b"}]})
    _refused(slash, 422, "id")
    assert _written(api) == before


def test_an_unknown_rollout_id_is_404(api: httpx.Client) -> None:
    before = _written(api)
    for method, path in (
        ("GET", "/api/v1/rollouts/999"),
        ("GET", "/api/v1/rollouts/999/actions"),
        ("POST", "/api/v1/rollouts/999/start"),
        ("POST", "/api/v1/rollouts/999/cancel"),
        ("POST", "/api/v1/rollouts/999/rollback"),
    ):
        _refused(api.request(method, path), 404, "999")
    assert _written(api) == before


def test_an_unknown_device_is_404(api: httpx.Client) -> None:
    _refused(api.get("/api/v1/devices/nobody"), 404, "nobody")


def test_an_operation_the_status_forbids_is_409_and_changes_nothing(api: httpx.Client) -> None:
    _release(api, V1)
    _devices(api, {"id": "car-1"})
    rollout_id = _rollout(api, V1, ["hw:hw3"])
    before = _written(api)
    for operation in ("resume", "halt", "rollback"):
        _refused(api.post(f"/api/v1/rollouts/{rollout_id}/{operation}"), 409, operation, "created")
    assert _written(api) == before

    api.post(f"/api/v1/rollouts/{rollout_id}/cancel").raise_for_status()
    before = _written(api)
    for operation in ("start", "resume", "halt", "cancel"):
        _refused(
            api.post(f"/api/v1/rollouts/{rollout_id}/{operation}"), 409, operation, "cancelled"
        )
    assert _written(api) == before
    assert api.get(f"/api/v1/rollouts/{rollout_id}").json()["status"] == "cancelled"


def test_an_unknown_operation_is_refused(api: httpx.Client) -> None:
    _release(api, V1)
    rollout_id = _rollout(api, V1, ["hw:hw3"])
    before = _written(api)
    answer = api.post(f"/api/v1/rollouts/{rollout_id}/explode")
    assert 400 <= answer.status_code < 500
    _refused(answer, answer.status_code, "operation")
    assert _written(api) == before


def test_a_duplicate_device_id_is_409_and_stores_none_of_the_batch(api: httpx.Client) -> None:
    _devices(api, {"id": "car-1"})
    before = _written(api)
    answer = api.post("/api/v1/devices", json={"devices": [{"id": "car-2"}, {"id": "car-1"}]})
    _refused(answer, 409, "car-1")
    twice = api.post("/api/v1/devices", json={"devices": [{"id": "car-3"}, {"id": "car-3"}]})
    _refused(twice, 400, "twice")
    assert _written(api) == before
    _refused(api.get("/api/v1/devices/car-2"), 404, "car-2")


def test_a_device_registered_while_a_rollout_runs_joins_its_group(api: httpx.Client) -> None:
    _release(api, V1)
    _devices(api, {"id": "car-1"})
    rollout_id = _rollout(api, V1, ["tag:eap", "hw:hw3"])
    api.post(f"/api/v1/rollouts/{rollout_id}/start").raise_for_status()
    _devices(api, {"id": "late-eap", "tags": ["eap"]}, {"id": "late-car"})
    actions = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    assert {a["device_id"]: a["group"] for a in actions} == {
        "car-1": 2,
        "late-eap": 1,
        "late-car": 2,
    }


def test_rollback_over_http_starts_a_rollout_to_the_previous_release(api: httpx.Client) -> None:
    _release(api, V1)
    _release(api, V2)
    answer = api.post(
        "/api/v1/devices",
        json={"devices": [{"id": "car-1", "installed_version": V1}, {"id": "car-2"}]},
    )
    token = answer.json()["devices"][0]["token"]
    rollout_id = _rollout(api, V2, ["hw:hw3"])
    api.post(f"/api/v1/rollouts/{rollout_id}/start").raise_for_status()
    # car-1 takes the update over DDI and confirms it
    auth = {"Authorization": f"TargetToken {token}"}
    href = api.get("/DEFAULT/controller/v1/car-1", headers=auth).json()["_links"]["deploymentBase"]
    action_id = api.get(href["href"], headers=auth).json()["id"]
    feedback = {"status": {"execution": "closed", "result": {"finished": "success"}}}
    api.post(
        f"/DEFAULT/controller/v1/car-1/deploymentBase/{action_id}/feedback",
        json=feedback,
        headers=auth,
    ).raise_for_status()
    assert api.get("/api/v1/devices/car-1").json()["installed_version"] == V2

    back = api.post(f"/api/v1/rollouts/{rollout_id}/rollback", json={"to": V1})
    assert back.status_code == 201, back.text
    body = back.json()
    assert (body["release"], body["rollback_of"], body["status"]) == (V1, rollout_id, "running")
    members = api.get(f"/api/v1/rollouts/{body['id']}/actions").json()["actions"]
    assert [a["device_id"] for a in members] == ["car-1"]
    assert api.get(f"/api/v1/rollouts/{rollout_id}").json()["status"] == "cancelled"


def test_a_rollout_seed_picks_the_same_members_and_a_bad_one_is_refused(
    api: httpx.Client,
) -> None:
    register_fleet(api, hw3=60, hw4=0, eap_each=0)
    release(api, "2025.44.25.5", ["hw3"])
    chosen = []
    for seed in ("holiday-1", "holiday-1", "holiday-2"):
        body = {"release": "2025.44.25.5", "seed": seed, "groups": [{"group": "hw:hw3 25%"}]}
        created = api.post("/api/v1/rollouts", json=body)
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        chosen.append({m["device_id"] for m in members(api, rid, 1)})
        assert api.post(f"/api/v1/rollouts/{rid}/cancel").status_code == 200
    assert chosen[0] == chosen[1]  # the same seed: the same devices
    assert chosen[0] != chosen[2] and 0 < len(chosen[0]) < 60
    bad = {"release": "2025.44.25.5", "seed": "a b", "groups": [{"group": "hw:hw3"}]}
    refused = api.post("/api/v1/rollouts", json=bad)
    assert refused.status_code == 422 and "seed" in refused.text
    assert len(api.get("/api/v1/rollouts").json()["rollouts"]) == 3  # nothing written
