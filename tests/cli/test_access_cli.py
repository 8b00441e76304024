"""The CLI's access commands: operator tokens against a live server, and trust init on a store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli._run import run

from conftest import ADMIN_TOKEN
from skyfleet import store


def test_token_lifecycle(server, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    admin = ["--server", server.url, "--token", ADMIN_TOKEN]
    code, out, err = run(["token", "create", "ci", "--role", "operator", "--json", *admin], capsys)
    assert code == 0, err
    made = json.loads(out)
    assert made["role"] == "operator" and made["token"].startswith("sfo_")
    code, out, _ = run(
        ["token", "whoami", "--server", server.url, "--token", made["token"]], capsys
    )
    assert code == 0 and "ci (operator)" in out
    code, _, err = run(["token", "list", "--server", server.url, "--token", made["token"]], capsys)
    assert code == 2 and "needs admin" in err and "403" in err
    code, out, _ = run(["token", "list", "--json", *admin], capsys)
    assert [t["name"] for t in json.loads(out)["tokens"]] == ["admin", "ci"]
    code, out, _ = run(["token", "revoke", "ci", *admin], capsys)
    assert code == 0 and "revoked" in out
    code, _, err = run(["device", "list", "--server", server.url, "--token", made["token"]], capsys)
    assert code == 2 and "revoked" in err


def test_missing_token_is_one_line_that_says_how(
    server,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SKYFLEET_TOKEN", raising=False)
    code, out, err = run(["device", "list", "--server", server.url], capsys)
    assert code == 2 and out == ""
    assert "--token or SKYFLEET_TOKEN" in err and len(err.strip().splitlines()) == 1


def test_token_create_on_the_database_recovers_access(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    code, out, err = run(
        ["token", "create", "rescue", "--role", "admin", "--database-url", url, "--json"], capsys
    )
    assert code == 0, err
    token = json.loads(out)["token"]
    db = store.open_store(url)
    try:
        with db.read() as conn:
            who = store.operator_for_token(conn, token)
    finally:
        db.close()
    assert who == store.Operator("rescue", "admin")
    code, _, err = run(["token", "create", "x", "--role", "root", "--database-url", url], capsys)
    assert code == 2 and "role 'root' is unknown" in err


def test_trust_init_makes_keys_and_refuses_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    keys, offline = tmp_path / "keys", tmp_path / "usb"
    argv = ["trust", "init", "--database-url", url, "--keys", str(keys)]
    argv += ["--root-keys", str(offline), "--threshold", "root=2", "--threshold", "targets=2"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "take that folder offline" in out
    assert len(list((offline / "director").glob("root-*.pem"))) == 2
    assert len(list((keys / "image").glob("targets-*.pem"))) == 2
    assert not list(keys.rglob("root-*.pem"))  # root keys never land in the server's folder
    code, _, err = run(argv, capsys)
    assert code == 2 and "has roots already" in err
    for bad in ("targets=0", "mirror=1", "targets", "root=x"):
        code, _, err = run(["trust", "init", "--database-url", url, "--threshold", bad], capsys)
        assert code == 2 and "threshold" in err, bad


def test_serve_without_the_signing_keys_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert (
        run(["trust", "init", "--database-url", url, "--keys", str(tmp_path / "k")], capsys)[0] == 0
    )
    code, _, err = run(
        ["serve", "--database-url", url, "--keys-dir", str(tmp_path / "elsewhere")], capsys
    )
    assert code == 2
    assert "needs 1 of its keys" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "skyfleet-admin.token").exists()  # nothing made for a failed start
