"""TLE catalogues (two- or three-line element sets) propagated with sgp4's vectorised SatrecArray.

Positions come out of SGP4 in the TEME frame and are rotated to Earth-fixed km. A satellite whose
propagation fails at a time (decayed, bad elements) gets NaN there: a failure is data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sgp4.api import Satrec, SatrecArray

from skyfleet.errors import TLEError
from skyfleet.orbits._constants import UNIX_EPOCH_JD
from skyfleet.orbits._constellation import check_min_elevation
from skyfleet.orbits._frames import FloatArray, jd_from_unix, teme_to_ecef
from skyfleet.orbits._walker import IntArray


def _checksum_ok(line: str) -> bool:
    total = sum(int(ch) if ch.isdigit() else (1 if ch == "-" else 0) for ch in line[:68])
    return line[68].isdigit() and total % 10 == int(line[68])


def parse_tle(text: str, source: str = "TLE text") -> tuple[list[str], list[Satrec]]:
    """Parse a TLE catalogue: two-line sets, optionally each preceded by a name line.

    Raises :class:`TLEError` naming the line for an empty catalogue, a broken pair, a bad
    checksum or elements sgp4 cannot read.
    """
    names, _, sats = _parse(text, source)
    return names, sats


def _parse(text: str, source: str) -> tuple[list[str], list[tuple[str, str]], list[Satrec]]:
    lines = [ln.rstrip() for ln in text.splitlines()]
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    names: list[str] = []
    pairs: list[tuple[str, str]] = []
    sats: list[Satrec] = []
    k = 0
    while k < len(numbered):
        lineno, ln = numbered[k]
        name = None
        if not ln.startswith("1 "):
            name = ln[2:].strip() if ln.startswith("0 ") else ln.strip()
            k += 1
            if k >= len(numbered):
                raise TLEError(
                    f"{source}: line {lineno}: name {name!r} is not followed by a TLE line 1"
                )
            lineno, ln = numbered[k]
        if k + 1 >= len(numbered):
            raise TLEError(f"{source}: line {lineno}: TLE line 1 has no line 2 after it")
        l1, (lineno2, l2) = ln, numbered[k + 1]
        for no, want, got in ((lineno, "1 ", l1), (lineno2, "2 ", l2)):
            if not got.startswith(want) or len(got) < 69:
                raise TLEError(
                    f"{source}: line {no}: expected TLE line {want.strip()} of 69 characters, got {got[:30]!r}"
                )
            if not _checksum_ok(got):
                raise TLEError(f"{source}: line {no}: checksum does not match")
        try:
            sat = Satrec.twoline2rv(l1[:69], l2[:69])
        except ValueError as exc:
            raise TLEError(
                f"{source}: line {lineno}: sgp4 cannot read these elements ({exc})"
            ) from None
        sats.append(sat)
        pairs.append((l1[:69], l2[:69]))
        names.append(name or f"NORAD {sat.satnum}")
        k += 2
    if not sats:
        raise TLEError(f"{source}: no TLE found (expected lines starting '1 ' and '2 ')")
    return names, pairs, sats


@dataclass(frozen=True)
class TleConstellation:
    """A constellation read from a TLE catalogue.

    ``min_elevation_deg`` is the lowest elevation a terminal uses; ``max_isl_km`` caps inferred
    laser links (see :meth:`isl_pairs`).
    """

    name: str
    sat_names: tuple[str, ...]
    tle_lines: tuple[tuple[str, str], ...] = field(repr=False)
    min_elevation_deg: float = 25.0
    max_isl_km: float = 5_000.0
    description: str = ""

    def __post_init__(self) -> None:
        check_min_elevation(self.min_elevation_deg)

    @cached_property
    def satrecs(self) -> tuple[Satrec, ...]:
        """sgp4 satellite records, one per element set."""
        return tuple(Satrec.twoline2rv(a, b) for a, b in self.tle_lines)

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes get the element lines; sgp4's Satrec does not pickle.
        return {k: v for k, v in self.__dict__.items() if k != "satrecs"}

    @classmethod
    def from_text(
        cls, text: str, name: str = "tle", source: str = "TLE text", **kw: float
    ) -> TleConstellation:
        """Build from TLE catalogue text (see :func:`parse_tle`)."""
        names, lines, sats = _parse(text, source)
        out = cls(
            name,
            tuple(names),
            tuple(lines),
            description=f"{len(lines)} satellites from {source}",
            **kw,
        )
        out.__dict__["satrecs"] = tuple(sats)  # already built while checking the elements
        return out

    @classmethod
    def from_file(cls, path: str | Path, **kw: float) -> TleConstellation:
        """Read a TLE catalogue file (UTF-8 text)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TLEError(f"cannot read TLE file {str(p)!r}: {exc}") from None
        return cls.from_text(text, name=p.stem, source=str(p), **kw)

    @property
    def size(self) -> int:
        """Number of satellites."""
        return len(self.tle_lines)

    @property
    def max_altitude_km(self) -> float:
        """Highest altitude a satellite of the catalogue reaches, km (bounds the visibility search):
        the highest mean apogee plus 25 km for SGP4's short-period terms (up to about 10 km in LEO)."""
        return float(max(s.alta for s in self.satrecs) * 6378.135 + 25.0)

    def _teme(self, t_unix_s: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        t = np.atleast_1d(np.asarray(t_unix_s, dtype=np.float64))
        jd, fr = jd_from_unix(t)
        err, r, v = SatrecArray(list(self.satrecs)).sgp4(jd, fr)
        r = np.where(err[..., None] == 0, r, np.nan)
        return t, np.moveaxis(r, -1, 0), np.moveaxis(v, -1, 0)  # (3, N, T)

    def positions_km(self, t_unix_s: ArrayLike) -> FloatArray:
        """Earth-fixed positions, km: ``(3, N)`` for a scalar time, ``(3, N, T)`` for ``T`` times."""
        scalar = np.ndim(t_unix_s) == 0
        t, r, _ = self._teme(t_unix_s)
        out = teme_to_ecef(r, t[None, :])
        return out[..., 0] if scalar else out

    @property
    def epochs_unix_s(self) -> FloatArray:
        """Epoch of each element set, UTC unix seconds."""
        return np.array(
            [(s.jdsatepoch - UNIX_EPOCH_JD + s.jdsatepochF) * 86_400.0 for s in self.satrecs]
        )

    def isl_pairs(self, t_unix_s: float | None = None) -> IntArray:
        """Infer a +Grid of laser links from the orbits at ``t_unix_s`` (default: the newest epoch).

        Satellites are grouped into shells by inclination (within 0.1 degree) and semi-major axis
        (within 5 km), into planes by node (within 1 degree), and ordered by argument of latitude;
        each links to the next in its plane and to the nearest in argument of latitude in the next
        plane of its shell. Links over ``max_isl_km`` are dropped.
        """
        if t_unix_s is None:
            t_unix_s = float(np.max(self.epochs_unix_s))
        _, r, v = self._teme(t_unix_s)
        r, v = r[..., 0], v[..., 0]
        ok = np.isfinite(r).all(axis=0)
        h = np.cross(r, v, axis=0)
        h /= np.linalg.norm(h, axis=0)
        inc = np.degrees(np.arccos(np.clip(h[2], -1, 1)))
        node = np.degrees(np.arctan2(h[0], -h[1])) % 360.0
        nvec = np.stack([np.cos(np.radians(node)), np.sin(np.radians(node)), np.zeros_like(node)])
        u = np.degrees(
            np.arctan2(
                np.einsum("ij,ij->j", np.cross(h, nvec, axis=0), r), np.einsum("ij,ij->j", nvec, r)
            )
        )
        sma_km = np.array([sat.a for sat in self.satrecs]) * 6378.135
        pairs: list[tuple[int, int]] = []
        # Shells: inclinations within 0.1 degree and semi-major axes within 5 km; then planes:
        # nodes within 1 degree of each other (one plane may straddle 0/360).
        for by_inc in _split_sorted(np.flatnonzero(ok), inc, 0.1):
            for shell in _split_sorted(by_inc, sma_km, 5.0):
                groups = _split_sorted(shell, node, 1.0)
                if (
                    len(groups) > 1
                    and node[groups[0]].min() + 360.0 - node[groups[-1]].max() <= 1.0
                ):
                    groups[0] = np.concatenate([groups.pop(), groups[0]])
                planes = [g[np.argsort(u[g])] for g in groups]
                for k, plane in enumerate(planes):
                    if plane.size > 1:
                        pairs += list(zip(plane.tolist(), np.roll(plane, -1).tolist(), strict=True))
                    nxt = planes[(k + 1) % len(planes)]
                    if len(planes) > 1:
                        gap = (u[nxt][None, :] - u[plane][:, None] + 180.0) % 360.0 - 180.0
                        near = nxt[np.argmin(np.abs(gap), axis=1)]
                        pairs += list(zip(plane.tolist(), near.tolist(), strict=True))
        if not pairs:
            return np.zeros((0, 2), dtype=np.int64)
        out = np.unique(np.sort(np.array(pairs, dtype=np.int64), axis=1), axis=0)
        out = out[out[:, 0] != out[:, 1]]
        length = np.linalg.norm(r[:, out[:, 0]] - r[:, out[:, 1]], axis=0)
        return np.asarray(out[length <= self.max_isl_km], dtype=np.int64)


def _split_sorted(idx: IntArray, key: FloatArray, gap: float) -> list[IntArray]:
    """Split ``idx`` sorted by ``key`` wherever consecutive keys differ by more than ``gap``."""
    order = idx[np.argsort(key[idx], kind="stable")]
    return list(np.split(order, np.flatnonzero(np.diff(key[order]) > gap) + 1))
