"""Signed TUF metadata in the database: the image repository, the director's root, and each
device's director targets, snapshot and timestamp.

Rows are ``(repo, role, version)``: ``repo`` is ``image``, ``director`` (the director's root) or
``director/DEVICE-ID``. Every root version is kept (a client walks them one by one); of the
online roles the newest two and any signed in the last hour are kept, so a client that read a
timestamp just before new ones were signed still finds the snapshot and targets it names
(consistent snapshots). Publishers of one repository take turns (:func:`lock_repo`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from securesystemslib.signer import Signer
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from tuf.api.metadata import TargetFile

from skyfleet.errors import MetadataError
from skyfleet.rollout import (
    ActionState,
    Lifetimes,
    Published,
    RepoHead,
    accept_root,
    refresh,
    target_file,
    target_path,
)
from skyfleet.store import _audit
from skyfleet.store._device_api import offered_action
from skyfleet.store._schema import (
    actions,
    artifacts,
    devices,
    release_artifacts,
    releases,
    rollouts,
    tuf_metadata,
)

__all__ = [
    "REPOS",
    "director_repo",
    "director_targets",
    "image_targets",
    "lock_repo",
    "metadata",
    "publish",
    "refresh_repo",
    "repo_head",
    "root",
    "root_version",
    "save_root",
]

log = logging.getLogger("skyfleet.store")

#: The two repositories of Uptane's design.
REPOS = ("image", "director")
#: Of each online role the newest two versions are kept, and older ones for ``_KEEP_S``
#: seconds: a client that read a timestamp still finds the snapshot and targets it names,
#: however many versions were signed meanwhile (a client takes seconds, not an hour).
_KEEP_VERSIONS = 2
_KEEP_S = 3600.0
#: A root must stay valid at least this long when it is published (seconds): one that expires
#: sooner would soon stop every device from updating.
MIN_ROOT_VALIDITY_S = 7 * 86400.0


def director_repo(device_id: str) -> str:
    """The repository name of one device's director metadata."""
    return f"director/{device_id}"


_LATEST = (
    select(tuf_metadata.c.version, tuf_metadata.c.body)
    .where(
        tuf_metadata.c.repo == bindparam("repo"),
        tuf_metadata.c.role == bindparam("role"),
    )
    .order_by(tuf_metadata.c.version.desc())
    .limit(1)
)
_VERSION = select(tuf_metadata.c.body).where(
    tuf_metadata.c.repo == bindparam("repo"),
    tuf_metadata.c.role == bindparam("role"),
    tuf_metadata.c.version == bindparam("version"),
)


def metadata(conn: Connection, repo: str, role: str, version: int | None = None) -> bytes | None:
    """The stored bytes of ``role`` in ``repo``: ``version``, or the newest; None if absent."""
    if version is None:
        row = conn.execute(_LATEST, {"repo": repo, "role": role}).first()
    else:
        row = conn.execute(_VERSION, {"repo": repo, "role": role, "version": version}).first()
    return None if row is None else bytes(row.body)


def root(conn: Connection, repo: str, version: int | None = None) -> bytes | None:
    """A repository's root (``image`` or ``director``): ``version``, or the newest."""
    return metadata(conn, repo, "root", version)


_HEAD = (
    select(tuf_metadata.c.role, tuf_metadata.c.version, tuf_metadata.c.body)
    .where(
        tuf_metadata.c.repo == bindparam("repo"),
        tuf_metadata.c.role.in_(["targets", "snapshot", "timestamp"]),
    )
    .order_by(tuf_metadata.c.version)
)
_ROOT_VERSION = select(func.max(tuf_metadata.c.version)).where(
    tuf_metadata.c.repo == bindparam("repo"), tuf_metadata.c.role == "root"
)


def repo_head(conn: Connection, repo: str) -> RepoHead:
    """The newest targets, snapshot and timestamp of ``repo`` (one statement: at most two
    versions of each are kept)."""
    newest = {row.role: bytes(row.body) for row in conn.execute(_HEAD, {"repo": repo})}
    return RepoHead(newest.get("targets"), newest.get("snapshot"), newest.get("timestamp"))


def root_version(conn: Connection, repo: str) -> int | None:
    """The newest root version of ``repo`` (None: no root), without reading the root."""
    version: int | None = conn.execute(_ROOT_VERSION, {"repo": repo}).scalar()
    return version


_PRUNE = delete(tuf_metadata).where(
    tuf_metadata.c.repo == bindparam("repo"),
    tuf_metadata.c.role == bindparam("role"),
    tuf_metadata.c.version < bindparam("oldest"),
    tuf_metadata.c.created_at < bindparam("before"),
)


def lock_repo(conn: Connection, repo: str) -> None:
    """Make publishers of ``repo`` take turns until the transaction ends, so that each reads
    the head and what to list after the one before committed (SQLite: one writer at a time
    already; PostgreSQL: a transaction-scoped advisory lock on the repository's name)."""
    if conn.dialect.name == "postgresql":
        digest = hashlib.sha256(f"tuf:{repo}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def publish(conn: Connection, now_s: float, repo: str, published: Sequence[Published]) -> None:
    """Store newly signed metadata and drop online versions that are neither among the newest
    two nor younger than an hour.

    Two servers publishing the same version at once (without :func:`lock_repo`): the second gets
    ``IntegrityError`` from the primary key, and its transaction changes nothing.
    """
    if not published:
        return
    conn.execute(
        insert(tuf_metadata),
        [
            {
                "repo": repo,
                "role": p.role,
                "version": p.version,
                "expires": p.expires_s,
                "created_at": now_s,
                "body": p.body,
            }
            for p in published
        ],
    )
    stale = [
        {
            "repo": repo,
            "role": p.role,
            "oldest": p.version - _KEEP_VERSIONS + 1,
            "before": now_s - _KEEP_S,
        }
        for p in published
        if p.role != "root"
    ]
    if stale:
        conn.execute(_PRUNE, stale)


def save_root(conn: Connection, now_s: float, repo: str, body: bytes, *, actor: str) -> int:
    """Store a new root of ``repo`` after checking it may follow the current one (the next
    version, signed by a threshold of the old and of the new root keys) and that it is valid for
    at least :data:`MIN_ROOT_VALIDITY_S`; returns its version.
    :class:`MetadataError` says why a root is refused, and nothing is stored."""
    if repo not in REPOS:
        raise MetadataError(f"unknown repository {repo!r}: use image or director")
    lock_repo(conn, repo)
    new = accept_root(root(conn, repo), body)
    version = new.signed.version
    valid_s = new.signed.expires.timestamp() - now_s
    if valid_s < MIN_ROOT_VALIDITY_S:
        raise MetadataError(
            f"root v{version} expires in {max(valid_s, 0.0) / 86400:.1f} days; a root must be "
            f"valid for at least {MIN_ROOT_VALIDITY_S / 86400:.0f} (sign it with a later expiry)"
        )
    try:
        with conn.begin_nested():
            publish(
                conn,
                now_s,
                repo,
                [Published("root", version, new.signed.expires.timestamp(), body)],
            )
    except IntegrityError:
        raise MetadataError(f"root v{version} of {repo} was stored meanwhile; fetch it") from None
    _audit.record(conn, now_s, actor=actor, event="trust.root", detail=f"{repo} v{version}")
    return version


def refresh_repo(
    conn: Connection,
    now_s: float,
    repo: str,
    targets: Callable[[Connection], Mapping[str, TargetFile]],
    signers: Mapping[str, Sequence[Signer]],
    lifetimes: Lifetimes,
) -> list[Published]:
    """Sign and store what ``repo`` needs to list ``targets(conn)`` with nothing close to
    expiring; returns what was published (often nothing). Takes the repository's turn first
    (:func:`lock_repo`), then reads the head and the targets: a release another transaction
    committed before is never left out."""
    lock_repo(conn, repo)
    head = repo_head(conn, repo)
    published = refresh(head, targets(conn), signers, now_s=now_s, lifetimes=lifetimes)
    publish(conn, now_s, repo, published)
    return published


_IMAGE_TARGETS = (
    select(
        releases.c.version,
        release_artifacts.c.hw,
        artifacts.c.filename,
        artifacts.c.size,
        artifacts.c.sha256,
    )
    .join(release_artifacts, release_artifacts.c.release_id == releases.c.id)
    .join(artifacts, artifacts.c.id == release_artifacts.c.artifact_id)
    .order_by(releases.c.id, release_artifacts.c.hw, artifacts.c.id)
)


def _targets(rows: Any, custom: Mapping[str, Any] | None = None) -> dict[str, TargetFile]:
    found = {}
    for version, hw, filename, size, sha256 in rows:
        try:
            path = target_path(version, hw, filename)
        except MetadataError as exc:  # a release from before names were checked: DDI only
            log.warning("not signed for TUF clients: %s", exc)
            continue
        extra = {"release": version, "hardware_identifier": hw, **(custom or {})}
        found[path] = target_file(path, int(size), sha256, extra)
    return found


def image_targets(conn: Connection) -> dict[str, TargetFile]:
    """Every artifact of every release, by target path: what the image repository signs."""
    return _targets(conn.execute(_IMAGE_TARGETS))


_INSTALLED_ACTION = (
    select(actions.c.id)
    .join(rollouts, rollouts.c.id == actions.c.rollout_id)
    .join(releases, releases.c.id == rollouts.c.release_id)
    .join(devices, devices.c.id == actions.c.device_id)
    .where(
        actions.c.device_id == bindparam("device_id"),
        actions.c.state == ActionState.CONFIRMED.value,
        releases.c.version == devices.c.installed_version,
    )
    .order_by(actions.c.updated_at.desc(), actions.c.id.desc())
    .limit(1)
)
#: The artifacts, for the device's hardware, of the release of one of its actions.
_ACTION_TARGETS = (
    _IMAGE_TARGETS.join(rollouts, rollouts.c.release_id == releases.c.id)
    .join(actions, actions.c.rollout_id == rollouts.c.id)
    .join(
        devices, and_(devices.c.id == actions.c.device_id, devices.c.hw == release_artifacts.c.hw)
    )
    .where(actions.c.id == bindparam("action_id"), actions.c.device_id == bindparam("device_id"))
)


def director_targets(conn: Connection, device_id: str) -> dict[str, TargetFile]:
    """What the director assigns ``device_id`` now, by target path: the artifacts for its
    hardware of the release its rollout offers it; else, of the release it confirmed last if it
    still reports running it (what it should keep); empty otherwise (nothing offered, a cancel
    under way, a device that runs something else now, or no artifact for its hardware)."""
    offer = offered_action(conn, device_id)
    if offer is not None and not offer.cancel:
        action_id: int | None = offer.action_id
    else:
        action_id = conn.execute(_INSTALLED_ACTION, {"device_id": device_id}).scalar()
    if action_id is None:
        return {}
    rows = conn.execute(_ACTION_TARGETS, {"action_id": action_id, "device_id": device_id})
    return _targets(rows, {"ecu_identifier": device_id, "action_id": int(action_id)})
