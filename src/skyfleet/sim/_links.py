"""Which link a simulated device has over time, and what it can download over it.

A :class:`LinkSchedule` is a step grid of link kinds (none, cellular, satellite, wired) built
from the links model: a vehicle's satellite link along its route and the cellular coverage it
drives through, or a site's satellite link. A simulated device reaches the server only while it
has a link, and downloads at the rate of the link it has.

Download rates are round figures in the range of published measurements, not a model of any
network: rural 4G/LTE about 20 Mbit/s, a Starlink terminal about 100 Mbit/s (Ookla's
Speedtest reports of 2024–2025 put the US median near 100), wired 1 Gbit/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

import numpy as np

from skyfleet.errors import InputError
from skyfleet.links import LinkSeries

__all__ = ["DOWNLOAD_BIT_PER_S", "LINK_KINDS", "LinkSchedule"]

#: Link kinds, by code (the schedule stores codes).
LINK_KINDS = ("none", "cellular", "satellite", "wired")
#: Sustained download rate per link kind, bits per second.
DOWNLOAD_BIT_PER_S: Mapping[str, float] = {
    "none": 0.0,
    "cellular": 20e6,
    "satellite": 100e6,
    "wired": 1e9,
}
_RATES = np.array([DOWNLOAD_BIT_PER_S[k] for k in LINK_KINDS])


@dataclass(frozen=True)
class LinkSchedule:
    """Link kind per step: ``codes[i]`` (an index into :data:`LINK_KINDS`) holds from
    ``start_unix_s + i * step_s`` for one step. Before the first step the first kind holds, after
    the last the last kind holds.

    >>> s = LinkSchedule.from_masks(0.0, 60.0, cellular=[True, False, False],
    ...                             satellite=[True, True, False])
    >>> [s.kind_at(t) for t in (0.0, 61.0, 150.0)]
    ['cellular', 'satellite', 'none']
    >>> s.bits_between(0.0, 120.0) == 60 * (20e6 + 100e6)
    True
    """

    start_unix_s: float
    step_s: float
    codes: np.ndarray[Any, np.dtype[np.int8]] = field(repr=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.step_s) and self.step_s > 0):
            raise InputError(f"a link schedule's step must be positive, got {self.step_s:g}")
        if not np.isfinite(self.start_unix_s):
            raise InputError(f"a link schedule's start must be a time, got {self.start_unix_s:g}")
        codes = np.asarray(self.codes)
        if codes.ndim != 1 or codes.size == 0:
            raise InputError("a link schedule needs at least one step")
        if (
            not np.issubdtype(codes.dtype, np.integer)
            or codes.min() < 0
            or codes.max() >= len(LINK_KINDS)
        ):
            raise InputError("a link schedule holds codes 0..3 (none, cellular, satellite, wired)")
        object.__setattr__(self, "codes", codes.astype(np.int8))

    @classmethod
    def always(cls, kind: str) -> LinkSchedule:
        """One kind of link at every time."""
        if kind not in LINK_KINDS:
            raise InputError(f"link kind {kind!r} is unknown: use {', '.join(LINK_KINDS)}")
        return cls(0.0, 1.0, np.array([LINK_KINDS.index(kind)], dtype=np.int8))

    @classmethod
    def from_masks(
        cls,
        start_unix_s: float,
        step_s: float,
        *,
        cellular: Any = None,
        satellite: Any = None,
        wired: Any = None,
    ) -> LinkSchedule:
        """From per-step masks of where each link is available. Where several are, the device
        uses wired, then cellular (cheaper than satellite airtime), then satellite."""
        masks = {k: np.asarray(m, dtype=bool) for k, m in [("satellite", satellite),
                 ("cellular", cellular), ("wired", wired)] if m is not None}  # fmt: skip
        if not masks:
            raise InputError("give at least one of cellular, satellite or wired")
        sizes = {m.shape for m in masks.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise InputError("the link masks must be 1-D and of one length")
        codes = np.zeros(next(iter(masks.values())).size, dtype=np.int8)
        for kind in ("satellite", "cellular", "wired"):  # later kinds win
            if kind in masks:
                codes[masks[kind]] = LINK_KINDS.index(kind)
        return cls(start_unix_s, step_s, codes)

    @classmethod
    def from_link_series(cls, series: LinkSeries, cellular: Any = None) -> LinkSchedule:
        """From the links model: satellite wherever ``series`` has a path to its destination,
        cellular where ``cellular`` (one bool per step of the series, e.g.
        :func:`~skyfleet.links.cellular_mask` along the route) says so."""
        return cls.from_masks(
            series.start_unix_s,
            series.step_s,
            satellite=np.isfinite(series.rtt_ms),
            cellular=cellular,
        )

    def _codes_at(self, t_unix_s: Any) -> Any:
        """The code at each time; none (0) for a time that is not a number."""
        t = np.asarray(t_unix_s, dtype=np.float64)
        i = np.floor(
            (np.where(np.isfinite(t), t, self.start_unix_s) - self.start_unix_s) / self.step_s
        )
        codes = self.codes[np.clip(i, 0, self.codes.size - 1).astype(np.int64)]
        return np.where(np.isfinite(t), codes, 0)

    @overload
    def kind_at(self, t_unix_s: float) -> str: ...
    @overload
    def kind_at(self, t_unix_s: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]: ...
    def kind_at(self, t_unix_s: Any) -> Any:
        """The link kind at each time (a string for a scalar time, an array of them else)."""
        kinds = np.asarray(LINK_KINDS)[self._codes_at(t_unix_s)]
        return str(kinds) if np.ndim(kinds) == 0 else kinds

    def connected(self, t_unix_s: Any) -> Any:
        """Whether the device has any link at each time (bool, or a bool array; False for a
        time that is not a number)."""
        up = self._codes_at(t_unix_s) > 0
        return bool(up) if np.ndim(up) == 0 else up

    @cached_property
    def _cumulative_bits(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Bits transferable from the start to the start of each step, and to the end."""
        per_step = _RATES[self.codes] * self.step_s
        return np.concatenate([[0.0], np.cumsum(per_step)])

    def bits_between(self, t0_unix_s: Any, t1_unix_s: Any) -> Any:
        """Bits the device can download from ``t0`` to ``t1`` (UNIX s, scalars or arrays) at
        its link's rate (0 while it has none; 0 where ``t1 <= t0`` or a time is not a number);
        the kinds at the schedule's ends extend beyond them."""
        got = self._bits_to(t1_unix_s) - self._bits_to(t0_unix_s)
        got = np.where(np.isfinite(got) & (got > 0), got, 0.0)
        return float(got) if np.ndim(got) == 0 else got

    def _bits_to(self, t_unix_s: Any) -> Any:
        x = (np.asarray(t_unix_s, dtype=np.float64) - self.start_unix_s) / self.step_s
        n = self.codes.size
        rates = _RATES[self.codes]
        inside = np.interp(x, np.arange(n + 1), self._cumulative_bits)
        before = rates[0] * np.minimum(x, 0.0) * self.step_s
        after = rates[-1] * np.maximum(x - n, 0.0) * self.step_s
        return inside + before + after

    def share_pct(self) -> dict[str, float]:
        """The share of the schedule's steps with each link kind, %."""
        counts = np.bincount(self.codes, minlength=len(LINK_KINDS))
        return {
            k: round(100.0 * c / self.codes.size, 3)
            for k, c in zip(LINK_KINDS, counts, strict=True)
        }
