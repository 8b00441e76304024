"""The per-step link engine: visibility, the laser graph, routes to destinations, serving satellites.

At each time step the engine computes, for every destination, the one-way delay from each
satellite to that destination: through a gateway that sees the satellite and fiber from there
(bent-pipe), or over laser links first (one single-source Dijkstra per destination on the
time-varying graph, never all pairs). A source then picks the satellite that minimises its
up-link delay plus that cost. Work is split into chunks of steps that start on the satellite
re-assignment grid, so chunks are independent and run in parallel processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from skyfleet.errors import LinkConfigError
from skyfleet.links._geometry import (
    DEFAULT_FIBER_INFLATION,
    FloatArray,
    IntArray,
    fiber_one_way_ms,
    great_circle_km,
    laser_links_ms,
    max_slant_range_km,
    vacuum_ms,
    visible_pairs,
)
from skyfleet.links._parallel import Progress, execute
from skyfleet.orbits import Constellation, check_min_elevation, geodetic_to_ecef, up_vector

Mode = Literal["isl", "bent-pipe", "best"]
MODES: tuple[str, ...] = ("isl", "bent-pipe", "best")
_EPS_MS = 1e-9  # csgraph drops explicit zeros; keep zero-length legs as edges


@dataclass(frozen=True)
class LinkOptions:
    """How links are computed.

    ``mode``: ``isl`` (laser links allowed), ``bent-pipe`` (one satellite between the place and
    a gateway) or ``best`` (the lower delay of the two at each step). A laser path may use no
    laser link at all, so ``isl`` already includes every bent-pipe path; ``best`` differs from
    ``isl`` only for a constellation without laser links, where it falls back to bent-pipe.
    ``fiber_inflation`` scales great-circle distance to terrestrial route length for every fiber
    leg. The serving satellite is re-decided every ``reassign_s`` seconds, at ``reassign_offset_s`` past each minute's grid
    (Starlink re-allocates at 12, 27, 42 and 57 s), and at once when it is lost.
    """

    mode: Mode = "best"
    fiber_inflation: float = DEFAULT_FIBER_INFLATION
    min_elevation_deg: float | None = None
    reassign_s: float = 15.0
    reassign_offset_s: float = 12.0
    detail: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LinkConfigError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if not (np.isfinite(self.fiber_inflation) and self.fiber_inflation >= 1.0):
            raise LinkConfigError(
                f"fiber inflation must be a number >= 1, got {self.fiber_inflation:g}"
            )
        if not (np.isfinite(self.reassign_s) and self.reassign_s > 0):
            raise LinkConfigError(f"reassign_s must be > 0, got {self.reassign_s}")
        if self.min_elevation_deg is not None:
            check_min_elevation(self.min_elevation_deg)


@dataclass(frozen=True)
class _Ground:
    """Static ground segment and the sources' tracks, precomputed once."""

    gw_ecef: FloatArray  # (3, G)
    gw_up: FloatArray
    dest_ecef: FloatArray  # (3, D)
    dest_up: FloatArray
    dest_terminal: NDArray[np.bool_]  # (D,)
    fiber_ms: FloatArray  # (D, G) one-way, inflated
    src_lat: FloatArray  # (P, T)
    src_lon: FloatArray
    src_dest: IntArray  # (P,)


@dataclass(frozen=True)
class _Job:
    constellation: Constellation
    isl: IntArray
    ground: _Ground
    times: FloatArray
    decide: NDArray[np.bool_]
    opts: LinkOptions
    min_el: float
    max_range_km: float
    use_isl: bool
    search_margin: float | None = 1.25


def decision_steps(
    times_unix_s: ArrayLike, reassign_s: float, offset_s: float
) -> NDArray[np.bool_]:
    """Whether the serving satellite is re-decided at each time (UTC unix seconds, scalar or
    array; the result has the same shape): at the first time, and wherever a boundary of the
    ``reassign_s``-second grid, shifted ``offset_s`` seconds past the minute, was crossed since
    the time before.

    >>> decision_steps([0.0, 5.0, 12.0, 20.0, 27.0], 15.0, 12.0).tolist()
    [True, False, True, False, True]
    """
    t = np.asarray(times_unix_s, dtype=np.float64)
    slot = np.floor((np.atleast_1d(t) - offset_s) / reassign_s)
    out = np.ones(slot.shape, dtype=bool)
    out[1:] = slot[1:] != slot[:-1]
    return out.reshape(t.shape)


def chunks(decide: NDArray[np.bool_], target: int) -> list[tuple[int, int]]:
    """Split steps into ranges of about ``target`` steps, each starting on a decision step."""
    starts = np.flatnonzero(decide)
    out: list[tuple[int, int]] = []
    begin = 0
    for s in starts[1:]:
        if s - begin >= target:
            out.append((begin, int(s)))
            begin = int(s)
    out.append((begin, decide.size))
    return out


@dataclass
class _Costs:
    """One step's delay (ms, one-way) from every satellite to every destination, ``(D, N)``.

    Over laser links the rows come from Dijkstra searches bounded by a per-destination limit:
    entries above it are inf, though the true delay is finite. ``exact(d)`` replaces row ``d``
    with an unbounded search. ``pred`` holds the searches' predecessors; ``gw`` the gateway of
    each bent-pipe (destination, satellite) pair.
    """

    cost: FloatArray
    pred: IntArray | None
    gw: IntArray
    graph: csr_matrix | None = None
    supers: IntArray | None = None

    def exact(self, d: int) -> None:
        assert self.graph is not None and self.supers is not None and self.pred is not None
        dist, pred = dijkstra(
            self.graph, directed=True, indices=self.supers[d], return_predecessors=True
        )
        n = self.cost.shape[1]
        self.cost[d], self.pred[d] = dist[:n], pred


def _graph_costs(job: _Job, sat: FloatArray, tree: cKDTree, limits: FloatArray) -> _Costs:
    """Delays from every satellite to every destination (see :class:`_Costs`); laser-link
    searches for destination ``d`` stop at ``limits[d]`` ms."""
    g, n = job.ground, sat.shape[1]
    gi, si, rng = visible_pairs(tree, sat, g.gw_ecef, g.gw_up, job.min_el, job.max_range_km)
    down = vacuum_ms(rng)
    n_dest, n_gw = g.fiber_ms.shape
    if not job.use_isl:
        cost = np.full((n_dest, n), np.inf)
        gw = np.full((n_dest, n), -1, dtype=np.int64)
        for d in range(n_dest):
            val = down + g.fiber_ms[d, gi]
            order = np.lexsort((val, si))
            first = np.ones(order.size, dtype=bool)
            first[1:] = si[order][1:] != si[order][:-1]
            pick = order[first]
            cost[d, si[pick]] = val[pick]
            gw[d, si[pick]] = gi[pick]
        return _Costs(cost, None, gw)
    a, b, isl_ms = laser_links_ms(sat, job.isl)
    supers = n + n_gw + np.arange(n_dest)
    rows = [a, b, n + gi, np.repeat(supers, n_gw)]
    cols = [b, a, si, np.tile(n + np.arange(n_gw), n_dest)]
    vals = [isl_ms, isl_ms, down, g.fiber_ms.ravel() + _EPS_MS]
    if g.dest_terminal.any():
        term = np.flatnonzero(g.dest_terminal)
        di, dsi, drng = visible_pairs(
            tree, sat, g.dest_ecef[:, term], g.dest_up[:, term], job.min_el, job.max_range_km
        )
        rows.append(supers[term[di]])
        cols.append(dsi)
        vals.append(vacuum_ms(drng))
    size = n + n_gw + n_dest
    graph = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    )
    dist = np.empty((n_dest, size))
    pred = np.empty((n_dest, size), dtype=np.int64)
    free = ~np.isfinite(limits)
    if free.any():
        dist[free], pred[free] = dijkstra(
            graph, directed=True, indices=supers[free], return_predecessors=True
        )
    for row in np.flatnonzero(~free):
        dist[row], pred[row] = dijkstra(
            graph, directed=True, indices=supers[row], return_predecessors=True, limit=limits[row]
        )
    return _Costs(dist[:, :n], pred, np.zeros(0, dtype=np.int64), graph, supers)


def _path(
    job: _Job, n: int, dest: int, sat: int, pred: IntArray | None, gw: IntArray
) -> tuple[list[int], int]:
    """Satellites on the path from the serving satellite to the destination, and the gateway (or -1)."""
    if pred is None:
        return [sat], int(gw[dest, sat])
    sats, node, n_gw = [], sat, job.ground.fiber_ms.shape[1]
    while 0 <= node < n:
        sats.append(int(node))
        node = int(pred[dest, node])
    return sats, (node - n if n <= node < n + n_gw else -1)


@dataclass(frozen=True)
class _Pick:
    current: IntArray  # serving satellite per source after this step (-1: none)
    now_tot: FloatArray  # its one-way delay, ms (inf: no path)
    best_tot: FloatArray  # the best satellite's delay, ms
    stay: NDArray[np.bool_]  # kept the satellite of the last step


def _select(
    pi: IntArray,
    si: IntArray,
    up: FloatArray,
    cost: FloatArray,
    current: IntArray,
    decide: bool,
    P: int,
) -> _Pick:
    """Choose each source's serving satellite from its visible (source, satellite) pairs with
    up-link delay ``up`` and satellite-to-destination delay ``cost`` (ms, inf without a path):
    the best one on a decision step or when the current one is lost, else the current one."""
    tot = up + cost
    finite = np.isfinite(tot)
    pi, si, tot = pi[finite], si[finite], tot[finite]
    order = np.lexsort((tot, pi))  # by source, then delay: each source's first is its best
    first = np.ones(order.size, dtype=bool)
    first[1:] = pi[order][1:] != pi[order][:-1]
    best = np.full(P, -1, dtype=np.int64)
    best_tot = np.full(P, np.inf)
    best[pi[order[first]]] = si[order[first]]
    best_tot[pi[order[first]]] = tot[order[first]]
    keep_tot = np.full(P, np.inf)
    mine = si == current[pi]
    keep_tot[pi[mine]] = tot[mine]
    stay = np.isfinite(keep_tot) & (not decide)
    return _Pick(np.where(stay, current, best), np.where(stay, keep_tot, best_tot), best_tot, stay)


def _next_limits(
    cost: FloatArray, src_dest: IntArray, current: IntArray, has: NDArray[np.bool_], margin: float
) -> FloatArray:
    """Search limits for the next step: ``margin`` times (plus 1 ms) the largest
    satellite-to-destination delay any source used now; unbounded for a destination none of whose
    sources had a path."""
    limits = np.full(cost.shape[0], -np.inf)
    used = np.flatnonzero(has)
    np.maximum.at(limits, src_dest[used], cost[src_dest[used], current[used]])
    return np.where(np.isfinite(limits), margin * limits + 1.0, np.inf)


def _run(job: _Job) -> dict[str, Any]:
    """Compute one chunk of steps; returns arrays ``(T, P)`` (and paths when detail is asked)."""
    times = job.times
    g, T = job.ground, times.size
    P = g.src_lat.shape[0]
    pos = job.constellation.positions_km(times)  # (3, N, T)
    n = pos.shape[1]
    src_ecef = geodetic_to_ecef(g.src_lat, g.src_lon)  # (3, P, T)
    src_up = up_vector(g.src_lat, g.src_lon)
    rtt = np.full((T, P), np.nan)
    serving = np.full((T, P), -1, dtype=np.int64)
    gateway = np.full((T, P), -1, dtype=np.int64)
    hops = np.zeros((T, P), dtype=np.int64)
    visible = np.zeros((T, P), dtype=np.int64)
    paths: list[list[tuple[int, ...]]] = [[() for _ in range(P)] for _ in range(T)]
    current = np.full(P, -1, dtype=np.int64)
    limits = np.full(g.fiber_ms.shape[0], np.inf)  # first step of a chunk: unbounded searches
    reruns = 0
    for k in range(T):
        sat = np.nan_to_num(pos[:, :, k], nan=1e9)  # a failed propagation is out of everyone's view
        tree = cKDTree(sat.T)
        costs = _graph_costs(job, sat, tree, limits)
        pi, si, rng = visible_pairs(
            tree, sat, src_ecef[:, :, k], src_up[:, :, k], job.min_el, job.max_range_km
        )
        visible[k] = np.bincount(pi, minlength=P)
        up = vacuum_ms(rng)
        pick = _select(pi, si, up, costs.cost[g.src_dest[pi], si], current, bool(job.decide[k]), P)
        if costs.graph is not None and np.isfinite(limits).any():
            # A bounded search is exact below its limit. A source's pick is proven when its delay
            # is within limit + its shortest up-link (any satellite beyond the limit costs more),
            # and when the satellite it keeps between decisions was not cut off by the limit.
            up_min = np.full(P, np.inf)
            np.minimum.at(up_min, pi, up)
            lim = limits[g.src_dest]
            unproven = np.isfinite(up_min) & ~(pick.best_tot <= lim + up_min)
            if not job.decide[k]:
                kept = (current >= 0) & ~pick.stay & np.isin(current, si)
                unproven |= kept & np.isfinite(lim)
            redo = np.unique(g.src_dest[unproven & np.isfinite(lim)])
            for d in redo:
                costs.exact(int(d))
            reruns += redo.size
            if redo.size:
                pick = _select(
                    pi, si, up, costs.cost[g.src_dest[pi], si], current, bool(job.decide[k]), P
                )
        current, now_tot = pick.current, pick.now_tot
        has = np.isfinite(now_tot)
        rtt[k, has] = 2.0 * now_tot[has]
        serving[k] = np.where(has, current, -1)
        if costs.graph is not None and job.search_margin is not None:
            limits = _next_limits(costs.cost, g.src_dest, current, has, job.search_margin)
        pred, gw = costs.pred, costs.gw
        for p in np.flatnonzero(has):
            sats, gwy = _path(job, n, int(g.src_dest[p]), int(current[p]), pred, gw)
            if job.opts.detail:
                paths[k][p] = tuple(sats)
            gateway[k, p] = gwy
            hops[k, p] = len(sats) + 1
    return {
        "rtt_ms": rtt,
        "sat": serving,
        "gateway": gateway,
        "hops": hops,
        "visible": visible,
        "paths": paths,
        "exact_reruns": reruns,
    }


def run_links(
    constellation: Constellation,
    src_lat: FloatArray,
    src_lon: FloatArray,
    src_dest: IntArray,
    destinations: Sequence[tuple[float, float, bool]],
    gateways: Sequence[tuple[float, float]],
    times_unix_s: FloatArray,
    opts: LinkOptions,
    workers: int = 1,
    progress: Progress | None = None,
    chunk_steps: int = 64,
    search_margin: float | None = 1.25,
) -> dict[str, Any]:
    """Run the engine. Sources are tracks ``(P, T)`` of latitude and longitude (degrees), each
    with a destination index into ``destinations`` (``(lat, lon, terminal)``). Returns arrays
    ``(T, P)``: ``rtt_ms`` (NaN without a path), ``sat``, ``gateway`` (-1 when none), ``hops``,
    ``visible``, and ``paths`` (per step, per source, when ``opts.detail``).

    ``search_margin`` lets each step's laser-link searches stop at that multiple (plus 1 ms) of
    the delays the sources needed at the last step, re-running any search whose answer cannot be
    proven exact (counted in ``exact_reruns``); ``None`` searches without bound. The results are
    the same either way, only the time differs."""
    isl = constellation.isl_pairs()
    use_isl = opts.mode != "bent-pipe" and isl.size > 0
    if opts.mode == "isl" and isl.size == 0:
        raise LinkConfigError(
            f"constellation {constellation.name!r} has no laser links; use mode bent-pipe"
        )
    min_el = (
        constellation.min_elevation_deg
        if opts.min_elevation_deg is None
        else opts.min_elevation_deg
    )
    gw = np.asarray(gateways, dtype=np.float64).reshape(-1, 2)
    dest = np.asarray([(d[0], d[1]) for d in destinations], dtype=np.float64).reshape(-1, 2)
    fiber = fiber_one_way_ms(
        great_circle_km(dest[:, 0, None], dest[:, 1, None], gw[None, :, 0], gw[None, :, 1]),
        opts.fiber_inflation,
    )
    ground = _Ground(
        gw_ecef=geodetic_to_ecef(gw[:, 0], gw[:, 1]),
        gw_up=up_vector(gw[:, 0], gw[:, 1]),
        dest_ecef=geodetic_to_ecef(dest[:, 0], dest[:, 1]),
        dest_up=up_vector(dest[:, 0], dest[:, 1]),
        dest_terminal=np.asarray([bool(d[2]) for d in destinations], dtype=np.bool_),
        fiber_ms=np.asarray(fiber).reshape(len(dest), len(gw)),
        src_lat=src_lat,
        src_lon=src_lon,
        src_dest=np.asarray(src_dest, dtype=np.int64),
    )
    times = np.asarray(times_unix_s, dtype=np.float64)
    decide = decision_steps(times, opts.reassign_s, opts.reassign_offset_s)
    max_range = max_slant_range_km(constellation.max_altitude_km, min_el)
    jobs = []
    for a, b in chunks(decide, chunk_steps):
        sub = _Ground(**{**ground.__dict__, "src_lat": src_lat[:, a:b], "src_lon": src_lon[:, a:b]})
        jobs.append(
            _Job(
                constellation,
                isl,
                sub,
                times[a:b],
                decide[a:b],
                opts,
                min_el,
                max_range,
                use_isl,
                search_margin,
            )
        )
    parts = execute(_run, jobs, [j.times.size for j in jobs], workers, progress)
    out: dict[str, Any] = {
        key: np.concatenate([p[key] for p in parts])
        for key in ("rtt_ms", "sat", "gateway", "hops", "visible")
    }
    out["paths"] = [row for p in parts for row in p["paths"]]
    out["decide"] = decide
    out["exact_reruns"] = sum(int(p["exact_reruns"]) for p in parts)
    return out
