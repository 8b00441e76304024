"""The dashboard page on a fast simulated clock (720 simulated seconds a wall second, as in the
demo), in a real headless Chromium: its clock follows the server's without ever going back and
without re-anchoring on every event, it holds when it is ahead and steps only forward, and the
site chart fetches a new window when the simulated now leaves the middle of the one drawn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, add_admin
from tests.server._browser import Tab, browser, load_page, tab_in
from tests.server._fleet import MINE

from skyfleet.server import ServerConfig, create_app, sim_clock
from skyfleet.store import open_store

__all__ = ["browser"]  # the fixture, imported for pytest

RATE = 720.0
START_S = 1_767_268_800.0  # 2026-01-01 12:00 UTC


@dataclass
class Fast:
    url: str
    wall_s: float  # the wall-clock time (UNIX s) at which the server's clock read START_S


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fast]:
    """A live server whose clock runs 720 times faster than the wall clock, with a site."""
    tmp = tmp_path_factory.mktemp("dashboard-clock")
    db = open_store(f"sqlite:///{tmp / 'skyfleet.db'}", artifacts_dir=tmp / "artifacts")
    add_admin(db)
    wall_s = time.time()
    config = ServerConfig(sim_start_s=START_S, sim_wall_s=wall_s, sim_rate=RATE)
    with (
        LiveServer(create_app(config, db=db)) as live,
        httpx.Client(base_url=live.url, headers=ADMIN, timeout=60.0) as api,
    ):
        answer = api.post("/api/v1/devices", json={"devices": [MINE]})
        assert answer.status_code == 201, answer.text
        yield Fast(live.url, wall_s)
    db.close()


@pytest.fixture
def tab(browser: Any, fast: Fast) -> Iterator[Tab]:
    """A fresh page (closed before the server stops)."""
    yield from tab_in(browser)


SAMPLE = """async ms => {
    const out = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
        out.push([performance.now(), skyfleet.simNow()]);
        await new Promise(r => setTimeout(r, 25));
    }
    return out;
}"""


def test_the_page_clock_follows_a_fast_server_without_going_back(tab: Tab, fast: Fast) -> None:
    load_page(tab, fast.url, ADMIN_TOKEN)
    page = tab.page
    assert page.evaluate("() => skyfleet.clock.rate") == RATE
    # Let it take up what the first event's late arrival put it behind (it slews over a few
    # seconds, a loaded machine delays that event): then it must run at the server's rate.
    page.wait_for_timeout(5000)
    samples = page.evaluate(SAMPLE, 7000)  # three or four state events
    assert len(samples) > 100
    for (_, a), (_, b) in pairwise(samples):
        assert b >= a  # never back
    (w0, t0), (w1, t1) = samples[0], samples[-1]
    assert (t1 - t0) / ((w1 - w0) / 1000) == pytest.approx(RATE, rel=0.05)
    # It follows the server's clock (within half a wall second's worth), and never had to step.
    wall_ms, page_s = page.evaluate("() => [Date.now(), skyfleet.simNow()]")
    server_s = sim_clock(START_S, fast.wall_s, RATE)() - (time.time() - wall_ms / 1000) * RATE
    assert abs(page_s - server_s) < 0.5 * RATE
    assert page.evaluate("() => skyfleet.clock.steps") == 0
    assert tab.unexpected() == []


HOLD_AND_STEP = """async () => {
    const wait = (ms) => new Promise(r => setTimeout(r, ms));
    const c = skyfleet.makeClock();
    const at = () => [c.now(), performance.now() / 1000];
    c.sync(1e9, 720);
    await wait(200);
    const p0 = at();
    c.sync(p0[0] - 100, 720);          // the server a little behind: slower, not back
    const p1 = at();
    await wait(300);
    const p2 = at();
    c.sync(p2[0] - 20 * 720, 720);     // twenty wall seconds behind: hold
    const p3 = at();
    await wait(300);
    const p4 = at();
    c.sync(p4[0] + 10 * 720, 720);     // ten wall seconds ahead: step forward
    const p5 = at();
    c.sync(p5[0] + 60, 720);           // a little ahead: faster for a while
    const p6 = at();
    await wait(300);
    const p7 = at();
    return { p: [p0, p1, p2, p3, p4, p5, p6, p7], steps: c.steps };
}"""


def test_the_clock_slows_or_holds_when_ahead_and_steps_only_forward(tab: Tab, fast: Fast) -> None:
    load_page(tab, fast.url, ADMIN_TOKEN)
    got = tab.page.evaluate(HOLD_AND_STEP)
    (t0, _), (t1, w1), (t2, w2), (t3, _), (t4, _), (t5, _), (t6, w6), (t7, w7) = got["p"]
    assert t1 >= t0
    assert 0 < (t2 - t1) / (w2 - w1) < RATE  # slower than the server's rate, never back
    assert t3 >= t2
    assert t4 == t3  # held
    assert t5 - t4 == pytest.approx(10 * RATE, abs=5)
    assert t6 >= t5
    assert (t7 - t6) / (w7 - w6) > RATE  # faster, catching up
    assert got["steps"] == 1


def test_the_site_chart_fetches_a_new_window_as_simulated_time_moves(tab: Tab, fast: Fast) -> None:
    load_page(tab, fast.url, ADMIN_TOKEN)
    page = tab.page
    page.wait_for_function("() => skyfleet.charts.site > 0", timeout=30_000)
    first = page.evaluate("() => skyfleet.siteWindow")
    span = first[1] - first[0]
    assert span >= 30 * RATE  # half a minute of wall time, not two simulated hours
    assert first[0] < page.evaluate("() => skyfleet.simNow()") < first[1]
    # The "now" line moves once a second.
    mark = page.evaluate("() => skyfleet.siteMark")
    page.wait_for_function(f"() => skyfleet.siteMark > {mark} + 0.5 * {RATE}", timeout=5_000)
    # Past the middle half (a quarter of the span: 7.5 wall s), a new window around now.
    page.wait_for_function(
        f"() => skyfleet.siteWindow[0] > {first[0]} && skyfleet.charts.site > 1", timeout=30_000
    )
    now, window = page.evaluate("() => [skyfleet.simNow(), skyfleet.siteWindow]")
    assert window[0] + span / 8 < now < window[1] - span / 8
    assert page.inner_text("#site-select") == "Pilbara mine"
    assert tab.unexpected() == []
