"""The one exception hierarchy of skyfleet.

Every error skyfleet raises on purpose derives from :class:`SkyfleetError`, with one base per
domain. Messages say what was wrong and how to fix it; the CLI prints them as one line on stderr
and exits with status 2.

::

    SkyfleetError
    ├── InputError                       a command-line value or output file that cannot be used
    ├── OrbitsError
    │   ├── UnknownConstellationError    a preset name that does not exist
    │   └── TLEError                     a TLE catalogue that is empty or malformed
    ├── LinksError
    │   ├── PlaceError                   a place that cannot be resolved (bad LAT,LON, unknown name)
    │   ├── RouteError                   a route file that cannot be read
    │   └── LinkConfigError              a link query with impossible parameters (step <= 0, ...)
    ├── RolloutError
    │   ├── FilterError                  a group filter or percentage that does not parse
    │   ├── DeviceError                  a device registration or report that cannot be stored
    │   ├── ReleaseError                 a release that cannot be created (duplicate version, ...)
    │   ├── ArtifactError                an upload whose bytes do not match its declared hash
    │   ├── NotFoundError                an unknown device, release, rollout, action or artifact
    │   ├── ConflictError                an operation the current state forbids (start twice, ...)
    │   └── DeviceAuthError              a device request without a valid token
    ├── StoreError                       a database that cannot be opened, has a newer schema, or is unreachable
    └── ApiError                         a server that refused a request or cannot be reached
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ArtifactError",
    "ConflictError",
    "DeviceAuthError",
    "DeviceError",
    "FilterError",
    "InputError",
    "LinkConfigError",
    "LinksError",
    "NotFoundError",
    "OrbitsError",
    "PlaceError",
    "ReleaseError",
    "RolloutError",
    "RouteError",
    "SkyfleetError",
    "StoreError",
    "TLEError",
    "UnknownConstellationError",
]


class SkyfleetError(Exception):
    """Root of every error skyfleet raises on purpose."""


class InputError(SkyfleetError, ValueError):
    """A command-line value that cannot be read, or an output file that cannot be written."""


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


class StoreError(SkyfleetError):
    """A database that cannot be opened, whose schema is newer than this skyfleet, or that
    went away while serving (the server answers 503)."""


class ApiError(SkyfleetError):
    """A request the skyfleet server refused (its message is kept), or a server not reachable."""
