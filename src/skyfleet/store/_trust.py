"""Signed TUF metadata in the database: the image repository, the director's root, and each
device's director targets, snapshot and timestamp.

Rows are ``(repo, role, version)``: ``repo`` is ``image``, ``director`` (the director's root) or
``director/DEVICE-ID``. Every root version is kept (a client walks them one by one); of the
online roles the newest two are kept, so a client that read a timestamp just before a new one
was signed still finds the snapshot and targets it names (consistent snapshots).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from securesystemslib.signer import Signer
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select
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
    "metadata",
    "publish",
    "refresh_repo",
    "repo_head",
    "root",
    "root_version",
    "save_root",
]

#: The two repositories of Uptane's design.
REPOS = ("image", "director")
_KEEP = 2  # versions of each online role kept


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
)


def publish(conn: Connection, now_s: float, repo: str, published: Sequence[Published]) -> None:
    """Store newly signed metadata and drop online versions older than the newest two.

    Two servers publishing the same version at once: the second gets ``IntegrityError`` from
    the primary key, and its transaction changes nothing.
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
        {"repo": repo, "role": p.role, "oldest": p.version - _KEEP + 1}
        for p in published
        if p.role != "root"
    ]
    if stale:
        conn.execute(_PRUNE, stale)


def save_root(conn: Connection, now_s: float, repo: str, body: bytes, *, actor: str) -> int:
    """Store a new root of ``repo`` after checking it may follow the current one (the next
    version, signed by a threshold of the old and of the new root keys); returns its version.
    :class:`MetadataError` says why a root is refused, and nothing is stored."""
    if repo not in REPOS:
        raise MetadataError(f"unknown repository {repo!r}: use image or director")
    new = accept_root(root(conn, repo), body)
    version = new.signed.version
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
    targets: Mapping[str, TargetFile],
    signers: Mapping[str, Sequence[Signer]],
    lifetimes: Lifetimes,
) -> list[Published]:
    """Sign and store what ``repo`` needs to list ``targets`` with nothing close to expiring;
    returns what was published (often nothing)."""
    published = refresh(repo_head(conn, repo), targets, signers, now_s=now_s, lifetimes=lifetimes)
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
        path = target_path(version, hw, filename)
        extra = {"release": version, "hardware_identifier": hw, **(custom or {})}
        found[path] = target_file(path, int(size), sha256, extra)
    return found


def image_targets(conn: Connection) -> dict[str, TargetFile]:
    """Every artifact of every release, by target path: what the image repository signs."""
    return _targets(conn.execute(_IMAGE_TARGETS))


_INSTALLED_ACTION = (
    select(actions.c.id)
    .where(
        actions.c.device_id == bindparam("device_id"),
        actions.c.state == ActionState.CONFIRMED.value,
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
    hardware of the release its rollout offers it, or else of the release it last confirmed
    (what it should be running); empty for a device with neither."""
    offer = offered_action(conn, device_id)
    if offer is not None and not offer.cancel:
        action_id: int | None = offer.action_id
    else:
        action_id = conn.execute(_INSTALLED_ACTION, {"device_id": device_id}).scalar()
    if action_id is None:
        return {}
    rows = conn.execute(_ACTION_TARGETS, {"action_id": action_id, "device_id": device_id})
    return _targets(rows, {"ecu_identifier": device_id, "action_id": int(action_id)})
