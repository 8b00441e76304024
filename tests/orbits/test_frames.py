"""Time and frames (``skyfleet.orbits._frames``) checked against skyfield 1.55.

skyfield is the outside reference throughout: its IAU 1982 sidereal time (the angle SGP4's TEME
frame is defined by), its TEME and ITRS frame objects, and its WGS84 geodetic model. Only the
built-in timescale is used (``load.timescale(builtin=True)``): nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
from sgp4.api import Satrec
from skyfield.api import load, wgs84
from skyfield.framelib import itrs
from skyfield.sgp4lib import TEME, theta_GMST1982

from skyfleet.orbits import geodetic_to_ecef, gmst_rad, teme_to_ecef, up_vector
from skyfleet.orbits._frames import jd_from_unix

TS = load.timescale(builtin=True)
ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi
OMEGA_EARTH_RAD_S = 7.292_115e-5
WGS84_A_KM = 6_378.137
WGS84_B_KM = WGS84_A_KM * (1.0 - 1.0 / 298.257_223_563)
UNIX_1972 = 63_072_000.0  # 1972-01-01T00:00:00Z, when the leap-second UTC began
UNIX_2030 = 1_893_456_000.0  # 2030-01-01T00:00:00Z


def skyfield_time(t_unix_s):
    """skyfield Time for UTC unix seconds (whole days through the calendar, so leap seconds are
    not counted twice, as they are not in unix time)."""
    t = np.asarray(t_unix_s, dtype=np.float64)
    days = np.floor(t / 86_400.0)
    return TS.utc(1970, 1, 1 + days, 0, 0, t - days * 86_400.0)


def wrap_rad(x):
    return (np.asarray(x) + np.pi) % (2.0 * np.pi) - np.pi


def test_gmst_equals_skyfield_gmst1982_at_the_same_time_argument():
    """Reference: skyfield ``theta_GMST1982`` (AIAA 2006-6753 appendix C), fed the same Julian
    date. Same formula, so the tolerance is numerical: 1 milliarcsecond (7 cm at 550 km)."""
    t = np.linspace(UNIX_1972, UNIX_2030, 1001) + 0.123_456
    jd, fr = jd_from_unix(t)
    ref, _ = theta_GMST1982(jd, fr)
    diff = np.abs(wrap_rad(gmst_rad(t) - ref)) * ARCSEC_PER_RAD
    assert diff.max() < 1e-3
    # Scalar in, scalar out, same value as the array element.
    scalar = gmst_rad(float(t[17]))
    assert np.ndim(scalar) == 0
    assert abs(wrap_rad(scalar - ref[17])) * ARCSEC_PER_RAD < 1e-3


def test_gmst_from_utc_is_within_the_ut1_allowance_of_skyfield():
    """Reference: skyfield's GMST at the true UT1 (its built-in IERS table).

    skyfleet takes UT1 = UTC. Since 1972 IERS keeps |UT1 - UTC| < 0.9 s, and sidereal time
    advances 15.04 arcsec per second of UT1, so the two may differ by 0.9 x 15.04 = 13.5 arcsec;
    the tolerance is 14 arcsec (0.47 km along the equator at 550 km altitude).
    """
    t = np.linspace(UNIX_1972 + 86_400.0, UNIX_2030, 701)
    st = skyfield_time(t)
    assert np.abs(st.dut1).max() < 0.9  # the premise of the tolerance
    ref, _ = theta_GMST1982(st.whole, st.ut1_fraction)
    diff = np.abs(wrap_rad(gmst_rad(t) - ref)) * ARCSEC_PER_RAD
    assert diff.max() < 14.0
    # And the difference really is the UT1-UTC offset times the sidereal rate (to 0.05 arcsec).
    predicted = -st.dut1 * 15.041_069
    assert np.abs(wrap_rad(gmst_rad(t) - ref) * ARCSEC_PER_RAD - predicted).max() < 0.05


def test_gmst_at_j2000_noon_matches_the_published_value():
    """Reference: Astronomical Almanac / Vallado, GMST at 2000-01-01 12:00 UT1 is
    18h 41m 50.54841s = 280.46061837 deg. Tolerance 0.01 arcsec."""
    published_deg = (18 + 41 / 60 + 50.548_41 / 3600) * 15.0
    got_deg = np.degrees(gmst_rad(946_728_000.0))
    assert abs(got_deg - published_deg) * 3600.0 < 0.01


def test_jd_from_unix_gives_the_julian_date_of_the_unix_epoch_and_keeps_precision():
    """Reference: the Unix epoch 1970-01-01T00:00Z is JD 2440587.5 (published constant), and a
    day is 86,400 s of unix time. The fraction keeps microseconds."""
    t = np.array([0.0, 86_399.999_999, 1_767_225_600.000_001, -43_200.0])
    jd, fr = jd_from_unix(t)
    assert np.all((fr >= 0.0) & (fr < 1.0))
    assert np.all(jd % 1.0 == 0.5)
    seconds = ((jd - 2_440_587.5) + fr) * 86_400.0
    assert np.abs(seconds - t).max() < 2e-6
    jd0, fr0 = jd_from_unix(0.0)
    assert np.ndim(jd0) == 0 and float(jd0 + fr0) == 2_440_587.5


def test_teme_to_ecef_matches_skyfield_teme_to_itrs_rotation():
    """Reference: skyfield's ``TEME`` and ``itrs`` frames (TEME -> GCRS -> ITRS with full
    precession-nutation and UT1). Tolerance: what UT1 = UTC costs, Earth rate x |UT1-UTC| x |r|,
    plus 10 m for the frame models (polar motion is zero in both). Array and scalar times."""
    sat = Satrec.twoline2rv(
        "1 25544U 98067A   18342.69352573  .00002284  00000-0  41838-4 0  9992",
        "2 25544  51.6407 229.0798 0005166 124.8351 329.3296 15.54069892145658",
    )
    epoch = (sat.jdsatepoch - 2_440_587.5 + sat.jdsatepochF) * 86_400.0
    t = epoch + np.linspace(-43_200.0, 43_200.0, 9)
    jd, fr = jd_from_unix(t)
    err, r_teme, _ = sat.sgp4_array(jd, fr)
    assert not err.any()
    r_teme = r_teme.T  # (3, T)
    ours = teme_to_ecef(r_teme, t)
    st = skyfield_time(t)
    ref = np.einsum(
        "ij...,jk...,k...->i...",
        itrs.rotation_at(st),
        np.swapaxes(TEME.rotation_at(st), 0, 1),
        r_teme,
    )
    tol = OMEGA_EARTH_RAD_S * np.abs(st.dut1) * np.linalg.norm(r_teme, axis=0) + 0.010
    assert np.all(np.linalg.norm(ours - ref, axis=0) < tol)
    # Scalar time, one vector; and a (3, N, T) stack with times broadcast along the last axis.
    one = teme_to_ecef(r_teme[:, 3], float(t[3]))
    assert one.shape == (3,)
    np.testing.assert_allclose(one, ours[:, 3], atol=1e-9)
    stack = teme_to_ecef(np.stack([r_teme, 2.0 * r_teme], axis=1), t[None, :])
    assert stack.shape == (3, 2, t.size)
    np.testing.assert_allclose(stack[:, 1, :], 2.0 * ours, atol=1e-9)


LATS = np.array([-90.0, -89.999, -60.0, -33.8688, -0.5, 0.0, 23.4, 45.0, 51.5074, 89.9, 90.0])
LONS = np.array([-180.0, -179.999, -122.33, -0.1278, 0.0, 0.001, 90.0, 151.2093, 179.999, 180.0])


@pytest.mark.parametrize("alt_km", [-0.43, 0.0, 8.849, 550.0])
def test_geodetic_to_ecef_matches_skyfield_wgs84_within_1_m(alt_km):
    """Reference: skyfield ``wgs84.latlon(lat, lon, elevation_m).itrs_xyz.km``. A grid with both
    poles, the equator, the prime meridian and both sides of the dateline; tolerance 1 m."""
    lat, lon = np.meshgrid(LATS, LONS, indexing="ij")
    ours = geodetic_to_ecef(lat, lon, alt_km)
    assert ours.shape == (3, *lat.shape)
    ref = wgs84.latlon(lat.ravel(), lon.ravel(), elevation_m=alt_km * 1e3).itrs_xyz.km
    assert np.abs(ours.reshape(3, -1) - ref).max() < 1e-3
    # Scalar inputs give one vector, equal to the matching grid entry.
    one = geodetic_to_ecef(float(lat[3, 7]), float(lon[3, 7]), alt_km)
    assert one.shape == (3,)
    np.testing.assert_allclose(one, ours[:, 3, 7], atol=1e-9)


def test_up_vector_is_the_unit_normal_of_the_wgs84_ellipsoid():
    """Reference: the outward normal of the ellipsoid x^2/a^2 + y^2/a^2 + z^2/b^2 = 1 is its
    gradient (x/a^2, y/a^2, z/b^2), evaluated at skyfield's WGS84 surface point. Unit length to
    1e-12, direction within 1e-9 rad (6 mm over 6,000 km)."""
    lat, lon = np.meshgrid(LATS, LONS, indexing="ij")
    up = up_vector(lat, lon)
    assert up.shape == (3, *lat.shape)
    up = up.reshape(3, -1)
    np.testing.assert_allclose(np.linalg.norm(up, axis=0), 1.0, atol=1e-12)
    x, y, z = wgs84.latlon(lat.ravel(), lon.ravel()).itrs_xyz.km
    grad = np.stack([x / WGS84_A_KM**2, y / WGS84_A_KM**2, z / WGS84_B_KM**2])
    grad /= np.linalg.norm(grad, axis=0)
    assert np.einsum("ij,ij->j", up, grad).min() > 0.0  # outward, not inward
    sin_angle = np.linalg.norm(np.cross(up, grad, axis=0), axis=0)
    assert sin_angle.max() < 1e-9
    # Scalar inputs: one vector; at the equator and prime meridian it is +x.
    np.testing.assert_allclose(up_vector(0.0, 0.0), [1.0, 0.0, 0.0], atol=1e-15)
    assert up_vector(12.0, 34.0).shape == (3,)
