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
    └── LinksError
        ├── PlaceError                   a place that cannot be resolved (bad LAT,LON, unknown name)
        ├── RouteError                   a route file that cannot be read
        └── LinkConfigError              a link query with impossible parameters (step <= 0, ...)
"""

from __future__ import annotations

__all__ = [
    "InputError",
    "LinkConfigError",
    "LinksError",
    "OrbitsError",
    "PlaceError",
    "RouteError",
    "SkyfleetError",
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
