"""Walker-delta shells and their +Grid laser links (``skyfleet.orbits._walker``).

Outside references: sgp4 (``Satrec.sgp4init``, an independent propagator with J2, J3, J4 and
short-period terms) fed the same circular elements, rotated to Earth-fixed with skyfield's
``theta_GMST1982``; the published Starlink shell-1 period; and closed-form circle geometry.
"""

from __future__ import annotations

import numpy as np
import pytest
from sgp4.api import WGS84, Satrec
from skyfield.sgp4lib import theta_GMST1982

from skyfleet.orbits import WalkerShell, preset, preset_names

R_EQ_KM = 6_378.137  # WGS84 equatorial radius, from which the filings measure altitude
JD_1949_12_31 = 2_433_281.5  # sgp4init's epoch origin
JD_UNIX_EPOCH = 2_440_587.5
SHELLS = [(name, sh) for name in preset_names() for sh in preset(name).shells]


def jd_split(t_unix_s):
    t = np.asarray(t_unix_s, dtype=np.float64)
    days = np.floor(t / 86_400.0)
    return JD_UNIX_EPOCH + days, t / 86_400.0 - days


def sgp4_satellite(shell: WalkerShell, plane: int, slot: int) -> Satrec:
    """An sgp4 satellite with the shell's elements for (plane, slot): circular (e = 1e-9),
    argument of perigee 0 so that mean anomaly = argument of latitude, and the shell's Keplerian
    mean motion, epoch, right ascension and phasing."""
    P, S, F = shell.planes, shell.sats_per_plane, shell.phasing
    sat = Satrec()
    sat.sgp4init(
        WGS84,
        "i",
        1,
        shell.epoch_unix_s / 86_400.0 + (JD_UNIX_EPOCH - JD_1949_12_31),
        0.0,
        0.0,
        0.0,
        1e-9,
        0.0,
        np.radians(shell.inclination_deg),
        2.0 * np.pi * (slot / S + F * plane / (P * S)),
        shell.mean_motion_rad_s * 60.0,  # rad/min
        np.radians(shell.raan0_deg) + 2.0 * np.pi * plane / P,
    )
    return sat


def sgp4_ecef_km(sat: Satrec, t_unix_s) -> np.ndarray:
    """sgp4 TEME positions rotated to Earth-fixed by skyfield's GMST 1982 (UT1 = UTC, as the
    shell model takes it), (3, T)."""
    jd, fr = jd_split(t_unix_s)
    err, r, _ = sat.sgp4_array(jd, fr)
    assert not err.any()
    theta, _ = theta_GMST1982(jd, fr)
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([c * r[:, 0] + s * r[:, 1], -s * r[:, 0] + c * r[:, 1], r[:, 2]])


def orbit_angles_deg(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earth-fixed node longitude and argument of latitude of each satellite from positions
    ``(3, P, S)`` of whole planes (the plane's normal from two of its satellites)."""
    h = np.cross(pos[:, :, 0], pos[:, :, 1], axis=0)  # (3, P); slot 1 is ahead of slot 0
    h /= np.linalg.norm(h, axis=0)
    node = np.arctan2(h[0], -h[1])
    n_hat = np.stack([np.cos(node), np.sin(node), np.zeros_like(node)])
    m_hat = np.cross(h, n_hat, axis=0)
    u = np.arctan2(np.einsum("ip,ips->ps", m_hat, pos), np.einsum("ip,ips->ps", n_hat, pos))
    return np.degrees(node), np.degrees(u)


def wrap_deg(x):
    return (np.asarray(x) + 180.0) % 360.0 - 180.0


@pytest.mark.parametrize(("preset_name", "shell"), SHELLS, ids=[f"{n}-{s.name}" for n, s in SHELLS])
def test_every_satellite_flies_at_its_shell_altitude(preset_name, shell):
    """Reference: the filing's altitude, measured from the WGS84 equatorial radius. |r| - 6378.137
    km equals it within 1 m for every satellite, at a scalar time and at an array of times."""
    t = shell.epoch_unix_s + np.array([-86_400.0, 0.0, 1_234.5, 10 * 86_400.0])
    many = shell.positions_km(t)
    one = shell.positions_km(float(t[2]))
    assert many.shape == (3, shell.size, t.size) and one.shape == (3, shell.size)
    np.testing.assert_allclose(one, many[..., 2], atol=1e-9)
    assert np.abs(np.linalg.norm(many, axis=0) - R_EQ_KM - shell.altitude_km).max() < 1e-3


def test_constellation_numbers_shells_one_after_another():
    """A multi-shell preset is its shells' positions concatenated, in order, for scalar and array
    times."""
    c = preset("kuiper")
    t = 1_767_225_600.0 + np.array([0.0, 600.0])
    whole = c.positions_km(t)
    parts = np.concatenate([sh.positions_km(t) for sh in c.shells], axis=1)
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(c.positions_km(float(t[1])), parts[..., 1])
    assert c.size == whole.shape[1] == len(c.sat_names)


def test_period_at_550_km_matches_the_published_starlink_figure():
    """Reference: Starlink shell 1 (550 km) is quoted with an orbital period of about 95.5 min
    (SpaceX FCC filing SAT-MOD-20190830-00087); Kepler's third law gives 95.65 min. 0.3 min."""
    shell = preset("starlink-s1").shells[0]
    assert abs(shell.period_s / 60.0 - 95.5) < 0.3


def test_j2_node_regression_matches_sgp4():
    """Reference: sgp4 propagating the same circular orbit (53 deg, 550 km) for one day; its node
    is fitted from the orbit normal r x v in TEME. Starlink shell 1 regresses about -4.49
    deg/day. Tolerance 0.05 deg/day (sgp4 adds J2^2 and J4 terms, ~0.001 deg/day here)."""
    shell = WalkerShell("S1", 550.0, 53.0, 72, 22, raan0_deg=30.0)
    sat = sgp4_satellite(shell, 0, 0)
    t = shell.epoch_unix_s + np.linspace(0.0, 86_400.0, 97)
    err, r, v = sat.sgp4_array(*jd_split(t))
    assert not err.any()
    h = np.cross(r, v)
    node = np.unwrap(np.arctan2(h[:, 0], -h[:, 1]))
    sgp4_rate = np.polyfit((t - shell.epoch_unix_s) / 86_400.0, np.degrees(node), 1)[0]
    ours = np.degrees(shell.raan_rate_rad_s) * 86_400.0
    assert abs(ours - sgp4_rate) < 0.05
    assert -4.6 < ours < -4.4


def test_positions_follow_sgp4_over_one_orbit():
    """Reference: sgp4 with the same elements for every satellite of a 6 x 5 shell, over one
    orbit. The shell model has only secular J2; sgp4's J2 short-period terms move a 550 km
    orbit by ~7 km radially and ~8 km along track, so the measured worst is 14.7 km; the
    tolerance is 20 km (2% of a 1,123 km slant range, under 0.1 deg of elevation error)."""
    shell = WalkerShell("T", 550.0, 53.0, 6, 5, phasing=1, raan0_deg=30.0)
    t = shell.epoch_unix_s + np.linspace(0.0, shell.period_s, 240)
    ours = shell.positions_km(t)
    worst = 0.0
    for p in range(shell.planes):
        for s in range(shell.sats_per_plane):
            ref = sgp4_ecef_km(sgp4_satellite(shell, p, s), t)
            dist = np.linalg.norm(ours[:, p * shell.sats_per_plane + s, :] - ref, axis=0)
            worst = max(worst, float(dist.max()))
    assert worst < 20.0


def test_epoch_puts_plane_0_slot_0_at_its_ascending_node():
    """At the epoch satellite 0 is on the equator, heading north, at right ascension raan0_deg
    (Earth-fixed longitude raan0 - GMST, with skyfield's GMST as the reference)."""
    shell = WalkerShell("T", 600.0, 60.0, 3, 4, raan0_deg=40.0)
    t = np.array([shell.epoch_unix_s, shell.epoch_unix_s + 1.0])
    pos = shell.positions_km(t)[:, 0, :]
    theta, _ = theta_GMST1982(*jd_split(t))
    assert abs(pos[2, 0]) < 1e-6 and pos[2, 1] > 1.0  # on the equator, then north
    lon = np.degrees(np.arctan2(pos[1, 0], pos[0, 0]))
    assert abs(wrap_deg(lon - (40.0 - np.degrees(theta[0])))) < 1e-6


@pytest.mark.parametrize("preset_name", ["starlink-s1", "kuiper"])
def test_planes_are_evenly_spaced_in_node_and_slots_in_argument_of_latitude(preset_name):
    """Walker delta i:T/P/F geometry: node longitudes 360/P apart, slots 360/S apart within a
    plane, and plane p+1 ahead by F x 360/(P S) in argument of latitude; within 1e-6 deg."""
    for shell in preset(preset_name).shells:
        P, S, F = shell.planes, shell.sats_per_plane, shell.phasing
        for t in (shell.epoch_unix_s, shell.epoch_unix_s + 4_321.0):
            node, u = orbit_angles_deg(shell.positions_km(t).reshape(3, P, S))
            assert np.abs(wrap_deg(np.diff(node) - 360.0 / P)).max() < 1e-6
            assert np.abs(wrap_deg(np.diff(u, axis=1) - 360.0 / S)).max() < 1e-6
            assert np.abs(wrap_deg(np.diff(u[:, 0]) - F * 360.0 / (P * S))).max() < 1e-6


@pytest.mark.parametrize(("preset_name", "shell"), SHELLS, ids=[f"{n}-{s.name}" for n, s in SHELLS])
def test_plus_grid_gives_every_satellite_four_laser_neighbours(preset_name, shell):
    """+Grid: fore, aft, left and right; no self links, no duplicates."""
    pairs = shell.isl_pairs()
    assert pairs.shape == (2 * shell.size, 2)
    assert np.all(pairs[:, 0] != pairs[:, 1])
    assert np.unique(np.sort(pairs, axis=1), axis=0).shape[0] == pairs.shape[0]
    assert np.all(np.bincount(pairs.ravel(), minlength=shell.size) == 4)


def test_constellation_links_stay_within_each_shell():
    """Multi-shell presets: every satellite has 4 links, and both ends are in the same shell."""
    for name in preset_names():
        c = preset(name)
        pairs = c.isl_pairs()
        assert np.all(np.bincount(pairs.ravel(), minlength=c.size) == 4)
        shell_of = np.repeat(np.arange(len(c.shells)), [sh.size for sh in c.shells])
        assert np.all(shell_of[pairs[:, 0]] == shell_of[pairs[:, 1]])


@pytest.mark.parametrize(("preset_name", "shell"), SHELLS, ids=[f"{n}-{s.name}" for n, s in SHELLS])
def test_in_plane_links_are_the_chord_between_neighbouring_slots(preset_name, shell):
    """Reference: the chord of a circle of radius r between points 360/S apart, 2 r sin(pi/S);
    within 1 m, at two times."""
    pairs = shell.isl_pairs()
    S = shell.sats_per_plane
    same_plane = pairs[:, 0] // S == pairs[:, 1] // S
    assert np.count_nonzero(same_plane) == shell.size
    chord = 2.0 * shell.radius_km * np.sin(np.pi / S)
    pos = shell.positions_km(shell.epoch_unix_s + np.array([0.0, 2_000.0]))
    a, b = pairs[same_plane].T
    length = np.linalg.norm(pos[:, a, :] - pos[:, b, :], axis=0)
    assert np.abs(length - chord).max() < 1e-3


@pytest.mark.parametrize("phasing", [0, 1, 2, 5, 6])
def test_cross_plane_links_join_the_same_phase_neighbour_also_across_the_seam(phasing):
    """Every cross-plane link, including the one from the last plane back to plane 0, joins
    satellites whose nodes differ by 360/P and whose arguments of latitude differ by the Walker
    phase step F x 360/(P S): the seam link is geometrically the same as any other."""
    shell = WalkerShell("X", 550.0, 53.0, 7, 9, phasing=phasing, raan0_deg=123.0)
    P, S = shell.planes, shell.sats_per_plane
    node, u = orbit_angles_deg(shell.positions_km(shell.epoch_unix_s + 777.0).reshape(3, P, S))
    node, u = np.repeat(node, S), u.ravel()
    pairs = shell.isl_pairs()
    cross = pairs[pairs[:, 0] // S != pairs[:, 1] // S]
    assert cross.shape[0] == shell.size
    # Orient each link from plane p to plane p+1 (mod P).
    a, b = cross.T
    flip = (b // S - a // S) % P != 1
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    assert np.all((b // S - a // S) % P == 1)
    assert np.abs(wrap_deg(node[b] - node[a] - 360.0 / P)).max() < 1e-6
    assert np.abs(wrap_deg(u[b] - u[a] - phasing * 360.0 / (P * S))).max() < 1e-6
    seam = (a // S == P - 1) & (b // S == 0)
    assert np.count_nonzero(seam) == S


def test_starlink_s1_cross_plane_links_are_short_and_go_to_the_nearest_satellite():
    """Starlink shell 1: planes 5 deg apart, so a cross-plane laser link spans at most
    2 r sin(2.5 deg) = 604 km plus the phase offset, well under 1,500 km; and its partner is the
    nearest satellite of the neighbouring plane (within 1 m), across the seam too. Three times
    over an orbit."""
    shell = preset("starlink-s1").shells[0]
    P, S = shell.planes, shell.sats_per_plane
    pairs = shell.isl_pairs()
    cross = pairs[pairs[:, 0] // S != pairs[:, 1] // S]
    for t in shell.epoch_unix_s + np.array([0.0, 1_900.0, 3_800.0]):
        pos = shell.positions_km(t)
        length = np.linalg.norm(pos[:, cross[:, 0]] - pos[:, cross[:, 1]], axis=0)
        assert length.max() < 1_500.0
        planes = pos.reshape(3, P, S)
        for x, y in (cross.T, cross[:, ::-1].T):
            to_plane = planes[:, y // S, :]  # (3, E, S): every satellite of the partner's plane
            nearest = np.linalg.norm(to_plane - pos[:, x, None], axis=0).min(axis=1)
            assert np.all(length - nearest < 1e-3)
