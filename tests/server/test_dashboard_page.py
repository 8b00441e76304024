"""The dashboard page in a real headless Chromium against a live server with a fleet: it loads
with no console errors and nothing fetched from outside the server, the map draws every device
that has a position and the constellation where skyfleet.orbits puts it, halting a rollout from
the page halts it in the API, and a viewer's halt is refused with the API's message."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, add_admin
from tests.server._browser import Tab, browser, open_tab
from tests.server._fleet import HOLIDAY, register_fleet, release, rollout, status

from skyfleet.orbits import preset
from skyfleet.server import ServerConfig, create_app
from skyfleet.store import open_store

__all__ = ["browser"]  # the fixture, imported for pytest

PLACED = 30  # vehicles that report a position (ten more report none)
MINE = {
    "id": "pilbara-mine",
    "kind": "site",
    "hw": "site1",
    "attributes": {"lat_deg": "-22.31", "lon_deg": "118.35", "region": "aws:ap-southeast-2"},
}
HOME = [
    {
        "id": "home-7-battery",
        "kind": "home-battery",
        "hw": "gen2",
        "attributes": {"home": "home-7"},
    },
    {"id": "home-7-truck", "kind": "vehicle", "hw": "hw4", "attributes": {"home": "home-7"}},
]
LINKS = ("cellular", "satellite", "none")


@dataclass
class Fleet:
    url: str
    api: httpx.Client
    rollout_id: int
    viewer_token: str
    placed: int  # devices whose telemetry has a position


def _post_telemetry(url: str, device: str, token: str, samples: list[dict[str, Any]]) -> None:
    answer = httpx.post(
        f"{url}/DEFAULT/controller/v1/{device}/telemetry",
        json=samples,
        headers={"Authorization": f"TargetToken {token}"},
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A live server (SQLite) with 40 vehicles, 30 of them placed by their telemetry, a site, a
    Powershare home with frequency, charge and power samples, and a running rollout."""
    tmp = tmp_path_factory.mktemp("dashboard")
    db = open_store(f"sqlite:///{tmp / 'skyfleet.db'}", artifacts_dir=tmp / "artifacts")
    add_admin(db)
    config = ServerConfig(sweep_interval_s=0.2, touch_flush_s=0.05)
    with (
        LiveServer(create_app(config, db=db)) as live,
        httpx.Client(base_url=live.url, headers=ADMIN, timeout=60.0) as api,
    ):
        cars = register_fleet(api, hw3=20, hw4=20, eap_each=3)
        extra = api.post("/api/v1/devices", json={"devices": [MINE, *HOME]})
        assert extra.status_code == 201, extra.text
        tokens = {d["id"]: d["token"] for d in extra.json()["devices"]}
        now = api.get("/api/v1/dashboard/map").json()["now_s"]
        for i, car in enumerate(cars[:PLACED]):
            sample = {
                "ts": now - 5.0,
                "lat_deg": -40.0 + 2.7 * i,
                "lon_deg": -170.0 + 11.0 * i,
                "link": LINKS[i % 3],
                "rtt_ms": 40.0 + i,
                "version": "2025.38.1",
                "state": "driving",
            }
            _post_telemetry(live.url, car.device_id, car.token, [sample])
        for k, device in enumerate(tokens):
            if device == MINE["id"]:
                continue
            samples = [
                {
                    "ts": now - 10.0 * j,
                    "lat_deg": 51.5,
                    "lon_deg": -0.12,
                    "soc_pct": 60.0 - 0.1 * j,
                    "power_w": (1200.0 if k == 1 else -300.0) * math.cos(j / 9),
                    "freq_hz": 50.0 - 0.3 * math.sin(j / 6),
                    "state": "island",
                }
                for j in range(60)
            ]
            _post_telemetry(live.url, device, tokens[device], samples)
        release(api, HOLIDAY, ["hw3", "hw4"])
        rollout_id = rollout(api, HOLIDAY, ["tag:eap", "hw:hw3", "hw:hw4"])
        assert status(api, rollout_id)["status"] == "running"
        viewer = api.post("/api/v1/tokens", json={"name": "page-viewer", "role": "viewer"})
        assert viewer.status_code in (200, 201), viewer.text
        yield Fleet(live.url, api, rollout_id, viewer.json()["token"], PLACED + len(HOME))
    db.close()


@pytest.fixture
def tab(browser: Any, fleet: Fleet) -> Iterator[Tab]:
    """A fresh page (closed before the server stops)."""
    opened = open_tab(browser)
    yield opened
    opened.page.context.close()


def _load(tab: Tab, fleet: Fleet, token: str = ADMIN_TOKEN) -> None:
    tab.page.goto(f"{fleet.url}/dashboard/#token={token}")
    tab.page.wait_for_function(
        "() => window.skyfleet && window.skyfleet.ready && window.skyfleet.state", timeout=30_000
    )


def _wait_status(fleet: Fleet, wanted: str) -> str:
    deadline = time.monotonic() + 10
    while (now := status(fleet.api, fleet.rollout_id)["status"]) != wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return str(now)


def test_page_loads_and_draws_the_fleet_without_console_errors(tab: Tab, fleet: Fleet) -> None:
    _load(tab, fleet)
    page = tab.page
    drawn = page.evaluate("() => [skyfleet.drawnDevices, skyfleet.drawnSatellites]")
    assert drawn[0] == fleet.placed  # the ten vehicles without a position are not drawn
    assert drawn[1] == preset("starlink-gen1").size > 1000
    # Land and markers: most of the canvas is not the ocean's colour.
    not_ocean = page.evaluate(
        """() => {
        const c = document.getElementById('map');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) {
            if (Math.abs(px[i] - 10) + Math.abs(px[i + 1] - 22) + Math.abs(px[i + 2] - 36) > 12) n++;
        }
        return n / (px.length / 4);
    }"""
    )
    assert 0.2 < not_ocean < 0.8
    # The panels: the site is listed and labelled, the rollout's groups, the table, the home.
    page.wait_for_function(
        "() => document.querySelectorAll('#rollouts .group').length === 3", timeout=10_000
    )
    assert page.input_value("#site-select") == "pilbara-mine"
    assert page.input_value("#home-select") == "home-7"
    assert "43 matching" in page.inner_text("#f-count")  # 40 vehicles, the site, the home's two
    page.fill("#f-search", "hw4-car-001")
    page.wait_for_function("() => document.querySelector('#fleet tbody').rows.length === 10")
    page.fill("#f-search", "")
    page.select_option("#f-link", "satellite")
    page.wait_for_function("() => document.querySelector('#fleet tbody').rows.length === 10")
    assert page.locator("#audit tbody tr").count() >= 5
    page.wait_for_function("() => skyfleet.frames > 30")  # it keeps animating
    page.check('input[name="colour"][value="update"]')
    # The site's RTT series (computed by the server: seconds) and the home's samples arrive.
    page.wait_for_function(
        "() => skyfleet.charts.site > 0 && skyfleet.charts.home > 0", timeout=30_000
    )
    page.wait_for_timeout(2500)  # a state event or two more
    assert page.evaluate("() => skyfleet.connection") == "sse"
    tab.screenshot("dashboard")
    assert tab.unexpected() == []
    assert tab.outside == []


def test_satellites_in_the_page_agree_with_the_orbits_package(tab: Tab, fleet: Fleet) -> None:
    _load(tab, fleet)
    t_s = tab.page.evaluate("() => skyfleet.simNow()") + 1800.0
    mine = np.asarray(tab.page.evaluate("t => skyfleet.satellitesAt(t)", t_s)).reshape(-1, 3).T
    theirs = preset("starlink-gen1").positions_km(t_s)
    assert mine.shape == theirs.shape
    assert float(np.max(np.linalg.norm(mine - theirs, axis=0))) < 3.0  # km


def test_halting_a_rollout_from_the_page_halts_it_in_the_api(tab: Tab, fleet: Fleet) -> None:
    _load(tab, fleet)
    page = tab.page
    card = f'[data-rollout="{fleet.rollout_id}"]'
    page.click(f'{card} button[data-verb="halt"]')
    page.wait_for_function(
        "() => document.getElementById('rollout-msg').textContent.includes('halt accepted')"
    )
    assert _wait_status(fleet, "halted") == "halted"
    page.wait_for_function(
        f"() => document.querySelector('{card} .status').textContent === 'halted'"
    )
    tab.screenshot("dashboard-halted")
    page.click(f'{card} button[data-verb="resume"]')
    page.wait_for_function(
        "() => document.getElementById('rollout-msg').textContent.includes('resume accepted')"
    )
    assert _wait_status(fleet, "running") == "running"
    assert tab.unexpected() == []


def test_a_viewer_cannot_halt_and_sees_why(tab: Tab, fleet: Fleet) -> None:
    refused = httpx.post(
        f"{fleet.url}/api/v1/rollouts/{fleet.rollout_id}/halt",
        headers={"Authorization": f"Bearer {fleet.viewer_token}"},
    )
    assert refused.status_code == 403
    body = refused.json()  # the API's error document: {"error": ...} (or FastAPI's "detail")
    detail = str(body.get("detail") or body["error"])
    _load(tab, fleet, fleet.viewer_token)
    page = tab.page
    page.click(f'[data-rollout="{fleet.rollout_id}"] button[data-verb="halt"]')
    page.wait_for_function(
        "() => document.getElementById('rollout-msg').textContent.includes('refused')"
    )
    message = page.inner_text("#rollout-msg")
    assert detail in message
    assert "error" in (page.get_attribute("#rollout-msg", "class") or "")
    tab.screenshot("dashboard-viewer-refused")
    assert status(fleet.api, fleet.rollout_id)["status"] == "running"
    # The browser logs the refused request itself; nothing else went wrong.
    assert tab.unexpected(r"status of 403") == []
