"""Roots of trust: kept offline, rotated with the CLI, followed by devices, and guarded by the
server (a root that does not chain, or that the server could not sign under, is refused)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.server._uptane import V1, Site, forge_director, replay, start_site
from tuf.api import exceptions

from conftest import ADMIN_TOKEN
from skyfleet import store
from skyfleet.cli import main
from skyfleet.rollout import Published, generate_key, next_root, parse, sign_root
from skyfleet.store import Store


@pytest.fixture
def site(db: Store, tmp_path: Path) -> Iterator[Site]:
    started, close = start_site(db, tmp_path)
    yield started
    close()


def _cli(site: Site, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main([*argv, "--server", site.server.url, "--token", ADMIN_TOKEN])
    except SystemExit as exc:
        code = int(exc.code or 0)
    got = capsys.readouterr()
    return code, got.out, got.err


def _root_version(site: Site, repo: str) -> int:
    version: int = parse(site.root(repo)).signed.version
    return version


def test_root_keys_stay_out_of_the_server(site: Site) -> None:
    status = site.api.get("/api/v1/trust").json()
    for repo in ("image", "director"):
        assert status["repositories"][repo]["roles"]["root"]["keys_held"] == 0
        assert status["repositories"][repo]["roles"]["timestamp"]["keys_held"] == 1
    shutil.rmtree(site.root_keys_dir)  # offline: the server signs on without them
    assert [f.name for f in site.device("car-1").update()] == [f"{V1}%2Fhw3%2F{V1}-hw3.swu"]


def test_key_files_are_private(site: Site) -> None:
    for folder in (site.keys_dir, site.root_keys_dir):
        assert folder.stat().st_mode & 0o777 == 0o700
        pems = list(folder.rglob("*.pem"))
        assert pems and all(p.stat().st_mode & 0o777 == 0o600 for p in pems)
        assert all(p.parent.stat().st_mode & 0o777 == 0o700 for p in pems)


def test_rotated_root_is_followed_and_retired_keys_are_refused(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = site.device("car-1")
    device.check()
    retired = site.stolen_keys("director")  # the online keys before the rotation
    code, out, err = _cli(
        site,
        "trust",
        "rotate-root",
        "--repo",
        "director",
        "--root-keys",
        str(site.root_keys_dir),
        "--new-root-keys",
        str(tmp_path / "new-root-keys"),
        "--rotate",
        "timestamp",
        "--keys",
        str(site.keys_dir),
        capsys=capsys,
    )
    assert code == 0, err
    assert "director root v2 published" in out
    assert _root_version(site, "director") == 2
    # the device walks from the root it trusts to v2, then verifies the new timestamp key
    assert [f.read_bytes() for f in site.device("car-1").update()]
    trusted = json.loads((site.workdir / "car-1" / "director" / "root.json").read_text())
    assert trusted["signed"]["version"] == 2
    # metadata signed with the retired timestamp key is refused by the device
    head = site.director_head("car-1").targets or b""
    attacker = site.attacker("car-1")
    for pattern, body in forge_director(site, "car-1", parse(head).signed.targets, retired).items():
        attacker.rules[pattern] = replay(body)
    with pytest.raises(exceptions.UnsignedMetadataError, match="timestamp"):
        site.device("car-1", attacker).check()
    audit = site.api.get("/api/v1/audit").json()["entries"]
    assert any(e["event"] == "trust.root" and e["detail"] == "director v2" for e in audit)


def _post_root(site: Site, body: bytes, token: str = ADMIN_TOKEN) -> httpx.Response:
    return httpx.post(
        f"{site.server.url}/api/v1/trust/director/root",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_bad_roots_are_refused_and_nothing_changes(site: Site) -> None:
    current = parse(site.root("director")).signed
    root_keys = list(store.load_keys(site.root_keys_dir, "director").values())
    stranger, _ = generate_key()
    offline_only, _ = generate_key()

    def signed(
        offset: int, signers: list[object], lifetime_s: float = 365 * 86400.0, **changes: object
    ) -> bytes:
        md = next_root(current, now_s=time.time(), lifetime_s=lifetime_s, **changes)  # type: ignore[arg-type]
        md.signed.version = current.version + offset
        return sign_root(md, signers)  # type: ignore[arg-type]

    refused = [
        (signed(1, [stranger]), 400, "previous root's keys"),  # not signed by the root keys
        (  # new root keys, signed by the old ones only
            signed(1, root_keys, keys={"root": [stranger.public_key]}),
            400,
            "of its own root keys",
        ),
        (signed(2, root_keys), 400, "must be version 2"),  # skips a version
        (signed(1, root_keys, lifetime_s=86400.0), 400, "valid for at least 7"),  # expires soon
        (  # names an online key the server does not hold: it could no longer sign
            signed(1, root_keys, keys={"timestamp": [offline_only.public_key]}),
            409,
            "could not sign",
        ),
        (b'{"signed": "not a root"}', 400, "not TUF metadata"),
    ]
    for body, status, words in refused:
        answer = _post_root(site, body)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"], answer.json()
    good = signed(1, [*root_keys, stranger], keys={"root": [stranger.public_key]})
    viewer = site.api.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}).json()
    assert _post_root(site, good, viewer["token"]).status_code == 403
    assert _root_version(site, "director") == 1  # nothing was stored
    assert site.device("car-1").check()[0]  # and devices verify as before
    answer = _post_root(site, good)  # the control: old and new keys signed, valid a year
    assert answer.status_code == 201, answer.text
    assert _root_version(site, "director") == 2
    assert site.device("car-1").check()[0]


def test_rotation_refuses_a_server_root_that_does_not_chain(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    # A compromised server slips in a root v2 naming the attacker's keys. The offline ceremony
    # verifies the chain from the root it kept, refuses, and makes no keys.
    current = parse(site.root("director")).signed
    attacker, _ = generate_key()
    md = next_root(
        current,
        now_s=time.time(),
        lifetime_s=365 * 86400.0,
        keys={role: [attacker.public_key] for role in ("root", "targets", "timestamp")},
    )
    forged = sign_root(md, [attacker])
    with site.db.begin() as conn:
        store.publish(conn, time.time(), "director", [Published("root", 2, time.time(), forged)])
    before = sorted(site.root_keys_dir.rglob("*"))
    code, _, err = _cli(
        site, "trust", "rotate-root", "--root-keys", str(site.root_keys_dir), capsys=capsys
    )
    assert code == 2
    assert "does not follow from your trusted root" in err
    assert sorted(site.root_keys_dir.rglob("*")) == before  # nothing made, nothing signed


def test_trust_root_cli_writes_the_anchor_devices_are_built_with(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "director-root.json"
    code, _, err = _cli(
        site, "trust", "root", "--repo", "director", "--out", str(out_file), capsys=capsys
    )
    assert code == 0, err
    assert out_file.read_bytes() == site.root("director")
    code, out, _ = _cli(site, "trust", "status", "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["repositories"]["image"]["root_version"] == 1
    code, _, err = _cli(site, "trust", "root", "--repo", "nope", capsys=capsys)
    assert code == 2 and "image or director" in err
    code, _, err = _cli(
        site, "trust", "rotate-root", "--root-keys", str(tmp_path / "empty"), capsys=capsys
    )
    assert code == 2 and "no trusted director root" in err
    code, _, err = _cli(
        site,
        "trust",
        "rotate-root",
        "--root-keys",
        str(tmp_path / "empty"),
        "--trusted-root",
        str(out_file),
        capsys=capsys,
    )
    assert code == 2 and "holds 0 of the director root keys" in err
    assert _root_version(site, "director") == 1
