"""Physical constants (WGS84 / EGM96 values), in the units their names carry."""

from __future__ import annotations

MU_KM3_S2 = 398_600.4418
"""Earth's gravitational parameter GM, km^3/s^2."""

R_EARTH_KM = 6_378.137
"""WGS84 equatorial radius, km. Walker shell altitudes are measured from it."""

F_EARTH = 1.0 / 298.257_223_563
"""WGS84 flattening."""

R_EARTH_POLAR_KM = R_EARTH_KM * (1.0 - F_EARTH)
"""WGS84 polar radius, km."""

J2 = 1.082_626_68e-3
"""Second zonal harmonic of Earth's gravity field (EGM96), dimensionless."""

OMEGA_EARTH_RAD_S = 7.292_115_146_706_979e-5
"""Earth's rotation rate relative to the equinox, rad/s."""

C_KM_S = 299_792.458
"""Speed of light in vacuum, km/s."""

UNIX_EPOCH_JD = 2_440_587.5
"""Julian date of 1970-01-01T00:00:00 UTC."""
