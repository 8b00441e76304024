"""The signing service: fresh while the server runs, new releases signed at once, and each device
sees its own director metadata and downloads only what it was assigned."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.server._fleet import register_cars, release, rollout
from tests.server._uptane import V1, V2, Site, start_site

from conftest import GATEWAY_TOKEN
from skyfleet import store
from skyfleet.rollout import parse
from skyfleet.store import Store


@pytest.fixture
def site(db: Store, tmp_path: Path) -> Iterator[Site]:
    started, close = start_site(db, tmp_path)
    yield started
    close()


def _version(site: Site, repo: str, role: str) -> int:
    with site.db.read() as conn:
        body = store.metadata(conn, repo, role)
    assert body is not None
    version: int = parse(body).signed.version
    return version


def test_image_repository_is_signed_again_while_the_server_runs(site: Site) -> None:
    before = _version(site, "image", "timestamp")
    site.clock.offset_s = 0.4 * 86400.0  # still more than half its life left: nothing to do
    time.sleep(0.3)
    assert _version(site, "image", "timestamp") == before
    site.clock.offset_s = 0.6 * 86400.0  # past half-way: the background loop signs again
    deadline = time.monotonic() + 10
    while _version(site, "image", "timestamp") == before:
        assert time.monotonic() < deadline, "the image timestamp was not renewed"
        time.sleep(0.05)
    with site.db.read() as conn:
        timestamp = parse(store.metadata(conn, "image", "timestamp") or b"").signed
    assert timestamp.expires.timestamp() > time.time() + 1.5 * 86400.0


def test_director_metadata_is_signed_when_the_device_looks(site: Site) -> None:
    site.device("car-1").check()
    repo = store.director_repo("car-1")
    first = _version(site, repo, "timestamp")
    site.device("car-1").check()
    assert _version(site, repo, "timestamp") == first  # nothing changed, nothing signed
    site.clock.offset_s = 0.6 * 86400.0
    site.device("car-1").check()
    assert _version(site, repo, "timestamp") == first + 1


def test_new_release_is_in_the_image_repository_at_once(site: Site) -> None:
    before = _version(site, "image", "targets")
    release(site.api, V2, ["hw3"])
    assert _version(site, "image", "targets") == before + 1
    with site.db.read() as conn:
        listed = parse(store.metadata(conn, "image", "targets") or b"").signed.targets
    assert f"{V2}/hw3/{V2}-hw3.swu" in listed
    assert {f"{V1}/hw3/{V1}-hw3.swu", f"{V1}/hw4/{V1}-hw4.swu"} <= set(listed)


def test_devices_see_only_their_own_metadata_and_targets(site: Site) -> None:
    car1, car2 = site.cars["car-1"], site.cars["car-2"]
    url = site.server.url
    sha = hashlib.sha256(f"{V1}/hw3".encode() * 64).hexdigest()
    assigned = f"{V1}/hw3/{V1}-hw3.swu"
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in (
            "/tuf/director/timestamp.json",
            "/tuf/director/1.root.json",
            "/tuf/image/timestamp.json",
            f"/tuf/targets/{assigned}",
        ):
            assert client.get(car1.base + path, headers=car1.auth).status_code == 200, path
            answer = client.get(car1.base + path, headers=car2.auth)  # another device's token
            assert answer.status_code == 401, (path, answer.text)
            assert client.get(car1.base + path).status_code == 401
        hashed = f"{V1}/hw3/{sha}.{V1}-hw3.swu"
        assert client.get(f"{car1.base}/tuf/targets/{hashed}", headers=car1.auth).status_code == 200
        for path in (
            f"/tuf/targets/{V1}/hw4/{V1}-hw4.swu",  # genuine, but for other hardware
            f"/tuf/targets/{V1}/hw3/{'0' * 64}.{V1}-hw3.swu",  # wrong hash prefix
            "/tuf/targets/%2e%2e/%2e%2e/keys",
            "/tuf/director/7.targets.json",  # a version that does not exist
        ):
            answer = client.get(car1.base + path, headers=car1.auth)
            assert answer.status_code == 404, (path, answer.text)
            assert set(answer.json()) == {"error"}
        # dot segments are resolved before routing: they leave the device's path (401 there)
        answer = client.get(f"{car1.base}/tuf/targets/../../../skyfleet.db", headers=car1.auth)
        assert answer.status_code in (401, 404) and set(answer.json()) == {"error"}
        # car-2 is in no rollout: its director lists nothing, so nothing downloads
        answer = client.get(f"{car2.base}/tuf/targets/{assigned}", headers=car2.auth)
        assert answer.status_code == 404
        for name in ("5.timestamp.json", "root", "../root.json", "x.targets.json"):
            answer = client.get(f"{car1.base}/tuf/director/{name}", headers=car1.auth)
            assert answer.status_code in (404, 422), (name, answer.text)


def _assigned(site: Site, device_id: str) -> list[str]:
    with site.db.read() as conn:
        return sorted(store.director_targets(conn, device_id))


def test_director_assignment_follows_the_rollout(site: Site) -> None:
    cars = register_cars(
        site.api,
        {"id": "hw4-car", "hw": "hw4", "tags": ["late"]},
        {"id": "hw9-car", "hw": "hw9", "tags": ["late"]},
    )
    site.cars.update(cars)
    hw3 = f"{V1}/hw3/{V1}-hw3.swu"
    assert _assigned(site, "car-1") == [hw3]  # offered by the early-access rollout
    assert _assigned(site, "car-2") == []  # in no rollout
    rollout(site.api, V1, ["tag:late"])
    assert _assigned(site, "hw4-car") == [f"{V1}/hw4/{V1}-hw4.swu"]  # its own hardware's build
    assert _assigned(site, "hw9-car") == []  # no build for hw9: never assigned
    # car-1 installs and confirms: the director keeps listing what it runs ...
    car = site.cars["car-1"]
    with httpx.Client(base_url=site.server.url, timeout=30, headers=car.auth) as device:
        links = device.get(car.base).json()["_links"]
        action = links["deploymentBase"]["href"].split("/")[-1].split("?")[0]
        device.get(links["deploymentBase"]["href"]).raise_for_status()
        body = {"status": {"execution": "closed", "result": {"finished": "success"}}}
        answer = device.post(f"{car.base}/deploymentBase/{action}/feedback", json=body)
        assert answer.status_code == 200, answer.text
        assert _assigned(site, "car-1") == [hw3]
        # ... until it says it runs something else (reflashed): nothing is pushed back on it
        data = {"mode": "merge", "data": {"version": "2025.1.0"}}
        assert device.put(f"{car.base}/configData", json=data).status_code == 200
    assert _assigned(site, "car-1") == []
    # a cancelled rollout assigns nothing to the devices it had not reached
    late = site.api.get("/api/v1/rollouts").json()["rollouts"][0]["id"]
    site.api.post(f"/api/v1/rollouts/{late}/cancel").raise_for_status()
    assert _assigned(site, "hw4-car") == []


def test_a_gateway_reads_metadata_for_its_devices(site: Site) -> None:
    car = site.cars["car-1"]
    gateway = {"Authorization": f"GatewayToken {GATEWAY_TOKEN}"}
    with httpx.Client(base_url=site.server.url, timeout=30) as client:
        answer = client.get(f"{car.base}/tuf/director/timestamp.json", headers=gateway)
        assert answer.status_code == 200, answer.text
        assert parse(answer.content).signed.type == "timestamp"
        wrong = {"Authorization": "GatewayToken not-the-gateway-token-at-all"}
        answer = client.get(f"{car.base}/tuf/director/timestamp.json", headers=wrong)
        assert answer.status_code == 401
