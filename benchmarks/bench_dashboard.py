"""Benchmark the dashboard page: time to the first complete map draw with 10,000 devices.

Builds a store with ``--devices`` vehicles (default 10,000) that have positions, links and
versions in their telemetry, then runs skyfleet's server on loopback and loads
``/dashboard/`` in headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright) ``--loads``
times (default 5), each in a fresh browser context. Reported per load: the time from navigation
start to ``window.skyfleet.ready`` (``performance.now()`` at the first frame that drew the land,
the satellites and every device of the first state event), with the median; the frame rate
after it (requestAnimationFrame callbacks a second, satellites moving); and the size and time
of ``GET /api/v1/dashboard/state``. The issue's target: under 2 s with 10,000 devices.

Baseline in the same run: the same page over a server with 0 devices; the report gives the
ratio of the medians. A third case is the demo's shape: the same devices, ``--rollouts`` started
rollouts (default 10, three groups each) and three sites, with the server on a simulated clock at
720 simulated seconds a wall second (every state event then carries rollout progress and the
sites' link estimates at a moving time).

``/state`` is timed cold (each request after the server's one-second state cache has expired, so
it pays for the build) and warm (a second request at once, served from that cache).

Setup goes through the store API (``register_devices`` and ``ingest_telemetry``, the calls the
server's own routes make), not 10,000 HTTP posts: the setup is not what is measured, and on two
cores the posts would take minutes.

    python benchmarks/bench_dashboard.py                # 10,000 devices, 5 loads each (~2 min)
    python benchmarks/bench_dashboard.py --devices 20000 --json
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _bench import emit, machine, source

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.conftest's LiveServer: the suite's loopback server

from tests.server._browser import ARGS, CHROMIUM  # noqa: E402  the suite's chromium and flags

TOKEN = "sfo_bench-dashboard-viewer-0123456789"
ADMIN_TOKEN = "sfo_bench-dashboard-admin-0123456789"
SIM_RATE = 720.0
SITES = [
    ("pilbara-mine", "Pilbara mine", "-22.31", "118.35", "aws:ap-southeast-2"),
    ("atacama-array", "Atacama array", "-24.50", "-69.25", "aws:sa-east-1"),
    ("nevada-plant", "Nevada plant", "39.54", "-119.81", "aws:us-west-1"),
]
LINKS = ("cellular", "cellular", "satellite", "none")
STATE_CACHE_S = 1.0  # skyfleet.server._dashboard.STATE_TTL_S: one build serves a second


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Dashboard page load to the first complete draw, with N devices and with 0."
    )
    p.add_argument("--devices", type=int, default=10_000, help="devices with positions (10,000)")
    p.add_argument("--loads", type=int, default=5, help="page loads per case (5)")
    p.add_argument("--rollouts", type=int, default=10, help="rollouts in the busy case (10)")
    p.add_argument("--chromium", default=CHROMIUM, help=f"the browser ({CHROMIUM})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def build_store(folder: Path, devices: int, sites: bool = False) -> Any:
    """An SQLite store with ``devices`` vehicles that have reported a position (and, with
    ``sites``, three sites); a viewer token and an admin token."""
    from skyfleet import store
    from skyfleet.telemetry import Telemetry

    st = store.open_store(f"sqlite:///{folder / 'skyfleet.db'}", artifacts_dir=folder / "art")
    rnd = random.Random(7)
    now = time.time()
    with st.begin() as conn:
        store.create_operator_token(
            conn, now, name="bench", role="viewer", actor="bench", token=TOKEN
        )
        store.create_operator_token(
            conn, now, name="bench-admin", role="admin", actor="bench", token=ADMIN_TOKEN
        )
    if sites:
        places = [
            store.NewDevice(
                i,
                kind="site",
                hw="site1",
                attributes={"name": n, "lat_deg": la, "lon_deg": lo, "region": r},
            )
            for i, n, la, lo, r in SITES
        ]
        with st.begin() as conn:
            store.register_devices(conn, now, places, actor="bench")
    for start in range(0, devices, 5000):
        ids = [f"car-{i:06d}" for i in range(start, min(devices, start + 5000))]
        new = [
            store.NewDevice(i, hw="hw3" if n % 2 else "hw4", installed_version="2025.38.1")
            for n, i in enumerate(ids)
        ]
        samples = [
            (
                i,
                Telemetry(
                    ts=now - rnd.uniform(0, 60),
                    lat_deg=rnd.uniform(-45.0, 60.0),
                    lon_deg=rnd.uniform(-180.0, 180.0),
                    link=rnd.choice(LINKS),
                    rtt_ms=rnd.uniform(25.0, 120.0),
                    version="2025.38.1",
                    state="driving",
                ),
            )
            for i in ids
        ]
        with st.begin() as conn:
            store.register_devices(conn, now, new, actor="bench")
        with st.begin() as conn:
            store.ingest_telemetry(conn, now, samples)
    return st


def start_rollouts(url: str, count: int) -> None:
    """``count`` releases (one small artifact per generation) and a started rollout of each over
    three groups (1% and 10% of hw3, then half of hw4), with long timeouts and no error
    threshold, so that they stay running at 720x."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=120.0
    ) as api:
        for k in range(count):
            version = f"2025.50.{k + 1}"
            artifacts = {}
            for hw in ("hw3", "hw4"):
                payload = f"{version}/{hw}".encode() * 64
                sha = hashlib.sha256(payload).hexdigest()
                up = api.post(
                    f"/api/v1/artifacts?filename={version}-{hw}.swu&sha256={sha}", content=payload
                )
                up.raise_for_status()
                artifacts[hw] = [int(up.json()["id"])]
            api.post(
                "/api/v1/releases", json={"version": version, "notes": "", "artifacts": artifacts}
            ).raise_for_status()
            options = {"timeout_s": 30 * 86400.0, "error_pct": None}
            groups = [{"group": g, **options} for g in ("hw:hw3 1%", "hw:hw3 10%", "hw:hw4 50%")]
            created = api.post("/api/v1/rollouts", json={"release": version, "groups": groups})
            created.raise_for_status()
            rid = created.json()["id"]
            api.post(f"/api/v1/rollouts/{rid}/start").raise_for_status()


def measure(browser: Any, url: str, loads: int, devices: int) -> dict[str, Any]:
    """Page loads to ``skyfleet.ready``, the frame rate after, and ``/state``'s size and time."""
    ready_ms: list[float] = []
    fps: list[float] = []
    drawn = 0
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/dashboard/#token={TOKEN}")
        page.wait_for_function("() => window.skyfleet && window.skyfleet.ready", timeout=60_000)
        ready_ms.append(float(page.evaluate("() => skyfleet.readyAt")))
        drawn = int(page.evaluate("() => skyfleet.drawnDevices"))
        f0 = page.evaluate("() => [skyfleet.frames, performance.now()]")
        page.wait_for_timeout(2000)
        f1 = page.evaluate("() => [skyfleet.frames, performance.now()]")
        fps.append((f1[0] - f0[0]) / ((f1[1] - f0[1]) / 1000.0))
        context.close()
        time.sleep(STATE_CACHE_S + 0.2)  # the next load builds its state afresh, as a first does
    if drawn != devices:
        raise SystemExit(f"error: the page drew {drawn} devices, not {devices}")
    state_s: list[float] = []
    cached_s: list[float] = []
    size = 0
    rollouts = sites = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(loads):
            time.sleep(STATE_CACHE_S + 0.2)  # past the server's state cache: a fresh build
            t0 = time.perf_counter()
            answer = client.get("/api/v1/dashboard/state")
            state_s.append(time.perf_counter() - t0)
            answer.raise_for_status()
            t0 = time.perf_counter()
            client.get("/api/v1/dashboard/state").raise_for_status()
            cached_s.append(time.perf_counter() - t0)
            size = len(answer.content)
            body = answer.json()
            rollouts, sites = len(body["rollouts"]), len(body["sites"])
    return {
        "devices": devices,
        "ready_ms": [round(v, 1) for v in ready_ms],
        "ready_median_ms": round(statistics.median(ready_ms), 1),
        "fps_median": round(statistics.median(fps), 1),
        "state_bytes": size,
        "state_median_ms": round(1000.0 * statistics.median(state_s), 1),
        "state_cached_median_ms": round(1000.0 * statistics.median(cached_s), 1),
        "rollouts": rollouts,
        "sites": sites,
    }


def run_case(browser: Any, devices: int, loads: int, rollouts: int = 0) -> dict[str, Any]:
    """One server and its page loads; ``rollouts`` > 0: the demo's shape (those rollouts, three
    sites, the server's clock at 720x)."""
    from tests.conftest import LiveServer

    from skyfleet.server import ServerConfig, create_app

    busy = rollouts > 0
    with tempfile.TemporaryDirectory(prefix="skyfleet-bench-dashboard-") as tmp:
        st = build_store(Path(tmp), devices, sites=busy)
        config = (
            ServerConfig(sim_start_s=time.time(), sim_wall_s=time.time(), sim_rate=SIM_RATE)
            if busy
            else ServerConfig()
        )
        try:
            with LiveServer(create_app(config, db=st)) as live:
                if busy:
                    start_rollouts(live.url, rollouts)
                result = measure(browser, live.url, loads, devices)
                result["time_rate"] = config.time_rate
                return result
        finally:
            st.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print(
            "error: the playwright package is not installed (pip install playwright)",
            file=sys.stderr,
        )
        return 2
    if not Path(args.chromium).exists():
        print(f"error: no browser at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 2
    with sync_playwright() as runner:
        browser = runner.chromium.launch(executable_path=args.chromium, args=ARGS)
        try:
            base = run_case(browser, 0, args.loads)
            full = run_case(browser, args.devices, args.loads)
            busy = run_case(browser, args.devices, args.loads, args.rollouts)
        finally:
            browser.close()
    ratio = full["ready_median_ms"] / base["ready_median_ms"] if base["ready_median_ms"] else None
    report = {
        "benchmark": "dashboard",
        "machine": machine(),
        "source": source(),
        "baseline": base,
        "fleet": full,
        "demo": busy,
        "ratio": round(ratio, 2) if ratio else None,
        "target_ms": 2000,
    }
    lines = [
        f"dashboard page, headless Chromium ({args.loads} loads each, navigation start to the first "
        "complete draw):",
    ]
    for case in (base, full, busy):
        extra = (
            f" + {case['rollouts']} rollouts, {case['sites']} sites, clock x{case['time_rate']:g}"
            if case["rollouts"] or case["sites"]
            else ""
        )
        lines.append(
            f"  {case['devices']:>6,} devices{extra}: median {case['ready_median_ms']:,.0f} ms "
            f"(loads {', '.join(f'{v:,.0f}' for v in case['ready_ms'])} ms); "
            f"{case['fps_median']:.0f} frames/s after; /state {case['state_bytes'] / 1024:,.0f} KiB "
            f"in {case['state_median_ms']:,.0f} ms built, {case['state_cached_median_ms']:,.0f} ms "
            "cached"
        )
    slowest = max(full["ready_median_ms"], busy["ready_median_ms"])
    lines.append(
        f"  ratio {args.devices:,} / 0 devices: {report['ratio']}x; target under 2,000 ms: "
        f"{'met' if slowest < 2000 else 'NOT met'}"
    )
    emit(report, lines, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
