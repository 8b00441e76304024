"""Signing keys on disk, and setting up the two repositories' roots the first time.

A key folder holds one sub-folder per repository (``image/``, ``director/``) with one PEM file
per ed25519 key, named ``ROLE-KEYID.pem``; folders are mode 700 and files 600, and a key file
others can read is refused. Keys are matched to roles by key id through the current root, so
after a rotation the retired files are simply no longer used.

The server's key folder holds only the online keys (targets, snapshot, timestamp). Root keys go
to a separate folder that can be taken offline: signing a root is a CLI step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from securesystemslib.signer import Key, Signer
from sqlalchemy.exc import IntegrityError

from skyfleet.errors import KeyStoreError
from skyfleet.rollout import (
    ONLINE_ROLES,
    ROLES,
    Lifetimes,
    Published,
    generate_key,
    load_signer,
    new_root,
    parse,
    sign_root,
)
from skyfleet.store import _audit
from skyfleet.store._engine import Store
from skyfleet.store._secrets import private_dir, read_private, write_private
from skyfleet.store._trust import REPOS, publish, root

__all__ = ["TRUSTED_ROOT", "generate_keys", "init_trust", "load_keys"]

#: The file beside a repository's root keys that holds the newest root they signed.
TRUSTED_ROOT = "root.json"


def generate_keys(folder: Path, repo: str, role: str, count: int = 1) -> list[Signer]:
    """Make ``count`` new ed25519 keys for ``role`` of ``repo`` under ``folder`` (mode 600)."""
    private_dir(folder)  # the key folder itself too, not only the repository's
    made = []
    for _ in range(count):
        signer, pem = generate_key()
        write_private(
            private_dir(folder / repo) / f"{role}-{signer.public_key.keyid[:16]}.pem", pem
        )
        made.append(signer)
    return made


def load_keys(folder: Path, repo: str) -> dict[str, Signer]:
    """Every key in ``folder/repo``, by key id (empty when the folder does not exist).

    :class:`KeyStoreError` for a key file that others can read or that is not a key.
    """
    where = folder / repo
    if not where.is_dir():
        return {}
    found: dict[str, Signer] = {}
    for path in sorted(where.glob("*.pem")):
        try:
            signer = load_signer(read_private(path))
        except KeyStoreError as exc:
            raise KeyStoreError(f"{path}: {exc}") from None
        found[signer.public_key.keyid] = signer
    return found


def init_trust(
    db: Store,
    now_s: float,
    *,
    keys_dir: Path,
    root_keys_dir: Path,
    thresholds: Mapping[str, int] | None = None,
    lifetimes: Lifetimes | None = None,
    actor: str = "skyfleet",
) -> bool:
    """Give both repositories keys and a first root, unless they have roots already; returns
    whether it did.

    Per role, ``thresholds`` (default 1) keys are made: the online ones into ``keys_dir`` (what
    the server signs with), the root keys into ``root_keys_dir`` (take it offline). Each root is
    signed by its root keys and stored, and a copy of each root is kept beside its root keys
    (``ROOT_KEYS/REPO/root.json``): the trusted start of the chain that ``skyfleet trust
    rotate-root`` verifies before it signs. A process racing another on the same machine finds
    the other's roots and keys; one on another machine keeps orphan keys and lacks the winner's
    (``check_keys`` then says so before it serves).
    """
    thresholds = dict(thresholds or {})
    unknown = set(thresholds) - set(ROLES)
    if unknown:
        raise KeyStoreError(f"unknown role {sorted(unknown)[0]!r}: use {', '.join(ROLES)}")
    lifetimes = lifetimes or Lifetimes()
    with db.read() as conn:
        missing = [repo for repo in REPOS if root(conn, repo) is None]
    if not missing:
        return False
    roots: dict[str, bytes] = {}
    for repo in missing:
        keys: dict[str, list[Key]] = {}
        root_signers: list[Signer] = []
        for role in ROLES:
            folder = root_keys_dir if role == "root" else keys_dir
            made = generate_keys(folder, repo, role, thresholds.get(role, 1))
            keys[role] = [s.public_key for s in made]
            if role == "root":
                root_signers = made
        md = new_root(keys, thresholds, now_s=now_s, lifetime_s=lifetimes.root_s)
        roots[repo] = sign_root(md, root_signers)
    try:
        with db.begin() as conn:
            for repo, body in roots.items():
                expires = parse(body).signed.expires.timestamp()
                publish(conn, now_s, repo, [Published("root", 1, expires, body)])
                online = ", ".join(f"{r}={thresholds.get(r, 1)}" for r in ONLINE_ROLES)
                _audit.record(
                    conn,
                    now_s,
                    actor=actor,
                    event="trust.init",
                    detail=f"{repo} root v1 (root={thresholds.get('root', 1)}, {online})",
                )
    except IntegrityError:
        return False  # another process set them up first
    for repo, body in roots.items():
        write_private(root_keys_dir / repo / TRUSTED_ROOT, body)
    return True
