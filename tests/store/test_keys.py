"""Key material on disk: private to its owner, refused when others can read it, and set up once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from skyfleet import store
from skyfleet.errors import KeyStoreError
from skyfleet.store import Store


def test_written_secrets_are_owner_only_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "secret"
    store.write_private(path, b"one")
    store.write_private(path, b"two")
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700  # a folder it made
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary files left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    store.generate_keys(tmp_path, "image", "targets")
    (key,) = (tmp_path / "image").glob("*.pem")
    key.chmod(mode)
    with pytest.raises(KeyStoreError, match=f"mode {mode:03o}.*chmod 600"):
        store.load_keys(tmp_path, "image")


def test_key_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    store.generate_keys(tmp_path / "real", "image", "targets")
    (key,) = (tmp_path / "real" / "image").glob("*.pem")
    (tmp_path / "keys" / "image").mkdir(parents=True)
    os.symlink(key, tmp_path / "keys" / "image" / key.name)
    with pytest.raises(KeyStoreError, match="is a link"):
        store.load_keys(tmp_path / "keys", "image")


def test_init_trust_makes_keys_once_and_keeps_root_keys_apart(db: Store, tmp_path: Path) -> None:
    keys, root_keys = tmp_path / "keys", tmp_path / "root-keys"
    thresholds = {"root": 2, "targets": 2}
    assert store.init_trust(
        db, time.time(), keys_dir=keys, root_keys_dir=root_keys, thresholds=thresholds
    )
    assert not store.init_trust(db, time.time(), keys_dir=keys, root_keys_dir=root_keys)
    for repo in store.REPOS:
        online = sorted(p.name.split("-")[0] for p in (keys / repo).glob("*.pem"))
        assert online == ["snapshot", "targets", "targets", "timestamp"]
        assert [p.name.split("-")[0] for p in (root_keys / repo).glob("*.pem")] == ["root"] * 2
        with db.read() as conn:
            body = store.root(conn, repo)
        assert body is not None
        # the trusted start of the chain, kept with the root keys for the next rotation
        assert (root_keys / repo / store.TRUSTED_ROOT).read_bytes() == body
    entries = [e for e in _audit(db) if e["event"] == "trust.init"]
    assert len(entries) == 2 and "root=2" in entries[0]["detail"]


def test_init_trust_refuses_unknown_roles(db: Store, tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="unknown role 'mirror'"):
        store.init_trust(
            db,
            time.time(),
            keys_dir=tmp_path / "k",
            root_keys_dir=tmp_path / "r",
            thresholds={"mirror": 1},
        )
    with db.read() as conn:
        assert store.root(conn, "image") is None
    assert not (tmp_path / "k").exists()


def _audit(db: Store) -> list[dict[str, object]]:
    with db.read() as conn:
        return store.list_audit(conn, limit=100)
