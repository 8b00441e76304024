"""Routing over laser links checked against networkx and against physical bounds.

The reference graph is built here, independently of skyfleet's link code: ground stations from
skyfield's WGS84 model, visibility from the ellipsoid normal with numpy, laser links from the
Walker +Grid by plane and slot, Earth clearance by closed-form geometry, and shortest paths by
networkx's Dijkstra. Delays are one-way vacuum light time unless said otherwise.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from skyfield.api import wgs84

from skyfleet.links import (
    LinkOptions,
    decision_steps,
    great_circle_km,
    ground_station_rtt_ms,
    link_series_many,
    resolve_place,
)
from skyfleet.links._pairs import pairs_step
from skyfleet.orbits import geodetic_to_ecef, preset, up_vector

C_KM_S = 299_792.458
R_EQ_KM = 6_378.137
R_POLAR_KM = R_EQ_KM * (1.0 - 1.0 / 298.257_223_563)
T0 = 1_767_225_600.0 + 1_234.0  # 2026-01-01T00:20:34Z
MIN_EL_DEG = 25.0

STATIONS = {
    "London": (51.5074, -0.1278),
    "New York": (40.7128, -74.0060),
    "Seattle": (47.6062, -122.3321),
    "Tokyo": (35.6762, 139.6503),
    "Sydney": (-33.8688, 151.2093),
    "Sao Paulo": (-23.5505, -46.6333),
    "Johannesburg": (-26.2041, 28.0473),
    "Singapore": (1.3521, 103.8198),
    "Frankfurt": (50.1109, 8.6821),
    "Chicago": (41.8781, -87.6298),
    "Madrid": (40.4168, -3.7038),
}
LAT = np.array([v[0] for v in STATIONS.values()])
LON = np.array([v[1] for v in STATIONS.values()])


def walker_plus_grid(planes: int, sats: int, phasing: int) -> list[tuple[int, int]]:
    """+Grid written out by plane and slot: next slot in the plane, same slot in the next plane
    (slot + F across the seam from the last plane to plane 0)."""
    links = []
    for p in range(planes):
        for s in range(sats):
            links.append((p * sats + s, p * sats + (s + 1) % sats))
            q = (p + 1) % planes
            links.append((p * sats + s, q * sats + ((s + phasing) % sats if q == 0 else s)))
    return links


def reference_one_way_ms(sat_km: np.ndarray, links: list[tuple[int, int]]) -> np.ndarray:
    """All-pairs station delays (ms, one-way) by networkx Dijkstra: each station is a source
    node with up-links and a separate sink node with down-links, so stations never relay."""
    ground = wgs84.latlon(LAT, LON).itrs_xyz.km  # (3, G)
    normal = ground / np.array([[R_EQ_KM**2], [R_EQ_KM**2], [R_POLAR_KM**2]])
    up = normal / np.linalg.norm(normal, axis=0)
    g = nx.DiGraph()
    for a, b in links:
        pa, pb = sat_km[:, a], sat_km[:, b]
        ab = pb - pa
        s = np.clip(-pa @ ab / (ab @ ab), 0.0, 1.0)  # closest point of the segment to the centre
        if np.linalg.norm(pa + s * ab) < R_EQ_KM + 80.0:
            continue  # a laser link must stay 80 km above the Earth
        w = np.linalg.norm(ab) / C_KM_S * 1e3
        g.add_edge(a, b, weight=w)
        g.add_edge(b, a, weight=w)
    for i in range(LAT.size):
        los = sat_km - ground[:, i, None]
        rng = np.linalg.norm(los, axis=0)
        el = np.degrees(np.arcsin(up[:, i] @ los / rng))
        for j in np.flatnonzero(el >= MIN_EL_DEG):
            w = rng[j] / C_KM_S * 1e3
            g.add_edge(("src", i), int(j), weight=w)
            g.add_edge(int(j), ("dst", i), weight=w)
    out = np.full((LAT.size, LAT.size), np.inf)
    for i in range(LAT.size):
        if ("src", i) not in g:
            continue
        dist = nx.single_source_dijkstra_path_length(g, ("src", i), weight="weight")
        for k in range(LAT.size):
            out[i, k] = 0.0 if k == i else dist.get(("dst", k), np.inf)
    return out


@pytest.fixture(scope="module")
def s1():
    return preset("starlink-s1")


@pytest.fixture(scope="module")
def reference(s1):
    shell = s1.shells[0]
    links = walker_plus_grid(shell.planes, shell.sats_per_plane, shell.phasing)
    return reference_one_way_ms(s1.positions_km(T0), links)


def test_pairs_step_equals_networkx_dijkstra_on_an_independent_graph(s1, reference):
    """Reference: networkx ``single_source_dijkstra_path_length`` on the graph built above, for
    11 stations on five continents over Starlink shell 1. Every one-way delay within 1e-6 ms."""
    sat = s1.positions_km(T0)
    got = pairs_step(
        sat,
        s1.isl_pairs(),
        geodetic_to_ecef(LAT, LON),
        up_vector(LAT, LON),
        MIN_EL_DEG,
        1_200.0,  # search radius: the 25-degree range at 550 km is 1,123-1,162 km on WGS84
    )
    assert got.shape == reference.shape
    assert np.all(np.isfinite(reference))  # every station reaches every other one
    assert np.array_equal(np.isinf(got), np.isinf(reference))
    assert np.abs(got - reference).max() < 1e-6


def test_ground_station_rtt_is_twice_the_reference_delay_at_every_time(s1, reference):
    """``ground_station_rtt_ms`` over an array of two times: shape (T, G, G), float32; step 0
    equals 2 x the networkx delay within float32 resolution (1e-4 ms at 200 ms), step 1 equals
    ``pairs_step`` at that time."""
    times = np.array([T0, T0 + 300.0])
    rtt = ground_station_rtt_ms(s1, LAT, LON, times)
    assert rtt.shape == (2, LAT.size, LAT.size) and rtt.dtype == np.float32
    assert np.abs(rtt[0] - 2.0 * reference).max() < 1e-4
    later = pairs_step(
        s1.positions_km(T0 + 300.0),
        s1.isl_pairs(),
        geodetic_to_ecef(LAT, LON),
        up_vector(LAT, LON),
        MIN_EL_DEG,
        1_200.0,
    )
    assert np.abs(rtt[1] - 2.0 * later).max() < 1e-4
    # A scalar time gives the same matrix as the first step of the array.
    one = ground_station_rtt_ms(s1, LAT, LON, T0)
    np.testing.assert_array_equal(one.reshape(LAT.size, LAT.size), rtt[0])


def test_london_new_york_laser_rtt_is_between_light_in_vacuum_and_the_handley_bound(s1):
    """Lower bound: light in vacuum along the surface great circle, 2 d / c (37.2 ms for
    5,570 km). Upper bound: Handley 2018 ("Delay is Not an Option", HotNets) finds Starlink
    laser paths within a few percent of the great circle at shell altitude; we allow 1.3 x that
    arc, (R + h) / R x d, both ways (52.5 ms). Over 100 minutes at 1-minute steps."""
    london, new_york = STATIONS["London"], STATIONS["New York"]
    d = great_circle_km(*london, *new_york)
    times = T0 + np.arange(0.0, 6_000.0, 60.0)
    lat, lon = zip(london, new_york, strict=True)
    rtt = ground_station_rtt_ms(s1, lat, lon, times)[:, 0, 1]
    lower = 2.0 * d / C_KM_S * 1e3
    upper = 2.0 * 1.3 * d * (6_371.0 + 550.0) / 6_371.0 / C_KM_S * 1e3
    assert np.all(np.isfinite(rtt))
    assert np.all(rtt > lower) and np.all(rtt < upper)


# London, Seattle, Sydney and Tokyo far from their destinations; Washington DC next to one.
SOURCES = [
    "51.5074,-0.1278",
    "47.6062,-122.3321",
    "-33.8688,151.2093",
    "35.6762,139.6503",
    "38.9072,-77.0369",
]
DESTINATIONS = [
    "aws:us-east-1",
    "40.7128,-74.0060",
    "aws:us-east-1",
    "gcp:europe-west1",
    "aws:us-east-1",
]


@pytest.fixture(scope="module")
def series(s1):
    """Half an hour at 60 s steps for five source/destination pairs, in every mode."""
    src = [resolve_place(s) for s in SOURCES]
    dst = [resolve_place(s) for s in DESTINATIONS]
    return {
        mode: link_series_many(s1, src, dst, T0, 1_800.0, 60.0, LinkOptions(mode=mode))
        for mode in ("isl", "bent-pipe", "best")
    }


def test_isl_mode_is_never_faster_than_light_in_vacuum_on_a_straight_line(series):
    """Reference: the straight chord between source and destination (skyfield WGS84 points);
    no path, through space or fiber, beats 2 x chord / c."""
    for s, src, dst in zip(series["isl"], SOURCES, DESTINATIONS, strict=True):
        a, b = resolve_place(src), resolve_place(dst)
        chord = np.linalg.norm(
            wgs84.latlon(a.lat_deg, a.lon_deg).itrs_xyz.km
            - wgs84.latlon(b.lat_deg, b.lon_deg).itrs_xyz.km
        )
        assert np.count_nonzero(np.isfinite(s.rtt_ms)) > 0
        ok = np.isfinite(s.rtt_ms)
        assert np.all(s.rtt_ms[ok] > 2.0 * chord / C_KM_S * 1e3)


def test_bent_pipe_is_never_faster_than_isl_mode_at_the_same_step(series):
    """Laser paths are a superset of bent-pipe paths (the ISL graph keeps the gateways and their
    fiber), and with 60 s steps and 15 s re-assignment every step re-decides the serving
    satellite, so bent-pipe RTT >= ISL RTT at every step, and "best" is the smaller. Tolerance
    1e-6 ms: the ISL graph adds 1e-9 ms to each fiber edge so that csgraph keeps zero-length legs.
    Washington DC -> aws:us-east-1 takes the same bent-pipe path in both modes."""
    t = series["isl"][0].start_unix_s + series["isl"][0].t_s
    assert np.all(decision_steps(t, 15.0, 12.0))
    for isl, bent, best in zip(series["isl"], series["bent-pipe"], series["best"], strict=True):
        assert not np.any(np.isnan(isl.rtt_ms) & np.isfinite(bent.rtt_ms))
        both = np.isfinite(isl.rtt_ms) & np.isfinite(bent.rtt_ms)
        assert np.count_nonzero(both) > 0
        assert np.all(bent.rtt_ms[both] >= isl.rtt_ms[both] - 1e-6)
        np.testing.assert_allclose(best.rtt_ms, np.fmin(isl.rtt_ms, bent.rtt_ms), atol=1e-6)
