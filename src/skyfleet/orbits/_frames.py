"""Time and reference frames: sidereal time, TEME and geodetic to Earth-fixed (ECEF) km.

Times are UTC seconds since the Unix epoch (float or array). UT1 is taken equal to UTC; the
difference (under 0.9 s) moves a satellite by under 0.5 km in the Earth-fixed frame.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skyfleet.orbits._constants import F_EARTH, R_EARTH_KM, UNIX_EPOCH_JD

FloatArray = NDArray[np.float64]

_E2 = F_EARTH * (2.0 - F_EARTH)


def jd_from_unix(t_unix_s: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Split UTC unix seconds into a Julian date's whole part and fraction (days).

    The split keeps microsecond precision, as sgp4 expects.

    >>> jd, fr = jd_from_unix(0.0)
    >>> float(jd + fr)
    2440587.5
    """
    t = np.asarray(t_unix_s, dtype=np.float64)
    days = np.floor(t / 86_400.0)
    return days + UNIX_EPOCH_JD, (t - days * 86_400.0) / 86_400.0


def gmst_rad(t_unix_s: ArrayLike) -> FloatArray:
    """Greenwich mean sidereal time (IAU 1982, the angle of the TEME frame), radians in [0, 2pi).

    >>> round(float(np.degrees(gmst_rad(946_728_000.0))), 4)  # 2000-01-01T12:00:00 UTC
    280.4606
    """
    jd, fr = jd_from_unix(t_unix_s)
    d = (jd - 2_451_545.0) + fr  # days since J2000.0
    tc = d / 36_525.0
    # Vallado (3-45) in seconds of time. Its 876600 h * T term is 86400 s per day of d, a whole
    # number of turns plus the day fraction, so only the fraction is kept (precision).
    gmst_s = 67_310.548_41 + 8_640_184.812_866 * tc + 0.093_104 * tc**2 - 6.2e-6 * tc**3
    gmst_s = gmst_s + 86_400.0 * (d - np.floor(d))
    return np.asarray(np.mod(gmst_s, 86_400.0) * (2.0 * np.pi / 86_400.0))


def teme_to_ecef(r_teme_km: ArrayLike, t_unix_s: ArrayLike) -> FloatArray:
    """Rotate TEME vectors ``(3, ...)`` to the Earth-fixed frame at the matching times.

    Polar motion (a few metres) is neglected. ``t_unix_s`` broadcasts against ``r[0]``.
    """
    r = np.asarray(r_teme_km, dtype=np.float64)
    theta = gmst_rad(t_unix_s)
    c, s = np.cos(theta), np.sin(theta)
    return np.stack(
        [c * r[0] + s * r[1], -s * r[0] + c * r[1], np.broadcast_to(r[2], (c * r[0]).shape)]
    )


def geodetic_to_ecef(lat_deg: ArrayLike, lon_deg: ArrayLike, alt_km: ArrayLike = 0.0) -> FloatArray:
    """WGS84 geodetic latitude, longitude (degrees, north and east positive) and height (km)
    to Earth-fixed coordinates, km, shape ``(3, ...)``.

    >>> geodetic_to_ecef(0.0, 0.0).round(3).tolist()
    [6378.137, 0.0, 0.0]
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    h = np.asarray(alt_km, dtype=np.float64)
    n = R_EARTH_KM / np.sqrt(1.0 - _E2 * np.sin(lat) ** 2)
    x = (n + h) * np.cos(lat) * np.cos(lon)
    y = (n + h) * np.cos(lat) * np.sin(lon)
    z = (n * (1.0 - _E2) + h) * np.sin(lat)
    return np.stack(np.broadcast_arrays(x, y, z))


def up_vector(lat_deg: ArrayLike, lon_deg: ArrayLike) -> FloatArray:
    """Unit normal to the WGS84 ellipsoid (local "up") at a geodetic position, shape ``(3, ...)``."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    return np.stack(
        np.broadcast_arrays(np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat))
    )
