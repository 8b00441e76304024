"""``skyfleet fleet status | telemetry`` against a live server: JSON for scripts, tables for
people, one line and exit status 2 for bad input."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from tests.cli._run import run

from conftest import ADMIN, ADMIN_TOKEN, LiveServer


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYFLEET_TOKEN", ADMIN_TOKEN)


@pytest.fixture
def fleet(server: LiveServer) -> str:
    """Three devices: car-1 reported telemetry twice, car-2 once, car-3 never."""
    with httpx.Client(base_url=server.url, headers=ADMIN) as api:
        specs = [{"id": f"car-{i}", "installed_version": "2025.38.1"} for i in (1, 2, 3)]
        answer = api.post("/api/v1/devices", json={"devices": specs})
        assert answer.status_code == 201, answer.text
        tokens = {d["id"]: d["token"] for d in answer.json()["devices"]}
    now = time.time()
    for device, samples in (
        ("car-1", [{"ts": now - 20, "link": "satellite", "rtt_ms": 40.0, "soc_pct": 81.0},
                   {"ts": now - 10, "link": "satellite", "rtt_ms": 44.0, "soc_pct": 80.0,
                    "lat_deg": -33.86, "lon_deg": 151.21, "version": "2025.44.25.5"}]),
        ("car-2", [{"ts": now - 5, "link": "cellular", "rtt_ms": 61.0}]),
    ):  # fmt: skip
        answer = httpx.post(
            f"{server.url}/DEFAULT/controller/v1/{device}/telemetry",
            json=samples,
            headers={"Authorization": f"TargetToken {tokens[device]}"},
        )
        assert answer.status_code == 200, answer.text
    return server.url


def test_fleet_status_json_counts_the_fleet(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["fleet", "status", "--json", "--server", fleet], capsys)
    assert code == 0, err
    status = json.loads(out)
    assert status["devices"] == 3
    assert status["by_state"] == {"online": 2, "silent": 0, "never_seen": 1}
    assert status["by_link"] == {"cellular": 1, "satellite": 1, "unreported": 1}
    assert status["rtt_ms_mean_by_link"] == {
        "cellular": 61.0,
        "satellite": 44.0,
        "unreported": None,
    }
    assert status["by_version"] == {"2025.38.1": 2, "2025.44.25.5": 1}
    assert status["telemetry"]["stored"] == 3
    assert status["silent_after_s"] == 600.0


def test_fleet_status_flags_devices_silent_past_the_threshold(
    fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    time.sleep(1.2)
    code, out, err = run(
        ["fleet", "status", "--silent-after", "1s", "--json", "--server", fleet], capsys
    )
    assert code == 0, err
    status = json.loads(out)
    assert status["by_state"] == {"online": 0, "silent": 2, "never_seen": 1}
    assert {d["id"] for d in status["silent"]} == {"car-1", "car-2"}

    code, out, err = run(["fleet", "status", "--silent-after", "1s", "--server", fleet], capsys)
    assert code == 0, err
    assert "3 devices: 0 online, 2 silent for more than 1s, 1 never seen" in out
    assert "silent devices" in out and "car-1" in out and "satellite" in out
    assert "3 stored" in out


def test_a_sample_an_hour_late_does_not_make_a_silent_device_online(
    fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client(base_url=fleet, headers=ADMIN) as api:
        answer = api.post("/api/v1/devices", json={"devices": [{"id": "car-late"}]})
        assert answer.status_code == 201, answer.text
        token = answer.json()["devices"][0]["token"]
    late = httpx.post(  # queued for an hour on the device (or at an edge relay)
        f"{fleet}/DEFAULT/controller/v1/car-late/telemetry",
        json={"ts": time.time() - 3600, "link": "satellite"},
        headers={"Authorization": f"TargetToken {token}"},
    )
    assert late.status_code == 200, late.text
    code, out, err = run(["fleet", "status", "--json", "--server", fleet], capsys)
    assert code == 0, err
    status = json.loads(out)
    assert status["by_state"] == {"online": 2, "silent": 1, "never_seen": 1}
    [silent] = status["silent"]
    assert silent["id"] == "car-late"
    assert 3590 < silent["silent_s"] < 3700


def test_fleet_telemetry_shows_a_devices_history(
    fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["fleet", "telemetry", "car-1", "--json", "--server", fleet], capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert [s["rtt_ms"] for s in answer["history"]] == [44.0, 40.0]
    assert answer["latest"]["version"] == "2025.44.25.5"
    code, out, err = run(["fleet", "telemetry", "car-1", "--server", fleet], capsys)
    assert code == 0, err
    assert "car-1: 2 samples, newest first, version 2025.44.25.5" in out
    assert "-33.860,151.210" in out and "44.0" in out
    assert "power W" not in out and "freq Hz" not in out  # a vehicle reports neither


def test_fleet_telemetry_shows_a_home_devices_power_and_bus_frequency(
    fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client(base_url=fleet, headers=ADMIN) as api:
        device = {"id": "home-1", "kind": "home-battery", "hw": "gen2"}
        answer = api.post("/api/v1/devices", json={"devices": [device]})
        assert answer.status_code == 201, answer.text
        token = answer.json()["devices"][0]["token"]
    now = time.time()
    posted = httpx.post(
        f"{fleet}/DEFAULT/controller/v1/home-1/telemetry",
        json=[
            {"ts": now - 20, "soc_pct": 64.0, "freq_hz": 50.02, "power_w": -3300.0},
            {"ts": now - 10, "soc_pct": 63.0, "power_w": 2400.0, "state": "island"},
        ],
        headers={"Authorization": f"TargetToken {token}"},
    )
    assert posted.status_code == 200, posted.text
    code, out, err = run(["fleet", "telemetry", "home-1", "--json", "--server", fleet], capsys)
    assert code == 0, err
    history = json.loads(out)["history"]
    assert [(s["power_w"], s["freq_hz"]) for s in history] == [(2400.0, None), (-3300.0, 50.02)]
    code, out, err = run(["fleet", "telemetry", "home-1", "--server", fleet], capsys)
    assert code == 0, err
    assert "power W" in out and "freq Hz" in out
    assert "-3300" in out and "2400" in out and "50.02" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fleet", "status", "--silent-after", "soon"], "cannot read --silent-after 'soon'"),
        (["fleet", "status", "--silent-after", "0s"], "must be longer than 0 s"),
        (["fleet", "status", "--limit", "-1"], "--limit"),
        (["fleet", "telemetry", "ghost"], "no device 'ghost'"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    fleet: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([*argv, "--server", fleet], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert out == ""
