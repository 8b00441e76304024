"""``skyfleet site``: plan offline, add and list against a live server, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.cli._run import run

from conftest import ADMIN_TOKEN

PLAN = [
    "site", "plan", "--at", "-22.31,118.35", "--region", "aws:ap-southeast-2",
    "-c", "starlink-s1", "--start", "2026-01-01T00:00:00Z", "--duration", "30m",
]  # fmt: skip


def test_plan_json_reports_both_modes_against_fiber(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*PLAN, "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert s["steps"] == 120 and s["region"] == "aws:ap-southeast-2"
    assert set(s["modes"]) == {"isl", "bent-pipe"}
    isl = s["modes"]["isl"]
    assert isl["rtt_ms"]["min"] <= isl["rtt_ms"]["p50"] <= isl["rtt_ms"]["max"]
    assert s["internet_rtt_ms"] > s["fiber_rtt_ms"]


def test_plan_out_writes_plot_series_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([*PLAN, "--out", str(tmp_path / "mine")], capsys)
    assert code == 0, err
    assert "availability" in out
    folder = tmp_path / "mine"
    assert (folder / "rtt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pq.read_table(folder / "series.parquet").to_pydict()
    assert len(table["time_s"]) == 120
    assert {"rtt_isl_ms", "rtt_bent_pipe_ms", "fiber_rtt_ms"} <= set(table)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "95,10"], "latitude 95"),
        (["--region", "aws:atlantis-1"], "unknown cloud region"),
        (["--duration", "0s"], "greater than zero"),
        (["--constellation", "nope"], "nope"),
        (["--fiber-inflation", "0.5"], "inflation"),
    ],
)
def test_plan_bad_input_is_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*PLAN, "--out", str(tmp_path / "o")]
    for i in range(0, len(args), 2):  # the later option wins in click: append the bad value
        argv += args[i : i + 2]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.usefixtures("server")
def test_add_then_list_shows_the_link(
    server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SKYFLEET_TOKEN", ADMIN_TOKEN)
    srv = ["--server", server.url]
    code, out, err = run(
        ["site", "add", "kakuma", "--at", "3.72,34.87", "--region", "azure:southafricanorth", *srv],
        capsys,
    )
    assert code == 0, err
    assert "target token" in out
    code, out, err = run(["site", "list", "--json", *srv], capsys)
    assert code == 0, err
    (site,) = json.loads(out)["sites"]
    assert site["region"] == "azure:southafricanorth"
    assert site["link"]["isl"]["availability_pct"] >= 0.0
    code, out, err = run(["site", "list", *srv], capsys)
    assert code == 0 and "kakuma" in out
    code, _, err = run(
        ["site", "add", "bad", "--at", "3.72,34.87", "--region", "azure:nowhere", *srv], capsys
    )
    assert code == 2 and "unknown cloud region" in err
