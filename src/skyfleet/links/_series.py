"""Link time series for places and routes, and their summary (availability, RTT, gaps, handovers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyfleet.errors import LinkConfigError
from skyfleet.links._engine import LinkOptions, run_links
from skyfleet.links._geometry import FloatArray, IntArray, fiber_one_way_ms, great_circle_km
from skyfleet.links._parallel import Progress
from skyfleet.links._places import Place, gateways
from skyfleet.links._routes import Route
from skyfleet.orbits import Constellation

MAX_STEPS = 5_000_000


@dataclass(frozen=True)
class LinkSeries:
    """The link from one source to one destination, step by step.

    The window is ``[0, duration_s)`` seconds after ``start_unix_s``. Arrays have one entry per
    step: ``t_s`` (seconds after ``start_unix_s``), ``rtt_ms`` (round trip, NaN when there is no
    path), ``sat`` (serving satellite index, -1 when none), ``gateway``
    (index into :func:`~skyfleet.links.gateways`, -1 when the path does not use one), ``hops``
    (radio and laser links on the path: up-link, laser links, down-link; 0 without a path),
    ``visible`` (satellites above the minimum elevation), and the source's position. Fiber figures
    (``fiber_rtt_ms`` at the great-circle floor and ``internet_rtt_ms`` inflated) are per step too,
    since the source may move. ``paths`` lists the satellites on each step's path.
    """

    source: str
    destination: str
    constellation: str
    mode: str
    start_unix_s: float
    step_s: float
    duration_s: float
    t_s: FloatArray
    rtt_ms: FloatArray
    sat: IntArray
    gateway: IntArray
    hops: IntArray
    visible: IntArray
    lat_deg: FloatArray
    lon_deg: FloatArray
    fiber_rtt_ms: FloatArray
    internet_rtt_ms: FloatArray
    paths: tuple[tuple[int, ...], ...] | None = None


def time_grid(start_unix_s: float, duration_s: float, step_s: float) -> FloatArray:
    """Seconds after the start for every step: ``0, step, ...`` covering ``[0, duration)``.

    >>> time_grid(0.0, 60.0, 15.0).tolist()
    [0.0, 15.0, 30.0, 45.0]
    """
    if not np.isfinite(step_s) or step_s <= 0:
        raise LinkConfigError(f"step must be greater than zero seconds, got {step_s:g}")
    if not np.isfinite(duration_s) or duration_s <= 0:
        raise LinkConfigError(f"duration must be greater than zero seconds, got {duration_s:g}")
    n = max(1, int(np.ceil(duration_s / step_s - 1e-9)))
    if n > MAX_STEPS:
        raise LinkConfigError(
            f"{n:,} steps is more than {MAX_STEPS:,}; use a longer step or a shorter duration"
        )
    return np.arange(n, dtype=np.float64) * step_s


def link_series_many(
    constellation: Constellation,
    sources: Sequence[Place | Route],
    destinations: Sequence[Place],
    start_unix_s: float,
    duration_s: float,
    step_s: float,
    options: LinkOptions | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> list[LinkSeries]:
    """Link series from each source to its destination (``destinations[i]`` for ``sources[i]``).

    Sources that share a destination share its routing work: one shortest-path search per
    destination per step, whatever the number of sources.
    """
    opts = options or LinkOptions()
    if len(sources) != len(destinations):
        raise LinkConfigError("give one destination per source")
    t_s = time_grid(start_unix_s, duration_s, step_s)
    lat = np.empty((len(sources), t_s.size))
    lon = np.empty_like(lat)
    for i, src in enumerate(sources):
        if isinstance(src, Route):
            lat[i], lon[i] = src.latlon_at(t_s)
        else:
            lat[i], lon[i] = src.lat_deg, src.lon_deg
    dest_keys = list(dict.fromkeys((d.lat_deg, d.lon_deg, d.terminal) for d in destinations))
    src_dest = np.asarray(
        [dest_keys.index((d.lat_deg, d.lon_deg, d.terminal)) for d in destinations], dtype=np.int64
    )
    gws = gateways()
    res = run_links(
        constellation,
        lat,
        lon,
        src_dest,
        dest_keys,
        [(g.lat_deg, g.lon_deg) for g in gws],
        start_unix_s + t_s,
        opts,
        workers=workers,
        progress=progress,
    )
    out = []
    for i, (src, dst) in enumerate(zip(sources, destinations, strict=True)):
        gc = great_circle_km(lat[i], lon[i], dst.lat_deg, dst.lon_deg)
        out.append(
            LinkSeries(
                source=src.spec if isinstance(src, Place) else f"route:{src.name}",
                destination=dst.spec,
                constellation=constellation.name,
                mode=opts.mode,
                start_unix_s=start_unix_s,
                step_s=step_s,
                duration_s=duration_s,
                t_s=t_s,
                rtt_ms=res["rtt_ms"][:, i],
                sat=res["sat"][:, i],
                gateway=res["gateway"][:, i],
                hops=res["hops"][:, i],
                visible=res["visible"][:, i],
                lat_deg=lat[i],
                lon_deg=lon[i],
                fiber_rtt_ms=2.0 * fiber_one_way_ms(gc, 1.0),
                internet_rtt_ms=2.0 * fiber_one_way_ms(gc, opts.fiber_inflation),
                paths=tuple(row[i] for row in res["paths"]) if opts.detail else None,
            )
        )
    return out


def link_series(
    constellation: Constellation,
    source: Place | Route,
    destination: Place,
    start_unix_s: float,
    duration_s: float,
    step_s: float = 15.0,
    options: LinkOptions | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> LinkSeries:
    """The link from one place or route to one destination over a window (see :class:`LinkSeries`)."""
    return link_series_many(
        constellation,
        [source],
        [destination],
        start_unix_s,
        duration_s,
        step_s,
        options,
        workers,
        progress,
    )[0]


def gaps(series: LinkSeries) -> list[dict[str, float]]:
    """Intervals without a path, ``[{start_s, end_s}]`` in seconds after the start, ``end_s``
    exclusive: from the first step without a path to the next step with one (or the end of the
    window)."""
    missing = np.isnan(series.rtt_ms)
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    end_of_window = float(series.duration_s)
    return [
        {
            "start_s": float(series.t_s[a]),
            "end_s": float(series.t_s[b]) if b < series.t_s.size else end_of_window,
        }
        for a, b in zip(starts, ends, strict=True)
    ]


def handovers(series: LinkSeries) -> int:
    """Changes of serving satellite between consecutive steps that both have a path."""
    s = series.sat
    return int(np.count_nonzero((s[1:] != s[:-1]) & (s[1:] >= 0) & (s[:-1] >= 0)))


def summarize(series: LinkSeries) -> dict[str, Any]:
    """The figures of a link series, as plain data (the CLI's ``--json``).

    >>> import numpy as np
    >>> from skyfleet.links._series import LinkSeries
    >>> z = np.zeros(4)
    >>> s = LinkSeries("a", "b", "c", "best", 0.0, 15.0, 60.0, np.arange(4) * 15.0,
    ...     np.array([20.0, np.nan, 30.0, 40.0]), np.array([1, -1, 2, 3]), -np.ones(4, int),
    ...     np.ones(4, int), np.ones(4, int), z, z, z + 5, z + 10)
    >>> summarize(s)["availability_pct"], summarize(s)["gaps"], summarize(s)["handovers"]
    (75.0, [{'start_s': 15.0, 'end_s': 30.0}], 1)
    """
    rtt = series.rtt_ms[np.isfinite(series.rtt_ms)]
    duration_s = float(series.duration_s)
    n_hand = handovers(series)

    def stat(x: FloatArray, q: float) -> float | None:
        return round(float(np.percentile(x, q)), 3) if x.size else None

    return {
        "source": series.source,
        "destination": series.destination,
        "constellation": series.constellation,
        "mode": series.mode,
        "start_unix_s": series.start_unix_s,
        "duration_s": duration_s,
        "step_s": series.step_s,
        "steps": int(series.t_s.size),
        "availability_pct": round(100.0 * rtt.size / series.t_s.size, 3),
        "rtt_ms": {
            "min": stat(rtt, 0),
            "median": stat(rtt, 50),
            "p95": stat(rtt, 95),
            "max": stat(rtt, 100),
        },
        "fiber_rtt_ms": round(float(np.median(series.fiber_rtt_ms)), 3),
        "internet_rtt_ms": round(float(np.median(series.internet_rtt_ms)), 3),
        "handovers": n_hand,
        "handovers_per_hour": round(n_hand / (duration_s / 3600.0), 3),
        "visible_sats_median": float(np.median(series.visible)),
        "gaps": gaps(series),
    }
