"""Artifacts (files streamed to disk with their hashes) and releases (a version, notes, one
artifact set per hardware generation, and compatibility rules)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from skyfleet.errors import ArtifactError, NotFoundError, ReleaseError, TooLargeError
from skyfleet.rollout import ReleaseRules, is_valid_hardware, is_valid_version, version_key
from skyfleet.store import _audit
from skyfleet.store._schema import artifacts, release_artifacts, releases

__all__ = [
    "BlobWriter",
    "artifact_path",
    "check_filename",
    "create_release",
    "get_artifact",
    "get_release",
    "iter_file",
    "list_artifacts",
    "list_releases",
    "release_artifacts_for",
    "release_rules",
    "save_artifact",
    "write_blob",
]

_CHUNK = 1 << 20
_BAD_NAME = set('/\\\x00:*?"<>|%')  # "%": an escape in a name would be decoded in its URL


def check_filename(filename: str) -> str:
    """``filename`` if it is a plain file name (no folders, no ``..``), else :class:`ArtifactError`."""
    if (
        not filename
        or len(filename) > 255
        or filename in {".", ".."}
        or any(c in _BAD_NAME or ord(c) < 32 for c in filename)
    ):
        raise ArtifactError(f"artifact file name {filename!r} must be a plain name like update.swu")
    return filename


class BlobWriter:
    """A file being written under the artifacts folder, hashed as it streams in.

    :meth:`finish` stores it under its SHA-256 when complete and as declared; any failure (or
    :meth:`discard`) leaves nothing behind. ``max_bytes`` bounds what one upload may write.
    """

    def __init__(self, folder: Path, *, max_bytes: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".upload-", dir=folder)
        self.folder = folder
        self.max_bytes = max_bytes
        self.file = os.fdopen(handle, "wb")
        self.path = Path(name)
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._md5 = hashlib.md5(usedforsecurity=False)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; :class:`TooLargeError` (and nothing kept) past ``max_bytes``."""
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.discard()
            raise TooLargeError(
                f"the upload is larger than the limit of {self.max_bytes} bytes; nothing was stored"
            )
        self.file.write(chunk)
        for digest in (self._sha256, self._sha1, self._md5):
            digest.update(chunk)

    def finish(self, expected_sha256: str | None = None) -> tuple[str, str, str, int]:
        """Store the file; returns ``(sha256, sha1, md5, size)``."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            sha256 = self._sha256.hexdigest()
            if expected_sha256 is not None and expected_sha256.lower() != sha256:
                raise ArtifactError(
                    f"the upload's sha256 is {sha256}, not the declared "
                    f"{expected_sha256.lower()}; nothing was stored"
                )
            if self.size == 0:
                raise ArtifactError("the upload is empty; nothing was stored")
            os.replace(self.path, self.folder / sha256)
        except BaseException:
            self.discard()
            raise
        return sha256, self._sha1.hexdigest(), self._md5.hexdigest(), self.size

    def discard(self) -> None:
        """Drop the partial file."""
        self.file.close()
        self.path.unlink(missing_ok=True)


def write_blob(
    folder: Path,
    chunks: Iterable[bytes],
    *,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
) -> tuple[str, str, str, int]:
    """Stream ``chunks`` into ``folder`` with a :class:`BlobWriter`; returns its :meth:`finish`."""
    blob = BlobWriter(folder, max_bytes=max_bytes)
    try:
        for chunk in chunks:
            blob.write(chunk)
    except BaseException:
        blob.discard()
        raise
    return blob.finish(expected_sha256)


def save_artifact(
    conn: Connection,
    now_s: float,
    *,
    filename: str,
    sha256: str,
    sha1: str,
    md5: str,
    size: int,
    actor: str,
) -> dict[str, Any]:
    """Record an artifact whose bytes :func:`write_blob` stored."""
    check_filename(filename)
    row = {
        "filename": filename,
        "size": size,
        "sha256": sha256,
        "sha1": sha1,
        "md5": md5,
        "created_at": now_s,
    }
    artifact_id = conn.execute(insert(artifacts).values(**row)).inserted_primary_key[0]  # type: ignore[index]
    _audit.record(
        conn,
        now_s,
        actor=actor,
        event="artifact.upload",
        detail=f"{artifact_id} {filename} {sha256}",
    )
    return {"id": int(artifact_id), **row}


def artifact_path(folder: Path, sha256: str) -> Path:
    """Where an artifact's bytes live."""
    return folder / sha256


def iter_file(path: Path) -> Iterator[bytes]:
    """A file's bytes in 1 MiB chunks."""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def get_artifact(conn: Connection, artifact_id: int) -> dict[str, Any]:
    """One artifact's row, or :class:`NotFoundError`."""
    row = conn.execute(select(artifacts).where(artifacts.c.id == artifact_id)).first()
    if row is None:
        raise NotFoundError(f"no artifact {artifact_id}; upload it first")
    return dict(row._mapping)


def list_artifacts(conn: Connection) -> list[dict[str, Any]]:
    """Every artifact, oldest first."""
    return [dict(r._mapping) for r in conn.execute(select(artifacts).order_by(artifacts.c.id))]


def create_release(
    conn: Connection,
    now_s: float,
    *,
    version: str,
    notes: str,
    artifact_sets: Mapping[str, Sequence[int]],
    generations: Sequence[str] | None = None,
    min_installed_version: str | None = None,
    actor: str,
) -> dict[str, Any]:
    """Create a release; ``artifact_sets`` maps a hardware generation to artifact ids.

    The generations a release may go to default to those it has artifacts for; every listed
    generation needs artifacts. Nothing is written when any check fails.
    """
    if not is_valid_version(version):
        raise ReleaseError(
            f"release version {version!r} is not usable: use letters, digits and ._+~-"
        )
    if not artifact_sets or not any(artifact_sets.values()):
        raise ReleaseError(f"release {version} needs at least one artifact, e.g. hw3=update.swu")
    for hw in [*artifact_sets, *(generations or ())]:
        if not is_valid_hardware(hw):
            raise ReleaseError(
                f"hardware generation {hw!r} must be 1-32 letters, digits and ._+~- (e.g. hw3)"
            )
    gens = sorted(set(generations) if generations else set(artifact_sets))
    missing = [g for g in gens if not artifact_sets.get(g)]
    if missing:
        raise ReleaseError(
            f"release {version} lists generation {missing[0]} but has no artifact for it"
        )
    if min_installed_version is not None:
        version_key(min_installed_version)  # raises ReleaseError when unusable
    for ids in artifact_sets.values():
        for artifact_id in ids:
            get_artifact(conn, artifact_id)
    if conn.execute(select(releases.c.id).where(releases.c.version == version)).first():
        raise ReleaseError(f"release {version} already exists; versions cannot be reused")
    try:
        release_id = conn.execute(
            insert(releases).values(
                version=version,
                notes=notes,
                generations=gens,
                min_installed_version=min_installed_version,
                created_at=now_s,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    except IntegrityError:
        raise ReleaseError(f"release {version} already exists; versions cannot be reused") from None
    conn.execute(
        insert(release_artifacts),
        [
            {"release_id": release_id, "hw": hw, "artifact_id": artifact_id}
            for hw, ids in sorted(artifact_sets.items())
            for artifact_id in dict.fromkeys(ids)
        ],
    )
    _audit.record(conn, now_s, actor=actor, event="release.create", detail=version)
    return get_release(conn, version)


def get_release(conn: Connection, version: str | int) -> dict[str, Any]:
    """A release by version (or id) with its artifact sets, or :class:`NotFoundError`."""
    column = releases.c.id if isinstance(version, int) else releases.c.version
    row = conn.execute(select(releases).where(column == version)).first()
    if row is None:
        raise NotFoundError(f"no release {version!r}; list them with 'skyfleet release list'")
    release = dict(row._mapping)
    release["artifacts"] = release_artifacts_for(conn, release["id"])
    return release


def release_artifacts_for(
    conn: Connection, release_id: int, hw: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """A release's artifacts by hardware generation (only ``hw``'s when given)."""
    query = (
        select(release_artifacts.c.hw, artifacts)
        .join(artifacts, artifacts.c.id == release_artifacts.c.artifact_id)
        .where(release_artifacts.c.release_id == release_id)
        .order_by(release_artifacts.c.hw, artifacts.c.id)
    )
    if hw is not None:
        query = query.where(release_artifacts.c.hw == hw)
    sets: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        item = dict(row._mapping)
        sets.setdefault(item.pop("hw"), []).append(item)
    return sets


def list_releases(conn: Connection) -> list[dict[str, Any]]:
    """Every release, oldest first, without artifact details."""
    return [dict(r._mapping) for r in conn.execute(select(releases).order_by(releases.c.id))]


def release_rules(release: Mapping[str, Any]) -> ReleaseRules:
    """The compatibility rules of a release row."""
    return ReleaseRules(frozenset(release["generations"]), release["min_installed_version"])
