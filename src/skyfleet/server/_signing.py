"""The server's signer: online keys in hand, metadata signed when it is due.

The image repository is signed again when a release is created and, while the server runs,
before anything in it comes close to expiring. Each device's director metadata is signed when
the device asks for its timestamp and its assignment changed or its metadata is half-way to
expiring, so a fleet of a million devices costs signatures only for the devices that look.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from tuf.api.metadata import Root, TargetFile

from skyfleet import store
from skyfleet.errors import KeyStoreError, NotFoundError
from skyfleet.rollout import ROLES, Lifetimes, parse, refresh, role_signers

__all__ = ["Signing", "check_keys"]


class Signing:
    """Signs the image repository and the director's per-device metadata with the online keys
    in ``keys_dir``, matched to roles through each repository's current root."""

    def __init__(self, db: store.Store, keys_dir: Path, lifetimes: Lifetimes) -> None:
        self.db = db
        self.keys_dir = keys_dir
        self.lifetimes = lifetimes
        self._loaded: dict[str, tuple[int, dict[str, list[Signer]]]] = {}

    def current_root(self, conn: Connection, repo: str) -> Root:
        """The newest root of ``repo`` (``image`` or ``director``)."""
        body = store.root(conn, repo)
        if body is None:
            raise KeyStoreError(f"the {repo} repository has no root; run 'skyfleet trust init'")
        signed = parse(body).signed
        assert isinstance(signed, Root)
        return signed

    def signers(self, conn: Connection, repo: str) -> dict[str, list[Signer]]:
        """The online signers of ``repo``; the root is read and the keys loaded again only when
        a new root version was published (one small query otherwise)."""
        version = store.root_version(conn, repo)
        cached = self._loaded.get(repo)
        if cached is None or cached[0] != version:
            current = self.current_root(conn, repo)
            cached = (current.version, self.signers_for(current, repo))
            self._loaded[repo] = cached
        return cached[1]

    def signers_for(self, root: Root, repo: str) -> dict[str, list[Signer]]:
        """The signers the key folder holds for the online roles of ``root``."""
        try:
            return role_signers(root, store.load_keys(self.keys_dir, repo))
        except KeyStoreError as exc:
            raise KeyStoreError(f"{repo} repository, key folder {self.keys_dir}: {exc}") from None

    def _refresh(
        self, repo: str, targets: Callable[[Connection], Mapping[str, TargetFile]], now_s: float
    ) -> bytes | None:
        """Publish what ``repo`` needs: decided in a read, signed and stored in a write only when
        something is due (most reads find nothing to do). Returns the newest timestamp."""
        with self.db.read() as conn:
            head = store.repo_head(conn, repo)
            due = refresh(
                head,
                targets(conn),
                self.signers(conn, self._root_repo(repo)),
                now_s=now_s,
                lifetimes=self.lifetimes,
            )
        if not due:
            return head.timestamp
        try:
            with self.db.begin() as conn:
                store.refresh_repo(
                    conn,
                    now_s,
                    repo,
                    targets,
                    self.signers(conn, self._root_repo(repo)),
                    self.lifetimes,
                )
                # what this or another thread published meanwhile: the newest, not the head read
                return store.metadata(conn, repo, "timestamp")
        except IntegrityError:  # publishers take turns (store.lock_repo); kept as a safety net
            return None

    @staticmethod
    def _root_repo(repo: str) -> str:
        return "director" if repo.startswith("director/") else repo

    def refresh_image(self, now_s: float) -> bytes | None:
        """Sign the image repository again if its releases changed or it is close to expiring;
        returns its newest timestamp."""
        return self._refresh("image", store.image_targets, now_s)

    def refresh_image_in(self, conn: Connection, now_s: float) -> None:
        """The same, inside the caller's transaction (a release and its signature commit
        together)."""
        store.refresh_repo(
            conn, now_s, "image", store.image_targets, self.signers(conn, "image"), self.lifetimes
        )

    def refresh_director(self, device_id: str, now_s: float) -> bytes | None:
        """Sign a device's director metadata again if its assignment changed or it is due;
        returns its newest timestamp."""
        return self._refresh(
            store.director_repo(device_id),
            lambda conn: store.director_targets(conn, device_id),
            now_s,
        )

    def metadata(
        self, repo: str, device_id: str, role: str, version: int | None, now_s: float
    ) -> bytes:
        """The bytes a TUF client asked for: ``role`` of ``repo`` (``image`` or ``director``) as
        ``device_id`` sees it; the timestamp (``version`` None) is brought up to date first."""
        if role not in ROLES:
            raise NotFoundError(f"no TUF role {role!r}: roles are {', '.join(ROLES)}")
        where = repo
        if repo == "director" and role != "root":
            where = store.director_repo(device_id)
        body = None
        if role == "timestamp":  # the entry point: brought up to date, and answered from there
            if where == "image":
                body = self.refresh_image(now_s)
            else:
                body = self.refresh_director(device_id, now_s)
        if body is None:
            with self.db.read() as conn:
                body = store.metadata(conn, where, role, version)
        if body is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFoundError(f"no {which}{role} metadata in the {repo} repository")
        return body

    def status(self, conn: Connection, now_s: float) -> dict[str, Any]:
        """Each repository's root (version, expiry, roles with key ids and thresholds, whether
        the server holds the online keys) and the image repository's newest versions."""
        answer: dict[str, Any] = {"keys_dir": str(self.keys_dir), "repositories": {}}
        for repo in store.REPOS:
            current = self.current_root(conn, repo)
            held = store.load_keys(self.keys_dir, repo)
            roles = {
                role: {
                    "threshold": current.roles[role].threshold,
                    "keyids": list(current.roles[role].keyids),
                    "keys_held": sum(k in held for k in current.roles[role].keyids),
                }
                for role in ROLES
            }
            info: dict[str, Any] = {
                "root_version": current.version,
                "root_expires": current.expires.timestamp(),
                "root_expires_in_days": round((current.expires.timestamp() - now_s) / 86400, 1),
                "roles": roles,
            }
            if repo == "image":
                head = store.repo_head(conn, "image")
                for role in ("targets", "snapshot", "timestamp"):
                    body = getattr(head, role)
                    if body is not None:
                        signed = parse(body).signed
                        info[role] = {
                            "version": signed.version,
                            "expires": signed.expires.timestamp(),
                        }
            answer["repositories"][repo] = info
        return answer


def check_keys(db: store.Store, keys_dir: Path) -> None:
    """:class:`KeyStoreError` unless ``keys_dir`` holds the online keys both repositories' roots
    name (enough for each threshold)."""
    signing = Signing(db, keys_dir, Lifetimes())
    with db.read() as conn:
        for repo in store.REPOS:
            signing.signers(conn, repo)
