"""Where every satellite is, at every time.

Walker-delta shells (analytic circular orbits with J2 node drift) built from the operators'
filings, and TLE catalogues propagated with sgp4. Times are UTC seconds since the Unix epoch, as a
scalar or an array; positions are Earth-fixed (ECEF) km with shape ``(3, N)`` or ``(3, N, T)``.

>>> from skyfleet.orbits import preset
>>> kuiper = preset("kuiper")
>>> kuiper.size, kuiper.min_elevation_deg
(3236, 30.0)
"""

from __future__ import annotations

from skyfleet.orbits._constants import C_KM_S, J2, MU_KM3_S2, OMEGA_EARTH_RAD_S, R_EARTH_KM
from skyfleet.orbits._constellation import (
    Constellation,
    WalkerConstellation,
    check_min_elevation,
    preset,
    preset_names,
)
from skyfleet.orbits._frames import geodetic_to_ecef, gmst_rad, teme_to_ecef, up_vector
from skyfleet.orbits._tle import TleConstellation, parse_tle
from skyfleet.orbits._walker import WalkerShell

__all__ = [
    "C_KM_S",
    "J2",
    "MU_KM3_S2",
    "OMEGA_EARTH_RAD_S",
    "R_EARTH_KM",
    "Constellation",
    "TleConstellation",
    "WalkerConstellation",
    "WalkerShell",
    "check_min_elevation",
    "geodetic_to_ecef",
    "gmst_rad",
    "parse_tle",
    "preset",
    "preset_names",
    "teme_to_ecef",
    "up_vector",
]
