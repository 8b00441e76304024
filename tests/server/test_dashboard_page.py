"""The dashboard page in a real headless Chromium against a live server with a fleet: it loads
under the server's Content-Security-Policy with no console errors and nothing fetched from
outside the server, the map draws every device that has a position and the constellation where
skyfleet.orbits puts it, halting and resuming rollouts from the page acts on them in the API, a
viewer's halt is refused with the API's message, markup in names and audit entries shows as
text, the Powershare panel opens on a home in the outage, and a stalled event stream falls back
to polling. (The page on a fast simulated clock: test_dashboard_clock.py.)"""

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
from tests.server._browser import Tab, browser, load_page, tab_in
from tests.server._fleet import (
    HOLIDAY,
    MINE,
    Car,
    register_cars,
    register_fleet,
    release,
    rollout,
    status,
)

from skyfleet.orbits import preset
from skyfleet.server import ServerConfig, create_app
from skyfleet.store import open_store

__all__ = ["browser"]  # the fixture, imported for pytest

PLACED = 30  # vehicles that report a position (ten more report none)
# home-7 rides through the outage (its devices report "island"); home-1 is on the grid and comes
# first by name: the Powershare panel must open on home-7.
HOMES = {"home-1": "grid", "home-7": "island"}
HOME_DEVICES = [
    {
        "id": "home-1-battery",
        "kind": "home-battery",
        "hw": "gen2",
        "attributes": {"home": "home-1"},
    },
    {
        "id": "home-7-battery",
        "kind": "home-battery",
        "hw": "gen2",
        "attributes": {"home": "home-7"},
    },
    {"id": "home-7-truck", "kind": "vehicle", "hw": "hw4", "attributes": {"home": "home-7"}},
]
LINKS = ("cellular", "satellite", "none")
MARKUP = '<img src=x onerror="window.__xss=1">'
SUCCESS = {"status": {"execution": "closed", "result": {"finished": "success"}}}


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
    """A live server (SQLite) with 40 vehicles, 30 of them placed by their telemetry, a site, two
    Powershare homes with frequency, charge and power samples, and a running rollout."""
    tmp = tmp_path_factory.mktemp("dashboard")
    db = open_store(f"sqlite:///{tmp / 'skyfleet.db'}", artifacts_dir=tmp / "artifacts")
    add_admin(db)
    config = ServerConfig(sweep_interval_s=0.2, touch_flush_s=0.05)
    with (
        LiveServer(create_app(config, db=db)) as live,
        httpx.Client(base_url=live.url, headers=ADMIN, timeout=60.0) as api,
    ):
        cars = register_fleet(api, hw3=20, hw4=20, eap_each=3)
        extra = api.post("/api/v1/devices", json={"devices": [MINE, *HOME_DEVICES]})
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
        for k, device in enumerate(d["id"] for d in HOME_DEVICES):
            home = device.rsplit("-", 1)[0]
            samples = [
                {
                    "ts": now - 10.0 * j,
                    "lat_deg": 51.5,
                    "lon_deg": -0.12,
                    "soc_pct": 60.0 - 0.1 * j,
                    "power_w": (1200.0 if k == 2 else -300.0) * math.cos(j / 9),
                    "freq_hz": 50.0 - 0.3 * math.sin(j / 6),
                    "state": HOMES[home],
                }
                for j in range(60)
            ]
            _post_telemetry(live.url, device, tokens[device], samples)
        release(api, HOLIDAY, ["hw3", "hw4"])
        rollout_id = rollout(api, HOLIDAY, ["tag:eap", "hw:hw3", "hw:hw4"])
        assert status(api, rollout_id)["status"] == "running"
        viewer = api.post("/api/v1/tokens", json={"name": "page-viewer", "role": "viewer"})
        assert viewer.status_code in (200, 201), viewer.text
        placed = PLACED + len(HOME_DEVICES)
        yield Fleet(live.url, api, rollout_id, viewer.json()["token"], placed)
    db.close()


@pytest.fixture
def tab(browser: Any, fleet: Fleet) -> Iterator[Tab]:
    """A fresh page (closed before the server stops)."""
    yield from tab_in(browser)


def _load(tab: Tab, fleet: Fleet, token: str = ADMIN_TOKEN) -> Any:
    return load_page(tab, fleet.url, token)


def _wait_status(fleet: Fleet, wanted: str, rollout_id: int | None = None) -> str:
    rid = fleet.rollout_id if rollout_id is None else rollout_id
    deadline = time.monotonic() + 10
    while (now := status(fleet.api, rid)["status"]) != wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return str(now)


def _running(fleet: Fleet) -> None:
    """The shared rollout running (another test may have halted it)."""
    if status(fleet.api, fleet.rollout_id)["status"] == "halted":
        fleet.api.post(f"/api/v1/rollouts/{fleet.rollout_id}/resume").raise_for_status()
    assert _wait_status(fleet, "running") == "running"


def _install(api: httpx.Client, car: Car, details: list[str] | None = None) -> None:
    """The device polls, fetches its deployment and reports success (or, with ``details``,
    reports that it is proceeding and says so)."""
    links = api.get(car.base, headers=car.auth).json()["_links"]
    deployment = api.get(links["deploymentBase"]["href"], headers=car.auth).json()
    body = (
        SUCCESS if details is None else {"status": {"execution": "proceeding", "details": details}}
    )
    answer = api.post(
        f"{car.base}/deploymentBase/{deployment['id']}/feedback", json=body, headers=car.auth
    )
    assert answer.status_code == 200, answer.text


def test_page_loads_and_draws_the_fleet_without_console_errors(tab: Tab, fleet: Fleet) -> None:
    response = _load(tab, fleet)
    # The server's policy is on: an inline script or style attribute would be refused (and the
    # refusal is a console error, which fails the test below).
    assert "script-src 'self'" in response.headers["content-security-policy"]
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
    # The panels: the site is listed by its name, the rollout's groups (their bars sized), the
    # table, the home in the outage (home-1 comes first by name but is on the grid).
    card = f'[data-rollout="{fleet.rollout_id}"]'
    page.wait_for_function(
        f"() => document.querySelectorAll('{card} .group').length === 3", timeout=10_000
    )
    assert page.input_value("#site-select") == "pilbara-mine"
    assert page.inner_text("#site-select option[value='pilbara-mine']") == "Pilbara mine"
    page.wait_for_function("() => document.getElementById('home-select').value === 'home-7'")
    total = fleet.api.get("/api/v1/dashboard/state").json()["total"]
    page.wait_for_function(
        f"() => document.getElementById('f-count').textContent.startsWith('{total} matching')"
    )
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
    assert page.inner_text("#home-note").endswith("island")
    page.wait_for_timeout(2500)  # a state event or two more
    assert page.evaluate("() => skyfleet.connection") == "sse"
    assert page.inner_text("#conn") == "live"
    tab.screenshot("dashboard")
    assert tab.unexpected() == []
    assert tab.outside == []


def test_the_token_leaves_the_address_bar_and_lasts_the_session(tab: Tab, fleet: Fleet) -> None:
    _load(tab, fleet)
    page = tab.page
    assert page.url == f"{fleet.url}/dashboard/"  # no #token=... in the bar or the history
    assert page.evaluate("() => location.hash") == ""
    page.reload()
    page.wait_for_function("() => window.skyfleet && window.skyfleet.ready", timeout=30_000)
    assert page.input_value("#token-input") == ADMIN_TOKEN  # from sessionStorage
    assert tab.unexpected() == []


def test_satellites_in_the_page_agree_with_the_orbits_package(tab: Tab, fleet: Fleet) -> None:
    _load(tab, fleet)
    t_s = tab.page.evaluate("() => skyfleet.simNow()") + 1800.0
    mine = np.asarray(tab.page.evaluate("t => skyfleet.satellitesAt(t)", t_s)).reshape(-1, 3).T
    theirs = preset("starlink-gen1").positions_km(t_s)
    assert mine.shape == theirs.shape
    assert float(np.max(np.linalg.norm(mine - theirs, axis=0))) < 3.0  # km


def test_halting_a_rollout_from_the_page_halts_it_in_the_api(tab: Tab, fleet: Fleet) -> None:
    _running(fleet)
    _load(tab, fleet)
    page = tab.page
    card = f'[data-rollout="{fleet.rollout_id}"]'
    assert page.is_hidden(f'{card} button[data-verb="resume"]')  # running: halt only
    page.click(f'{card} button[data-verb="halt"]')
    page.wait_for_function(
        "() => document.getElementById('rollout-msg').textContent.includes('halt accepted')"
    )
    assert _wait_status(fleet, "halted") == "halted"
    page.wait_for_function(
        f"() => document.querySelector('{card} .status').textContent === 'halted'"
    )
    assert page.is_hidden(f'{card} button[data-verb="halt"]')
    tab.screenshot("dashboard-halted")
    page.click(f'{card} button[data-verb="resume"]')
    page.wait_for_function(
        "() => document.getElementById('rollout-msg').textContent.includes('resume accepted')"
    )
    assert _wait_status(fleet, "running") == "running"
    assert tab.unexpected() == []


def test_a_rollout_waiting_at_a_manual_gate_is_resumed_from_the_page(
    tab: Tab, fleet: Fleet
) -> None:
    api = fleet.api
    cars = register_cars(api, {"id": "gate-a"}, {"id": "gate-b"})
    release(api, "2025.46.1", ["hw3"])
    gated = rollout(
        api, "2025.46.1", ["id:gate-a", "id:gate-b"], auto_advance=False, min_finished=1
    )
    _install(api, cars["gate-a"])  # the first group passes; the second waits for an operator
    assert _wait_status(fleet, "waiting", gated) == "waiting"
    _load(tab, fleet)
    page = tab.page
    card = f'[data-rollout="{gated}"]'
    page.wait_for_function(
        f"() => document.querySelector('{card} .status')?.textContent === 'waiting'"
    )
    assert page.is_visible(f'{card} button[data-verb="resume"]')
    assert page.is_visible(f'{card} button[data-verb="halt"]')  # a waiting rollout may be halted
    page.click(f'{card} button[data-verb="resume"]')
    page.wait_for_function(
        "() => document.getElementById('rollout-msg').textContent.includes('resume accepted')"
    )
    assert _wait_status(fleet, "running", gated) == "running"
    assert [g["started"] for g in status(api, gated)["groups"]] == [True, True]
    page.wait_for_function(
        f"() => document.querySelector('{card} .status').textContent === 'running'"
    )
    assert page.is_hidden(f'{card} button[data-verb="resume"]')
    assert tab.unexpected() == []


def test_a_viewer_cannot_halt_and_sees_why(tab: Tab, fleet: Fleet) -> None:
    _running(fleet)
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


def test_markup_in_names_and_audit_details_shows_as_text_and_runs_nothing(
    tab: Tab, fleet: Fleet
) -> None:
    api = fleet.api
    site = {**MINE, "id": "xss-site", "attributes": {**MINE["attributes"], "name": MARKUP}}
    home = {
        "id": "xss-battery",
        "kind": "home-battery",
        "hw": "gen2",
        "attributes": {"home": MARKUP},
    }
    cars = register_cars(api, site, home, {"id": "xss-car"})
    release(api, "2025.47.1", ["hw3"])
    rollout(api, "2025.47.1", ["id:xss-car"])
    _install(api, cars["xss-car"], details=[MARKUP])  # an audit entry's detail
    _load(tab, fleet)
    page = tab.page
    page.wait_for_function(
        "m => document.getElementById('audit').textContent.includes(m)", arg=MARKUP
    )
    assert page.evaluate("() => document.querySelectorAll('main img').length") == 0
    assert MARKUP in page.inner_text("#site-select option[value='xss-site']")
    assert MARKUP in page.eval_on_selector_all("#home-select option", "os => os.map(o => o.text)")
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__xss") is None
    assert tab.unexpected() == []


STALLING_STREAM = """() => {
    // The event stream answers with one state event and then nothing, keeping the connection
    // open (a stuck server or a buffering proxy).
    window.__stream = { opened: 0, aborted: 0 };
    const fetched = window.fetch.bind(window);
    window.fetch = async (input, init = {}) => {
        const url = String(input);
        if (!url.includes('/dashboard/events')) return fetched(input, init);
        window.__stream.opened++;
        const state = await (await fetched(url.replace('/events', '/state'), { headers: init.headers })).text();
        const body = new ReadableStream({ start(out) {
            out.enqueue(new TextEncoder().encode('event: state\\ndata: ' + state + '\\n\\n'));
            init.signal?.addEventListener('abort', () => {
                window.__stream.aborted++;
                out.error(new DOMException('aborted', 'AbortError'));
            });
        } });
        return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    };
}"""


def test_a_stalled_event_stream_is_dropped_for_polling(tab: Tab, fleet: Fleet) -> None:
    page = tab.page
    page.add_init_script(script=f"({STALLING_STREAM})()")
    _load(tab, fleet)
    page.wait_for_function("() => skyfleet.connection === 'sse'")
    first = page.evaluate("() => skyfleet.state.now_s")
    # No event for three intervals (6 s): the stream is aborted and the page polls /state.
    page.wait_for_function("() => skyfleet.connection === 'polling'", timeout=12_000)
    assert page.evaluate("() => window.__stream.aborted") == 1
    assert page.inner_text("#conn") == "polling"
    assert "stalled" in page.evaluate("() => skyfleet.streamProblem")
    page.wait_for_function(f"() => skyfleet.state.now_s > {first} + 5", timeout=10_000)
    assert tab.unexpected() == []
