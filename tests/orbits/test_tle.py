"""TLE catalogues (``skyfleet.orbits._tle``) checked against skyfield's ``EarthSatellite``.

The fixture ``tests/data/sample_tles.txt`` holds two real element sets of the ISS (NORAD 25544:
the 2008 set that Wikipedia's "Two-line element set" article uses, and one from 2018) and five
synthetic Starlink-like sets (catalogue numbers 90001-90005, which are not real objects) with
shell-like elements at 53, 70, 97.6 and 43 degrees; every line's checksum is valid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sgp4.api import Satrec
from skyfield.api import EarthSatellite, load
from skyfield.framelib import itrs

from skyfleet.errors import TLEError
from skyfleet.orbits import TleConstellation, WalkerShell, parse_tle

TS = load.timescale(builtin=True)
SAMPLE = Path(__file__).parents[1] / "data" / "sample_tles.txt"


def skyfield_time(t_unix_s):
    """skyfield Time for UTC unix seconds (whole days through the calendar, so leap seconds are
    not counted twice, as they are not in unix time)."""
    t = np.asarray(t_unix_s, dtype=np.float64)
    days = np.floor(t / 86_400.0)
    return TS.utc(1970, 1, 1 + days, 0, 0, t - days * 86_400.0)


def tle_checksum(line: str) -> int:
    """The TLE checksum: digits summed, each minus sign counts 1, modulo 10."""
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


def sample_sets() -> list[tuple[str, str, str]]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return [(lines[k], lines[k + 1], lines[k + 2]) for k in range(0, len(lines), 3)]


def epoch_unix_s(sat: Satrec) -> float:
    return (sat.jdsatepoch - 2_440_587.5 + sat.jdsatepochF) * 86_400.0


def test_sample_fixture_has_valid_checksums_and_reads_with_names():
    """Reference: the checksum rule of the TLE format (NORAD/Space-Track), computed here."""
    sets = sample_sets()
    assert len(sets) == 7
    for _, l1, l2 in sets:
        assert len(l1) == len(l2) == 69
        assert int(l1[68]) == tle_checksum(l1) and int(l2[68]) == tle_checksum(l2)
    c = TleConstellation.from_file(SAMPLE)
    assert c.size == 7 and c.name == "sample_tles"
    assert c.sat_names == tuple(name for name, _, _ in sets)


def test_a_line_with_a_wrong_checksum_is_rejected_naming_the_line():
    """A one-digit change in line 2 (inclination 51.6416 -> 51.6417) breaks its checksum."""
    name, l1, l2 = sample_sets()[0]
    bad = l2.replace("51.6416", "51.6417")
    with pytest.raises(TLEError, match="line 3"):
        parse_tle("\n".join([name, l1, bad]))


def test_positions_agree_with_skyfield_within_1_km_over_two_days():
    """Reference: skyfield ``EarthSatellite(l1, l2).at(t).frame_xyz(itrs)``, SGP4 plus the IAU
    TEME -> GCRS -> ITRS chain at true UT1. skyfleet rotates TEME by GMST at UTC, so the
    difference is dominated by |UT1 - UTC| (up to 0.9 s, 0.45 km at 550 km); tolerance 1 km.
    25 times over +-1 day around each set's epoch (array), and one scalar time."""
    c = TleConstellation.from_file(SAMPLE)
    worst = 0.0
    for k, (name, l1, l2) in enumerate(sample_sets()):
        ref_sat = EarthSatellite(l1, l2, name, TS)
        t = epoch_unix_s(ref_sat.model) + np.linspace(-86_400.0, 86_400.0, 25)
        ours = c.positions_km(t)
        assert ours.shape == (3, c.size, t.size)
        ref = ref_sat.at(skyfield_time(t)).frame_xyz(itrs).km
        dist = np.linalg.norm(ours[:, k, :] - ref, axis=0)
        worst = max(worst, float(dist.max()))
        scalar = c.positions_km(float(t[7]))
        assert scalar.shape == (3, c.size)
        np.testing.assert_allclose(scalar[:, k], ours[:, k, 7], atol=1e-9)
    assert worst < 1.0


def test_max_altitude_bounds_every_propagated_altitude_closely():
    """Reference: skyfield geocentric distance over one day. ``max_altitude_km`` bounds the
    visibility search, so it must be at or above the highest altitude SGP4 reaches (short-period
    terms lift it ~10 km over the mean apogee), yet no more than 30 km above it."""
    c = TleConstellation.from_file(SAMPLE)
    highest = 0.0
    for name, l1, l2 in sample_sets():
        sat = EarthSatellite(l1, l2, name, TS)
        t = epoch_unix_s(sat.model) + np.linspace(0.0, 86_400.0, 2_000)
        highest = max(highest, float(sat.at(skyfield_time(t)).distance().km.max()) - 6_378.135)
    assert highest <= c.max_altitude_km < highest + 30.0


def _tle_pair(satnum: int, epoch: dt.datetime, inc: float, raan: float, ma: float, mm: float):
    """TLE lines for a near-circular orbit (e = 1e-4, argument of perigee 0)."""
    year_start = dt.datetime(epoch.year, 1, 1, tzinfo=dt.UTC)
    day = (epoch - year_start).total_seconds() / 86_400.0 + 1.0
    yyddd = (epoch.year % 100) * 1000 + day
    l1 = f"1 {satnum:05d}U 26001A   {yyddd:014.8f}  .00000000  00000-0  00000-0 0  999"
    l2 = f"2 {satnum:05d} {inc:8.4f} {raan % 360:8.4f} 0001000 {0.0:8.4f} {ma % 360:8.4f} {mm:11.8f}    1"
    assert len(l1) == len(l2) == 68
    return l1 + str(tle_checksum(l1)), l2 + str(tle_checksum(l2))


def walker_catalogue(shell: WalkerShell) -> str:
    """A TLE catalogue of the shell's satellites at its epoch, in the shell's numbering."""
    epoch = dt.datetime.fromtimestamp(shell.epoch_unix_s, dt.UTC)
    rev_per_day = shell.mean_motion_rad_s * 86_400.0 / (2.0 * np.pi)
    P, S, F = shell.planes, shell.sats_per_plane, shell.phasing
    out = []
    for p in range(P):
        for s in range(S):
            raan = shell.raan0_deg + 360.0 * p / P
            u0 = 360.0 * (s / S + F * p / (P * S))
            l1, l2 = _tle_pair(
                50_000 + p * S + s, epoch, shell.inclination_deg, raan, u0, rev_per_day
            )
            out += [f"{shell.name}-{p:02d}-{s:02d}", l1, l2]
    return "\n".join(out)


@pytest.mark.parametrize(
    ("shell", "max_isl_km"),
    [
        # 12 planes 30 deg apart, plane 0 straddling the 0/360 boundary of right ascension.
        (WalkerShell("A", 550.0, 53.0, 12, 16, phasing=1, raan0_deg=359.7), 5_000.0),
        # Sun-synchronous-like polar shell; planes 60 deg apart need links longer than 5,000 km.
        (WalkerShell("B", 560.0, 97.6, 6, 12, phasing=2, raan0_deg=20.0), 20_000.0),
    ],
)
def test_isl_pairs_inferred_from_tles_recover_the_walker_plus_grid(shell, max_isl_km):
    """Reference: the shell the TLEs were written from (its +Grid, by plane and slot), with the
    orbits propagated by sgp4. Every satellite gets exactly 4 laser neighbours, and the links are
    the shell's own, at the catalogue epoch and half an orbit later."""
    c = TleConstellation.from_text(walker_catalogue(shell), max_isl_km=max_isl_km)
    want = {tuple(p) for p in shell.isl_pairs().tolist()}
    for t in (None, shell.epoch_unix_s + shell.period_s / 2.0):
        pairs = c.isl_pairs(t)
        assert np.all(np.bincount(pairs.ravel(), minlength=c.size) == 4)
        assert {tuple(p) for p in pairs.tolist()} == want


def test_isl_pairs_drop_links_longer_than_max_isl_km():
    """8 planes 45 deg apart: cross-plane links reach 2 r sin(22.5 deg) = 5,302 km at the
    equator, over the default 5,000 km cap; the in-plane links (2 r sin(18 deg) = 4,282 km) stay."""
    shell = WalkerShell("C", 550.0, 53.0, 8, 10, phasing=1)
    c = TleConstellation.from_text(walker_catalogue(shell))
    pos = c.positions_km(shell.epoch_unix_s)
    pairs = c.isl_pairs()
    length = np.linalg.norm(pos[:, pairs[:, 0]] - pos[:, pairs[:, 1]], axis=0)
    assert length.max() <= 5_000.0
    assert pairs.shape[0] < shell.isl_pairs().shape[0]
    same_plane = pairs[:, 0] // 10 == pairs[:, 1] // 10
    assert np.count_nonzero(same_plane) == shell.size  # every in-plane link kept


def test_tle_constellation_survives_a_trip_to_a_worker_process():
    """Long runs use spawned workers: the catalogue must pickle and give the same positions."""
    import pickle

    c = TleConstellation.from_file(SAMPLE)
    t = epoch_unix_s(c.satrecs[0]) + np.arange(3) * 60.0
    back = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(back.positions_km(t), c.positions_km(t))
    assert back.sat_names == c.sat_names


def test_tle_link_series_in_parallel_workers_matches_one_process():
    from skyfleet.links import LinkOptions, link_series, resolve_place

    c = TleConstellation.from_file(SAMPLE)
    start = epoch_unix_s(c.satrecs[-1])
    args = (
        c,
        resolve_place("0,0"),
        resolve_place("aws:us-east-1"),
        start,
        1800.0,
        15.0,
        LinkOptions(mode="bent-pipe"),
    )
    one = link_series(*args, workers=1)
    two = link_series(*args, workers=2)
    np.testing.assert_array_equal(one.sat, two.sat)


def test_isl_inference_keeps_neighbouring_shells_apart():
    """Starlink Gen1's first two shells differ by 0.2 deg of inclination and 10 km of altitude:
    each is its own +Grid, and no laser link joins the two."""
    a = WalkerShell("A", 550.0, 53.0, 10, 10)
    b = WalkerShell("B", 540.0, 53.2, 10, 10, raan0_deg=2.5)
    c = TleConstellation.from_text(walker_catalogue(a) + "\n" + walker_catalogue(b))
    pairs = c.isl_pairs()
    in_a = pairs < a.size
    assert np.all(in_a[:, 0] == in_a[:, 1])
    assert np.all(np.bincount(pairs.ravel(), minlength=c.size) == 4)
    assert {tuple(p) for p in pairs[in_a[:, 0]].tolist()} == {
        tuple(p) for p in a.isl_pairs().tolist()
    }
