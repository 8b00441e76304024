"""Software version strings: parse and order them the way people read them.

A version is an optional text prefix followed by dot-separated parts (``2025.44.25.5``,
``fsd-14.2.1.25``, ``v1.2.0-rc1``). Numbers compare as numbers, text as text; two versions with
different prefixes belong to different product lines and do not order against each other.
"""

from __future__ import annotations

import re

from skyfleet.errors import ReleaseError

__all__ = ["is_valid_hardware", "is_valid_version", "same_line", "version_key"]

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$")
_PREFIX_RE = re.compile(r"^([A-Za-z][A-Za-z_-]*?)[-_]?(?=\d)")
_PART_RE = re.compile(r"\d+|[A-Za-z]+")


_HARDWARE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,31}$")


def is_valid_hardware(hw: str) -> bool:
    """Whether ``hw`` is a usable hardware generation (1-32 chars of ``[A-Za-z0-9._+~-]``, the
    first a letter or digit): it is one segment of a signed target path.

    >>> is_valid_hardware("hw4"), is_valid_hardware("../x"), is_valid_hardware("hw 3")
    (True, False, False)
    """
    return bool(_HARDWARE_RE.fullmatch(hw))


def is_valid_version(version: str) -> bool:
    """Whether ``version`` is a usable version string (1-128 chars of ``[A-Za-z0-9._+~-]``).

    >>> is_valid_version("2025.44.25.5"), is_valid_version("fsd-14.2.1.25"), is_valid_version("a b")
    (True, True, False)
    """
    return bool(_VERSION_RE.fullmatch(version))


def _split(version: str) -> tuple[str, str]:
    match = _PREFIX_RE.match(version)
    if match is None:
        return "", version
    return match.group(1).lower(), version[match.end() :]


def same_line(a: str, b: str) -> bool:
    """Whether two versions belong to the same product line (same text prefix).

    >>> same_line("2025.44.25.5", "2025.20.1"), same_line("fsd-14.2", "2025.44")
    (True, False)
    """
    return _split(a)[0] == _split(b)[0]


def version_key(version: str) -> tuple[str, tuple[tuple[int, int | str], ...]]:
    """A sort key: the prefix, then each part (numbers before text at the same position).

    >>> sorted(["2025.44.25.10", "2025.44.25.5", "2025.9"], key=version_key)
    ['2025.9', '2025.44.25.5', '2025.44.25.10']
    >>> version_key("fsd-14.2") > version_key("fsd-14.1.9")
    True
    """
    if not is_valid_version(version):
        raise ReleaseError(
            f"version {version!r} is not usable: use 1-128 characters of letters, digits and ._+~-"
        )
    prefix, rest = _split(version)
    parts: list[tuple[int, int | str]] = []
    for token in _PART_RE.findall(rest):
        parts.append((0, int(token)) if token.isdigit() else (1, token.lower()))
    return prefix, tuple(parts)
