"""Uptane's check on the device: the director says *what* to install, the image repository
vouches that it is genuine.

A device verifies both repositories with a TUF client (python-tuf's ``ngclient``), then calls
:func:`verify_assignment`: every target the director assigned must be addressed to this device
and must appear in the image repository with the same length and hashes. So a stolen director
key can choose among genuine images for the device's hardware but cannot install arbitrary
software (nor another generation's image), and a stolen image key alone cannot make any device
install anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tuf.api.metadata import TargetFile

from skyfleet.errors import UntrustedUpdateError

__all__ = ["verify_assignment"]


def verify_assignment(
    device_id: str,
    hardware: str,
    director: Mapping[str, TargetFile],
    image: Callable[[str], TargetFile | None],
) -> list[TargetFile]:
    """The director's targets for ``device_id`` (of hardware generation ``hardware``), each
    checked against ``image(path)`` (the image repository's target at that path, or None);
    :class:`UntrustedUpdateError` names the first target that is for another device, unknown to
    the image repository, built for other hardware, or different from the image repository's.

    >>> from tuf.api.metadata import TargetFile
    >>> genuine = TargetFile(3, {"sha256": "ab" * 32}, "r1/hw3/u.swu",
    ...                      {"custom": {"hardware_identifier": "hw3"}})
    >>> assigned = TargetFile(3, {"sha256": "ab" * 32}, "r1/hw3/u.swu",
    ...                       {"custom": {"ecu_identifier": "car-1"}})
    >>> image = {genuine.path: genuine}.get
    >>> [t.path for t in verify_assignment("car-1", "hw3", {assigned.path: assigned}, image)]
    ['r1/hw3/u.swu']
    """
    checked = []
    for path, target in director.items():
        custom = target.custom if isinstance(target.custom, dict) else {}
        addressee = custom.get("ecu_identifier")
        if addressee != device_id:
            raise UntrustedUpdateError(
                f"the director's target {path!r} is addressed to {addressee!r}, not {device_id!r}"
            )
        original = image(path)
        if original is None:
            raise UntrustedUpdateError(
                f"the director assigns {path!r}, which the image repository does not sign"
            )
        built_for = (original.custom or {}).get("hardware_identifier")
        if built_for != hardware:
            raise UntrustedUpdateError(
                f"the director assigns {path!r}, built for {built_for!r}, to a {hardware} device"
            )
        common = set(original.hashes) & set(target.hashes)
        if (
            original.length != target.length
            or not common
            or any(original.hashes[a] != target.hashes[a] for a in common)
        ):
            raise UntrustedUpdateError(
                f"the director's {path!r} differs from the image repository's "
                f"(length {target.length} vs {original.length}, or its hashes)"
            )
        checked.append(target)
    return checked
