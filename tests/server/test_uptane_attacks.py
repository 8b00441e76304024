"""Signed updates under attack: python-tuf's real client (``ngclient``) and Uptane's check
against skyfleet's endpoints. Each test first shows the honest path working, then the attack
refused with the error that names it, and nothing installed; each fails if the protection it is
named after is taken away (see the comment in each)."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.server._uptane import (
    V1,
    Site,
    endless,
    forge_director,
    replay,
    start_site,
)
from tuf.api import exceptions

from skyfleet.errors import UntrustedUpdateError
from skyfleet.rollout import parse, target_file
from skyfleet.store import Store

PAYLOAD = f"{V1}/hw3".encode() * 64  # what tests/server/_fleet.release uploads for hw3


@pytest.fixture
def site(db: Store, tmp_path: Path) -> Iterator[Site]:
    started, close = start_site(db, tmp_path)
    yield started
    close()


def _installed(site: Site, car_id: str) -> list[Path]:
    folder = site.workdir / car_id / "targets"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_honest_update_downloads_exactly_the_assignment(site: Site) -> None:
    files = site.device("car-1").update()
    assert [f.read_bytes() for f in files] == [PAYLOAD]
    assert site.device("car-2").update() == []  # not in the rollout: nothing assigned


def test_arbitrary_software_tampered_artifact_rejected(site: Site) -> None:
    # A mirror or the server's disk is compromised: the bytes change, the metadata cannot.
    # Protection: the targets' length and SHA-256, signed. Without them ngclient installs it.
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    stored = site.db.artifacts_dir / sha
    evil = bytearray(PAYLOAD)
    evil[100] ^= 0xFF
    stored.chmod(0o600)
    stored.write_bytes(bytes(evil))
    with pytest.raises(exceptions.LengthOrHashMismatchError):
        site.device("car-1").update()
    assert _installed(site, "car-1") == []
    stored.write_bytes(PAYLOAD)  # the control: the genuine bytes install
    assert [f.read_bytes() for f in site.device("car-1").update()] == [PAYLOAD]


def test_rollback_to_older_targets_rejected(site: Site) -> None:
    # The attacker replays the director metadata of before the rollout reached car-2, to hide
    # the update. Protection: versions only go up, and the client keeps what it trusted.
    attacker = site.attacker("car-2")
    device = site.device("car-2", attacker)
    assert device.update() == []
    before = {
        url.rsplit("/", 1)[1]: attacker.real(url)
        for url in attacker.urls
        if re.search(r"/tuf/director/(timestamp|\d+\.snapshot|\d+\.targets)\.json$", url)
    }
    assert len(before) == 3
    old_targets = parse(site.director_head("car-2").targets or b"").signed.version
    site.api.post("/api/v1/rollouts", json={"release": V1, "groups": [{"group": "id:car-2"}]})
    rollout_id = site.api.get("/api/v1/rollouts").json()["rollouts"][0]["id"]
    site.api.post(f"/api/v1/rollouts/{rollout_id}/start").raise_for_status()
    assert [f.read_bytes() for f in device.update()] == [PAYLOAD]  # now trusts the new version
    assert parse(site.director_head("car-2").targets or b"").signed.version > old_targets
    for name, body in before.items():
        attacker.rules[f"/tuf/director/{name}$"] = replay(body)
    with pytest.raises(exceptions.BadVersionNumberError):
        site.device("car-2", attacker).check()


def test_freeze_expired_timestamp_rejected(db: Store, tmp_path: Path) -> None:
    # The attacker keeps serving what the server signed two days ago. Protection: a timestamp
    # that lasts a day (Uptane's guidance). With a year-long timestamp this attack works.
    site, close = start_site(db, tmp_path, clock_offset_s=-2 * 86400.0)
    try:
        attacker = site.attacker("car-1")
        base = f"{site.server.url}{site.cars['car-1'].base}"
        stale = attacker.real(f"{base}/tuf/director/timestamp.json")
        site.clock.offset_s = 0.0
        attacker.rules[r"/tuf/director/timestamp\.json$"] = replay(stale)
        with pytest.raises(exceptions.ExpiredMetadataError, match="timestamp"):
            site.device("car-1", attacker).check()
        assert _installed(site, "car-1") == []
        attacker.rules.clear()  # the control: the server signs a fresh timestamp
        assert [f.read_bytes() for f in site.device("car-1", attacker).update()] == [PAYLOAD]
    finally:
        close()


def test_mix_and_match_other_devices_targets_rejected(site: Site) -> None:
    # car-2, now in a rollout too, has director targets of the same version, validly signed by
    # the director. The attacker hands car-2's to car-1. Protection: the snapshot names the
    # exact hash and length of the targets it vouches for; without them ngclient accepts.
    site.api.post("/api/v1/rollouts", json={"release": V1, "groups": [{"group": "id:car-2"}]})
    rollout_id = site.api.get("/api/v1/rollouts").json()["rollouts"][0]["id"]
    site.api.post(f"/api/v1/rollouts/{rollout_id}/start").raise_for_status()
    other = site.attacker("car-2")
    site.device("car-2", other).check()
    theirs = parse(site.director_head("car-2").targets or b"").signed
    attacker = site.attacker("car-1")
    site.device("car-1", attacker).check()  # the control: car-1's own metadata verifies
    mine = parse(site.director_head("car-1").targets or b"")
    assert theirs.version == mine.signed.version
    body = site.director_head("car-2").targets or b""
    attacker.rules[rf"/tuf/director/{mine.signed.version}\.targets\.json$"] = replay(body)
    site.forget("car-1", "director", "targets")
    with pytest.raises(exceptions.LengthOrHashMismatchError):
        site.device("car-1", attacker).check()


def test_below_threshold_signatures_rejected(db: Store, tmp_path: Path) -> None:
    # Director targets need 2 signatures. The attacker stole one targets key (and the snapshot
    # and timestamp keys) and adds a target. Protection: the threshold; at 1 the forgery passes.
    site, close = start_site(db, tmp_path, thresholds={"targets": 2})
    try:
        site.device("car-1").check()
        keys = site.stolen_keys("director")
        assert len(keys["targets"]) == 2
        current = parse(site.director_head("car-1").targets or b"").signed.targets
        listed = dict(current)
        evil = target_file(f"{V1}/hw3/evil.swu", 3, "ab" * 32, {"ecu_identifier": "car-1"})
        listed[evil.path] = evil
        one_key = {**keys, "targets": keys["targets"][:1]}
        attacker = site.attacker("car-1")
        for pattern, body in forge_director(site, "car-1", listed, one_key).items():
            attacker.rules[pattern] = replay(body)
        with pytest.raises(exceptions.UnsignedMetadataError):
            site.device("car-1", attacker).check()
        # the control: with both keys the same forgery passes TUF (and meets Uptane's check),
        # shown to a device that has not seen the first forgery's snapshot and timestamp
        shutil.rmtree(site.workdir / "car-1")
        attacker.rules.clear()
        for pattern, body in forge_director(site, "car-1", listed, keys).items():
            attacker.rules[pattern] = replay(body)
        with pytest.raises(UntrustedUpdateError, match="does not sign"):
            site.device("car-1", attacker).check()
    finally:
        close()


def test_compromised_director_cannot_install_arbitrary_software(site: Site) -> None:
    # The attacker holds every director key and assigns an image it made. Protection: Uptane's
    # check against the image repository, whose keys it does not hold.
    site.device("car-1").check()
    evil_bytes = b"rootkit" * 100
    evil = target_file(
        f"{V1}/hw3/{V1}-hw3.swu",
        len(evil_bytes),
        hashlib.sha256(evil_bytes).hexdigest(),
        {"ecu_identifier": "car-1"},
    )
    attacker = site.attacker("car-1")
    forged = forge_director(site, "car-1", {evil.path: evil}, site.stolen_keys("director"))
    for pattern, body in forged.items():
        attacker.rules[pattern] = replay(body)
    attacker.rules[r"/tuf/targets/"] = replay(evil_bytes)
    with pytest.raises(UntrustedUpdateError, match="differs from the image repository"):
        site.device("car-1", attacker).update()
    assert _installed(site, "car-1") == []


@pytest.mark.parametrize("what", ["targets metadata", "artifact"])
def test_endless_data_rejected(site: Site, what: str) -> None:
    # The attacker answers with a stream that never ends. Protection: the signed length of what
    # the snapshot or target names; without it ngclient reads up to its 5 MB default (metadata)
    # or, with no length at all, for ever.
    site.device("car-1").check()
    version = parse(site.director_head("car-1").targets or b"").signed.version
    declared = len(site.director_head("car-1").targets or b"")
    attacker = site.attacker("car-1")
    if what == "artifact":
        declared = len(PAYLOAD)
        attacker.rules[r"/tuf/targets/"] = endless
    else:
        attacker.rules[rf"/tuf/director/{version}\.targets\.json$"] = endless
        site.forget("car-1", "director", "targets")  # so that it downloads that version again
    with pytest.raises(exceptions.DownloadLengthMismatchError):
        site.device("car-1", attacker).update()
    assert attacker.sent_bytes <= declared + 65536  # stopped within one chunk of the length
    assert _installed(site, "car-1") == []
