"""Secret files (signing keys, the first admin token): written for the owner only, refused when
anyone else can read them, as ssh does with private keys."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from skyfleet.errors import KeyStoreError

__all__ = ["private_dir", "read_private", "write_private"]


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (and its parents) for the owner only (mode 700); returns it.

    An existing folder that others may enter is tightened to 700.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) & 0o077:
            folder.chmod(0o700)
    except OSError as exc:
        raise KeyStoreError(
            f"cannot create the private folder {str(folder)!r}: {exc.strerror}"
        ) from None
    return folder


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (mode 600), atomically: a crash
    leaves the old file or the new one, never half of one, and never a moment of wider mode.

    A missing folder is made for the owner only (700); an existing one keeps its mode (the
    first admin token goes beside the database, whose folder others may need to enter).
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyStoreError(f"cannot create {str(path.parent)!r}: {exc.strerror}") from None
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 600
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise KeyStoreError(f"cannot write {str(path)!r}: {exc.strerror}") from None


def read_private(path: Path) -> bytes:
    """The bytes of a secret file; :class:`KeyStoreError` when it is missing, a link, not a
    regular file, or readable or writable by the group or others.

    The checks are made on the file that was opened (``O_NOFOLLOW``, then ``fstat``), so the
    file cannot be swapped between the check and the read.
    """
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeyStoreError(f"secret file {str(path)!r} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyStoreError(f"{str(path)!r} is a link; refusing to use it") from None
        raise KeyStoreError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    with os.fdopen(handle, "rb") as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyStoreError(f"{str(path)!r} is not a regular file; refusing to use it")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyStoreError(
                f"{str(path)!r} is open to others (mode {mode:03o}); run 'chmod 600 {path}'"
            )
        try:
            return opened.read()
        except OSError as exc:
            raise KeyStoreError(f"cannot read {str(path)!r}: {exc.strerror}") from None
