"""The skyfleet command: version, help, JSON, files, and one clear line for every bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli._run import run

from skyfleet import __version__

LINK = [
    "link",
    "--from",
    "city:Seattle",
    "--to",
    "azure:westus2",
    "--start",
    "2026-01-01T00:00:00Z",
    "-c",
    "starlink-s1",
]


def test_installed_command_prints_its_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skyfleet", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"skyfleet {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["link"],
        ["constellation"],
        ["constellation", "list"],
        ["constellation", "show"],
        ["places"],
        ["places", "regions"],
        ["places", "cities"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    assert "Usage" in out and "--help" in out


def test_link_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*LINK, "--duration", "10m", "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    for key in (
        "availability_pct",
        "fiber_rtt_ms",
        "internet_rtt_ms",
        "handovers_per_hour",
        "gaps",
    ):
        assert key in s
    assert set(s["rtt_ms"]) == {"min", "median", "p95", "max"}
    assert s["steps"] == 40 and s["availability_pct"] == 100.0
    assert s["rtt_ms"]["min"] > 4 * 550 / 299_792.458 * 1e3  # up and down to a 550 km shell, twice


def test_link_summary_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*LINK, "--duration", "5m"], capsys)
    assert code == 0
    assert "availability" in out and "median" in out and "great-circle floor" in out


def test_link_writes_the_time_series_as_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "s.csv"
    code, _, err = run([*LINK, "--duration", "2m", "--out", str(f)], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(f.read_text().splitlines()))
    assert len(rows) == 8
    assert {"time_s", "rtt_ms", "path_sats", "gateway", "hops"} <= set(rows[0])
    assert rows[0]["path_sats"].startswith("S1-") and rows[0]["gateway"].startswith("gw-")
    assert float(rows[0]["rtt_ms"]) > 0


def test_link_writes_parquet_with_nulls_where_there_is_no_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    f = tmp_path / "arctic.parquet"
    code, _, err = run(
        [
            "link",
            "--from",
            "85,0",
            "--to",
            "aws:eu-north-1",
            "-c",
            "starlink-s1",
            "--duration",
            "2m",
            "--out",
            str(f),
        ],
        capsys,
    )
    assert code == 0, err
    table = pq.read_table(f)
    assert table.num_rows == 8
    assert table.column("rtt_ms").null_count == 8


def test_link_draws_a_png_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "rtt.png"
    code, _, err = run([*LINK, "--duration", "5m", "--plot", str(f)], capsys)
    assert code == 0, err
    assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_link_follows_a_route_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "trip.csv"
    f.write_text("lat,lon\n47.6,-122.3\n45.5,-122.7\n")
    code, out, err = run(
        [
            "link",
            "--route",
            str(f),
            "--to",
            "aws:us-west-2",
            "-c",
            "starlink-s1",
            "--duration",
            "10m",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["source"] == "route:trip"


def test_link_reads_a_tle_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "iss.tle"
    f.write_text(
        "ISS (ZARYA)\n"
        "1 25544U 98067A   20194.88612269 -.00000218  00000-0 -11606-4 0  9999\n"
        "2 25544  51.6461 221.2784 0001413  89.1723 280.4612 15.49507896236008\n"
    )
    code, out, err = run(
        [
            "link",
            "--tle",
            str(f),
            "--from",
            "0,0",
            "--to",
            "aws:us-east-1",
            "--mode",
            "bent-pipe",
            "--start",
            "2020-07-12T21:00:00Z",
            "--duration",
            "1h",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["constellation"] == "iss"


PARIS = ["--from", "city:Paris", "--to", "aws:us-east-1"]
BAD = [
    (["--from", "95,0", "--to", "aws:us-east-1"], "latitude 95"),
    (["--from", "city:Paris", "--to", "aws:us-east-9"], "unknown cloud region"),
    (
        [*PARIS, "--step", "0s"],
        "--step must be greater than zero",
    ),
    ([*PARIS, "--step", "-15s"], "cannot read step"),
    (
        [*PARIS, "--duration", "two hours"],
        "cannot read duration",
    ),
    (
        [*PARIS, "--start", "yesterday"],
        "cannot read start time",
    ),
    ([*PARIS, "-c", "starlonk"], "unknown constellation"),
    ([*PARIS, "--mode", "laser"], "unknown mode"),
    (
        [*PARIS, "--out", "x.txt"],
        "must end in .csv or .parquet",
    ),
    (
        [*PARIS, "--out", "/nonexistent/x.csv"],
        "does not exist",
    ),
    (["--to", "aws:us-east-1"], "exactly one of --from"),
    (["--from", "city:Paris"], "--to"),
    (["--from", "nan,nan", "--to", "aws:us-east-1"], "latitude nan"),
    (["--from", "abc", "--to", "aws:us-east-1"], "cannot read place 'abc'"),
    (
        [*PARIS, "--duration", "0"],
        "--duration must be greater than zero",
    ),
    (
        [*PARIS, "--start", "2026-13-01"],
        "cannot read start time",
    ),
    (
        [*PARIS, "--fiber-inflation", "inf"],
        "fiber inflation must be a number >= 1",
    ),
    (
        [*PARIS, "--fiber-inflation", "0.5"],
        "fiber inflation must be a number >= 1",
    ),
    (
        [*PARIS, "--min-elevation", "95"],
        "minimum elevation must be in 0..90",
    ),
    (
        [*PARIS, "--out", "/proc/x.csv"],
        "cannot write there",
    ),
    (
        [*PARIS, "--plot", "/nonexistent/x.png"],
        "does not exist",
    ),
    ([*PARIS, "--plot", "x.svg"], "must end in .png"),
    (["--route", "/", "--to", "aws:us-east-1"], "cannot read route file"),
    ([*PARIS, "--bogus"], "No such option"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_and_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["link", *args], capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no TLE found"),
        ("\n\n", "no TLE found"),
        ("hello world\n", "is not followed by a TLE line 1"),
        (
            "1 25544U 98067A   20194.88612269 -.00000218  00000-0 -11606-4 0  9999\n",
            "has no line 2",
        ),
        (
            "1 25544U 98067A   20194.88612269 -.00000218  00000-0 -11606-4 0  9992\n"
            "2 25544  51.6461 221.2784 0001413  89.1723 280.4612 15.49507896236008\n",
            "checksum",
        ),
        ("1 2554\n2 2554\n", "expected TLE line 1"),
    ],
)
def test_empty_or_malformed_tle_file_rejected(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.tle"
    f.write_text(content)
    code, _, err = run(["link", "--tle", str(f), "--from", "0,0", "--to", "aws:us-east-1"], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_output_name_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run([*LINK, "--out", str(tmp_path / "s.xlsx")], capsys)
    assert code == 2
    assert list(tmp_path.iterdir()) == []


def test_bad_input_from_the_installed_command_has_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skyfleet", "link", "--from", "95,0", "--to", "aws:us-east-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: place '95,0': latitude 95 is outside -90..90 degrees"


def test_constellation_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["constellation", "list", "--json"], capsys)
    assert code == 0
    sizes = {c["name"]: c["satellites"] for c in json.loads(out)}
    assert (
        sizes["starlink-gen1"] == 4408 and sizes["kuiper"] == 3236 and sizes["starlink-s1"] == 1584
    )
    assert 29_000 <= sizes["starlink-gen2"] <= 31_000
    code, out, _ = run(["constellation", "show", "starlink-gen2", "--json"], capsys)
    shells = json.loads(out)["shells"]
    assert (
        min(s["altitude_km"] for s in shells) == 340
        and max(s["altitude_km"] for s in shells) == 614
    )
    code, _, err = run(["constellation", "show", "nope"], capsys)
    assert code == 2 and "unknown constellation 'nope'" in err


def test_places_lists_regions_to_choose_from(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["places", "regions", "--search", "westus", "--json"], capsys)
    assert code == 0
    assert "azure:westus2" in {r["id"] for r in json.loads(out)}


def test_output_inside_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, err = run([*LINK, "--out", str(blocker / "x.csv")], capsys)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--headless", "--duration", "0"], "must be above 0"),
        (["demo", "--duration", "x"], "Invalid value for '--duration'"),
        (["places", "cities", "--top", "-1"], "must be 0 or more"),
        (["constellation", "show", "starlink-s1", "--bogus"], "No such option"),
    ],
)
def test_bad_input_to_other_commands_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_window_that_is_not_a_whole_number_of_steps_keeps_its_length(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        [
            "link",
            "--from",
            "85,0",
            "--to",
            "aws:eu-north-1",
            "-c",
            "starlink-s1",
            "--duration",
            "100s",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    s = json.loads(out)
    assert s["duration_s"] == 100.0 and s["steps"] == 7
    assert s["gaps"] == [{"start_s": 0.0, "end_s": 100.0}]


def test_old_tles_for_the_window_get_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "iss.tle"
    f.write_text(
        "ISS (ZARYA)\n"
        "1 25544U 98067A   20194.88612269 -.00000218  00000-0 -11606-4 0  9999\n"
        "2 25544  51.6461 221.2784 0001413  89.1723 280.4612 15.49507896236008\n"
    )
    base = [
        "link",
        "--tle",
        str(f),
        "--from",
        "0,0",
        "--to",
        "aws:us-east-1",
        "--mode",
        "bent-pipe",
        "--duration",
        "10m",
        "--json",
    ]
    code, _, err = run([*base, "--start", "2020-07-13T00:00:00Z"], capsys)
    assert code == 0 and "warning" not in err
    code, _, err = run([*base, "--start", "2026-01-01T00:00:00Z"], capsys)
    assert code == 0 and "warning: some TLEs are 1998 days from the start time" in err
