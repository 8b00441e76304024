"""Helpers for the end-to-end tests: a fleet of simulated DDI devices and a release to ship."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from skyfleet.sim import DdiDevice, run_rounds

#: A modular datacenter site in the Pilbara, its region Sydney (a DeviceIn body).
MINE: dict[str, Any] = {
    "id": "pilbara-mine",
    "kind": "site",
    "hw": "site1",
    "attributes": {
        "lat_deg": "-22.31",
        "lon_deg": "118.35",
        "region": "aws:ap-southeast-2",
        "name": "Pilbara mine",
    },
}

OLD = "2025.38.1"
HOLIDAY = "2025.44.25.5"
FSD = "fsd-14.2.1.25"


@dataclass
class Car:
    """A registered device and how it signs its requests."""

    id: str
    token: str

    @property
    def base(self) -> str:
        return f"/DEFAULT/controller/v1/{self.id}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.token}"}


def register_cars(api: httpx.Client, *specs: dict[str, Any]) -> dict[str, Car]:
    """Register devices (each spec a DeviceIn body, installed version OLD unless given)."""
    answer = api.post(
        "/api/v1/devices", json={"devices": [{"installed_version": OLD, **s} for s in specs]}
    )
    assert answer.status_code == 201, answer.text
    return {d["id"]: Car(d["id"], d["token"]) for d in answer.json()["devices"]}


def register_fleet(api: httpx.Client, *, hw3: int, hw4: int, eap_each: int) -> list[DdiDevice]:
    """Register hw3 and hw4 vehicles (the first ``eap_each`` of each tagged eap) and their sims."""
    specs = []
    for hw, count in (("hw3", hw3), ("hw4", hw4)):
        for i in range(count):
            specs.append(
                {
                    "id": f"{hw}-car-{i:04d}",
                    "hw": hw,
                    "tags": ["eap"] if i < eap_each else [],
                    "attributes": {"region": "eu" if i % 2 else "us"},
                    "installed_version": OLD,
                }
            )
    answer = api.post("/api/v1/devices", json={"devices": specs})
    answer.raise_for_status()
    tokens = {d["id"]: d["token"] for d in answer.json()["devices"]}
    return [DdiDevice(s["id"], tokens[s["id"]], hw=s["hw"], installed_version=OLD) for s in specs]


def upload(api: httpx.Client, name: str, payload: bytes) -> int:
    """Upload an artifact with its declared SHA-256; its id."""
    sha = hashlib.sha256(payload).hexdigest()
    answer = api.post(f"/api/v1/artifacts?filename={name}&sha256={sha}", content=payload)
    answer.raise_for_status()
    return int(answer.json()["id"])


def release(api: httpx.Client, version: str, generations: list[str]) -> dict[str, Any]:
    """Create a release with one small artifact per generation."""
    sets = {
        hw: [upload(api, f"{version}-{hw}.swu", f"{version}/{hw}".encode() * 64)]
        for hw in generations
    }
    answer = api.post("/api/v1/releases", json={"version": version, "notes": "", "artifacts": sets})
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def rollout(api: httpx.Client, version: str, groups: list[str], **options: Any) -> int:
    """Create and start a rollout; its id."""
    body = {"release": version, "groups": [{"group": g, **options} for g in groups]}
    created = api.post("/api/v1/rollouts", json=body)
    created.raise_for_status()
    rollout_id = int(created.json()["id"])
    api.post(f"/api/v1/rollouts/{rollout_id}/start").raise_for_status()
    return rollout_id


def status(api: httpx.Client, rollout_id: int) -> dict[str, Any]:
    """The rollout's status document."""
    answer = api.get(f"/api/v1/rollouts/{rollout_id}")
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def members(api: httpx.Client, rollout_id: int, group: int) -> list[dict[str, Any]]:
    """The actions of one group (numbered from 1)."""
    answer = api.get(
        f"/api/v1/rollouts/{rollout_id}/actions", params={"group": group, "limit": 100000}
    )
    answer.raise_for_status()
    rows: list[dict[str, Any]] = answer.json()["actions"]
    return rows


def poll_round(url: str, devices: list[DdiDevice]) -> Counter[str]:
    """Every device polls once (and does whatever it is offered)."""
    return asyncio.run(run_rounds(url, devices, 1, concurrency=24))[0]
