"""``skyfleet powershare``: simulate writes what it says, certify names what fails, bad input is
one line and status 2 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.cli._run import run

SIM = [
    "powershare",
    "simulate",
    "--vehicle",
    "cybertruck",
    "--home-battery",
    "gen2:60",
    "--home-battery",
    "gen3",
    "--load",
    "essential",
    "--solar",
    "8kW",
    "--start",
    "11:00",
    "--outage",
    "20m",
]


@pytest.mark.parametrize(
    "command", [["powershare"], ["powershare", "simulate"], ["powershare", "certify"]]
)
def test_powershare_commands_have_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    assert "Usage" in out and "--help" in out


def test_simulate_json_reports_hours_energy_extremes_and_roles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run([*SIM, "--json"], capsys)
    assert code == 0
    s = json.loads(out)
    assert s["hours_powered"] == pytest.approx(20 / 60, abs=2 / 3600)  # dark only while starting
    labels = [d["device"] for d in s["devices"]]
    assert labels == ["vehicle:cybertruck", "home1:gen2", "home2:gen3"]
    # home batteries first: full ones at midday with solar leave the vehicle untouched
    assert s["devices"][0]["energy_out_kwh"] == 0.0
    assert 59.8 < s["lowest_frequency_hz"] <= s["highest_frequency_hz"] < 61.2
    assert 0.88 < s["lowest_voltage_pu"] <= 1.0
    assert s["violations"] == []
    served = s["served_kwh"]
    supplied = sum(d["energy_out_kwh"] - d["energy_in_kwh"] for d in s["devices"]) + s["solar_kwh"]
    assert supplied == pytest.approx(served, abs=1e-3)  # kWh, rounded fields


def test_simulate_writes_series_summary_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "run"
    code, out, err = run([*SIM, "--out", str(out_dir), "--record-every", "10s"], capsys)
    assert code == 0, err
    table = pq.read_table(out_dir / "series.parquet").to_pydict()
    assert len(table["t_s"]) == 20 * 6
    for col in ("f_min_hz", "v_min_pu", "home1:gen2.p_w", "home1:gen2.q_var", "home2:gen3.soc_pct"):
        assert col in table
    assert set(table["vehicle:cybertruck.role"]) <= {"waiting", "syncing", "forming", "following"}
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["devices"][1]["device"] == "home1:gen2"
    png = (out_dir / "powershare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "every invariant held" in out


def test_simulate_writes_csv_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([*SIM, "--out", str(tmp_path), "--format", "csv", "--outage", "2m"], capsys)
    assert code == 0, err
    header = (tmp_path / "series.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["t_s", "f_min_hz", "f_max_hz"]


def test_certify_one_scenario_passes_and_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    sid = "fw=basic/home=gen1/soc=22,15/load=typical/solar=0kW/start=18:30"
    code, out, _ = run(["powershare", "certify", "--scenario", sid, "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["passed"] and report["scenarios"] == 1
    assert report["matrix"][0]["id"] == sid
    assert report["trip_tests"]["run"] == report["trip_tests"]["passed"] == 400


def test_certify_fails_with_status_1_and_names_what_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # gen1 runs to its reserve and hands the house to the vehicle: roles change, which a
    # certification that allows none must refuse, naming the scenario and how to re-run it
    sid = "fw=basic/home=gen1/soc=22,15/load=typical/solar=0kW/start=18:30"
    argv = ["powershare", "certify", "--scenario", sid, "--max-role-changes", "0"]
    code, out, _ = run(argv, capsys)
    assert code == 1
    assert f"FAIL {sid}: " in out and "changed role" in out
    assert f"--scenario '{sid}'" in out


def test_certify_writes_html_png_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = "fw=adaptive/home=gen1+gen2+gen3/soc=90,100+90+80/load=typical/solar=8kW/start=12:30"
    code, _, err = run(["powershare", "certify", "--scenario", sid, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    page = (tmp_path / "certification.html").read_text()
    assert "PASSED" in page and sid in page
    assert (tmp_path / "certification.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "certification.json").read_text())["passed"] is True


def test_devices_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["powershare", "devices", "--json"], capsys)
    assert code == 0
    cat = json.loads(out)
    truck = next(v for v in cat["vehicles"] if v["name"] == "cybertruck")
    assert truck["v2h_w"] == 11_500.0 and truck["pack_kwh"] == 123.0
    assert {"gen1", "gen2", "gen3"} <= {h["name"] for h in cat["home_batteries"]}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--vehicle", "tractor"], "unknown vehicle 'tractor'"),
        (["--home-battery", "gen9"], "unknown home battery 'gen9'"),
        (["--home-battery", "gen2:120"], "between 0 and 100"),
        (["--home-battery", "gen2:-5"], "between 0 and 100"),
        (["--home-battery", "gen2:full"], "NAME:SOC"),
        (["--vehicle-soc", "101"], "between 0 and 100"),
        (["--reserve", "-1"], "reserve_pct"),
        (["--breaker", "45"], "45 A breaker"),
        (["--load", "factory"], "unknown load profile"),
        (["--solar", "lots"], "cannot read --solar"),
        (["--outage", "-2h"], "outage"),
        (["--outage", "0s"], "--outage"),
        (["--step", "5s"], "--step"),
        (["--start", "25:00"], "HH:MM"),
        (["--vehicle-firmware", "beta"], "--vehicle-firmware"),
        (["--format", "xlsx"], "--format"),
        (["--vehicle", "none"], "a vehicle or at least one home battery"),
        (["--reserve", "100"], "below 100"),
        (["--seed", "-1"], "seed"),
        (["--step", "100ms"], "at most 60 ms"),
        (["--outage", "1ms"], "shorter than one step"),
    ],
)
def test_simulate_bad_input_is_one_line_and_status_2(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["powershare", "simulate", "--outage", "1m", "--out", str(tmp_path / "o")]
    code, _, err = run([*base, *args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert says in lines[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_certify_bad_scenario_id_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["powershare", "certify", "--scenario", "fw=turbo"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "scenario id" in err


def test_out_that_is_a_file_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "taken"
    f.write_text("keep me")
    code, _, err = run([*SIM, "--out", str(f)], capsys)
    assert code == 2 and "is a file" in err
    assert f.read_text() == "keep me"


GEN4 = {
    "capacity_kwh": 20.0,
    "continuous_kw": 10.0,
    "peak_kw": 12.0,
    "peak_s": 10.0,
    "charge_kw": 8.0,
    "reserve_pct": 10.0,
    "efficiency": 0.95,
    "firmware": "adaptive",
}


def test_simulate_takes_your_own_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"home_batteries": {"gen4": GEN4}}))
    argv = ["powershare", "simulate", "--devices", str(f), "--home-battery", "gen4:50"]
    code, out, err = run([*argv, "--load", "essential", "--outage", "10m", "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    gen4 = s["devices"][1]
    assert gen4["device"] == "home1:gen4" and gen4["energy_out_kwh"] > 0
    # 20 kWh at 50 %: the state of charge falls by what it delivered, through its efficiency
    drop_kwh = (gen4["soc_start_pct"] - gen4["soc_end_pct"]) / 100 * 20.0
    assert drop_kwh == pytest.approx(gen4["energy_out_kwh"] / 0.95, abs=2e-3)


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ({"capacity_kwh": -13.5}, "capacity_kwh must be a positive number"),
        ({"peak_kw": 5.0}, "peak power is below continuous"),
        ({"reserve_pct": 120.0}, "below 100"),
        ({"capacity_kwh": "big"}, "capacity_kwh must be a number"),
        ({"firmware": "beta"}, "unknown firmware"),
    ],
)
def test_bad_device_file_is_one_line_and_status_2(
    row: dict[str, object], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"home_batteries": {"gen4": GEN4 | row}}))
    code, _, err = run(["powershare", "devices", "--devices", str(f)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "gen4" in lines[0], err


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"trucks": {}}'])
def test_device_file_that_is_not_a_catalogue_is_refused(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.json"
    f.write_text(text)
    code, _, err = run(["powershare", "simulate", "--devices", str(f)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--devices" in err


def test_a_house_that_never_gets_power_reports_null_extremes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a vehicle below its reserve and no home battery: nothing may form the bus
    argv = ["powershare", "simulate", "--vehicle-soc", "10", "--outage", "1m", "--json"]
    code, out, err = run([*argv, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert s["hours_powered"] == 0.0 and s["first_powered_s"] is None
    assert s["lowest_frequency_hz"] is None and s["lowest_voltage_pu"] is None
    assert s["devices"][0]["energy_out_kwh"] == 0.0
    assert s["violations"] == []  # no usable energy: dark is not a failure
    assert json.loads((tmp_path / "summary.json").read_text()) == s


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            [
                "--quick",
                "--scenario",
                "fw=basic/home=gen1/soc=22,15/load=typical/solar=0kW/start=18:30",
            ],
            "not both",
        ),
        (["--max-role-changes", "-1"], "--max-role-changes"),
        (["--step", "0s"], "--step"),
    ],
)
def test_certify_bad_input_is_one_line_and_status_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["powershare", "certify", *args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], err


def test_device_file_sets_trip_settings_per_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.json"
    strict = GEN4 | {"trip": {"uf1": [58.8, 10.0]}}
    f.write_text(json.dumps({"home_batteries": {"gen4": strict}}))
    code, out, err = run(["powershare", "devices", "--devices", str(f), "--json"], capsys)
    assert code == 0, err
    gen4 = next(h for h in json.loads(out)["home_batteries"] if h["name"] == "gen4")
    assert gen4["trip"]["uf1"] == [58.8, 10.0] and gen4["trip"]["of1"] == [61.2, 300.0]
    # a setting that cuts through the signalling band is refused before the run
    f.write_text(json.dumps({"home_batteries": {"gen4": GEN4 | {"trip": {"uf1": [59.5, 10.0]}}}}))
    argv = [
        "powershare",
        "simulate",
        "--devices",
        str(f),
        "--home-battery",
        "gen4",
        "--outage",
        "1m",
    ]
    code, _, err = run(argv, capsys)
    assert code == 2 and "signalling band" in err and len(err.strip().splitlines()) == 1
