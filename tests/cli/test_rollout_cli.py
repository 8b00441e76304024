"""The operator CLI against a live server: releases, rollouts, status, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.cli._run import run

from conftest import ADMIN, ADMIN_TOKEN

pytestmark = pytest.mark.usefixtures("server")


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYFLEET_TOKEN", ADMIN_TOKEN)


@pytest.fixture
def url(server) -> str:  # type: ignore[no-untyped-def]
    return str(server.url)


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for hw in ("hw3", "hw4"):
        path = tmp_path / f"{hw}.swu"
        path.write_bytes(hw.encode() * 1000)
        files[hw] = path
    return files


def _register(url: str, capsys: pytest.CaptureFixture[str], n: int = 12) -> None:
    SRV = ["--server", url]
    for i in range(n):
        hw = "hw3" if i % 2 else "hw4"
        tags = ["--tag", "eap"] if i < 2 else []
        code, _, err = run(
            ["device", "register", f"car-{i}", "--hw", hw, *tags, "--version", "2025.38.1", *SRV],
            capsys,
        )
        assert code == 0, err


def test_release_rollout_start_and_status_json(
    url: str, bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(url, capsys)
    notes = tmp_path / "NOTES.md"
    notes.write_text("Holiday update: light show.\n")
    HW4 = ["--artifact", f"hw4={bundles['hw4']}", "--notes", str(notes), "--server", url, "--json"]
    code, out, err = run(
        ["release", "create", "2025.44.25.5", "--artifact", f"hw3={bundles['hw3']}", *HW4],
        capsys,
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["generations"] == ["hw3", "hw4"]
    assert created["notes"] == notes.read_text()
    assert created["artifacts"]["hw3"][0]["size"] == bundles["hw3"].stat().st_size

    REST = ["--group", "hw:hw4", "--manual", "--start", "--server", url, "--json"]
    code, out, err = run(
        ["rollout", "create", "2025.44.25.5", "--group", "tag:eap", "--group", "hw:hw3", *REST],
        capsys,
    )
    assert code == 0, err
    rollout = json.loads(out)
    assert rollout["status"] == "running"
    assert [g["total"] for g in rollout["groups"]] == [2, 5, 5]

    code, out, _ = run(["rollout", "status", str(rollout["id"]), "--server", url, "--json"], capsys)
    assert code == 0
    status = json.loads(out)
    assert status["groups"][0]["started"] and not status["groups"][1]["started"]
    assert status["groups"][0]["counts"]["scheduled"] == 2

    code, out, _ = run(["rollout", "halt", str(rollout["id"]), "--server", url], capsys)
    assert code == 0 and "halted" in out
    code, out, _ = run(["rollout", "resume", str(rollout["id"]), "--server", url], capsys)
    assert code == 0 and "running" in out
    code, out, _ = run(["rollout", "status", str(rollout["id"]), "--server", url], capsys)
    assert code == 0 and "tag:eap" in out

    code, out, _ = run(["device", "list", "--hw", "hw3", "--server", url, "--json"], capsys)
    assert code == 0
    listed = json.loads(out)
    assert listed["total"] == 6 and all(d["hw"] == "hw3" for d in listed["devices"])
    assert all("token_hash" not in d for d in listed["devices"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rollout", "create", "9.9.9", "--group", "hw:hw3"], "no release '9.9.9'"),
        (["rollout", "create", "9.9.9", "--group", "color:red"], "unknown filter term"),
        (["rollout", "create", "9.9.9", "--group", "hw:hw3 200%"], "percentage 200%"),
        (["rollout", "create", "9.9.9", "--group", "hw:hw3", "--timeout", "soon"], "timeout"),
        (["rollout", "start", "42"], "no rollout 42"),
        (["release", "create", "1.0", "--artifact", "hw3"], "HW=FILE"),
        (["release", "create", "1.0", "--artifact", "hw3=/nonexistent.swu"], "does not exist"),
        (["device", "register", "car 1"], "device"),
        (["device", "list", "--server", "ftp://x"], "http:// or https://"),
    ],
)
def test_bad_operator_input_is_one_line_and_exit_2(
    url: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--server" not in argv:
        argv = [*argv, "--server", url]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_duplicate_release_is_refused_and_the_first_kept(
    url: str, bundles: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "release",
        "create",
        "2025.50.1",
        "--artifact",
        f"hw3={bundles['hw3']}",
        "--server",
        url,
    ]
    assert run(argv, capsys)[0] == 0
    code, _, err = run([*argv[:4], f"hw3={bundles['hw4']}", *argv[5:]], capsys)
    assert code == 2 and "already exists" in err
    release = httpx.get(f"{url}/api/v1/releases/2025.50.1", headers=ADMIN).json()
    assert release["artifacts"]["hw3"][0]["size"] == bundles["hw3"].stat().st_size


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["device", "list", "--server", "http://127.0.0.1:9"], capsys)
    assert code == 2
    assert "cannot reach the skyfleet server" in err


def test_serve_refuses_a_bad_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["serve", "--database-url", "mysql://nope"], capsys)
    assert code == 2 and "unsupported database URL" in err
    code, _, err = run(["serve", "--database-url", "sqlite:///x.db", "--workers", "2"], capsys)
    assert code == 2 and "PostgreSQL" in err
