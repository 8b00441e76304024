"""Secret files on their own: written for the owner only without touching the folders others
use, and read only when they are a regular file of the owner's, the very file that was checked."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyfleet import store
from skyfleet.errors import KeyStoreError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_beside_the_database_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    shared = tmp_path / "srv"  # the database's folder, which other services enter
    shared.mkdir()
    shared.chmod(0o755)
    store.write_private(shared / "skyfleet-admin.token", b"sfo_x\n")
    assert _mode(shared) == 0o755
    assert _mode(shared / "skyfleet-admin.token") == 0o600
    assert store.read_private(shared / "skyfleet-admin.token") == b"sfo_x\n"


def test_a_folder_made_for_a_secret_is_the_owners_only(tmp_path: Path) -> None:
    store.write_private(tmp_path / "new" / "deeper" / "secret", b"x")
    assert _mode(tmp_path / "new" / "deeper") == 0o700


def test_key_folders_are_still_made_private(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    keys.chmod(0o755)
    (keys / "image").mkdir()
    (keys / "image").chmod(0o755)
    store.generate_keys(keys, "image", "targets")
    assert (_mode(keys), _mode(keys / "image")) == (0o700, 0o700)
    (key,) = (keys / "image").glob("*.pem")
    assert _mode(key) == 0o600


def test_a_secret_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.pem"
    store.write_private(real, b"secret")
    (tmp_path / "link.pem").symlink_to(real)
    with pytest.raises(KeyStoreError, match="is a link"):
        store.read_private(tmp_path / "link.pem")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_a_secret_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "admin.token"
    store.write_private(path, b"sfo_x\n")
    path.chmod(mode)
    with pytest.raises(KeyStoreError, match=f"mode {mode:03o}.*chmod 600"):
        store.read_private(path)


def test_a_missing_secret_says_so(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="does not exist"):
        store.read_private(tmp_path / "nothing.pem")


def test_a_fifo_is_not_read_as_a_secret(tmp_path: Path) -> None:
    fifo = tmp_path / "key.pem"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyStoreError, match="not a regular file"):
        store.read_private(fifo)  # refused, and without waiting for a writer


def test_a_secret_swapped_for_a_link_after_its_check_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker who replaces the file by a link right after it was checked (here: as soon as
    anything stats it) must not get the link's target read instead."""
    secret, other = tmp_path / "key.pem", tmp_path / "elsewhere.pem"
    store.write_private(secret, b"the owner's key")
    store.write_private(other, b"someone else's key")
    swapped: list[str] = []

    def swapping_after(check: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            info = check(*args, **kwargs)
            if not swapped:
                swapped.append(check.__name__)
                secret.unlink()
                secret.symlink_to(other)
            return info

        return checked

    for name in ("stat", "lstat", "fstat"):
        monkeypatch.setattr(os, name, swapping_after(getattr(os, name)))
    assert store.read_private(secret) == b"the owner's key"
    assert swapped  # the swap did happen, after the check
