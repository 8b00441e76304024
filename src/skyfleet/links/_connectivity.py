"""Cellular and satellite together along a route: each step's connectivity class, the time and
share in each, and the gaps with neither."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skyfleet.errors import CoverageError
from skyfleet.links._series import LinkSeries

__all__ = ["CONNECTIVITY_CLASSES", "connectivity_class", "route_connectivity"]


# --- a route's connectivity ------------------------------------------------------------------

CONNECTIVITY_CLASSES = ("both", "cellular_only", "satellite_only", "none")
"""Connectivity classes of a step, in this order (class codes 0..3)."""


def connectivity_class(cellular: ArrayLike, satellite: ArrayLike) -> NDArray[np.int8]:
    """Class code per step (index into :data:`CONNECTIVITY_CLASSES`): 0 both, 1 cellular only, 2 satellite
    only, 3 none.

    >>> connectivity_class([True, True, False, False], [True, False, True, False]).tolist()
    [0, 1, 2, 3]
    """
    cell = np.asarray(cellular, dtype=bool)
    sat = np.asarray(satellite, dtype=bool)
    return np.asarray(np.where(cell, np.where(sat, 0, 1), np.where(sat, 2, 3)), dtype=np.int8)


def route_connectivity(series: LinkSeries, cellular: ArrayLike) -> dict[str, Any]:
    """Time with cellular only, satellite only (a path in ``series``, finite RTT), both, either
    or none, in seconds and percent of ``series.duration_s``, and the gaps with neither.

    Each step counts from its time to the next step's (the last to the end of the window).
    ``cellular`` is one bool per step (:func:`cellular_mask` of the series' positions). Gaps are
    ``{start_s, end_s, duration_s, lat_deg, lon_deg}``: seconds after the start (``end_s``
    exclusive) and where the gap begins.

    >>> from skyfleet.links._series import LinkSeries
    >>> z = np.zeros(4)
    >>> s = LinkSeries("a", "b", "c", "best", 0.0, 15.0, 60.0, np.arange(4) * 15.0,
    ...     np.array([20.0, np.nan, np.nan, 40.0]), np.array([1, -1, -1, 3]), -np.ones(4, int),
    ...     np.ones(4, int), np.ones(4, int), z, z + 1, z, z)
    >>> r = route_connectivity(s, [True, True, False, False])
    >>> r["time_s"]
    {'both': 15.0, 'cellular_only': 15.0, 'satellite_only': 15.0, 'none': 15.0, 'either': 45.0, 'cellular': 30.0, 'satellite': 30.0}
    >>> r["gaps"]
    [{'start_s': 30.0, 'end_s': 45.0, 'duration_s': 15.0, 'lat_deg': 0.0, 'lon_deg': 1.0}]
    """
    t = series.t_s
    cell = np.asarray(cellular, dtype=bool)
    if cell.shape != t.shape:
        raise CoverageError(f"one cellular flag per step: got {cell.shape}, steps {t.shape}")
    cls = connectivity_class(cell, np.isfinite(series.rtt_ms))
    end = np.append(t[1:], series.duration_s)
    weight = np.clip(end - t, 0.0, None)
    sec = {name: float(weight[cls == i].sum()) for i, name in enumerate(CONNECTIVITY_CLASSES)}
    sec["either"] = sec["both"] + sec["cellular_only"] + sec["satellite_only"]
    sec["cellular"] = sec["both"] + sec["cellular_only"]
    sec["satellite"] = sec["both"] + sec["satellite_only"]
    total = float(series.duration_s)
    edges = np.diff(np.concatenate([[0], (cls == 3).astype(np.int8), [0]]))
    gap_list = [
        {
            "start_s": round(float(t[a]), 3),
            "end_s": round(float(end[b - 1]), 3),
            "duration_s": round(float(end[b - 1] - t[a]), 3),
            "lat_deg": round(float(series.lat_deg[a]), 6),
            "lon_deg": round(float(series.lon_deg[a]), 6),
        }
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    ]
    return {
        "time_s": {k: round(v, 3) for k, v in sec.items()},
        "time_pct": {k: round(100.0 * v / total, 3) if total > 0 else 0.0 for k, v in sec.items()},
        "gaps": gap_list,
        "longest_gap": max(gap_list, key=lambda g: g["duration_s"], default=None),
    }
