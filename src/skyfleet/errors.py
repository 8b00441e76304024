"""The one exception hierarchy of skyfleet.

Every error skyfleet raises on purpose derives from :class:`SkyfleetError`, with one base per
domain. Messages say what was wrong and how to fix it; the CLI prints them as one line on stderr
and exits with status 2.

::

    SkyfleetError
    ├── InputError                       a command-line value, request field or output file that cannot be used
    ├── OrbitsError
    │   ├── UnknownConstellationError    a preset name that does not exist
    │   └── TLEError                     a TLE catalogue that is empty or malformed
    ├── LinksError
    │   ├── PlaceError                   a place that cannot be resolved (bad LAT,LON, unknown name)
    │   ├── RouteError                   a route file that cannot be read
    │   ├── CoverageError                cellular coverage data (OpenCelliD CSV, GeoJSON) that cannot be read
    │   └── LinkConfigError              a link query with impossible parameters (step <= 0, ...)
    ├── RolloutError
    │   ├── FilterError                  a group filter or percentage that does not parse
    │   ├── DeviceError                  a device registration or report that cannot be stored
    │   ├── ReleaseError                 a release that cannot be created (duplicate version, ...)
    │   ├── ArtifactError                an upload whose bytes do not match its declared hash
    │   ├── NotFoundError                an unknown device, release, rollout, action or artifact
    │   ├── ConflictError                an operation the current state forbids (start twice, ...)
    │   └── DeviceAuthError              a device request without a valid token
    ├── TrustError
    │   ├── KeyStoreError                signing keys that are missing, unreadable, or readable by others
    │   ├── MetadataError                TUF metadata that cannot be built, parsed or accepted (a bad root)
    │   └── UntrustedUpdateError         a director assignment the image repository does not vouch for
    ├── AccessError
    │   ├── OperatorAuthError            an operator request without a valid token (401)
    │   ├── ForbiddenError               a token whose role may not do this (403)
    │   ├── RateLimitError               a client over its request rate (429)
    │   └── TooLargeError                a request body over the server's limit (413)
    ├── PowershareError
    │   ├── UnknownDeviceError           a vehicle, home battery or load profile name that does not exist
    │   └── PowershareConfigError        a device or scenario that cannot work (negative capacity, ...)
    ├── StoreError                       a database that cannot be opened, has a newer schema, or is unreachable
    └── ApiError                         a server that refused a request or cannot be reached
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "ApiError",
    "ArtifactError",
    "ConflictError",
    "CoverageError",
    "DeviceAuthError",
    "DeviceError",
    "FilterError",
    "ForbiddenError",
    "InputError",
    "KeyStoreError",
    "LinkConfigError",
    "LinksError",
    "MetadataError",
    "NotFoundError",
    "OperatorAuthError",
    "OrbitsError",
    "PlaceError",
    "PowershareConfigError",
    "PowershareError",
    "RateLimitError",
    "ReleaseError",
    "RolloutError",
    "RouteError",
    "SkyfleetError",
    "StoreError",
    "TLEError",
    "TooLargeError",
    "TrustError",
    "UnknownConstellationError",
    "UnknownDeviceError",
    "UntrustedUpdateError",
]


class SkyfleetError(Exception):
    """Root of every error skyfleet raises on purpose."""


class InputError(SkyfleetError, ValueError):
    """A command-line value or request field that cannot be used, or an output file that cannot
    be written."""


class OrbitsError(SkyfleetError):
    """Base of the errors of :mod:`skyfleet.orbits`."""


class UnknownConstellationError(OrbitsError, LookupError):
    """A constellation preset name that does not exist."""


class TLEError(OrbitsError, ValueError):
    """A TLE catalogue that is empty or malformed."""


class LinksError(SkyfleetError):
    """Base of the errors of :mod:`skyfleet.links`."""


class PlaceError(LinksError, ValueError):
    """A place specification that cannot be resolved."""


class RouteError(LinksError, ValueError):
    """A route file (CSV or GPX) that cannot be read."""


class CoverageError(LinksError, ValueError):
    """Cellular coverage data (OpenCelliD CSV or GeoJSON) that cannot be read or used."""


class LinkConfigError(LinksError, ValueError):
    """A link query with parameters that cannot work (a step of zero, an empty window, ...)."""


class RolloutError(SkyfleetError):
    """Base of the errors of :mod:`skyfleet.rollout` and of the services built on it."""


class FilterError(RolloutError, ValueError):
    """A rollout group (filter, percentage, thresholds) that does not parse or cannot work."""


class DeviceError(RolloutError, ValueError):
    """A device registration or report with a field that cannot be stored (id, kind, version)."""


class ReleaseError(RolloutError, ValueError):
    """A release that cannot be created: a version already taken, no artifacts, bad rules."""


class ArtifactError(RolloutError, ValueError):
    """An uploaded artifact whose bytes do not match the hash or size it was declared with."""


class NotFoundError(RolloutError, LookupError):
    """An unknown device, release, rollout, action or artifact."""


class ConflictError(RolloutError):
    """An operation the current state forbids (starting a rollout twice, resuming a cancelled one)."""


class DeviceAuthError(RolloutError):
    """A device request with a missing or wrong token."""


class TrustError(SkyfleetError):
    """Base of the errors of signed update metadata (TUF / Uptane) and its keys."""


class KeyStoreError(TrustError):
    """Signing keys that are missing, unreadable, too few for a threshold, or readable by others."""


class MetadataError(TrustError, ValueError):
    """TUF metadata that cannot be built, parsed or accepted (a new root not signed by enough
    keys of the old and the new root, say)."""


class UntrustedUpdateError(TrustError):
    """What the director assigned does not match what the image repository signed (Uptane's
    check that a compromised director alone cannot install arbitrary software)."""


class AccessError(SkyfleetError):
    """Base of the errors of who may call the server, and how much."""


class OperatorAuthError(AccessError):
    """An operator API request with a missing, wrong or revoked token."""


class ForbiddenError(AccessError):
    """An operator token whose role does not allow the request (a viewer creating a rollout)."""


class RateLimitError(AccessError):
    """A client that sent more requests than its rate allows; ``retry_after_s`` says when to
    come back."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLargeError(AccessError):
    """A request body larger than the server accepts for that route."""


class PowershareError(SkyfleetError):
    """Base of the errors of :mod:`skyfleet.powershare`."""


class UnknownDeviceError(PowershareError, LookupError):
    """A vehicle, home battery or load profile name that is not in the catalogue."""


class PowershareConfigError(PowershareError, ValueError):
    """A device, trip setting or scenario that cannot work: a negative capacity, a state of
    charge over 100 %, a signalling band outside a device's trip settings."""


class StoreError(SkyfleetError):
    """A database that cannot be opened, whose schema is newer than this skyfleet, or that
    went away while serving (the server answers 503)."""


class ApiError(SkyfleetError):
    """A request the skyfleet server refused (its message is kept, ``status`` is the HTTP
    status), or a server not reachable (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
