"""Constellations: Walker-shell presets from the operators' filings, or a TLE catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from skyfleet import data
from skyfleet.errors import OrbitsError, UnknownConstellationError
from skyfleet.orbits._frames import FloatArray
from skyfleet.orbits._walker import IntArray, WalkerShell


@runtime_checkable
class Constellation(Protocol):
    """What the link model needs from a constellation."""

    @property
    def name(self) -> str: ...

    @property
    def min_elevation_deg(self) -> float: ...

    @property
    def size(self) -> int: ...

    @property
    def max_altitude_km(self) -> float: ...

    @property
    def sat_names(self) -> Sequence[str]: ...

    def positions_km(self, t_unix_s: ArrayLike) -> FloatArray: ...

    def isl_pairs(self) -> IntArray: ...


@dataclass(frozen=True)
class WalkerConstellation:
    """One or more Walker-delta shells, numbered shell by shell, plane by plane.

    >>> c = preset("starlink-s1")
    >>> c.size, c.positions_km(0.0).shape, c.positions_km([0.0, 15.0]).shape
    (1584, (3, 1584), (3, 1584, 2))
    """

    name: str
    shells: tuple[WalkerShell, ...]
    min_elevation_deg: float = 25.0
    description: str = ""
    source: str = ""

    @property
    def size(self) -> int:
        """Number of satellites."""
        return sum(s.size for s in self.shells)

    @property
    def max_altitude_km(self) -> float:
        """Highest shell altitude, km."""
        return max(s.altitude_km for s in self.shells)

    @property
    def sat_names(self) -> tuple[str, ...]:
        """Names ``SHELL-PLANE-SLOT``, e.g. ``S1-07-13``."""
        return tuple(
            f"{sh.name}-{p:02d}-{s:02d}"
            for sh in self.shells
            for p in range(sh.planes)
            for s in range(sh.sats_per_plane)
        )

    def positions_km(self, t_unix_s: ArrayLike) -> FloatArray:
        """Earth-fixed positions, km: ``(3, N)`` for a scalar time, ``(3, N, T)`` for ``T`` times."""
        parts = [sh.positions_km(t_unix_s) for sh in self.shells]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def isl_pairs(self) -> IntArray:
        """+Grid laser links of every shell, as global index pairs ``(E, 2)``."""
        out, offset = [], 0
        for sh in self.shells:
            out.append(sh.isl_pairs() + offset)
            offset += sh.size
        return np.concatenate(out)


def check_min_elevation(min_elevation_deg: float) -> None:
    """Raise :class:`OrbitsError` unless a minimum elevation is in 0..90 degrees (90 excluded)."""
    if not 0.0 <= min_elevation_deg < 90.0:
        raise OrbitsError(f"minimum elevation must be in 0..90 degrees, got {min_elevation_deg:g}")


def preset_names() -> list[str]:
    """Names of the packaged constellation presets."""
    return sorted(data.read_json("constellations.json"))


def _preset_record(name: str) -> dict[str, Any]:
    presets: dict[str, dict[str, Any]] = data.read_json("constellations.json")
    if name not in presets:
        raise UnknownConstellationError(
            f"unknown constellation {name!r}; choose one of: {', '.join(sorted(presets))}"
        )
    return presets[name]


def preset(name: str, min_elevation_deg: float | None = None) -> WalkerConstellation:
    """A packaged constellation preset (see ``skyfleet constellation list``).

    ``min_elevation_deg`` overrides the preset's minimum terminal elevation.
    """
    rec = _preset_record(name)
    if min_elevation_deg is not None:
        check_min_elevation(min_elevation_deg)
    shells = tuple(WalkerShell(**sh) for sh in rec["shells"])
    return WalkerConstellation(
        name=name,
        shells=shells,
        min_elevation_deg=float(
            rec["min_elevation_deg"] if min_elevation_deg is None else min_elevation_deg
        ),
        description=rec["description"],
        source=rec["source"],
    )
