"""TUF metadata, pure: roots that chain, and the online roles signed again exactly when due."""

from __future__ import annotations

import json

import pytest
from tuf.api.metadata import Metadata, Root

from skyfleet.errors import KeyStoreError, MetadataError, UntrustedUpdateError
from skyfleet.rollout import (
    ONLINE_ROLES,
    ROLES,
    Lifetimes,
    RepoHead,
    accept_root,
    generate_key,
    load_signer,
    new_root,
    next_root,
    parse,
    refresh,
    role_signers,
    sign_root,
    target_file,
    target_path,
    verify_assignment,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0


def _keys(n: int = 1) -> dict[str, list]:  # type: ignore[type-arg]
    return {role: [generate_key()[0] for _ in range(n)] for role in ROLES}


def _root(signers: dict[str, list], thresholds: dict[str, int] | None = None) -> bytes:  # type: ignore[type-arg]
    keys = {role: [s.public_key for s in found] for role, found in signers.items()}
    md = new_root(keys, thresholds or {}, now_s=T0, lifetime_s=365 * DAY)
    return sign_root(md, signers["root"])


def _head(published: list) -> RepoHead:  # type: ignore[type-arg]
    latest = {p.role: p.body for p in published}
    return RepoHead(latest.get("targets"), latest.get("snapshot"), latest.get("timestamp"))


TARGETS = {
    "r1/hw3/u.swu": target_file("r1/hw3/u.swu", 10, "ab" * 32, {"release": "r1"}),
}


def test_default_lifetimes_follow_uptane_guidance() -> None:
    lifetimes = Lifetimes()
    assert 360 * DAY <= lifetimes.root_s <= 366 * DAY  # about a year
    for role in ONLINE_ROLES:
        assert 0.5 * DAY <= lifetimes.of(role) <= 2 * DAY  # about a day
    root = parse(_root(_keys())).signed
    assert root.expires.timestamp() == pytest.approx(T0 + 365 * DAY, abs=1.0)
    assert root.consistent_snapshot is True


def test_first_publication_signs_targets_snapshot_timestamp_in_order() -> None:
    keys = _keys()
    signers = {role: keys[role] for role in ONLINE_ROLES}
    published = refresh(RepoHead(), TARGETS, signers, now_s=T0, lifetimes=Lifetimes())
    assert [(p.role, p.version) for p in published] == [
        ("targets", 1),
        ("snapshot", 1),
        ("timestamp", 1),
    ]
    root = parse(_root(keys)).signed
    for p in published:  # each verifies under the root, with the expiry it claims
        md = parse(p.body)
        root.verify_delegate(p.role, md.signed_bytes, md.signatures)
        assert md.signed.expires.timestamp() == p.expires_s == T0 + DAY
    snapshot = parse(published[1].body).signed
    assert snapshot.meta["targets.json"].length == len(published[0].body)
    assert snapshot.meta["targets.json"].hashes["sha256"]


def test_nothing_is_signed_again_until_half_way_to_expiry() -> None:
    keys = _keys()
    signers = {role: keys[role] for role in ONLINE_ROLES}
    first = refresh(RepoHead(), TARGETS, signers, now_s=T0, lifetimes=Lifetimes())
    head = _head(first)
    assert refresh(head, TARGETS, signers, now_s=T0 + 0.49 * DAY, lifetimes=Lifetimes()) == []
    later = refresh(head, TARGETS, signers, now_s=T0 + 0.51 * DAY, lifetimes=Lifetimes())
    assert [(p.role, p.version) for p in later] == [
        ("targets", 2),
        ("snapshot", 2),
        ("timestamp", 2),
    ]


def test_only_the_timestamp_is_renewed_when_only_it_is_short_lived() -> None:
    keys = _keys()
    signers = {role: keys[role] for role in ONLINE_ROLES}
    lifetimes = Lifetimes(timestamp_s=3600.0)
    head = _head(refresh(RepoHead(), TARGETS, signers, now_s=T0, lifetimes=lifetimes))
    again = refresh(head, TARGETS, signers, now_s=T0 + 1900.0, lifetimes=lifetimes)
    assert [(p.role, p.version) for p in again] == [("timestamp", 2)]


def test_changed_targets_bump_every_role() -> None:
    keys = _keys()
    signers = {role: keys[role] for role in ONLINE_ROLES}
    head = _head(refresh(RepoHead(), TARGETS, signers, now_s=T0, lifetimes=Lifetimes()))
    more = {**TARGETS, "r2/hw3/u.swu": target_file("r2/hw3/u.swu", 5, "cd" * 32)}
    changed = refresh(head, more, signers, now_s=T0 + 60, lifetimes=Lifetimes())
    assert [p.role for p in changed] == ["targets", "snapshot", "timestamp"]
    assert set(parse(changed[0].body).signed.targets) == set(more)


def test_rotated_keys_replace_the_signatures() -> None:
    keys = _keys()
    signers = {role: keys[role] for role in ONLINE_ROLES}
    head = _head(refresh(RepoHead(), TARGETS, signers, now_s=T0, lifetimes=Lifetimes()))
    rotated = {**signers, "timestamp": [generate_key()[0]]}
    again = refresh(head, TARGETS, rotated, now_s=T0 + 60, lifetimes=Lifetimes())
    assert [p.role for p in again] == ["timestamp"]
    assert set(parse(again[0].body).signatures) == {rotated["timestamp"][0].public_key.keyid}


def test_root_chain_needs_old_and_new_thresholds() -> None:
    keys = _keys()
    first = _root(keys)
    current = parse(first).signed
    newcomer = generate_key()[0]
    md = next_root(current, now_s=T0, lifetime_s=365 * DAY, keys={"root": [newcomer.public_key]})
    only_new = sign_root(Metadata.from_bytes(md.to_bytes()), [newcomer])
    with pytest.raises(MetadataError, match="previous root's keys"):
        accept_root(first, only_new)
    only_old = sign_root(Metadata.from_bytes(md.to_bytes()), keys["root"])
    with pytest.raises(MetadataError, match="its own root keys"):
        accept_root(first, only_old)
    both = sign_root(md, [*keys["root"], newcomer])
    accepted = accept_root(first, both)
    assert isinstance(accepted.signed, Root) and accepted.signed.version == 2
    with pytest.raises(MetadataError, match="must be version 3"):
        accept_root(both, both)


def test_thresholds_need_enough_keys() -> None:
    keys = _keys(2)
    body = _root(keys, {"targets": 2, "root": 2})
    root = parse(body).signed
    assert root.roles["targets"].threshold == 2
    held = {s.public_key.keyid: s for role in ONLINE_ROLES for s in keys[role][:1]}
    with pytest.raises(KeyStoreError, match="targets role needs 2"):
        role_signers(root, held)
    with pytest.raises(MetadataError, match="fewer than its threshold"):
        new_root({"root": [keys["root"][0].public_key]}, {"root": 2}, now_s=T0, lifetime_s=DAY)


def test_keys_round_trip_as_pem_and_foreign_keys_are_refused() -> None:
    signer, pem = generate_key()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_signer(pem).public_key == signer.public_key
    with pytest.raises(KeyStoreError, match="PEM"):
        load_signer(b"not a key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyStoreError, match="ed25519"):
        load_signer(other)


def test_target_paths_refuse_traversal() -> None:
    assert target_path("2025.1", "hw3", "u.swu") == "2025.1/hw3/u.swu"
    for release, hw, name in [
        ("..", "hw3", "u"),
        ("2025.1", "../x", "u"),
        ("2025.1", "hw3", ".."),
        ("2025.1", "hw3", "a/b"),
    ]:
        with pytest.raises(MetadataError):
            target_path(release, hw, name)


def test_uptane_check_names_what_is_wrong() -> None:
    genuine = target_file("r/hw3/u", 4, "aa" * 32, {"hardware_identifier": "hw3"})
    mine = target_file("r/hw3/u", 4, "aa" * 32, {"ecu_identifier": "car-1"})
    image = {genuine.path: genuine}.get
    assert verify_assignment("car-1", "hw3", {mine.path: mine}, image) == [mine]
    with pytest.raises(UntrustedUpdateError, match="addressed to 'car-1', not 'car-2'"):
        verify_assignment("car-2", "hw3", {mine.path: mine}, image)
    with pytest.raises(UntrustedUpdateError, match="built for 'hw3', to a hw4 device"):
        verify_assignment("car-1", "hw4", {mine.path: mine}, image)  # a genuine image, wrong hw
    longer = target_file("r/hw3/u", 5, "aa" * 32, {"ecu_identifier": "car-1"})
    with pytest.raises(UntrustedUpdateError, match="differs"):
        verify_assignment("car-1", "hw3", {longer.path: longer}, image)
    other = target_file("r/hw3/v", 4, "aa" * 32, {"ecu_identifier": "car-1"})
    with pytest.raises(UntrustedUpdateError, match="does not sign"):
        verify_assignment("car-1", "hw3", {other.path: other}, image)
    json.dumps(mine.to_dict())  # serialisable as TUF writes it
