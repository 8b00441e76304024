"""A real headless browser for the dashboard's tests: Playwright's Python package driving
Debian's chromium (``/usr/bin/chromium``, or ``SKYFLEET_CHROMIUM``).

Without the package or the browser the tests are skipped with a reason that says they were NOT
run; CI sets ``SKYFLEET_REQUIRE_BROWSER=1`` and there they fail instead. The page may reach
127.0.0.1 only: every other request is aborted and recorded (the machine is offline, and the
dashboard must not need anything from outside the server).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("SKYFLEET_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("SKYFLEET_REQUIRE_BROWSER") == "1"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(
    os.environ.get("SKYFLEET_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "build" / "screenshots"
)


def _unavailable(message: str) -> None:
    message = f"{message}: the dashboard page tests were NOT run"
    if REQUIRE_BROWSER:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium for one test module. Playwright's sync API runs an event loop on the
    thread that started it until it stops, so it must stop before the next module starts its
    own, and before any later test calls ``asyncio.run``: hence one per module, not a session's.
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    runner = sync_playwright().start()
    try:
        launched = runner.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    except Error as exc:
        runner.stop()
        _unavailable(f"chromium at {CHROMIUM} did not start ({str(exc).splitlines()[0]})")
    try:
        yield launched
    finally:
        launched.close()
        runner.stop()


@dataclass
class Tab:
    """A page in its own browser context, with what it said on the console."""

    page: Any
    problems: list[str] = field(default_factory=list)  # console errors and warnings, page errors
    outside: list[str] = field(default_factory=list)  # requests to anywhere but 127.0.0.1

    def unexpected(self, *allowed: str) -> list[str]:
        """The problems no pattern in ``allowed`` matches."""
        return [p for p in self.problems if not any(re.search(a, p) for a in allowed)]

    def screenshot(self, name: str) -> Path:
        """A full-page PNG under the screenshots folder (``SKYFLEET_SCREENSHOTS``)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_tab(browser: Any, *, width: int = 1400, height: int = 1600) -> Tab:
    """A new page that records console problems and may reach loopback only."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    tab = Tab(page)

    def on_console(message: Any) -> None:
        if message.type in ("error", "warning"):
            tab.problems.append(f"console {message.type}: {message.text}")

    def guard(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            tab.outside.append(url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    context.route(re.compile(r"^(https?|wss?)://"), guard)
    return tab


def tab_in(browser: Any) -> Iterator[Tab]:
    """A fixture's body: a fresh tab, its browser context closed after the test."""
    opened = open_tab(browser)
    yield opened
    opened.page.context.close()


def load_page(tab: Tab, url: str, token: str, *, timeout_ms: float = 30_000) -> Any:
    """Open the dashboard at ``url`` with ``token`` in the fragment and wait until it has drawn
    its first state; the document's response."""
    response = tab.page.goto(f"{url}/dashboard/#token={token}")
    tab.page.wait_for_function(
        "() => window.skyfleet && window.skyfleet.ready && window.skyfleet.state",
        timeout=timeout_ms,
    )
    return response
