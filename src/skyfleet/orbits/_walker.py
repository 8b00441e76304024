"""Walker-delta shells: circular orbits with J2 secular drift, and their +Grid laser links.

A shell is ``planes`` orbital planes spread evenly over 360 degrees of right ascension, each with
``sats_per_plane`` satellites; the phasing factor F shifts satellites of neighbouring planes by
``F * 360 / (planes * sats_per_plane)`` degrees of argument of latitude (Walker i:T/P/F).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skyfleet.errors import OrbitsError
from skyfleet.orbits._constants import J2, MU_KM3_S2, R_EARTH_KM
from skyfleet.orbits._frames import FloatArray, gmst_rad

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class WalkerShell:
    """One Walker-delta shell.

    ``altitude_km`` is measured from the equatorial radius (6378.137 km), as the filings do;
    ``epoch_unix_s`` is the time at which plane 0 has right ascension ``raan0_deg`` and its
    satellite 0 crosses the ascending node.

    >>> s = WalkerShell("S1", 550, 53, 72, 22)
    >>> s.size, round(s.period_s / 60, 1)
    (1584, 95.6)
    """

    name: str
    altitude_km: float
    inclination_deg: float
    planes: int
    sats_per_plane: int
    phasing: int = 1
    raan0_deg: float = 0.0
    epoch_unix_s: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __post_init__(self) -> None:
        if self.planes < 1 or self.sats_per_plane < 1:
            raise OrbitsError(f"shell {self.name!r}: planes and sats_per_plane must be >= 1")
        if not 100.0 <= self.altitude_km <= 40_000.0:
            raise OrbitsError(
                f"shell {self.name!r}: altitude_km {self.altitude_km} is not in 100..40000"
            )
        if not 0.0 <= self.inclination_deg <= 180.0:
            raise OrbitsError(f"shell {self.name!r}: inclination_deg must be in 0..180")

    @property
    def size(self) -> int:
        """Number of satellites in the shell."""
        return self.planes * self.sats_per_plane

    @property
    def radius_km(self) -> float:
        """Orbit radius (semi-major axis), km."""
        return R_EARTH_KM + self.altitude_km

    @property
    def mean_motion_rad_s(self) -> float:
        """Keplerian mean motion sqrt(mu / a^3), rad/s."""
        return float(np.sqrt(MU_KM3_S2 / self.radius_km**3))

    @property
    def period_s(self) -> float:
        """Keplerian orbital period, seconds."""
        return 2.0 * np.pi / self.mean_motion_rad_s

    @property
    def raan_rate_rad_s(self) -> float:
        """Secular J2 regression of the ascending node, rad/s (negative for prograde orbits)."""
        n, k = self.mean_motion_rad_s, (R_EARTH_KM / self.radius_km) ** 2
        return float(-1.5 * n * J2 * k * np.cos(np.radians(self.inclination_deg)))

    @property
    def arglat_rate_rad_s(self) -> float:
        """Rate of the argument of latitude with J2 secular terms (circular orbit), rad/s."""
        n, k = self.mean_motion_rad_s, (R_EARTH_KM / self.radius_km) ** 2
        c2 = np.cos(np.radians(self.inclination_deg)) ** 2
        return float(n * (1.0 + 0.75 * J2 * k * (8.0 * c2 - 2.0)))

    def positions_km(self, t_unix_s: ArrayLike) -> FloatArray:
        """Earth-fixed positions, km: ``(3, size)`` for a scalar time, ``(3, size, T)`` for ``T`` times.

        Satellite ``p * sats_per_plane + s`` is satellite ``s`` of plane ``p``. The trigonometry
        is done per plane and per time and combined by angle addition, so the cost per position is a
        handful of multiplications.
        """
        t = np.asarray(t_unix_s, dtype=np.float64)
        tt = np.atleast_1d(t)
        dt = tt - self.epoch_unix_s
        P, S = self.planes, self.sats_per_plane
        inc = np.radians(self.inclination_deg)
        # Earth-fixed longitude of each plane's node, (P, T).
        node = (
            np.radians(self.raan0_deg)
            + 2.0 * np.pi * np.arange(P)[:, None] / P
            + self.raan_rate_rad_s * dt[None, :]
            - gmst_rad(tt)[None, :]
        )
        cn, sn = np.cos(node)[:, None, :], np.sin(node)[:, None, :]
        # Argument of latitude u = u0 + w: u0 per satellite (P, S), w per time (T).
        u0 = (
            2.0
            * np.pi
            * (np.arange(S)[None, :] / S + self.phasing * np.arange(P)[:, None] / (P * S))
        )
        w = np.mod(self.arglat_rate_rad_s * dt, 2.0 * np.pi)
        cu0, su0 = np.cos(u0)[:, :, None], np.sin(u0)[:, :, None]
        cw, sw = np.cos(w)[None, None, :], np.sin(w)[None, None, :]
        cu = cu0 * cw - su0 * sw
        su = su0 * cw + cu0 * sw
        r = self.radius_km
        su_ci = su * (r * np.cos(inc))
        cu_r = cu * r
        out = np.empty((3, P, S, tt.size))
        np.subtract(cn * cu_r, sn * su_ci, out=out[0])
        np.add(sn * cu_r, cn * su_ci, out=out[1])
        np.multiply(su, r * np.sin(inc), out=out[2])
        flat = out.reshape(3, P * S, tt.size)
        return flat[..., 0] if t.ndim == 0 else flat

    def isl_pairs(self) -> IntArray:
        """+Grid laser links as index pairs ``(E, 2)`` within the shell: each satellite links fore
        (next in its plane) and right (same slot in the next plane); with aft and left from its
        neighbours that makes four per satellite. The link across the seam from the last plane to
        plane 0 goes to the slot shifted by the phasing factor, the nearest one there.
        """
        P, S = self.planes, self.sats_per_plane
        p, s = np.meshgrid(np.arange(P), np.arange(S), indexing="ij")
        me = p * S + s
        pairs = []
        if S > 1:
            pairs.append(np.stack([me, p * S + (s + 1) % S], axis=-1).reshape(-1, 2))
        if P > 1:
            nxt = np.where(p == P - 1, (s + self.phasing) % S, s)
            pairs.append(np.stack([me, ((p + 1) % P) * S + nxt], axis=-1).reshape(-1, 2))
        if not pairs:
            return np.zeros((0, 2), dtype=np.int64)
        out = np.concatenate(pairs).astype(np.int64)
        out = np.unique(np.sort(out, axis=1), axis=0)  # a 2-plane or 2-slot shell links once
        return np.asarray(out[out[:, 0] != out[:, 1]], dtype=np.int64)
