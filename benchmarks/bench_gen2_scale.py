"""Benchmark gen2-scale: link series for 100 cities over Starlink Gen2 (~30,000 satellites), a day.

``starlink-gen2`` (29,988 satellites in 9 shells, +Grid laser links), one day at 15 s steps
(5,760 steps); the 100 most populous cities each linked to its nearest cloud region (great
circle, among every packaged region), mode ``best`` (laser links or bent-pipe, whichever is
faster), with ``link_series_many`` on 2 worker processes. skyfleet runs one Dijkstra per distinct
destination per step, shared by every place going there. Target: under 5 minutes and 4 GiB.

Baseline, measured in the same run on a few steps and extrapolated: the naive approach of one
Dijkstra per place per step, on a graph built like skyfleet's (satellites, gateways, destination
nodes, place nodes) from the same positions with the same visibility, laser-link and fiber rules.

Run ``python benchmarks/bench_gen2_scale.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from _bench import emit, fmt_s, machine, memory_line, peak_rss_mib
from skyfleet.links import (
    LinkOptions,
    Place,
    cloud_regions,
    decision_steps,
    fiber_one_way_ms,
    gateways,
    great_circle_km,
    largest_cities,
    link_series_many,
    max_slant_range_km,
    time_grid,
)
from skyfleet.links._geometry import segment_clears_earth, vacuum_ms, visible_pairs
from skyfleet.orbits import WalkerConstellation, geodetic_to_ecef, preset, up_vector

START_UNIX_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP_S = 15.0
TOLERANCE_MS = 1e-3
TARGET_S = 300.0
TARGET_MIB = 4096.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Starlink Gen2 (~30,000 sats) link series for the largest cities, each to its "
            "nearest cloud region, mode best, 15 s steps. Times link_series_many against one "
            "Dijkstra per place per step (scipy), measured on a few steps of the same run and "
            "extrapolated. Target: 24 h in under 5 minutes and 4 GiB on 2 cores."
        ),
    )
    p.add_argument("--duration-h", type=float, default=24.0, help="hours simulated (default 24)")
    p.add_argument("--places", type=int, default=100, help="largest cities used (default 100)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--baseline-steps", type=int, default=3, help="steps timed for the baseline (default 3)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if args.duration_h <= 0 or args.places < 1 or args.workers < 1 or args.baseline_steps < 0:
        p.error("--duration-h must be > 0, --places and --workers >= 1, --baseline-steps >= 0")
    return args


def nearest_regions(places: list[Place]) -> list[Place]:
    """Each place's nearest cloud region by great-circle distance."""
    regions = cloud_regions()
    lat = np.array([r.lat_deg for r in regions])
    lon = np.array([r.lon_deg for r in regions])
    return [
        regions[int(np.argmin(great_circle_km(p.lat_deg, p.lon_deg, lat, lon)))] for p in places
    ]


class NaiveBaseline:
    """One Dijkstra per place per step, on a graph like skyfleet's.

    Nodes: satellites ``[0, n)``, gateways, one node per distinct destination, one node per place.
    Directed edges, all weighted in ms one way: place -> each satellite it sees (up-link), laser
    links both ways (those that clear the atmosphere), satellite -> each gateway that sees it
    (down-link), gateway -> destination (fiber at the options' inflation). A place's RTT is twice
    its distance to its destination node. Gateways and destinations have no edge back to a
    satellite, so nothing relays through the ground, as in skyfleet.
    """

    def __init__(self, c: WalkerConstellation, places: list[Place], dests: list[Place]) -> None:
        opts = LinkOptions(mode="best")
        self.c = c
        self.min_el = c.min_elevation_deg
        self.max_range_km = max_slant_range_km(c.max_altitude_km, self.min_el)
        self.isl = c.isl_pairs()
        gws = gateways()
        gw_lat = np.array([g.lat_deg for g in gws])
        gw_lon = np.array([g.lon_deg for g in gws])
        self.gw_ecef, self.gw_up = geodetic_to_ecef(gw_lat, gw_lon), up_vector(gw_lat, gw_lon)
        keys = list(dict.fromkeys((d.lat_deg, d.lon_deg) for d in dests))
        self.src_dest = np.array([keys.index((d.lat_deg, d.lon_deg)) for d in dests])
        d_lat = np.array([k[0] for k in keys])
        d_lon = np.array([k[1] for k in keys])
        gc = great_circle_km(d_lat[:, None], d_lon[:, None], gw_lat[None, :], gw_lon[None, :])
        self.fiber_ms = fiber_one_way_ms(gc, opts.fiber_inflation)  # (D, G)
        p_lat = np.array([p.lat_deg for p in places])
        p_lon = np.array([p.lon_deg for p in places])
        self.p_ecef, self.p_up = geodetic_to_ecef(p_lat, p_lon), up_vector(p_lat, p_lon)

    def step(self, t_unix_s: float) -> NDArray[np.float64]:
        """RTT (ms, NaN without a path) per place at one time, positions included."""
        sat = np.nan_to_num(self.c.positions_km(t_unix_s), nan=1e9)
        n = sat.shape[1]
        n_dest, n_gw = self.fiber_ms.shape
        n_place = self.p_ecef.shape[1]
        tree = cKDTree(sat.T)
        gi, gsi, grng = visible_pairs(
            tree, sat, self.gw_ecef, self.gw_up, self.min_el, self.max_range_km
        )
        pi, psi, prng = visible_pairs(
            tree, sat, self.p_ecef, self.p_up, self.min_el, self.max_range_km
        )
        a, b = self.isl[:, 0], self.isl[:, 1]
        ok = segment_clears_earth(sat[:, a], sat[:, b])
        a, b = a[ok], b[ok]
        isl_ms = vacuum_ms(np.linalg.norm(sat[:, a] - sat[:, b], axis=0))
        gw0, d0, p0 = n, n + n_gw, n + n_gw + n_dest
        rows = [a, b, gsi, np.tile(gw0 + np.arange(n_gw), n_dest), p0 + pi]
        cols = [b, a, gw0 + gi, np.repeat(d0 + np.arange(n_dest), n_gw), psi]
        vals = [isl_ms, isl_ms, vacuum_ms(grng), self.fiber_ms.ravel() + 1e-9, vacuum_ms(prng)]
        size = p0 + n_place
        graph = csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(size, size),
        )
        dist = dijkstra(graph, directed=True, indices=p0 + np.arange(n_place))
        one_way = dist[np.arange(n_place), d0 + self.src_dest]
        return np.where(np.isfinite(one_way), 2.0 * one_way, np.nan)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    c = preset("starlink-gen2")
    places = largest_cities(args.places)
    dests = nearest_regions(places)
    n_dest = len({(d.lat_deg, d.lon_deg) for d in dests})
    duration_s = args.duration_h * 3600.0
    opts = LinkOptions(mode="best")

    t0 = time.perf_counter()
    series = link_series_many(
        c, places, dests, START_UNIX_S, duration_s, STEP_S, opts, workers=args.workers
    )
    seconds = time.perf_counter() - t0
    mem = peak_rss_mib(args.workers)  # before the baseline allocates anything

    steps = series[0].t_s.size
    rtt = np.stack([s.rtt_ms for s in series], axis=1)  # (T, P)
    avail = 100.0 * np.mean(np.isfinite(rtt), axis=0)
    med = [float(np.median(col[np.isfinite(col)])) for col in rtt.T if np.isfinite(col).any()]
    median_avail = float(np.median(avail))
    median_rtt = float(np.median(med)) if med else None

    # Baseline on a few steps spread over the run, extrapolated to the full step count.
    t_abs = START_UNIX_S + time_grid(START_UNIX_S, duration_s, STEP_S)
    decide = decision_steps(t_abs, opts.reassign_s, opts.reassign_offset_s)
    picks = np.unique(np.linspace(0, steps - 1, args.baseline_steps).round().astype(int))
    base_times: list[float] = []
    max_diff, mismatch, below = 0.0, 0, 0
    if picks.size:
        naive = NaiveBaseline(c, places, dests)
        for k in picks.tolist():
            tb = time.perf_counter()
            theirs = naive.step(float(t_abs[k]))
            base_times.append(time.perf_counter() - tb)
            ours = rtt[k]
            mismatch += int(np.count_nonzero(np.isfinite(ours) != np.isfinite(theirs)))
            both = np.isfinite(ours) & np.isfinite(theirs)
            if decide[k]:
                # At a re-assignment step skyfleet picks the best satellite: the shortest path.
                if both.any():
                    max_diff = max(max_diff, float(np.max(np.abs(ours[both] - theirs[both]))))
            else:
                # Between decisions skyfleet keeps its satellite: never better than the best.
                below += int(np.count_nonzero(ours[both] < theirs[both] - TOLERANCE_MS))
    base_per_step = float(np.mean(base_times)) if base_times else None
    base_total = None if base_per_step is None else base_per_step * steps
    ratio = None if base_total is None else base_total / seconds
    cross_ok = mismatch == 0 and below == 0 and max_diff <= TOLERANCE_MS

    # The target is for a day; a shorter run is projected to 24 h (time is linear in steps).
    day_s = seconds * 86_400.0 / duration_s
    report: dict[str, Any] = {
        "benchmark": "gen2-scale",
        "machine": machine(),
        "constellation": "starlink-gen2",
        "satellites": c.size,
        "places": args.places,
        "distinct_destinations": n_dest,
        "mode": opts.mode,
        "duration_h": args.duration_h,
        "step_s": STEP_S,
        "steps": steps,
        "workers": args.workers,
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 3),
        "place_steps_per_s": round(steps * args.places / seconds, 1),
        "peak_rss_mib": mem,
        "memory_method": "getrusage ru_maxrss: RUSAGE_SELF + workers x RUSAGE_CHILDREN "
        "(largest worker)",
        "median_availability_pct": round(median_avail, 3),
        "median_rtt_ms": None if median_rtt is None else round(median_rtt, 3),
        "target_s": TARGET_S,
        "target_mib": TARGET_MIB,
        "projected_24h_seconds": round(day_s, 1),
        "target_met": {"time_24h": day_s < TARGET_S, "memory": mem["total_bound"] < TARGET_MIB},
        "baseline": {
            "method": "scipy.sparse.csgraph.dijkstra from every place node, per step",
            "steps_timed": [int(k) for k in picks],
            "seconds_per_step": None if base_per_step is None else round(base_per_step, 3),
            "extrapolated_seconds": None if base_total is None else round(base_total, 1),
        },
        "speedup": None if ratio is None else round(ratio, 2),
        # The baseline runs in one process; this divides its time by the workers skyfleet had,
        # as if it parallelised perfectly.
        "speedup_same_cores": None if ratio is None else round(ratio / args.workers, 2),
        "cross_check": {
            "ok": cross_ok if base_times else None,
            "max_diff_ms": max_diff,
            "reachability_mismatches": mismatch,
            "below_shortest_path": below,
        },
    }
    lines = [
        f"gen2-scale  starlink-gen2 ({c.size:,} sats), {args.places} cities -> nearest cloud "
        f"region ({n_dest} distinct), mode {opts.mode}, {args.duration_h:g} h at {STEP_S:g} s = "
        f"{steps:,} steps, {args.workers} workers ({report['machine']['cpus']} CPUs)",
        f"skyfleet link_series_many: {fmt_s(seconds)}, {steps / seconds:,.2f} steps/s, "
        f"{steps * args.places / seconds:,.0f} place-steps/s",
        ("24 h" if args.duration_h == 24 else f"projected to 24 h ({86_400 / STEP_S:,.0f} steps)")
        + f": {fmt_s(day_s)} (target < {TARGET_S:.0f} s: "
        + ("met)" if day_s < TARGET_S else "MISSED)"),
        memory_line(mem, args.workers)
        + f" (target < {TARGET_MIB:.0f} MiB: "
        + ("met)" if mem["total_bound"] < TARGET_MIB else "MISSED)"),
        f"median over places: availability {median_avail:.2f}%, RTT "
        + ("n/a" if median_rtt is None else f"{median_rtt:.2f} ms"),
    ]
    if base_per_step is not None and base_total is not None and ratio is not None:
        lines += [
            f"baseline one Dijkstra per place (scipy): {base_per_step:.2f} s/step on steps "
            f"{[int(k) for k in picks]}, extrapolated to {steps:,} steps: {fmt_s(base_total)}",
            f"speed-up: {ratio:.2f}x wall-clock; {ratio / args.workers:.2f}x against the one-process "
            f"baseline given the same {args.workers} cores (perfect scaling assumed)",
            f"cross-check: {'OK' if cross_ok else 'FAILED'} (max diff {max_diff:.2e} ms, "
            f"{mismatch} reachability mismatches, {below} below the shortest path)",
        ]
    emit(report, lines, args.json)
    return 0 if cross_ok or not base_times else 1


if __name__ == "__main__":
    sys.exit(main())
