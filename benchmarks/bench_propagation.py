"""Benchmark: propagation throughput, Earth-fixed satellite positions per second.

skyfleet's Walker shells (``WalkerConstellation.positions_km`` for an array of times: circular
orbits with J2 secular drift, computed per plane and per time and combined by angle addition)
against sgp4's vectorised ``SatrecArray``, measured in the same run on the same satellites and
times. The baseline gets one ``Satrec`` per satellite initialised with ``sgp4init`` from the same
shell elements (circular, mean motion from the altitude, no drag) and includes the
TEME -> Earth-fixed rotation (``skyfleet.orbits.teme_to_ecef``) in its timing, so both sides
produce the same ``(3, N, T)`` Earth-fixed km array.

Run ``python benchmarks/bench_propagation.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sgp4.api import WGS72, Satrec, SatrecArray

from _bench import emit, machine, peak_rss_mib
from skyfleet.orbits import WalkerConstellation, preset, teme_to_ecef
from skyfleet.orbits._frames import jd_from_unix

START_UNIX_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the Walker shells' epoch
SGP4_EPOCH_JD = 2_433_281.5  # sgp4init counts epoch days from 1949-12-31 00:00 UT
UNIX_EPOCH_JD = 2_440_587.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Propagation throughput (Earth-fixed positions per second) of skyfleet's Walker "
            "shells against sgp4's SatrecArray + TEME->ECEF, on the same satellites and times in "
            "the same run. Target: at least 10x."
        ),
    )
    p.add_argument(
        "--constellation", default="starlink-gen1", help="preset name (default starlink-gen1)"
    )
    p.add_argument("--times", type=int, default=1000, help="number of times (default 1000)")
    p.add_argument("--step-s", type=float, default=10.0, help="spacing of the times, s (10)")
    p.add_argument("--repeat", type=int, default=3, help="take the best of N runs (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if args.times < 1 or args.repeat < 1 or args.step_s <= 0:
        p.error("--times and --repeat must be >= 1 and --step-s > 0")
    return args


def satrecs(c: WalkerConstellation) -> list[Satrec]:
    """One SGP4 record per satellite, from the same elements the Walker shells use.

    Satellite ``p * S + s`` of a shell: right ascension of the node ``raan0 + 360 p / P`` at the
    shell epoch (the TEME frame is the one whose angle to Earth-fixed is GMST, as in the shells),
    argument of latitude ``360 (s / S + F p / (P S))`` carried as the mean anomaly with
    argument of perigee 0, eccentricity 0 (circular), Keplerian mean motion from the altitude,
    no drag.
    """
    out = []
    satnum = 1
    for sh in c.shells:
        epoch_days = sh.epoch_unix_s / 86_400.0 + (UNIX_EPOCH_JD - SGP4_EPOCH_JD)
        no_rad_min = sh.mean_motion_rad_s * 60.0
        inc = np.radians(sh.inclination_deg)
        P, S = sh.planes, sh.sats_per_plane
        for p in range(P):
            raan = np.radians(sh.raan0_deg) + 2.0 * np.pi * p / P
            for s in range(S):
                u0 = 2.0 * np.pi * (s / S + sh.phasing * p / (P * S))
                rec = Satrec()
                rec.sgp4init(
                    WGS72,
                    "i",
                    satnum,
                    epoch_days,
                    0.0,  # bstar
                    0.0,  # ndot
                    0.0,  # nddot
                    0.0,  # ecco
                    0.0,  # argpo
                    float(inc),
                    float(np.mod(u0, 2.0 * np.pi)),  # mo
                    float(no_rad_min),  # no_kozai, rad/min
                    float(np.mod(raan, 2.0 * np.pi)),  # nodeo
                )
                out.append(rec)
                satnum += 1
    return out


def sgp4_positions_km(
    arr: SatrecArray, times: NDArray[np.float64]
) -> tuple[NDArray[np.float64], int]:
    """SGP4 positions, Earth-fixed km ``(3, N, T)``, and the number of (sat, time) errors."""
    jd, fr = jd_from_unix(times)
    err, r, _ = arr.sgp4(jd, fr)  # r: (N, T, 3) TEME km
    return teme_to_ecef(np.moveaxis(r, -1, 0), times), int(np.count_nonzero(err))


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time (perf_counter) of ``repeat`` calls, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def traced_peak_mib(fn: Callable[[], Any]) -> float:
    """Peak memory allocated during one extra, untimed call (tracemalloc; numpy reports its
    array buffers to tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    c = preset(args.constellation)
    times = START_UNIX_S + np.arange(args.times) * args.step_s
    n_pos = c.size * args.times

    t0 = time.perf_counter()
    recs = satrecs(c)
    arr = SatrecArray(recs)
    setup_s = time.perf_counter() - t0

    ours_s, ours = best_of(lambda: c.positions_km(times), args.repeat)
    theirs_s, (theirs, n_err) = best_of(lambda: sgp4_positions_km(arr, times), args.repeat)
    ours_rate, theirs_rate = n_pos / ours_s, n_pos / theirs_s
    ratio = ours_rate / theirs_rate

    diff = np.linalg.norm(ours - theirs, axis=0)  # (N, T) km
    diff_first = float(np.nanmax(diff[:, 0]))
    diff_max = float(np.nanmax(diff))
    diff_median = float(np.nanmedian(diff))
    del ours, theirs, diff
    ours_mib = traced_peak_mib(lambda: c.positions_km(times))
    theirs_mib = traced_peak_mib(lambda: sgp4_positions_km(arr, times))
    mem = peak_rss_mib(0)

    span_h = (times[-1] - times[0]) / 3600.0
    report: dict[str, Any] = {
        "benchmark": "propagation",
        "machine": machine(),
        "constellation": args.constellation,
        "satellites": c.size,
        "times": args.times,
        "step_s": args.step_s,
        "span_h": round(span_h, 3),
        "repeat": args.repeat,
        "positions": n_pos,
        "skyfleet": {
            "seconds": round(ours_s, 4),
            "positions_per_s": round(ours_rate),
            "traced_peak_mib": round(ours_mib, 1),
        },
        "sgp4": {
            "seconds": round(theirs_s, 4),
            "positions_per_s": round(theirs_rate),
            "traced_peak_mib": round(theirs_mib, 1),
            "setup_seconds": round(setup_s, 3),
            "errors": n_err,
        },
        "ratio": round(ratio, 2),
        "target_ratio": 10.0,
        "target_met": ratio >= 10.0,
        "position_diff_km": {
            "first_time_max": round(diff_first, 3),
            "median": round(diff_median, 3),
            "max": round(diff_max, 3),
        },
        "peak_rss_mib": mem,
        "memory_method": "tracemalloc peak per call (one extra untimed call each); "
        "process ru_maxrss for the whole run",
    }
    lines = [
        f"propagation  {args.constellation} ({c.size:,} sats) x {args.times:,} times "
        f"({args.step_s:g} s apart, {span_h:.2f} h) = {n_pos:,} Earth-fixed positions; "
        f"best of {args.repeat}",
        f"skyfleet Walker positions_km:   {ours_s:.3f} s, {ours_rate / 1e6:,.1f} M positions/s, "
        f"traced peak {ours_mib:,.0f} MiB",
        f"sgp4 SatrecArray + teme_to_ecef: {theirs_s:.3f} s, {theirs_rate / 1e6:,.1f} M "
        f"positions/s, traced peak {theirs_mib:,.0f} MiB "
        f"(+ {setup_s:.2f} s untimed sgp4init setup; {n_err} propagation errors)",
        f"ratio: {ratio:.1f}x (target >= 10x: {'met' if ratio >= 10.0 else 'MISSED'})",
        f"position difference Walker vs SGP4: max {diff_first:.2f} km at the first time, "
        f"median {diff_median:.2f} km, max {diff_max:.2f} km over the run",
        f"process peak RSS (ru_maxrss): {mem['parent']:.0f} MiB",
    ]
    emit(report, lines, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
