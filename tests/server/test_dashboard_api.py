"""The dashboard's routes: the map's shells move satellites where skyfleet.orbits puts them, the
state carries every device's position, link and update state, and the event stream ends when
its token is revoked."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from tests.conftest import ADMIN, LiveServer
from tests.server._fleet import MINE, OLD, poll_round, register_cars, release, rollout, status

from skyfleet.orbits import preset
from skyfleet.server import ServerConfig, create_app
from skyfleet.sim import DdiDevice
from skyfleet.store import Store


def _shell_positions_km(shell: dict[str, float], t_s: float, now_s: float, earth: dict[str, float]):
    """The documented propagation, written out from the route's numbers alone."""
    planes, per_plane = int(shell["planes"]), int(shell["sats_per_plane"])
    p = np.repeat(np.arange(planes), per_plane)
    s = np.tile(np.arange(per_plane), planes)
    dt = t_s - shell["epoch_unix_s"]
    theta = earth["gmst_rad"] + earth["rotation_rad_s"] * (t_s - now_s)
    node = (
        math.radians(shell["raan0_deg"]) + 2 * math.pi * p / planes + shell["raan_rate_rad_s"] * dt
    ) - theta
    u = 2 * math.pi * (s / per_plane + shell["phasing"] * p / (planes * per_plane))
    u = u + shell["arglat_rate_rad_s"] * dt
    i, r = math.radians(shell["inclination_deg"]), shell["radius_km"]
    x = r * (np.cos(node) * np.cos(u) - np.sin(node) * np.sin(u) * math.cos(i))
    y = r * (np.sin(node) * np.cos(u) + np.cos(node) * np.sin(u) * math.cos(i))
    z = r * np.sin(u) * math.sin(i)
    return np.stack([x, y, z])


def test_map_shells_put_satellites_where_the_orbits_package_does(api: httpx.Client) -> None:
    body = api.get("/api/v1/dashboard/map").json()
    con = preset("starlink-gen1")
    assert body["constellation"]["size"] == con.size
    now_s = body["now_s"]
    t_s = now_s + 1800.0  # half an hour on: the Earth's rotation term matters
    mine = np.concatenate(
        [
            _shell_positions_km(s, t_s, now_s, body["earth"])
            for s in body["constellation"]["shells"]
        ],
        axis=1,
    )
    theirs = con.positions_km(t_s)
    assert mine.shape == theirs.shape
    assert float(np.max(np.linalg.norm(mine - theirs, axis=0))) < 1.0  # km
    assert len(body["gateways"]["id"]) == len(body["gateways"]["lat_deg"]) > 100
    assert body["time_rate"] == 1.0


def test_map_refuses_an_unknown_constellation_with_a_json_400(api: httpx.Client) -> None:
    r = api.get("/api/v1/dashboard/map", params={"constellation": "starlonk"})
    assert r.status_code == 400
    assert "starlonk" in r.json()["error"]


def test_state_has_each_devices_position_link_and_update_state(api: httpx.Client) -> None:
    cars = register_cars(
        api,
        {"id": "car-a", "hw": "hw3", "tags": ["eap"]},
        {"id": "car-b", "hw": "hw3", "attributes": {"home": "home-7"}},
        MINE,
    )
    now = time.time()
    sent = api.post(
        "/DEFAULT/controller/v1/car-a/telemetry",
        json={"ts": now, "lat_deg": 47.6, "lon_deg": -122.3, "link": "satellite", "rtt_ms": 41.0},
        headers=cars["car-a"].auth,
    )
    assert sent.status_code < 300, sent.text
    release(api, "2025.44.25.5", ["hw3"])
    rid = rollout(api, "2025.44.25.5", ["tag:eap"])
    poll_round(str(api.base_url), [DdiDevice("car-a", cars["car-a"].token, installed_version=OLD)])
    assert status(api, rid)["groups"][0]["started"]

    body = api.get("/api/v1/dashboard/state").json()
    devices = body["devices"]
    assert body["total"] == 3 and body["truncated"] is False
    assert {len(column) for column in devices.values()} == {3}
    row = {name: devices[name][devices["id"].index("car-a")] for name in devices}
    assert (row["lat_deg"], row["lon_deg"], row["link"], row["rtt_ms"]) == (
        47.6,
        -122.3,
        "satellite",
        41.0,
    )
    assert row["update"] not in ("none", "scheduled")  # it polled and acted on the offer
    other = {name: devices[name][devices["id"].index("car-b")] for name in devices}
    assert (other["home"], other["update"], other["lat_deg"]) == ("home-7", "none", None)
    assert [r["id"] for r in body["rollouts"]] == [rid]
    assert [(s["id"], s["name"]) for s in body["sites"]] == [("pilbara-mine", "Pilbara mine")]
    assert "link" in body["sites"][0]
    assert body["audit"] and body["audit"][0]["id"] > body["audit"][-1]["id"]
    assert body["fleet"]["online"] >= 1


def test_state_needs_a_token(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/api/v1/dashboard/state")
    assert r.status_code == 401
    assert "token" in r.json()["error"]


def _events(client: httpx.Client, **params: object):
    with client.stream("GET", "/api/v1/dashboard/events", params=params) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                yield event, json.loads(line[6:])


def test_events_stream_state_and_end_when_the_token_is_revoked(api: httpx.Client) -> None:
    made = api.post("/api/v1/tokens", json={"name": "wall", "role": "viewer"})
    assert made.status_code == 201, made.text
    viewer = {"Authorization": f"Bearer {made.json()['token']}"}
    with httpx.Client(base_url=str(api.base_url), headers=viewer, timeout=10.0) as client:
        received = []
        for event, state in _events(client, interval_s=1.0):
            received.append((event, state["now_s"]))
            if len(received) == 2:
                assert api.delete("/api/v1/tokens/wall").status_code in (200, 204)
            assert len(received) < 6, "the stream went on after its token was revoked"
        assert client.get("/api/v1/dashboard/state").status_code == 401
    assert [e for e, _ in received][:2] == ["state", "state"]
    assert received[1][1] > received[0][1]  # the clock moved on between events


def test_simulated_clock_shows_in_now_and_rate(db: Store) -> None:
    start = 1_798_092_000.0  # 2026-12-24T06:00:00Z
    config = ServerConfig(sim_start_s=start, sim_wall_s=time.time(), sim_rate=720.0)
    with LiveServer(create_app(config, db=db)) as live:
        body = httpx.get(f"{live.url}/api/v1/dashboard/map", headers=ADMIN).json()
        first = httpx.get(f"{live.url}/api/v1/dashboard/state", headers=ADMIN).json()
        time.sleep(0.3)
        second = httpx.get(f"{live.url}/api/v1/dashboard/state", headers=ADMIN).json()
    assert body["time_rate"] == first["time_rate"] == 720.0
    assert start <= body["now_s"] < start + 720.0 * 60  # within a wall minute of the start
    # Each answer carries the time it was sent, even when one build serves both: 0.3 s of
    # wall clock is 216 s of the demo's.
    assert second["now_s"] - first["now_s"] >= 0.3 * 720.0


def test_state_says_which_operations_each_rollout_allows(api: httpx.Client) -> None:
    register_cars(api, {"id": "car-a", "hw": "hw3", "tags": ["eap"]})
    release(api, "2025.44.25.5", ["hw3"])
    rid = rollout(api, "2025.44.25.5", ["tag:eap"])

    def operations() -> list[str]:
        (view,) = api.get("/api/v1/dashboard/state").json()["rollouts"]
        assert view["id"] == rid
        return view["operations"]

    assert operations() == ["halt", "cancel", "rollback"]
    assert api.post(f"/api/v1/rollouts/{rid}/halt").status_code == 200
    time.sleep(1.1)  # one build of the state serves a second
    assert operations() == ["resume", "cancel", "rollback"]


def test_page_files_are_served_with_a_strict_content_security_policy(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    script = httpx.get(f"{server.url}/dashboard/dashboard.js")
    assert script.status_code == 200 and script.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{server.url}/dashboard/nothing-here.js").status_code == 404


def test_root_and_bare_dashboard_redirect_to_the_page(server: LiveServer) -> None:
    for path in ("/", "/dashboard"):
        r = httpx.get(server.url + path)
        assert r.status_code == 307 and r.headers["location"] == "/dashboard/"


def test_serve_stops_promptly_on_ctrl_c_with_a_dashboard_stream_open(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable,
        "-m",
        "skyfleet",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    args += ["--database-url", f"sqlite:///{tmp_path / 'fleet.db'}"]
    with (tmp_path / "serve.log").open("ab") as log:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "skyfleet-admin.token").exists() or not _up(url):
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)
        token = (tmp_path / "skyfleet-admin.token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            first = next(_events(client, interval_s=30))  # open, then idle for 30 s
            assert first[0] == "state"
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0
            assert time.monotonic() - started < 8.0  # not the stream's 30 s, nor forever
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_events_refuse_bad_input_with_a_json_4xx_before_streaming(server: LiveServer) -> None:
    url = f"{server.url}/api/v1/dashboard/events"
    unauthorised = httpx.get(url, timeout=10.0)
    assert unauthorised.status_code == 401 and "token" in unauthorised.json()["error"]
    for interval in ("0.1", "61", "soon"):
        refused = httpx.get(url, params={"interval_s": interval}, headers=ADMIN, timeout=10.0)
        assert refused.status_code == 422, interval
        assert refused.headers["content-type"].startswith("application/json")
        assert "interval_s" in refused.text
