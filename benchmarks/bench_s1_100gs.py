"""Benchmark S1-100GS: all-pairs ground-station RTT over laser links, every 100 ms for 200 s.

The forwarding-state job of Hypatia's paper runs: Starlink shell 1 (72 x 22, 550 km, 53 deg,
+Grid laser links), minimum elevation 25 deg, ground stations at the 100 most populous cities,
2,000 steps of 100 ms. Every step: positions, visibility, laser-link lengths, and the shortest
path from every ground station to every other one. skyfleet does it with
``ground_station_rtt_ms`` (one multi-source Dijkstra per step, over the ground stations only).

Baseline, measured in the same run on a few steps and extrapolated to the full step count:
Hypatia's approach, all-pairs Floyd-Warshall with ``networkx.floyd_warshall_numpy`` on the same
per-step graph, built from the same positions with the same visibility and laser-link rules.
``--baseline-graph`` picks which graph it runs on (see ``baseline_step``):

* ``satellites`` (default): what Hypatia's ``algorithm_free_one_only_over_isls`` does for paths
  without ground-station relays: Floyd-Warshall over the laser-link graph of the satellites, then
  the ground-station legs attached by taking minima over each station's visible satellites.
* ``full``: Floyd-Warshall over every node, satellites and ground stations (N + 2G nodes).

Run ``python benchmarks/bench_s1_100gs.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from _bench import emit, fmt_s, machine, memory_line, peak_rss_mib
from skyfleet.links import ground_station_rtt_ms, largest_cities, max_slant_range_km
from skyfleet.links._geometry import segment_clears_earth, vacuum_ms, visible_pairs
from skyfleet.orbits import geodetic_to_ecef, preset, up_vector

START_UNIX_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the Walker shells' epoch
TOLERANCE_MS = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Scenario S1-100GS: Starlink S1 (72x22, 550 km, 53 deg, +Grid), 100 largest cities as "
            "ground stations, RTT between every pair of stations every 100 ms. Times skyfleet's "
            "ground_station_rtt_ms against Hypatia-style Floyd-Warshall (networkx) measured on a "
            "few steps of the same run and extrapolated. Target: whole scenario under 60 s on 2 "
            "cores."
        ),
    )
    p.add_argument("--steps", type=int, default=2000, help="time steps (default 2000 = 200 s)")
    p.add_argument("--step-s", type=float, default=0.1, help="step, seconds (default 0.1)")
    p.add_argument("--stations", type=int, default=100, help="ground stations (default 100)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--baseline-steps",
        type=int,
        default=2,
        help="steps timed with Floyd-Warshall (default 2; each takes several seconds)",
    )
    p.add_argument(
        "--baseline-graph",
        choices=("satellites", "full"),
        default="satellites",
        help=(
            "graph the Floyd-Warshall baseline runs on: 'satellites' as Hypatia's no-relay "
            "algorithm does (default), or 'full' (satellites + ground stations)"
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if args.steps < 1 or args.workers < 1 or args.baseline_steps < 0 or args.stations < 2:
        p.error("--steps and --workers must be >= 1, --stations >= 2, --baseline-steps >= 0")
    return args


def baseline_step(
    sat: NDArray[np.float64],
    isl: NDArray[np.int64],
    gs: NDArray[np.float64],
    up: NDArray[np.float64],
    min_el: float,
    max_range_km: float,
    graph: str,
) -> NDArray[np.float64]:
    """One step the Hypatia way: one-way delay (ms) between all ground stations ``(G, G)``.

    The edges are exactly skyfleet's: satellites visible at or above the minimum elevation
    (found with the same k-d tree helper; Hypatia measures every station-satellite distance in
    Python, slower still), laser links that clear the atmosphere, weights in ms of vacuum delay.

    Ground stations never relay, in Hypatia's no-relay algorithms as in skyfleet. On an
    undirected graph with one node per station, Floyd-Warshall would find shortcuts
    satellite -> station -> satellite (Hypatia's separate "with ground-station relaying"
    variant), so neither graph here allows them:

    * ``satellites``: Floyd-Warshall runs on the satellites and laser links only, as in Hypatia's
      ``algorithm_free_one_only_over_isls``; a station is never on that graph, so it cannot relay.
      The up- and down-links are then attached as Hypatia does (satellite -> station: minimum over
      the station's visible satellites; station -> station: minimum over the source's visible
      satellites), vectorised with numpy instead of Hypatia's Python loops, which only makes the
      baseline faster.
    * ``full``: Floyd-Warshall over all N + 2G nodes of a directed graph with each station split
      into a source node (edges out to its visible satellites only) and a sink node (edges in from
      them only), as skyfleet models it. A source node has no incoming edge and a sink node no
      outgoing edge, so no path can pass through a station.
    """
    import networkx as nx

    n, g = sat.shape[1], gs.shape[1]
    tree = cKDTree(sat.T)
    gi, si, rng = visible_pairs(tree, sat, gs, up, min_el, max_range_km)
    up_ms = vacuum_ms(rng)
    a, b = isl[:, 0], isl[:, 1]
    ok = segment_clears_earth(sat[:, a], sat[:, b])
    a, b = a[ok], b[ok]
    isl_ms = vacuum_ms(np.linalg.norm(sat[:, a] - sat[:, b], axis=0))
    isl_edges = list(zip(a.tolist(), b.tolist(), isl_ms.tolist(), strict=True))
    if graph == "full":
        net = nx.DiGraph()
        net.add_nodes_from(range(n + 2 * g))
        net.add_weighted_edges_from(isl_edges)
        net.add_weighted_edges_from((v, u, w) for u, v, w in isl_edges)
        net.add_weighted_edges_from(
            zip((n + gi).tolist(), si.tolist(), up_ms.tolist(), strict=True)
        )
        net.add_weighted_edges_from(
            zip(si.tolist(), (n + g + gi).tolist(), up_ms.tolist(), strict=True)
        )
        dist = nx.floyd_warshall_numpy(net)
        out = np.asarray(dist[n : n + g, n + g :], dtype=np.float64)
    else:
        net = nx.Graph()
        net.add_nodes_from(range(n))
        net.add_weighted_edges_from(isl_edges)
        dist = nx.floyd_warshall_numpy(net)  # (n, n) ms between satellites
        # Satellite -> station: best over the station's visible satellites of (ISL path + down).
        to_gs = np.full((n, g), np.inf)
        for k in range(g):
            mine = gi == k
            if mine.any():
                to_gs[:, k] = np.min(dist[:, si[mine]] + up_ms[mine][None, :], axis=1)
        # Station -> station: best over the source's visible satellites of (up + the above).
        out = np.full((g, g), np.inf)
        for k in range(g):
            mine = gi == k
            if mine.any():
                out[k] = np.min(up_ms[mine][:, None] + to_gs[si[mine]], axis=0)
    np.fill_diagonal(out, 0.0)
    return out


def off_diagonal(x: NDArray[Any]) -> NDArray[Any]:
    """The ``(..., G, G)`` entries with row != column, flattened on the last two axes."""
    g = x.shape[-1]
    mask = ~np.eye(g, dtype=bool)
    return x[..., mask]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    c = preset("starlink-s1")
    cities = largest_cities(args.stations)
    lat = np.array([p.lat_deg for p in cities])
    lon = np.array([p.lon_deg for p in cities])
    times = START_UNIX_S + np.arange(args.steps) * args.step_s

    t0 = time.perf_counter()
    rtt = ground_station_rtt_ms(c, lat, lon, times, workers=args.workers)
    seconds = time.perf_counter() - t0
    mem = peak_rss_mib(args.workers)  # before the baseline allocates anything

    pairs = off_diagonal(rtt)
    finite = np.isfinite(pairs)
    path_frac = float(finite.mean())
    median_rtt = float(np.median(pairs[finite])) if finite.any() else None

    # Baseline: Floyd-Warshall on a few steps spread over the run, then extrapolated.
    min_el = c.min_elevation_deg
    max_range = max_slant_range_km(c.max_altitude_km, min_el)
    isl = c.isl_pairs()
    gs, up = geodetic_to_ecef(lat, lon), up_vector(lat, lon)
    picks = np.unique(np.linspace(0, args.steps - 1, args.baseline_steps).round().astype(int))
    base_times: list[float] = []
    max_diff, inf_mismatch = 0.0, 0
    for k in picks.tolist():
        tb = time.perf_counter()
        sat = np.nan_to_num(c.positions_km(times[k]), nan=1e9)
        one_way = baseline_step(sat, isl, gs, up, min_el, max_range, args.baseline_graph)
        base_times.append(time.perf_counter() - tb)
        ours = off_diagonal(rtt[k].astype(np.float64))
        theirs = off_diagonal(2.0 * one_way)
        both = np.isfinite(ours) & np.isfinite(theirs)
        inf_mismatch += int(np.count_nonzero(np.isfinite(ours) != np.isfinite(theirs)))
        if both.any():
            max_diff = max(max_diff, float(np.max(np.abs(ours[both] - theirs[both]))))
    base_per_step = float(np.mean(base_times)) if base_times else None
    base_total = base_per_step * args.steps if base_per_step is not None else None
    ratio = base_total / seconds if base_total is not None else None
    cross_ok = inf_mismatch == 0 and max_diff <= TOLERANCE_MS

    n_pairs = args.stations * (args.stations - 1)
    report: dict[str, Any] = {
        "benchmark": "S1-100GS",
        "machine": machine(),
        "constellation": "starlink-s1",
        "satellites": c.size,
        "ground_stations": args.stations,
        "steps": args.steps,
        "step_s": args.step_s,
        "workers": args.workers,
        "seconds": round(seconds, 3),
        "steps_per_s": round(args.steps / seconds, 2),
        "peak_rss_mib": mem,
        "memory_method": "getrusage ru_maxrss: RUSAGE_SELF + RUSAGE_CHILDREN (largest worker)",
        "path_fraction": round(path_frac, 6),
        "median_rtt_ms": None if median_rtt is None else round(median_rtt, 3),
        "target_s": 60.0,
        "target_met": seconds < 60.0,
        "baseline": {
            "method": f"networkx.floyd_warshall_numpy, graph={args.baseline_graph}",
            "steps_timed": [int(k) for k in picks],
            "seconds_per_step": None if base_per_step is None else round(base_per_step, 3),
            "extrapolated_seconds": None if base_total is None else round(base_total, 1),
        },
        "speedup": None if ratio is None else round(ratio, 1),
        # The baseline runs in one process; this divides its time by the workers skyfleet had,
        # as if it parallelised perfectly.
        "speedup_same_cores": None if ratio is None else round(ratio / args.workers, 1),
        "cross_check": {
            "ok": cross_ok if base_times else None,
            "max_diff_ms": max_diff,
            "reachability_mismatches": inf_mismatch,
        },
    }
    lines = [
        f"S1-100GS  starlink-s1 ({c.size} sats), {args.stations} ground stations, "
        f"{args.steps} steps of {args.step_s:g} s, {args.workers} workers "
        f"({report['machine']['cpus']} CPUs)",
        f"skyfleet ground_station_rtt_ms: {fmt_s(seconds)}, {args.steps / seconds:,.1f} steps/s "
        f"(target < 60 s: {'met' if seconds < 60.0 else 'MISSED'})",
        memory_line(mem, args.workers),
        f"pairs with a path: {100 * path_frac:.2f}% of {n_pairs:,} pairs x {args.steps} steps; "
        f"median RTT {'n/a' if median_rtt is None else f'{median_rtt:.2f} ms'}",
    ]
    if base_per_step is not None and base_total is not None and ratio is not None:
        lines += [
            f"baseline Floyd-Warshall (networkx, graph={args.baseline_graph}): "
            f"{base_per_step:.2f} s/step on steps {[int(k) for k in picks]}, "
            f"extrapolated to {args.steps} steps: {fmt_s(base_total)}",
            f"speed-up: {ratio:,.0f}x wall-clock; {ratio / args.workers:,.0f}x against the one-process "
            f"baseline given the same {args.workers} cores (perfect scaling assumed)",
            f"cross-check: {'OK' if cross_ok else 'FAILED'} (max diff {max_diff:.2e} ms, "
            f"{inf_mismatch} reachability mismatches; tolerance {TOLERANCE_MS:g} ms)",
        ]
    emit(report, lines, args.json)
    return 0 if cross_ok or not base_times else 1


if __name__ == "__main__":
    sys.exit(main())
