"""Round-trip times between every pair of ground stations over laser links, at every step.

This is the forwarding-state job of Hypatia's runs (ground station -> satellite -> laser
links -> satellite -> ground station; ground stations do not relay), done with one Dijkstra call
per step whose sources are the ground stations, instead of Floyd-Warshall over the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from skyfleet.links._geometry import (
    FloatArray,
    IntArray,
    laser_links_ms,
    max_slant_range_km,
    vacuum_ms,
    visible_pairs,
)
from skyfleet.links._parallel import Progress, execute
from skyfleet.orbits import Constellation, geodetic_to_ecef, up_vector


@dataclass(frozen=True)
class _PairsJob:
    constellation: Constellation
    isl: IntArray
    gs_ecef: FloatArray
    gs_up: FloatArray
    times: FloatArray
    min_el: float
    max_range_km: float


def pairs_step(
    sat: FloatArray,
    isl: IntArray,
    gs_ecef: FloatArray,
    gs_up: FloatArray,
    min_el: float,
    max_range_km: float,
) -> FloatArray:
    """One step: one-way delays (ms) between all ground stations ``(G, G)``, inf where no path.

    ``sat`` is ``(3, N)`` Earth-fixed km; ``isl`` the laser-link index pairs ``(E, 2)``.
    """
    n, g = sat.shape[1], gs_ecef.shape[1]
    tree = cKDTree(sat.T)
    gi, si, rng = visible_pairs(tree, sat, gs_ecef, gs_up, min_el, max_range_km)
    a, b, isl_ms = laser_links_ms(sat, isl)
    link_ms = vacuum_ms(rng)
    # Nodes: satellites [0, n), stations as sources [n, n+g), stations as sinks [n+g, n+2g).
    rows = np.concatenate([a, b, n + gi, si])
    cols = np.concatenate([b, a, si, n + g + gi])
    vals = np.concatenate([isl_ms, isl_ms, link_ms, link_ms])
    graph = csr_matrix((vals, (rows, cols)), shape=(n + 2 * g, n + 2 * g))
    dist = dijkstra(graph, directed=True, indices=n + np.arange(g))[:, n + g :]
    np.fill_diagonal(dist, 0.0)
    return np.asarray(dist)


def _run_pairs(job: _PairsJob) -> dict[str, Any]:
    pos = job.constellation.positions_km(job.times)
    out = np.empty((job.times.size, job.gs_ecef.shape[1], job.gs_ecef.shape[1]), dtype=np.float32)
    for k in range(job.times.size):
        sat = np.nan_to_num(pos[:, :, k], nan=1e9)
        out[k] = 2.0 * pairs_step(
            sat, job.isl, job.gs_ecef, job.gs_up, job.min_el, job.max_range_km
        )
    return {"rtt_ms": out}


def ground_station_rtt_ms(
    constellation: Constellation,
    lat_deg: ArrayLike,
    lon_deg: ArrayLike,
    times_unix_s: ArrayLike,
    min_elevation_deg: float | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    chunk_steps: int = 50,
) -> FloatArray:
    """Round-trip times (ms, float32) between all ground stations over laser links: ``(G, G)``
    for a scalar time, ``(T, G, G)`` for ``T`` times; inf where no path. Ground stations at
    ``lat_deg``/``lon_deg`` (degrees, ``(G,)``)."""
    lat, lon = np.atleast_1d(np.asarray(lat_deg, float)), np.atleast_1d(np.asarray(lon_deg, float))
    times = np.atleast_1d(np.asarray(times_unix_s, dtype=np.float64))
    min_el = constellation.min_elevation_deg if min_elevation_deg is None else min_elevation_deg
    isl = constellation.isl_pairs()
    max_range = max_slant_range_km(constellation.max_altitude_km, min_el)
    gs, up = geodetic_to_ecef(lat, lon), up_vector(lat, lon)
    bounds = [*range(0, times.size, chunk_steps), times.size]
    jobs = [
        _PairsJob(constellation, isl, gs, up, times[a:b], min_el, max_range)
        for a, b in pairwise(bounds)
    ]
    parts = execute(_run_pairs, jobs, [j.times.size for j in jobs], workers, progress)
    out = np.concatenate([p["rtt_ms"] for p in parts])
    return out[0] if np.ndim(times_unix_s) == 0 else out
