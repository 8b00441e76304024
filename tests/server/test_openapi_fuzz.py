"""The OpenAPI document, fuzzed: every operation, valid and invalid input, against a real server.

schemathesis reads ``/openapi.json`` from a live server on loopback and, for each operation,
generates requests from it with Hypothesis: conforming ones (the positive mode) and ones that
break the schema in one place (the negative mode). Every answer must be

- no server error (5xx): bad input gets a 4xx JSON error, never a traceback,
- a status code the operation documents, with a content type it documents for that code,
- a body (and documented headers) that conform to the documented schema.

Random values rarely name a device, action or release that exists, so each test first makes its
own fleet through the API (three devices: one with an update in hand, one that installed it, one
being asked to cancel it; two rollouts; a viewer token), and a request may pin its path
parameters to those values and carry the device's own ``TargetToken`` (device API). That reaches
the deep paths: feedback on a live action, the download of an assigned artifact, a cancel, a
token revoked. Operator requests carry the admin's token, or now and then a viewer's (403 for
changes); the negative mode also sends them with none (401). One server per database serves all
the operations; each test's fleet is its own, so no test depends on what another one did.

Bounded and repeatable: ``MAX_EXAMPLES`` requests per operation, derandomized (the same requests
on every run, no example database), about a minute for the two databases on two cores. The
device rate limits are off, so that the requests reach the routes rather than the 429 in front
of them (tested on their own). It runs on SQLite and PostgreSQL, as the rest of the suite does,
because they refuse different values: SQLite an integer over 64 bits, PostgreSQL a NUL byte in
text or a string longer than its column.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import GATEWAY_TOKEN, START, LiveServer, _reset_pg, add_admin
from skyfleet.server import ServerConfig, create_app
from skyfleet.store import Store, create_operator_token, open_store

#: Requests generated per operation (valid and invalid ones together).
MAX_EXAMPLES = 30

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

#: The admin the fuzzer acts as: not the test stores' usual "admin", which the fuzzer could
#: revoke by guessing its name (then every later request would get 401).
FUZZ_ADMIN_TOKEN = "sfo_fuzz-admin-token-0123456789abcdef"
OPERATOR = {"Authorization": f"Bearer {FUZZ_ADMIN_TOKEN}"}
VIEWER_TOKEN = "sfo_fuzz-viewer-token-0123456789abcdef"
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
RELEASE = "2026.1.0"
OLD_RELEASE = "2025.1.0"
TENANT = "DEFAULT"
ARTIFACT = "fuzz.swu"


@dataclass(frozen=True)
class Server:
    """A live server over a store with two releases, and its document as schemathesis reads it."""

    url: str
    schema: schemathesis.BaseSchema
    release_id: int


@dataclass(frozen=True)
class Fleet:
    """What the store holds for one test, as values for path parameters, and device tokens.

    ``devices``: by the state of the device's action, the parameters that go with that device
    (its id, its action, the release and artifacts it may download); ``operator``: a device,
    a running rollout, a release and an operator token's name. Each parameter is a list of
    values to choose from.
    """

    devices: dict[str, dict[str, list[Any]]]
    operator: dict[str, list[Any]]
    tokens: dict[str, str]

    def known(self, path: str) -> dict[str, list[Any]]:
        """The values that suit ``path`` best: for a cancel request, the device being cancelled;
        for the installed deployment, the one that installed it; else the one updating."""
        if path.startswith("/api/"):
            return self.operator
        if "/cancelAction/" in path:
            return self.devices["cancelling"]
        return self.devices["installed" if "/installedBase/" in path else "updating"]


def _created(answer: httpx.Response) -> Any:
    assert answer.status_code in (200, 201), answer.text
    return answer.json() if answer.content else None


def _release(api: httpx.Client, version: str) -> int:
    """Upload an artifact for hw3 and make a release of it; the release's id."""
    payload = f"skyfleet {version} for the fuzzer\n".encode() * 40
    sha = hashlib.sha256(payload).hexdigest()
    art = _created(
        api.post("/api/v1/artifacts", params={"filename": ARTIFACT, "sha256": sha}, content=payload)
    )
    sets = {"hw3": [art["id"]]}
    release = _created(api.post("/api/v1/releases", json={"version": version, "artifacts": sets}))
    return int(release["id"])


def _fleet(api: httpx.Client, release_id: int, n: int) -> Fleet:
    """Test ``n``'s own devices, so that every test starts from the same kind of store whatever
    the tests before it did (revoked, cancelled, rolled back): ``updating`` has the update in
    hand, ``installed`` confirmed it (both in one running rollout), ``cancelling`` had it in hand
    when its rollout was cancelled."""
    cars = {state: f"car{n}-{state}" for state in ("updating", "installed", "cancelling")}
    tags = {"updating": f"fuzz{n}", "installed": f"fuzz{n}", "cancelling": f"fuzz{n}-cancel"}
    specs = [
        {"id": car, "hw": "hw3", "installed_version": OLD_RELEASE, "tags": [tags[state]]}
        for state, car in cars.items()
    ]
    registered = _created(api.post("/api/v1/devices", json={"devices": specs}))["devices"]
    tokens = {d["id"]: d["token"] for d in registered}
    action: dict[str, int] = {}
    rollouts: dict[str, int] = {}
    for tag in (f"fuzz{n}", f"fuzz{n}-cancel"):
        body = {"release": RELEASE, "groups": [{"group": f"tag:{tag} 100%"}]}
        rollout = _created(api.post("/api/v1/rollouts", json=body))["id"]
        _created(api.post(f"/api/v1/rollouts/{rollout}/start"))
        for row in _created(api.get(f"/api/v1/rollouts/{rollout}/actions"))["actions"]:
            action[row["device_id"]] = row["id"]
        rollouts[tag] = rollout
    for car in cars.values():  # each device fetches its deployment: the update is in hand
        auth = {"Authorization": f"TargetToken {tokens[car]}"}
        base = f"/{TENANT}/controller/v1/{car}/deploymentBase/{action[car]}"
        _created(api.get(base, headers=auth))
        if car == cars["installed"]:
            done = {"status": {"execution": "closed", "result": {"finished": "success"}}}
            _created(api.post(f"{base}/feedback", json=done, headers=auth))
    _created(api.post(f"/api/v1/rollouts/{rollouts[f'fuzz{n}-cancel']}/cancel"))
    name = f"fuzz-viewer-{n}"
    _created(api.post("/api/v1/tokens", json={"name": name, "role": "viewer"}))
    devices = {
        state: {
            "tenant": [TENANT],
            "controller_id": [car],
            "action_id": [action[car]],
            "release_id": [release_id],
            "filename": [ARTIFACT, f"{ARTIFACT}.MD5SUM"],
            "target": [f"{RELEASE}/hw3/{ARTIFACT}"],
        }
        for state, car in cars.items()
    }
    operator = {
        "device_id": sorted(cars.values()),
        "rollout_id": [rollouts[f"fuzz{n}"]],
        "version": [RELEASE, OLD_RELEASE],
        "name": [name],
    }
    return Fleet(devices, operator, tokens)


def _store(request: pytest.FixtureRequest, folder: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'skyfleet.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        _reset_pg(url)
    db = open_store(url, artifacts_dir=folder / "artifacts")
    add_admin(db)
    with db.begin() as conn:
        for name, role, token in (
            ("fuzz-admin", "admin", FUZZ_ADMIN_TOKEN),
            ("fuzz-viewer", "viewer", VIEWER_TOKEN),
        ):
            create_operator_token(conn, START, name=name, role=role, actor="tests", token=token)
    return db


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per database for all the operations (each test brings its own devices)."""
    db = _store(request, tmp_path_factory.mktemp("fuzz"))
    config = ServerConfig(
        gateway_token=GATEWAY_TOKEN,
        sweep_interval_s=0.05,
        touch_flush_s=0.05,
        device_rate_per_s=0.0,
        auth_fail_rate_per_s=0.0,
    )
    try:
        with LiveServer(create_app(config, db=db)) as live:
            with httpx.Client(base_url=live.url, headers=OPERATOR, timeout=30.0) as api:
                _release(api, OLD_RELEASE)  # what a rollback goes back to
                release_id = _release(api, RELEASE)
            schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
            schema.config.update(base_url=live.url)
            yield Server(live.url, schema, release_id)
    finally:
        db.close()


_COUNT = itertools.count(1)


#: The path parameters a fleet has values for; an operation with none of them needs no fleet.
FLEET_PARAMETERS = frozenset(
    {"device_id", "rollout_id", "version", "name", "tenant", "controller_id", "action_id"}
)


@pytest.fixture
def fleet(server: Server, path: str) -> Fleet:
    """This test's own devices, rollouts and token on the module's server (none, and no time
    spent making them, for an operation whose path has nothing to pin)."""
    if not any(f"{{{name}}}" in path for name in FLEET_PARAMETERS):
        return Fleet({}, {}, {})
    with httpx.Client(base_url=server.url, headers=OPERATOR, timeout=30.0) as api:
        return _fleet(api, server.release_id, next(_COUNT))


def _pin(case: Case, fleet: Fleet, data: st.DataObject) -> dict[str, str]:
    """Maybe replace fuzzed path parameters with what the store holds; the request's credentials.

    ``known``: every path parameter the store has a value for, from the values that suit the
    operation; ``mixed``: each parameter or not, from any device's values; ``fuzzed``: none, and a
    device request keeps its fuzzed Authorization header (a 401, mostly). Operator requests are
    the admin's, one in four the viewer's.
    """
    how = data.draw(st.sampled_from(["known", "mixed", "fuzzed"]), label="parameters")
    operator = case.path.startswith("/api/")
    params = case.path_parameters if case.path_parameters is not None else {}
    if how == "known":
        known = fleet.known(case.path)
    elif how == "mixed" and not operator:
        known = data.draw(st.sampled_from(sorted(fleet.devices.items())), label="device")[1]
    else:
        known = fleet.operator if how == "mixed" else {}
    for name in sorted(set(params) & set(known)):
        if how == "known" or data.draw(st.booleans(), label=f"pin {name}"):
            params[name] = data.draw(st.sampled_from(known[name]), label=name)
    if operator:
        return data.draw(st.sampled_from([OPERATOR, OPERATOR, OPERATOR, VIEWER]), label="who")
    if how == "fuzzed":
        return {}
    device = params.get("controller_id")
    token = fleet.tokens.get(device, "") if isinstance(device, str) else ""
    return {"Authorization": f"TargetToken {token or next(iter(fleet.tokens.values()))}"}


def _modes(operation: dict[str, Any]) -> list[GenerationMode]:
    """Valid input for every operation; invalid too where there is something to break (a
    parameter, a body, a token)."""
    if any(key in operation for key in ("parameters", "requestBody", "security")):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def _endless(operation: dict[str, Any]) -> bool:
    """An event stream never ends, so a client that reads a whole answer would wait forever:
    the dashboard's ``/events`` is tested on its own (tests/server/test_dashboard_api.py)."""
    ok = operation.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


#: Every operation of the document but the endless streams, as (path, method, its modes): one
#: test each.
OPERATIONS = [
    pytest.param(path, method.upper(), _modes(operation), id=f"{method.upper()} {path}")
    for path, item in create_app().openapi()["paths"].items()
    for method, operation in item.items()
    if not _endless(operation)
]


@pytest.mark.parametrize(("path", "method", "modes"), OPERATIONS)
def test_operation_conforms_to_its_document_under_fuzzing(
    server: Server, fleet: Fleet, path: str, method: str, modes: list[GenerationMode]
) -> None:
    operation = server.schema[path][method]
    cases = st.one_of([operation.as_strategy(mode) for mode in modes])

    with requests.Session() as session:

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(case=cases, data=st.data())
        def fuzz(case: Case, data: st.DataObject) -> None:
            headers = _pin(case, fleet, data)
            case.call_and_validate(session=session, headers=headers, checks=CHECKS)

        fuzz()
