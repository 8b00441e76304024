"""The demo's seed, through the operator API over HTTP as an operator would: every device of the
scenario registered, one small artifact per hardware generation, the holiday release, and its
health-gated rollout (early access, then hw3 waves, then hw4 waves), started.

The regression: a share of the devices of one wave fail to install the release, enough that
the server's judge halts the rollout by itself on its error rate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from skyfleet.cli._client import Api
from skyfleet.sim import DdiDevice, Fault, Scenario

__all__ = [
    "HOLIDAY",
    "OLD_VERSION",
    "REGRESSION_WAVE",
    "SITE_VERSION",
    "WAVES",
    "Seed",
    "seed",
]

#: What every vehicle runs at the start, and the holiday release.
OLD_VERSION = "2026.44.7"
HOLIDAY = "2026.12.24-holiday"
SITE_VERSION = "2026.40.2"
#: The waves, in order: early access, then a tenth of each generation (hw3, then hw4), then the
#: rest of each; the regression is in :data:`REGRESSION_WAVE` (numbered from 1), the hw4 tenth,
#: so the judge halts the rollout before the large waves start (an operator may resume it).
WAVES = ("tag:eap", "hw:hw3 10%", "hw:hw4 10%", "hw:hw3", "hw:hw4")
REGRESSION_WAVE = 3
#: Share of the regression wave's devices whose install fails (the gate halts at 10 %): every
#: other one, so that even a small wave, some of it out of reach, halts.
REGRESSION_SHARE = 1 / 2
#: Health gates of every wave. A vehicle may spend hours in a dead zone: 70 % confirmed passes
#: a wave, errors are judged from 3 finished devices on, and a device silent in the middle of
#: an update counts as failed after 12 h.
GATES: dict[str, Any] = {
    "success_pct": 70.0,
    "error_pct": 10.0,
    "min_finished": 3,
    "timeout_s": 12 * 3600.0,
}


@dataclass
class Seed:
    """What the seed made: the rollout, the simulated devices by id, and the faulty ones."""

    rollout_id: int
    devices: dict[str, DdiDevice]
    kinds: dict[str, str]
    faulty: frozenset[str]
    groups: dict[str, int]


def _registrations(scenario: Scenario) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for site in scenario.sites:
        specs.append(
            {
                "id": site.device_id,
                "kind": "site",
                "hw": "mdc1",
                "installed_version": SITE_VERSION,
                "attributes": site.attributes,
            }
        )
    for vehicle in scenario.vehicles:
        specs.append(
            {
                "id": vehicle.device_id,
                "kind": "vehicle",
                "hw": vehicle.hw,
                "tags": list(vehicle.tags),
                "attributes": {k: str(v) for k, v in vehicle.attributes.items()},
                "installed_version": OLD_VERSION,
            }
        )
    vehicles = {v.device_id for v in scenario.vehicles}
    for home in scenario.homes:
        for device in home.devices:
            if device.device_id in vehicles:  # the home's truck: registered as a vehicle
                continue
            specs.append(
                {
                    "id": device.device_id,
                    "kind": device.kind,
                    "hw": device.hw,
                    "attributes": {k: str(v) for k, v in device.attributes.items()},
                }
            )
    return specs


def _fails_holiday(version: str) -> Fault | None:
    return Fault(fail_install=True) if version == HOLIDAY else None


def seed(
    api: Api, scenario: Scenario, *, rollout_seed: str, rollout_name: str = "holiday update"
) -> Seed:
    """Register the scenario's devices, upload, release, create and start the rollout (its
    members picked by ``rollout_seed``: the same scenario and seed, the same waves), and give
    the regression wave its faulty devices."""
    specs = _registrations(scenario)
    tokens: dict[str, str] = {}
    for start in range(0, len(specs), 5000):
        answer = api.post("/devices", {"devices": specs[start : start + 5000]})
        tokens.update({d["id"]: d["token"] for d in answer["devices"]})
    artifacts: dict[str, list[int]] = {}
    for hw in ("hw3", "hw4"):
        payload = f"skyfleet {HOLIDAY} for {hw}\n".encode() * 2048  # 60 kB
        made = api.request(
            "POST",
            "/artifacts",
            params={
                "filename": f"{HOLIDAY}-{hw}.swu",
                "sha256": hashlib.sha256(payload).hexdigest(),
            },
            content=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        artifacts[hw] = [int(made["id"])]
    api.post(
        "/releases",
        {
            "version": HOLIDAY,
            "notes": "Holiday update: light show, new games.",
            "artifacts": artifacts,
        },
    )
    created = api.post(
        "/rollouts",
        {
            "release": HOLIDAY,
            "name": rollout_name,
            "seed": rollout_seed,
            "groups": [{"group": g, **GATES} for g in WAVES],
        },
    )
    rollout_id = int(created["id"])
    groups: dict[str, int] = {}
    for index in range(1, len(WAVES) + 1):
        actions = api.get(f"/rollouts/{rollout_id}/actions", group=index, limit=100_000)
        groups.update({a["device_id"]: index for a in actions["actions"]})
    wave = sorted(d for d, g in groups.items() if g == REGRESSION_WAVE)
    step = max(1, math.floor(1 / REGRESSION_SHARE))
    faulty = frozenset(wave[::step])
    devices: dict[str, DdiDevice] = {}
    kinds: dict[str, str] = {}
    links = {v.device_id: v.link for v in scenario.vehicles}
    links.update({s.device_id: s.link for s in scenario.sites})
    for home in scenario.homes:  # a home's devices share its internet: the truck's link there
        truck = [links[d.device_id] for d in home.devices if d.device_id in links]
        for d in home.devices:
            if truck and d.device_id not in links:
                links[d.device_id] = truck[0]
    for spec in specs:
        device_id = spec["id"]
        device = DdiDevice(
            device_id,
            tokens[device_id],
            hw=spec["hw"],
            installed_version=spec.get("installed_version"),
        )
        device.link = links.get(device_id)
        if device_id in faulty:
            device.fault_for = _fails_holiday
        devices[device_id] = device
        kinds[device_id] = spec["kind"]
    api.post(f"/rollouts/{rollout_id}/start")
    return Seed(rollout_id, devices, kinds, faulty, groups)
