"""Geometry of links: visibility by true elevation, slant ranges, great circles and fiber delay."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from skyfleet.orbits import C_KM_S, R_EARTH_KM
from skyfleet.orbits._constants import R_EARTH_POLAR_KM

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FIBER_INDEX = 1.467
"""Group index of standard single-mode fiber: light in fiber travels at c / 1.467."""

DEFAULT_FIBER_INFLATION = 2.1
"""Terrestrial route length over the great circle. Measurement campaigns give the rule of thumb
"line-of-sight distance x 2.1 at the speed of light in fiber" (Bozkurt et al., "Dissecting Latency
in the Internet's Fiber Infrastructure", 2018); skyfleet uses it for the "internet" figure."""

MEAN_EARTH_RADIUS_KM = 6_371.0088
"""IUGG mean Earth radius, km (great-circle distances)."""


def great_circle_km(
    lat1_deg: ArrayLike, lon1_deg: ArrayLike, lat2_deg: ArrayLike, lon2_deg: ArrayLike
) -> FloatArray:
    """Great-circle distance on the mean sphere (haversine), km; inputs broadcast.

    The spherical model is within 0.5% of the WGS84 geodesic.

    >>> round(float(great_circle_km(40.7128, -74.0060, 51.5074, -0.1278)))  # New York - London
    5570
    """
    p1, p2 = np.radians(lat1_deg), np.radians(lat2_deg)
    dl = np.radians(np.asarray(lon2_deg, dtype=np.float64) - np.asarray(lon1_deg, dtype=np.float64))
    a = np.sin((p2 - p1) / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    return np.asarray(2.0 * MEAN_EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def fiber_one_way_ms(distance_km: ArrayLike, inflation: float = 1.0) -> FloatArray:
    """One-way delay over fiber, ms, for a great-circle distance and a route inflation factor."""
    return np.asarray(
        np.asarray(distance_km, dtype=np.float64) * inflation * FIBER_INDEX / C_KM_S * 1e3
    )


def vacuum_ms(distance_km: ArrayLike) -> FloatArray:
    """One-way delay at the speed of light in vacuum, ms."""
    return np.asarray(np.asarray(distance_km, dtype=np.float64) / C_KM_S * 1e3)


def max_slant_range_km(altitude_km: float, min_elevation_deg: float) -> float:
    """Longest ground-to-satellite range at ``min_elevation_deg`` for a shell at ``altitude_km``.

    Computed on the polar-radius sphere with the shell radius from the equator, an upper bound for
    every point of the ellipsoid, with 1% margin.
    """
    r_sat = R_EARTH_KM + altitude_km
    re, el = R_EARTH_POLAR_KM, np.radians(min_elevation_deg)
    return float(1.01 * (np.sqrt(r_sat**2 - (re * np.cos(el)) ** 2) - re * np.sin(el)))


def elevation_deg(ground_km: ArrayLike, up: ArrayLike, sat_km: ArrayLike) -> FloatArray:
    """Elevation of satellites above the horizon of ground points, degrees: positive above the
    horizon, negative below. Inputs ``(3, ...)`` broadcast together (ground positions and their
    unit up vectors, satellite positions, Earth-fixed km)."""
    d = np.asarray(sat_km, dtype=np.float64) - np.asarray(ground_km, dtype=np.float64)
    rng = np.linalg.norm(d, axis=0)
    return np.asarray(
        np.degrees(np.arcsin(np.clip(np.sum(d * np.asarray(up), axis=0) / rng, -1, 1)))
    )


def visible_pairs(
    tree: cKDTree,
    sat_km: FloatArray,
    ground_km: FloatArray,
    up: FloatArray,
    min_elevation_deg: float,
    max_range_km: float,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Every (ground point, satellite) pair with the satellite at or above ``min_elevation_deg``.

    ``tree`` indexes ``sat_km.T``; ``ground_km`` and ``up`` are ``(3, M)``. Returns ground index,
    satellite index and slant range (km), sorted by ground index.
    """
    if ground_km.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    near = cKDTree(ground_km.T).sparse_distance_matrix(tree, max_range_km, output_type="ndarray")
    order = np.argsort(near["i"], kind="stable")
    gi, si = near["i"][order].astype(np.int64), near["j"][order].astype(np.int64)
    d = sat_km[:, si] - ground_km[:, gi]
    rng = np.sqrt(np.einsum("ij,ij->j", d, d))
    keep = np.einsum("ij,ij->j", d, up[:, gi]) >= rng * np.sin(np.radians(min_elevation_deg))
    return gi[keep], si[keep], rng[keep]


def segment_clears_earth(
    a_km: FloatArray, b_km: FloatArray, clearance_km: float = 80.0
) -> NDArray[np.bool_]:
    """Whether each straight segment a-b ``(3, E)`` stays ``clearance_km`` above the equatorial
    sphere (80 km keeps a laser link out of the dense atmosphere)."""
    ab = b_km - a_km
    t = np.clip(
        -np.einsum("ij,ij->j", a_km, ab) / np.maximum(np.einsum("ij,ij->j", ab, ab), 1e-9), 0.0, 1.0
    )
    closest = a_km + ab * t
    return np.asarray(np.einsum("ij,ij->j", closest, closest) >= (R_EARTH_KM + clearance_km) ** 2)


def laser_links_ms(sat_km: FloatArray, pairs: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
    """The laser links usable at one step: the index pairs ``(E, 2)`` whose line stays clear of
    the atmosphere (see :func:`segment_clears_earth`), as end indices and one-way delay, ms."""
    a, b = pairs[:, 0], pairs[:, 1]
    ok = segment_clears_earth(sat_km[:, a], sat_km[:, b])
    a, b = a[ok], b[ok]
    return a, b, vacuum_ms(np.linalg.norm(sat_km[:, a] - sat_km[:, b], axis=0))
