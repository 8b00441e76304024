"""Benchmark: the Powershare validation matrix, scenario-steps per second.

The requirement (issue 5): at least 1,000 one-hour scenarios at 20 ms steps in under 60 s on a
2-core machine. This script times, in one run:

- the first 1,000 scenarios of the validation matrix (``skyfleet.powershare._certify.matrix``),
  then the whole matrix (1,600), both with the kernel on every core (numba ``prange`` over
  scenarios), load and solar profiles included;
- the baseline: the same kernel on one thread, on 100 scenarios spread evenly over the matrix,
  so the ratio is the parallel speed-up measured here;
- one 24-hour outage at 20 ms with a 1 s time series, what ``skyfleet powershare simulate``
  runs.

The first call compiles the kernel (or loads numba's cache); that time is reported apart and
not counted in the rates. Run ``python benchmarks/bench_powershare.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numba

from _bench import emit, fmt_s, machine, peak_rss_mib, source
from skyfleet.powershare import Scenario, SolarSpec, home_battery, simulate, vehicle
from skyfleet.powershare._certify import matrix

STEP_S = 0.02


def _steps(scenarios: list[Scenario]) -> int:
    return sum(round(s.duration_s / STEP_S) for s in scenarios)


def _timed(scenarios: list[Scenario], **kw: Any) -> tuple[float, list[Any]]:
    t0 = time.perf_counter()
    out = simulate(scenarios, dt_s=STEP_S, **kw)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 scenarios instead of the matrix")
    ap.add_argument("--baseline", type=int, default=100, help="scenarios in the 1-thread baseline")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    all_scenarios = matrix()
    first = all_scenarios[:200] if args.quick else all_scenarios[:1000]
    t0 = time.perf_counter()
    simulate(all_scenarios[:2], dt_s=STEP_S, chunk_s=60.0)  # compile or load the cached kernel
    warm_s = time.perf_counter() - t0

    threads = numba.get_num_threads()
    t_first, res_first = _timed(first)
    full = all_scenarios if not args.quick else first
    t_full, res_full = (t_first, res_first) if args.quick else _timed(full)
    failed = sum(bool(r.violations()) for r in res_full)

    numba.set_num_threads(1)
    base = all_scenarios[:: max(1, len(all_scenarios) // args.baseline)][: args.baseline]
    t_base, _ = _timed(base)
    numba.set_num_threads(threads)

    day = Scenario(
        vehicle=vehicle("cybertruck"),
        home_batteries=(home_battery("gen2"), home_battery("gen3")),
        load="typical",
        solar=SolarSpec(rated_w=8000.0),
        duration_s=86_400.0,
    )
    t_day, _ = _timed([day], record_every_s=1.0)

    rate_first = _steps(first) / t_first
    rate_full = _steps(full) / t_full
    rate_base = _steps(base) / t_base
    report = {
        "machine": machine() | {"numba": numba.__version__, "threads": threads},
        "source": source(),
        "step_s": STEP_S,
        "compile_or_load_s": round(warm_s, 2),
        "first_1000": {
            "scenarios": len(first),
            "scenario_steps": _steps(first),
            "seconds": round(t_first, 2),
            "scenario_steps_per_s": round(rate_first),
            "target_s": 60.0,
        },
        "matrix": {
            "scenarios": len(full),
            "scenario_steps": _steps(full),
            "seconds": round(t_full, 2),
            "scenario_steps_per_s": round(rate_full),
            "failed": failed,
        },
        "baseline_one_thread": {
            "scenarios": len(base),
            "seconds": round(t_base, 2),
            "scenario_steps_per_s": round(rate_base),
        },
        "ratio_vs_one_thread": round(rate_full / rate_base, 2),
        "one_day_outage_s": round(t_day, 2),
        "real_time_factor_one_scenario": round(86_400.0 / t_day),
        "peak_rss_mib": peak_rss_mib()["parent"],
    }
    lines = [
        f"Powershare matrix at {STEP_S * 1000:g} ms steps, {threads} threads "
        f"(compile/load first: {fmt_s(warm_s)})",
        f"  first {len(first):,} scenarios of 1 h: {fmt_s(t_first)} "
        f"({rate_first / 1e6:.2f} M scenario-steps/s; target: 1,000 in < 60 s)",
        f"  whole matrix, {len(full):,} scenarios: {fmt_s(t_full)} "
        f"({rate_full / 1e6:.2f} M scenario-steps/s), {failed} failing an invariant",
        f"  baseline, same kernel on 1 thread ({len(base)} scenarios): "
        f"{rate_base / 1e6:.2f} M scenario-steps/s; ratio {rate_full / rate_base:.2f}x",
        f"  one 24 h outage with a 1 s series: {fmt_s(t_day)} ({86_400.0 / t_day:,.0f}x real time)",
        f"  peak RSS {report['peak_rss_mib']:.0f} MiB",
    ]
    emit(report, lines, args.json)


if __name__ == "__main__":
    main()
