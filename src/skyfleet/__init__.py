"""skyfleet: run a satellite-connected fleet.

Links over low-Earth-orbit constellations (:mod:`skyfleet.orbits`, :mod:`skyfleet.links`), with
staged over-the-air rollouts and vehicle-to-home power sharing to follow.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from skyfleet.errors import SkyfleetError

try:
    __version__ = version("skyfleet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["SkyfleetError", "__version__"]
