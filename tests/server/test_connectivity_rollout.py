"""A rollout to devices that have a link only some of the time, on simulated time: devices in a
dead zone wait for a link rather than fail, downloads take as long as the link's rate says, the
status gives the time to 50 % and 95 % confirmed, and the in-progress timeout still applies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests.server._fleet import OLD, register_cars, rollout, status, upload

from conftest import ADMIN, START, LiveServer
from skyfleet.server import ServerConfig, create_app
from skyfleet.sim import DOWNLOAD_BIT_PER_S, DdiDevice, LinkSchedule, run_round
from skyfleet.store import Store

NEW = "2026.1.0"
ARTIFACT_BYTES = 4_000_000  # 32 Mbit: 1.6 s over cellular, 0.32 s over satellite


class SimClock:
    """The server's and the devices' time: moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim(db: Store) -> Iterator[tuple[LiveServer, SimClock, httpx.Client]]:
    clock = SimClock()
    config = ServerConfig(
        sweep_interval_s=0.02, touch_flush_s=0.02, poll_sleep_s=60.0, poll_jitter=0.0
    )
    with (
        LiveServer(create_app(config, db=db, clock=clock)) as live,
        httpx.Client(base_url=live.url, headers=ADMIN, timeout=30) as api,
    ):
        yield live, clock, api


def _schedule(spans: list[tuple[float, float, str]]) -> LinkSchedule:
    """Link kinds on a 1 s grid from START: (from_s, to_s, kind) spans, none elsewhere."""
    end = int(max(b for _, b, _ in spans))
    masks: dict[str, Any] = {k: np.zeros(end, bool) for k in ("cellular", "satellite")}
    for a, b, kind in spans:
        masks[kind][int(a) : int(b)] = True
    return LinkSchedule.from_masks(START, 1.0, **masks)


def _fleet(api: httpx.Client) -> list[DdiDevice]:
    always_cell = LinkSchedule.always("cellular")
    plans = {
        **{f"cell-{i}": always_cell for i in range(6)},
        # In a dead zone for the first 20 minutes, then under open sky.
        **{f"sat-{i}": _schedule([(1200, 5000, "satellite")]) for i in range(2)},
        # Starts its download on cellular, loses coverage after 1 s, regains it at 1000 s.
        "drop-0": _schedule([(0, 1, "cellular"), (1000, 5000, "cellular")]),
    }
    cars = register_cars(api, *({"id": i, "hw": "hw3"} for i in plans))
    payload = bytes(range(256)) * (ARTIFACT_BYTES // 256)
    art = upload(api, "big.swu", payload)
    api.post(
        "/api/v1/releases", json={"version": NEW, "notes": "", "artifacts": {"hw3": [art]}}
    ).raise_for_status()
    return [
        DdiDevice(i, cars[i].token, hw="hw3", installed_version=OLD, link=plans[i]) for i in plans
    ]


def _round(url: str, devices: list[DdiDevice], clock: SimClock, t_s: float) -> dict[str, int]:
    clock.now = START + t_s

    async def go() -> dict[str, int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return dict(await run_round(client, devices, now_s=clock.now))

    return asyncio.run(go())


def _group(api: httpx.Client, rollout_id: int, want: Any = None) -> dict[str, Any]:
    """The group's status once the server's judge and last-seen flush caught up."""
    deadline = time.monotonic() + 5.0
    while True:
        g: dict[str, Any] = status(api, rollout_id)["groups"][0]
        if want is None or want(g) or time.monotonic() > deadline:
            return g
        time.sleep(0.05)


def test_devices_out_of_reach_wait_for_a_link_and_confirm_when_they_get_one(sim) -> None:  # type: ignore[no-untyped-def]
    live, clock, api = sim
    devices = _fleet(api)
    rid = rollout(api, NEW, ["hw:hw3"], success_pct=95.0, timeout_s=1800.0)

    got = _round(live.url, devices, clock, 0)
    assert got == {"downloading": 7, "no-link": 2}  # 32 Mbit do not fit in 0 s
    got = _round(live.url, devices, clock, 1)
    assert got == {"downloading": 6, "no-link": 3}  # 20 Mbit of 32 after 1 s of cellular
    got = _round(live.url, devices, clock, 2)
    assert got == {"updated": 6, "no-link": 3}
    g = _group(api, rid, lambda g: g["counts"]["confirmed"] == 6)
    assert g["counts"]["confirmed"] == 6
    # Not heard from, but their actions are only 2 s old: not yet out of reach.
    assert g["waiting_for_link"] == 0
    # 5 of 9 confirmed (50 %, rounded up) 2 s after the group started; 95 % not yet.
    assert (g["time_to_50_pct_s"], g["time_to_95_pct_s"]) == (2.0, None)

    for t in (60, 300, 600):
        _round(live.url, devices, clock, t)
    g = _group(api, rid, lambda g: g["waiting_for_link"] == 3)
    # Silent for more than two polling intervals (120 s): waiting for a link, not failing.
    assert g["waiting_for_link_ids"] == ["drop-0", "sat-0", "sat-1"]
    assert g["counts"]["downloading"] == 1 and g["counts"]["scheduled"] == 2
    assert g["counts"]["failed"] == g["counts"]["timed_out"] == 0

    assert _round(live.url, devices, clock, 1001) == {"updated": 1, "no-link": 2, "idle": 6}
    assert _round(live.url, devices, clock, 1201) == {"downloading": 2, "idle": 7}
    assert _round(live.url, devices, clock, 1260) == {"updated": 2, "idle": 7}
    g = _group(api, rid, lambda g: g["counts"]["confirmed"] == 9)
    assert g["counts"]["confirmed"] == 9 and g["waiting_for_link"] == 0
    assert (g["time_to_50_pct_s"], g["time_to_95_pct_s"]) == (2.0, 1260.0)
    deadline = time.monotonic() + 5.0  # the judge completes the rollout on its next sweep
    while status(api, rid)["status"] != "complete" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(api, rid)["status"] == "complete"


def test_the_in_progress_timeout_still_counts_a_device_that_never_returns(sim) -> None:  # type: ignore[no-untyped-def]
    live, clock, api = sim
    devices = _fleet(api)
    rid = rollout(
        api, NEW, ["hw:hw3"], success_pct=95.0, timeout_s=300.0, error_pct=50.0, min_finished=1
    )
    for t in (0, 1, 2, 200):
        _round(live.url, devices, clock, t)
    g = _group(api, rid, lambda g: g["counts"]["confirmed"] == 6)
    assert g["counts"]["timed_out"] == 0 and "drop-0" in g["waiting_for_link_ids"]
    clock.now = START + 301.0  # drop-0's last feedback was at 0 s
    g = _group(api, rid, lambda g: g["counts"]["timed_out"] == 1)
    assert g["counts"]["timed_out"] == 1
    assert "drop-0" not in g["waiting_for_link_ids"]  # finished: timed out
    # Devices that never started are not timed out: they are still waiting for a link.
    assert g["waiting_for_link_ids"] == ["sat-0", "sat-1"]


def test_download_time_follows_the_link_rate(sim) -> None:  # type: ignore[no-untyped-def]
    live, clock, api = sim
    cars = register_cars(api, {"id": "sat-x", "hw": "hw3"})
    art = upload(api, "big.swu", bytes(ARTIFACT_BYTES))
    api.post(
        "/api/v1/releases", json={"version": NEW, "notes": "", "artifacts": {"hw3": [art]}}
    ).raise_for_status()
    rollout(api, NEW, ["hw:hw3"])
    device = DdiDevice(
        "sat-x", cars["sat-x"].token, installed_version=OLD, link=LinkSchedule.always("satellite")
    )
    need_s = 8 * ARTIFACT_BYTES / DOWNLOAD_BIT_PER_S["satellite"]  # 0.32 s
    assert _round(live.url, [device], clock, 0.0) == {"downloading": 1}
    assert _round(live.url, [device], clock, need_s * 0.99) == {"downloading": 1}
    assert _round(live.url, [device], clock, need_s * 1.01) == {"updated": 1}
    assert device.installed_version == NEW


def test_a_long_download_over_a_working_link_is_not_waiting_for_a_link(sim) -> None:  # type: ignore[no-untyped-def]
    """800 MB over cellular take 320 s; the device does not poll meanwhile, but it is in touch."""
    live, clock, api = sim
    cars = register_cars(api, {"id": "slow-1", "hw": "hw3"})
    art = upload(api, "huge.swu", bytes(ARTIFACT_BYTES))
    api.post(
        "/api/v1/releases", json={"version": NEW, "notes": "", "artifacts": {"hw3": [art]}}
    ).raise_for_status()
    rid = rollout(api, NEW, ["hw:hw3"], timeout_s=3600.0)
    device = DdiDevice(
        "slow-1", cars["slow-1"].token, installed_version=OLD, link=LinkSchedule.always("cellular")
    )
    # Pretend the artifact is 200 times larger: 1.6 s x 200 = 320 s of cellular, more than two
    # polling intervals (60 s each).
    device_bits = 200 * 8 * ARTIFACT_BYTES
    assert _round(live.url, [device], clock, 0.0) == {"downloading": 1}
    assert device.downloading is not None
    device.downloading = (device.downloading[0], device_bits, device.downloading[2])
    for t in range(30, 600, 30):
        clock.now = START + t
        got = _round(live.url, [device], clock, float(t))
        g = _group(api, rid)
        assert g["waiting_for_link"] == 0, (t, got)
        if got == {"updated": 1}:
            break
    else:
        raise AssertionError("the download never finished")
    assert (
        device_bits / DOWNLOAD_BIT_PER_S["cellular"]
        <= t
        < device_bits / DOWNLOAD_BIT_PER_S["cellular"] + 30
    )
