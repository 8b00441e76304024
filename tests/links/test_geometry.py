"""Link geometry (``skyfleet.links._geometry``) against outside references.

Elevation and visibility against skyfield's topocentric ``altaz`` for SGP4 satellites (the TLE
fixture ``tests/data/sample_tles.txt``: two real ISS sets and five synthetic Starlink-like sets);
slant ranges against the published Starlink figure and exact ellipsoid geometry; great circles
against published city-pair distances and the WGS84 meridian; fiber delay against its definition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skyfield.api import EarthSatellite, load, wgs84
from skyfield.framelib import itrs

from skyfleet.links import elevation_deg, fiber_one_way_ms, great_circle_km, max_slant_range_km
from skyfleet.links._geometry import segment_clears_earth, visible_pairs
from skyfleet.orbits import TleConstellation, geodetic_to_ecef, up_vector

TS = load.timescale(builtin=True)
SAMPLE = Path(__file__).parents[1] / "data" / "sample_tles.txt"
C_KM_S = 299_792.458
R_EQ_KM = 6_378.137
OMEGA_EARTH_RAD_S = 7.292_115e-5
MIN_EL_DEG = 25.0


def skyfield_time(t_unix_s):
    """skyfield Time for UTC unix seconds (whole days through the calendar, so leap seconds are
    not counted twice, as they are not in unix time)."""
    t = np.asarray(t_unix_s, dtype=np.float64)
    days = np.floor(t / 86_400.0)
    return TS.utc(1970, 1, 1 + days, 0, 0, t - days * 86_400.0)


def sample_satellites() -> list[EarthSatellite]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return [
        EarthSatellite(lines[k + 1], lines[k + 2], lines[k], TS) for k in range(0, len(lines), 3)
    ]


def epoch_unix_s(sat: EarthSatellite) -> float:
    return (sat.model.jdsatepoch - 2_440_587.5 + sat.model.jdsatepochF) * 86_400.0


# A 5-degree ground grid, poles and dateline included.
GRID_LAT, GRID_LON = (
    a.ravel() for a in np.meshgrid(np.arange(-90.0, 90.1, 5.0), np.arange(-180.0, 180.0, 5.0))
)
TOPOS = wgs84.latlon(GRID_LAT, GRID_LON)


def snapshot():
    """Every sample satellite at 9 times over +-1 day of its epoch, each (satellite, time) taken
    as one 'satellite' of an Earth-fixed snapshot (visibility is pure geometry).

    Returns skyfield's ITRS positions (3, K), its elevations and ranges (M, K) from the grid,
    the unix times (K,) and the satellite index of each column."""
    pos, alt, rng, times, which = [], [], [], [], []
    for k, sat in enumerate(sample_satellites()):
        for t in epoch_unix_s(sat) + np.linspace(-86_400.0, 86_400.0, 9):
            st = skyfield_time(t)
            here = sat.at(st)
            pos.append(here.frame_xyz(itrs).km)
            # skyfield's altaz, vectorised over sites: the GCRS line of sight rotated into each
            # site's horizon frame (equals (sat - site).at(t).altaz() for one site).
            los = np.einsum(
                "ijm,jm->im",
                TOPOS.rotation_at(st),
                here.position.km[:, None] - TOPOS.at(st).position.km,
            )
            alt.append(np.degrees(np.arctan2(los[2], np.hypot(los[0], los[1]))))
            rng.append(np.linalg.norm(los, axis=0))
            times.append(t)
            which.append(k)
    return (
        np.stack(pos, axis=1),
        np.stack(alt, axis=1),
        np.stack(rng, axis=1),
        np.array(times),
        np.array(which),
    )


@pytest.fixture(scope="module")
def snap():
    return snapshot()


def test_elevation_matches_skyfield_altaz_within_a_hundredth_of_a_degree(snap):
    """Reference: skyfield ``(sat - wgs84.latlon(...)).at(t).altaz()`` for every grid point and
    snapshot satellite, above and below the horizon, from the same satellite positions."""
    sat_km, ref_alt, _, _, _ = snap
    ground, up = geodetic_to_ecef(GRID_LAT, GRID_LON), up_vector(GRID_LAT, GRID_LON)
    el = elevation_deg(ground[:, :, None], up[:, :, None], sat_km[:, None, :])
    assert el.shape == ref_alt.shape
    assert np.abs(el - ref_alt).max() < 0.01
    # Scalar case: one ground point, one satellite.
    i, j = np.unravel_index(np.argmax(ref_alt), ref_alt.shape)
    one = elevation_deg(ground[:, i], up[:, i], sat_km[:, j])
    assert np.ndim(one) == 0 and abs(one - ref_alt[i, j]) < 0.01


def test_elevation_from_skyfleet_tle_positions_matches_skyfield_within_the_ut1_allowance(snap):
    """End to end: skyfleet's own TLE positions (UT1 taken as UTC) against skyfield's elevations.
    Tolerance per pair: the Earth-rotation shift |UT1-UTC| x omega x |r| seen across the slant
    range, plus 0.005 deg."""
    _, ref_alt, ref_rng, times, which = snap
    c = TleConstellation.from_file(SAMPLE)
    ours = np.stack([c.positions_km(t)[:, k] for t, k in zip(times, which, strict=True)], axis=1)
    ground, up = geodetic_to_ecef(GRID_LAT, GRID_LON), up_vector(GRID_LAT, GRID_LON)
    el = elevation_deg(ground[:, :, None], up[:, :, None], ours[:, None, :])
    shift_km = OMEGA_EARTH_RAD_S * np.abs(skyfield_time(times).dut1) * np.linalg.norm(ours, axis=0)
    tol_deg = np.degrees(shift_km[None, :] / ref_rng) + 0.005
    above = ref_alt > 0.0
    assert np.count_nonzero(above) > 100
    assert np.all(np.abs(el - ref_alt)[above] < tol_deg[above])


def test_visible_pairs_are_exactly_the_satellites_skyfield_sees_above_25_degrees(snap):
    """Reference: skyfield elevations. The sets agree exactly, except for pairs within 0.01 deg of
    the 25-degree mask; the returned slant ranges equal skyfield's distances within 1 m. The search
    radius is the bound for the snapshot's highest satellite, so only the elevation test decides."""
    sat_km, ref_alt, ref_rng, _, _ = snap
    ground, up = geodetic_to_ecef(GRID_LAT, GRID_LON), up_vector(GRID_LAT, GRID_LON)
    top_km = float(np.linalg.norm(sat_km, axis=0).max()) - R_EQ_KM
    gi, si, rng = visible_pairs(
        cKDTree(sat_km.T), sat_km, ground, up, MIN_EL_DEG, max_slant_range_km(top_km, MIN_EL_DEG)
    )
    assert np.all(np.diff(gi) >= 0)  # sorted by ground index
    got = np.zeros(ref_alt.shape, dtype=bool)
    got[gi, si] = True
    want = ref_alt >= MIN_EL_DEG
    assert np.count_nonzero(want) > 200
    differ = got != want
    assert np.all(np.abs(ref_alt[differ] - MIN_EL_DEG) < 0.01)
    assert np.abs(rng - ref_rng[gi, si]).max() < 1e-3


def test_visible_pairs_with_no_ground_points_is_empty():
    sat = geodetic_to_ecef([0.0, 10.0], [0.0, 10.0], 550.0)
    gi, si, rng = visible_pairs(
        cKDTree(sat.T), sat, np.zeros((3, 0)), np.zeros((3, 0)), 25.0, 1_200.0
    )
    assert gi.size == si.size == rng.size == 0


def test_tle_visibility_search_radius_misses_no_satellite_above_the_mask():
    """Reference: skyfield sees STARLINK-9004 (97.6 deg, the fixture's polar set) at 25.23 deg
    elevation from (-87, -145) at epoch + 57,900 s (2024-01-02T22:05:00Z), range 1,193.86 km.
    The engine's search radius for a catalogue of this satellite must include it."""
    sat = sample_satellites()[5]
    assert sat.name == "STARLINK-9004"
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[15:18]
    c = TleConstellation.from_text("\n".join(lines))
    t = epoch_unix_s(sat) + 57_900.0
    alt, _, _ = (sat - wgs84.latlon(-87.0, -145.0)).at(skyfield_time(t)).altaz()
    assert alt.degrees > MIN_EL_DEG + 0.2  # clearly above the mask
    pos = c.positions_km(t)
    ground, up = geodetic_to_ecef([-87.0], [-145.0]), up_vector([-87.0], [-145.0])
    radius = max_slant_range_km(c.max_altitude_km, MIN_EL_DEG)
    _, si, _ = visible_pairs(cKDTree(pos.T), pos, ground, up, MIN_EL_DEG, radius)
    assert si.tolist() == [0]


def slant_range_km(r_sat_km, ground_km, direction):
    """Distance along ``direction`` (unit, (3, ...)) from a ground point to the sphere of radius
    ``r_sat_km``: the positive root of |g + rho d| = r."""
    gd = np.sum(ground_km * direction, axis=0)
    return -gd + np.sqrt(gd**2 - np.sum(ground_km**2, axis=0) + r_sat_km**2)


def test_slant_range_at_550_km_and_25_degrees_matches_the_published_starlink_figure():
    """Reference: SpaceX's filing SAT-MOD-20181108-00083 gives a 940.7 km coverage radius on the
    ground for the 550 km shell at 25 deg minimum elevation (the figure Hypatia, Kassing et al.
    2020, builds its Starlink model on). Spherical geometry (R = 6,378.137 km) reproduces it:
    Earth central angle 90 - el - asin(R cos el / r) = 8.45 deg, 940.6 km of arc; and the slant
    range at that edge is sqrt(r^2 - (R cos el)^2) - R sin el = 1,123.4 km.

    ``max_slant_range_km`` is documented as an upper bound over the whole WGS84 ellipsoid
    (polar-radius Earth, 1% margin), so it is not the spherical figure: it must be at least
    1,123 km and within 5% of it (it is 1,173 km, 4.4% above)."""
    el = np.radians(MIN_EL_DEG)
    r = R_EQ_KM + 550.0
    central = np.pi / 2 - el - np.arcsin(R_EQ_KM * np.cos(el) / r)
    assert abs(R_EQ_KM * central - 940.7) < 1.0
    spherical = np.sqrt(r**2 - (R_EQ_KM * np.cos(el)) ** 2) - R_EQ_KM * np.sin(el)
    assert abs(spherical - 1_123.0) < 15.0
    bound = max_slant_range_km(550.0, MIN_EL_DEG)
    assert spherical <= bound <= 1.05 * spherical


@pytest.mark.parametrize(
    ("alt_km", "min_el_deg"), [(550.0, 25.0), (340.0, 25.0), (630.0, 30.0), (1_200.0, 10.0)]
)
def test_max_slant_range_bounds_the_exact_range_everywhere_on_the_ellipsoid(alt_km, min_el_deg):
    """Reference: exact geometry on WGS84 (skyfield's ground points, the ellipsoid normal as the
    local up, every azimuth): the range to the shell sphere at exactly the minimum elevation never
    exceeds ``max_slant_range_km``."""
    lat, az = np.meshgrid(np.linspace(-90.0, 90.0, 37), np.radians(np.arange(0.0, 360.0, 15.0)))
    lat, az = lat.ravel(), az.ravel()
    ground = wgs84.latlon(lat, 0.0).itrs_xyz.km
    up = up_vector(lat, 0.0)
    east = np.stack([np.zeros_like(lat), np.ones_like(lat), np.zeros_like(lat)])
    north = np.cross(up, east, axis=0)
    el = np.radians(min_el_deg)
    d = np.cos(el) * (np.cos(az) * north + np.sin(az) * east) + np.sin(el) * up
    exact = slant_range_km(R_EQ_KM + alt_km, ground, d)
    bound = max_slant_range_km(alt_km, min_el_deg)
    assert exact.max() <= bound
    assert bound < 1.06 * exact.max()  # a bound, not a gross over-estimate


@pytest.mark.parametrize(
    ("a", "b", "published_km"),
    [
        ((40.7128, -74.0060), (51.5074, -0.1278), 5_570.0),  # New York - London
        ((-33.8688, 151.2093), (34.0522, -118.2437), 12_051.0),  # Sydney - Los Angeles
        ((51.5074, -0.1278), (48.8566, 2.3522), 344.0),  # London - Paris
        ((34.0522, -118.2437), (40.7128, -74.0060), 3_936.0),  # Los Angeles - New York
        ((90.0, 0.0), (-90.0, 0.0), 20_003.93),  # pole to pole along a meridian (WGS84)
        ((0.0, 0.0), (0.0, 90.0), 10_018.75),  # a quarter of the equator (WGS84)
    ],
)
def test_great_circle_matches_published_distances_within_half_a_percent(a, b, published_km):
    """References: published great-circle city distances (New York-London 5,570 km, Sydney-Los
    Angeles 12,051 km, London-Paris 344 km, Los Angeles-New York 3,936 km) and the WGS84
    meridian (20,003.93 km pole to pole) and equator (40,075.017 km / 4). The mean sphere is
    documented to be within 0.5% of the geodesic."""
    got = great_circle_km(a[0], a[1], b[0], b[1])
    assert np.ndim(got) == 0
    assert abs(got - published_km) < 0.005 * published_km
    # Symmetric, and arrays broadcast (one origin to two destinations).
    assert abs(great_circle_km(b[0], b[1], a[0], a[1]) - got) < 1e-9
    both = great_circle_km(a[0], a[1], np.array([b[0], a[0]]), np.array([b[1], a[1]]))
    assert both.shape == (2,)
    np.testing.assert_allclose(both, [got, 0.0], atol=1e-6)


def test_great_circle_crosses_the_dateline_the_short_way():
    """Two points 2 deg of longitude apart across the dateline on the equator: 2/360 of the mean
    circumference (222.4 km), not the 358-degree way round."""
    got = great_circle_km(0.0, 179.0, 0.0, -179.0)
    assert abs(got - 2.0 * np.pi * 6_371.0088 * 2.0 / 360.0) < 1e-6


def test_fiber_one_way_delay_uses_the_group_index_of_single_mode_fiber():
    """Reference: light in standard single-mode fiber (group index 1.467, ITU-T G.652 figure)
    covers 1,000 km in 1000 x 1.467 / 299,792.458 s = 4.8934 ms; inflation scales it."""
    expected = 1000.0 * 1.467 / C_KM_S * 1e3
    assert abs(fiber_one_way_ms(1000.0) - expected) < 1e-12
    assert abs(expected - 4.8934) < 1e-4
    np.testing.assert_allclose(
        fiber_one_way_ms(np.array([[0.0, 1000.0], [2000.0, 500.0]]), inflation=2.1),
        np.array([[0.0, 2.1], [4.2, 1.05]]) * expected,
        rtol=1e-12,
    )


def test_segment_clears_earth_against_the_chord_midpoint_distance():
    """Reference: a chord of a circle of radius r subtending 2 theta passes r cos(theta) from the
    centre. Chords at 550 km whose lowest point is 1 km above / below the 80 km clearance are
    accepted / rejected; a segment whose nearest point to the centre is an end point is judged
    there."""
    r = R_EQ_KM + 550.0
    lowest = R_EQ_KM + 80.0 + np.array([1.0, -1.0, 300.0, -300.0])
    theta = np.arccos(lowest / r)
    tilt = np.radians(30.0)  # the plane of the chords, tilted about x
    a = r * np.stack([np.cos(theta), -np.sin(theta) * np.cos(tilt), -np.sin(theta) * np.sin(tilt)])
    b = r * np.stack([np.cos(theta), np.sin(theta) * np.cos(tilt), np.sin(theta) * np.sin(tilt)])
    assert segment_clears_earth(a, b).tolist() == [True, False, True, False]
    # Radial segment from 550 km up to 1,000 km: its nearest point is the lower end.
    up_a = np.array([[r], [0.0], [0.0]])
    up_b = np.array([[R_EQ_KM + 1_000.0], [0.0], [0.0]])
    assert segment_clears_earth(up_a, up_b).tolist() == [True]
    assert segment_clears_earth(up_a, up_b, clearance_km=551.0).tolist() == [False]
