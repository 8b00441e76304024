"""The online roles of a TUF repository: which to sign again, and signing them.

A repository's *head* is its newest targets, snapshot and timestamp. :func:`refresh` compares it
with the targets the repository should list now, with the clock and with the keys in use, and
returns the metadata to publish: new targets when the list changed, it is close to expiring or
its keys were rotated; a new snapshot when the targets changed or likewise; a new timestamp
whenever anything below it changed or likewise. Snapshot and timestamp name the exact version, length and SHA-256 of
what they vouch for, so a client refuses mixed-and-matched files and reads no more bytes than
the length says (the endless-data attack).

Image repository target paths are ``RELEASE/HW/FILENAME``; the director lists the same paths,
with the device it is for in each target's ``custom`` (Uptane's ECU identifier).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp

from skyfleet.errors import MetadataError
from skyfleet.rollout._signing import expiry_datetime, parse, serialize

__all__ = [
    "Lifetimes",
    "Published",
    "RepoHead",
    "refresh",
    "target_file",
    "target_path",
]

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")
_FILENAME = re.compile(r"[^/\\\x00-\x1f\x7f]{1,255}")


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long signed metadata is valid, in seconds, and when it is signed again.

    Defaults follow Uptane's guidance: a root lasts about a year (signed offline); targets,
    snapshot and timestamp about a day (signed online). Metadata is signed again once less than
    ``renew_fraction`` of its lifetime remains, so a device always finds fresh metadata.
    """

    root_s: float = 365 * 86400.0
    targets_s: float = 86400.0
    snapshot_s: float = 86400.0
    timestamp_s: float = 86400.0
    renew_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("root_s", "targets_s", "snapshot_s", "timestamp_s"):
            if not 60.0 <= getattr(self, name) <= 10 * 365 * 86400.0:
                raise MetadataError(f"{name} must be between 60 s and 10 years")
        if not 0.0 < self.renew_fraction < 1.0:
            raise MetadataError("renew_fraction must be between 0 and 1")

    def of(self, role: str) -> float:
        """The lifetime of ``role`` in seconds."""
        seconds: float = getattr(self, f"{role}_s")
        return seconds


@dataclass(frozen=True, slots=True)
class RepoHead:
    """The newest stored bytes of each online role (None: never signed)."""

    targets: bytes | None = None
    snapshot: bytes | None = None
    timestamp: bytes | None = None


@dataclass(frozen=True, slots=True)
class Published:
    """One newly signed metadata file: ``role``, ``version``, expiry (UNIX s) and the bytes."""

    role: str
    version: int
    expires_s: float
    body: bytes


def target_path(release: str, hw: str, filename: str) -> str:
    """The target path of one artifact of a release for one hardware generation.

    >>> target_path("2025.44.25.5", "hw4", "update.swu")
    '2025.44.25.5/hw4/update.swu'
    """
    if not _SEGMENT.fullmatch(release) or not _SEGMENT.fullmatch(hw):
        raise MetadataError(
            f"release {release!r} or hardware {hw!r} cannot be part of a target path: use "
            "letters, digits and ._+~- (e.g. 2025.44.25.5, hw3)"
        )
    if not _FILENAME.fullmatch(filename) or filename in {".", ".."}:
        raise MetadataError(
            f"artifact name {filename!r} cannot be part of a target path: use a plain file "
            "name such as update.swu"
        )
    return f"{release}/{hw}/{filename}"


def target_file(
    path: str, length: int, sha256: str, custom: Mapping[str, Any] | None = None
) -> TargetFile:
    """A target: its path, length in bytes, SHA-256 (hex) and ``custom`` data."""
    extra = {"custom": dict(custom)} if custom else {}
    return TargetFile(length, {"sha256": sha256}, path, extra)


def _meta_file(version: int, body: bytes) -> MetaFile:
    return MetaFile(version, len(body), {"sha256": hashlib.sha256(body).hexdigest()})


def _due(
    md: Metadata[Any],
    now_s: float,
    lifetime_s: float,
    renew_fraction: float,
    signers: Sequence[Signer],
) -> bool:
    """Whether ``md`` must be signed again: close to expiring, or signed by other keys than
    ``signers`` (the keys were rotated)."""
    remaining_s: float = md.signed.expires.timestamp() - now_s
    keyids = {s.public_key.keyid for s in signers}
    return remaining_s < renew_fraction * lifetime_s or set(md.signatures) != keyids


def _sign(md: Metadata[Any], signers: Sequence[Signer]) -> bytes:
    if not signers:
        raise MetadataError(f"no key to sign {md.signed.type} with")
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return serialize(md)


def refresh(
    head: RepoHead,
    targets: Mapping[str, TargetFile],
    signers: Mapping[str, Sequence[Signer]],
    *,
    now_s: float,
    lifetimes: Lifetimes,
) -> list[Published]:
    """What to publish so that the repository lists exactly ``targets``, nothing is close
    to expiring at ``now_s`` and everything is signed by ``signers`` (after a key rotation, the
    retired keys' signatures are replaced): new targets, snapshot and timestamp as needed (in
    that order), or nothing. ``signers`` holds, per online role, the keys to sign with (enough for its
    threshold). Versions go up by one from the head's."""
    published: list[Published] = []
    renew = lifetimes.renew_fraction
    current_targets = parse(head.targets) if head.targets is not None else None
    current_snapshot = parse(head.snapshot) if head.snapshot is not None else None
    current_timestamp = parse(head.timestamp) if head.timestamp is not None else None

    targets_body = head.targets
    targets_version = current_targets.signed.version if current_targets else 0
    if (
        current_targets is None
        or not isinstance(current_targets.signed, Targets)
        or current_targets.signed.targets != dict(targets)
        or _due(current_targets, now_s, lifetimes.targets_s, renew, signers.get("targets", ()))
    ):
        targets_version += 1
        expires = float(int(now_s + lifetimes.targets_s))
        md = Metadata(Targets(targets_version, None, expiry_datetime(expires), dict(targets), None))
        targets_body = _sign(md, signers.get("targets", ()))
        published.append(Published("targets", targets_version, expires, targets_body))
    assert targets_body is not None

    snapshot_body = head.snapshot
    snapshot_version = current_snapshot.signed.version if current_snapshot else 0
    if (
        published
        or current_snapshot is None
        or _due(current_snapshot, now_s, lifetimes.snapshot_s, renew, signers.get("snapshot", ()))
    ):
        snapshot_version += 1
        expires = float(int(now_s + lifetimes.snapshot_s))
        meta = {"targets.json": _meta_file(targets_version, targets_body)}
        md_snapshot = Metadata(Snapshot(snapshot_version, None, expiry_datetime(expires), meta))
        snapshot_body = _sign(md_snapshot, signers.get("snapshot", ()))
        published.append(Published("snapshot", snapshot_version, expires, snapshot_body))
    assert snapshot_body is not None

    if (
        published
        or current_timestamp is None
        or _due(
            current_timestamp, now_s, lifetimes.timestamp_s, renew, signers.get("timestamp", ())
        )
    ):
        version = (current_timestamp.signed.version if current_timestamp else 0) + 1
        expires = float(int(now_s + lifetimes.timestamp_s))
        snapshot_meta = _meta_file(snapshot_version, snapshot_body)
        md_timestamp = Metadata(Timestamp(version, None, expiry_datetime(expires), snapshot_meta))
        body = _sign(md_timestamp, signers.get("timestamp", ()))
        published.append(Published("timestamp", version, expires, body))
    return published
