"""Operator access: tokens with roles, 401 without a valid one, 403 for too weak a role, every
operator action in the audit log with who and when, and nothing changed by a refused request."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from conftest import ADMIN_TOKEN
from skyfleet import store
from skyfleet.errors import ConflictError
from skyfleet.store import Store


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _make_token(api: httpx.Client, name: str, role: str) -> str:
    answer = api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def _device_count(api: httpx.Client) -> int:
    total: int = api.get("/api/v1/devices").json()["total"]
    return total


def _refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error"}
    assert words in answer.json()["error"]


def test_missing_token_gets_401_with_how_to_authenticate(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        for method, path in [
            ("GET", "/api/v1/devices"),
            ("GET", "/api/v1/audit"),
            ("POST", "/api/v1/rollouts/1/halt"),
            ("GET", "/api/v1/tokens"),
        ]:
            answer = anonymous.request(method, path)
            _refused(answer, 401, "Authorization: Bearer")
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/api/v1/health").status_code == 200  # liveness stays open


def test_wrong_or_malformed_token_gets_401_and_registers_nothing(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    body = {"devices": [{"id": "car-x"}]}
    for header in (
        _bearer("sfo_not-a-token-anyone-was-given"),
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Bearer"},
    ):
        answer = httpx.post(f"{server.url}/api/v1/devices", json=body, headers=header)
        assert answer.status_code == 401, (header, answer.text)
    assert _device_count(api) == 0


def test_viewer_reads_but_cannot_change_the_fleet(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    viewer = _bearer(_make_token(api, "watcher", "viewer"))
    with httpx.Client(base_url=server.url, timeout=30, headers=viewer) as client:
        assert client.get("/api/v1/devices").status_code == 200
        assert client.get("/api/v1/rollouts").status_code == 200
        assert client.get("/api/v1/whoami").json() == {"name": "watcher", "role": "viewer"}
        _refused(client.post("/api/v1/devices", json={"devices": [{"id": "x"}]}), 403, "viewer")
        _refused(client.post("/api/v1/artifacts", params={"filename": "a"}, content=b"x"), 403, "")
        _refused(client.post("/api/v1/rollouts/1/start"), 403, "operator or above")
        _refused(client.get("/api/v1/tokens"), 403, "admin")
    assert _device_count(api) == 0
    assert api.get("/api/v1/artifacts").json()["artifacts"] == []


def test_operator_changes_the_fleet_but_cannot_make_tokens(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    operator = _bearer(_make_token(api, "ci-bot", "operator"))
    with httpx.Client(base_url=server.url, timeout=30, headers=operator) as client:
        assert client.post("/api/v1/devices", json={"devices": [{"id": "a"}]}).status_code == 201
        answer = client.post("/api/v1/tokens", json={"name": "sneaky", "role": "admin"})
        _refused(answer, 403, "admin")
    names = [t["name"] for t in api.get("/api/v1/tokens").json()["tokens"]]
    assert names == ["admin", "ci-bot"]


def test_every_operator_action_is_audited_with_who_and_when(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    began = time.time()
    operator = _bearer(_make_token(api, "alice", "operator"))
    with httpx.Client(base_url=server.url, timeout=30, headers=operator) as client:
        assert client.post("/api/v1/devices", json={"devices": [{"id": "a"}]}).status_code == 201
        uploaded = client.post(
            "/api/v1/artifacts", params={"filename": "u.swu"}, content=b"image bytes"
        )
        assert uploaded.status_code == 201
    entries = api.get("/api/v1/audit").json()["entries"]
    by_event = {e["event"]: e for e in reversed(entries)}  # the newest of each
    assert by_event["token.create"]["actor"] == "operator:admin"
    assert "alice (operator)" in by_event["token.create"]["detail"]
    assert by_event["device.register"]["actor"] == "operator:alice"
    assert by_event["artifact.upload"]["actor"] == "operator:alice"
    for event in ("token.create", "device.register", "artifact.upload"):
        assert began <= by_event[event]["ts"] <= time.time()  # when: the server's clock


def test_revoked_token_is_refused_at_once(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    token = _make_token(api, "temp", "operator")
    assert httpx.get(f"{server.url}/api/v1/devices", headers=_bearer(token)).status_code == 200
    assert api.delete("/api/v1/tokens/temp").status_code == 200
    _refused(httpx.get(f"{server.url}/api/v1/devices", headers=_bearer(token)), 401, "revoked")
    listed = {t["name"]: t for t in api.get("/api/v1/tokens").json()["tokens"]}
    assert listed["temp"]["revoked_at"] is not None
    assert "token_hash" not in listed["temp"]
    # the name can be given to a new token; the old token stays dead
    fresh = _make_token(api, "temp", "viewer")
    assert fresh != token
    assert httpx.get(f"{server.url}/api/v1/devices", headers=_bearer(token)).status_code == 401


def test_last_admin_cannot_be_revoked_and_duplicates_are_refused(api: httpx.Client) -> None:
    _refused(api.delete("/api/v1/tokens/admin"), 409, "last admin")
    _refused(api.post("/api/v1/tokens", json={"name": "admin", "role": "viewer"}), 409, "exists")
    _refused(api.delete("/api/v1/tokens/nobody"), 404, "nobody")
    answer = api.post("/api/v1/tokens", json={"name": "Bad Name", "role": "viewer"})
    assert answer.status_code == 422, answer.text
    answer = api.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert answer.status_code == 422, answer.text
    assert [t["name"] for t in api.get("/api/v1/tokens").json()["tokens"]] == ["admin"]


def test_tokens_are_stored_hashed(db: Store, api: httpx.Client) -> None:
    token = _make_token(api, "bob", "viewer")
    with db.read() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM operator_tokens").fetchall()
    dumped = repr(rows)
    assert token not in dumped and ADMIN_TOKEN not in dumped
    assert store.hash_token(token) in dumped


@pytest.mark.parametrize(
    ("role", "may"),
    [
        ("viewer", {"viewer"}),
        ("operator", {"viewer", "operator"}),
        ("admin", {"viewer", "operator", "admin"}),
    ],
)
def test_each_role_may_do_what_the_weaker_roles_may(role: str, may: set[str]) -> None:
    who = store.Operator("x", role)
    assert {r for r in ("viewer", "operator", "admin") if who.may(r)} == may
    assert who.actor == "operator:x"


def test_two_admins_revoked_at_once_leave_one(db: Store) -> None:
    with db.begin() as conn:
        store.create_operator_token(conn, 1.0, name="ann", role="admin", actor="t")
        store.create_operator_token(conn, 1.0, name="bob", role="admin", actor="t")
        store.revoke_operator_token(conn, 1.0, "admin", actor="t")  # the fixture's
    results: dict[str, str] = {}

    def revoke_bob() -> None:
        try:
            with db.begin() as conn:
                store.revoke_operator_token(conn, 2.0, "bob", actor="t")
            results["bob"] = "revoked"
        except ConflictError:
            results["bob"] = "refused"
        except Exception as exc:  # a deadlock, say: shown by the assertion below
            results["bob"] = repr(exc)

    with db.begin() as conn:  # ann's revocation is under way, not committed ...
        store.revoke_operator_token(conn, 2.0, "ann", actor="t")
        other = threading.Thread(target=revoke_bob)
        other.start()  # ... while bob's starts on another connection
        other.join(timeout=1.0)
        waited = other.is_alive()  # bob's must wait for ann's to end, not count around it
    other.join(timeout=30)
    assert (waited, results) == (True, {"bob": "refused"})
    with db.read() as conn:
        assert store.count_operators(conn, role="admin") == 1
        assert [t["name"] for t in store.list_operator_tokens(conn) if not t["revoked_at"]] == [
            "bob"
        ]
