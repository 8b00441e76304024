"""Certification: the protection harness and the validation matrix, with one verdict.

The matrix crosses vehicle firmware x home batteries (none, one, two, three; each generation and
mixed) x starting states of charge x load profiles (with motor starts) x solar or none x the
time of day the outage starts. Every scenario has a stable id, and :func:`scenario_from_id`
rebuilds it, so a failure can be re-run alone (``skyfleet powershare certify --scenario ID``).

>>> m = matrix()
>>> len(m) >= 1000, len({scenario_id(s) for s in m}) == len(m)
(True, True)
>>> scenario_from_id(scenario_id(m[7])) == m[7]
True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skyfleet.errors import PowershareConfigError
from skyfleet.powershare._devices import (
    FIRMWARES,
    Firmware,
    HomeBatterySpec,
    SolarSpec,
    TripSettings,
    home_battery,
    home_battery_names,
    vehicle,
)
from skyfleet.powershare._island import IslandResult, Limits, Scenario, simulate
from skyfleet.powershare._plan import FrequencyPlan
from skyfleet.powershare._protection import TripTest, trip_tests

__all__ = [
    "Certification",
    "certify",
    "matrix",
    "scenario_from_id",
    "scenario_id",
]

VEHICLE = "cybertruck"
HOME_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("gen1",),
    ("gen2",),
    ("gen3",),
    ("gen1", "gen2"),
    ("gen1", "gen3"),
    ("gen2", "gen3"),
    ("gen3", "gen3"),
    ("gen1", "gen2", "gen3"),
)
VEHICLE_SOCS = (22.0, 90.0)  # 22 %: 2 % above the reserve, it runs out within the hour
HOME_SOCS = (15.0, 50.0, 100.0)
LOADS = ("typical", "essential")
SOLAR_W = (0.0, 8000.0)
STARTS = ("03:00", "07:30", "12:30", "18:30")
DURATION_S = 3600.0


def _clock(hhmm: str) -> float:
    h, m = hhmm.split(":")
    return int(h) * 3600.0 + int(m) * 60.0


def _hhmm(start_s: float) -> str:
    return f"{int(start_s // 3600):02d}:{int(start_s % 3600 // 60):02d}"


def _home_socs(n: int, soc: float) -> tuple[float, ...]:
    """Several batteries start 10 points apart (the fuller must carry more), none below 8 %
    (just above the catalogue's reserves)."""
    return tuple(max(8.0, min(100.0, soc - 10.0 * i)) for i in range(n))


def scenario_id(s: Scenario) -> str:
    """A stable, readable name: ``fw=adaptive/home=gen1+gen3/soc=90,50+40/load=typical/solar=8kW/start=18:30``."""
    fw = s.vehicle.firmware if s.vehicle is not None else "none"
    homes = "+".join(h.name for h in s.home_batteries) or "none"
    socs = "+".join(f"{x:g}" for x in s.home_socs()) or "-"
    solar = f"{(s.solar.rated_w if s.solar else 0.0) / 1000:g}kW"
    return (
        f"fw={fw}/home={homes}/soc={s.vehicle_soc_pct:g},{socs}/load={s.load}/solar={solar}"
        f"/start={_hhmm(s.start_s)}"
    )


def _make(
    fw: Firmware,
    homes: Sequence[str],
    vsoc: float,
    hsocs: tuple[float, ...],
    load: str,
    solar_w: float,
    start: str,
) -> Scenario:
    specs: tuple[HomeBatterySpec, ...] = tuple(home_battery(h) for h in homes)
    s = Scenario(
        vehicle=vehicle(VEHICLE, firmware=fw),
        home_batteries=specs,
        vehicle_soc_pct=vsoc,
        home_soc_pct=hsocs,
        load=load,
        solar=SolarSpec(rated_w=solar_w) if solar_w > 0 else None,
        start_s=_clock(start),
        duration_s=DURATION_S,
    )
    seed = zlib.crc32(scenario_id(s).encode()) & 0x7FFFFFFF
    return dataclasses.replace(s, seed=seed, name=scenario_id(s))


def matrix() -> list[Scenario]:
    """The validation matrix (1,600 one-hour scenarios)."""
    out = []
    for fw, homes, vsoc, load, solar_w, start in itertools.product(
        FIRMWARES, HOME_SETS, VEHICLE_SOCS, LOADS, SOLAR_W, STARTS
    ):
        for hsoc in HOME_SOCS if homes else (None,):
            hsocs = _home_socs(len(homes), hsoc) if hsoc is not None else ()
            out.append(_make(fw, homes, vsoc, hsocs, load, solar_w, start))
    return out


def scenario_from_id(text: str) -> Scenario:
    """Rebuild a matrix scenario from :func:`scenario_id`'s name."""
    try:
        parts = dict(p.split("=", 1) for p in text.strip().split("/"))
        fw = parts["fw"]
        homes = [] if parts["home"] == "none" else parts["home"].split("+")
        vsoc_text, hsoc_text = parts["soc"].split(",", 1)
        hsocs = () if hsoc_text == "-" else tuple(float(x) for x in hsoc_text.split("+"))
        solar_w = float(parts["solar"].removesuffix("kW")) * 1000.0
        load, start = parts["load"], parts["start"]
        _clock(start)
    except (KeyError, ValueError) as exc:
        raise PowershareConfigError(
            f"cannot read scenario id {text!r} ({exc}): copy it from 'skyfleet powershare "
            "certify' output, e.g. fw=adaptive/home=gen2/soc=90,50/load=typical/solar=8kW/start=18:30"
        ) from None
    if fw not in FIRMWARES:
        raise PowershareConfigError(f"scenario id: unknown firmware {fw!r}")
    if len(hsocs) != len(homes):
        raise PowershareConfigError(
            f"scenario id: {len(homes)} home batteries but {len(hsocs)} states of charge"
        )
    fw_t: Firmware = "adaptive" if fw == "adaptive" else "basic"
    return _make(fw_t, homes, float(vsoc_text), hsocs, load, solar_w, start)


@dataclass
class Certification:
    """The verdict: every trip test and every scenario, and what failed."""

    harness: list[tuple[str, TripTest]]
    results: list[IslandResult]
    limits: Limits
    dt_s: float
    elapsed_s: float = 0.0
    simulate_s: float = 0.0
    failures: list[tuple[str, list[str]]] = field(default_factory=list)
    verdicts: list[list[str]] = field(default_factory=list)
    """Each result's broken invariants (empty: it passed), in the order of ``results``."""

    def __post_init__(self) -> None:
        self.verdicts = [r.violations(self.limits) for r in self.results]
        self.failures = [
            (f"trip/{owner}/{t.element}/{t.kind}/{t.repetition}", [_trip_message(t)])
            for owner, t in self.harness
            if not t.passed
        ]
        self.failures += [
            (r.scenario.name or scenario_id(r.scenario), v)
            for r, v in zip(self.results, self.verdicts, strict=True)
            if v
        ]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def scenario_steps(self) -> int:
        return sum(round(r.scenario.duration_s / r.dt_s) for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {
            "passed": self.passed,
            "scenarios": len(self.results),
            "scenario_steps": self.scenario_steps,
            "step_s": self.dt_s,
            "elapsed_s": round(self.elapsed_s, 2),
            "simulate_s": round(self.simulate_s, 2),
            "trip_tests": {
                "run": len(self.harness),
                "passed": sum(t.passed for _, t in self.harness),
                "rows": [
                    {
                        "device": owner,
                        "element": t.element,
                        "kind": t.kind,
                        "repetition": t.repetition,
                        "level": t.level,
                        "clear_s": t.clear_s,
                        "tolerance_s": round(t.tolerance_s, 4),
                        "trip_s": None if t.trip_s is None else round(t.trip_s, 4),
                        "passed": t.passed,
                    }
                    for owner, t in self.harness
                ],
            },
            "matrix": [
                {
                    "id": r.scenario.name or scenario_id(r.scenario),
                    "passed": not v,
                    "violations": v,
                    "hours_powered": round(r.hours_powered, 4),
                    "vehicle_kwh": round(
                        sum(d.out_kwh for d in r.devices if d.kind == "vehicle"), 4
                    ),
                    "home_kwh": round(sum(d.out_kwh for d in r.devices if d.kind == "home"), 4),
                    "solar_kwh": round(r.solar_kwh, 4),
                    "f_min_hz": None if math.isnan(r.f_min_hz) else round(r.f_min_hz, 4),
                    "f_max_hz": None if math.isnan(r.f_max_hz) else round(r.f_max_hz, 4),
                    "v_min_pu": None if math.isnan(r.v_min_pu) else round(r.v_min_pu, 4),
                    "v_max_pu": None if math.isnan(r.v_max_pu) else round(r.v_max_pu, 4),
                    "role_changes": r.role_changes,
                    "balance_error": r.balance_error,
                }
                for r, v in zip(self.results, self.verdicts, strict=True)
            ],
            "failures": [{"id": name, "why": why} for name, why in self.failures],
        }


def _trip_message(t: TripTest) -> str:
    if t.kind == "inside":
        return f"{t.element} tripped at {t.level} after {t.trip_s} s; it must ride through"
    got = "did not trip" if t.trip_s is None else f"tripped after {t.trip_s:.3f} s"
    return f"{t.element} at {t.level} {got}; must trip in {t.clear_s} s +- {t.tolerance_s:.3f} s"


def device_trip_settings() -> list[tuple[str, TripSettings]]:
    """The trip settings of every catalogue device and of solar, as certified."""
    out: list[tuple[str, TripSettings]] = [(f"vehicle:{VEHICLE}", vehicle(VEHICLE).trip)]
    out += [(f"home:{name}", home_battery(name).trip) for name in home_battery_names()]
    out.append(("solar", SolarSpec(rated_w=1.0).trip))
    return out


def certify(
    scenarios: Sequence[Scenario] | None = None,
    *,
    dt_s: float = 0.02,
    limits: Limits | None = None,
    plan: FrequencyPlan | None = None,
    trips: Sequence[tuple[str, TripSettings]] | None = None,
    relay_dt_s: float = 0.001,
    progress: Callable[[int], None] | None = None,
) -> Certification:
    """Run the trip harness on every device's settings (sampled every ``relay_dt_s``) and the
    scenarios (the whole :func:`matrix` unless given, at steps of ``dt_s``) and return the
    verdict."""
    t0 = time.perf_counter()
    benched: dict[TripSettings, list[TripTest]] = {}  # devices sharing settings share a bench run
    harness = []
    for owner, settings in trips if trips is not None else device_trip_settings():
        if settings not in benched:
            benched[settings] = trip_tests(settings, dt_s=relay_dt_s)
        harness += [(owner, t) for t in benched[settings]]
    t1 = time.perf_counter()
    runs = simulate(
        list(scenarios) if scenarios is not None else matrix(),
        dt_s=dt_s,
        plan=plan,
        progress=progress,
    )
    return Certification(
        harness=harness,
        results=runs,
        limits=limits or Limits(),
        dt_s=dt_s,
        elapsed_s=time.perf_counter() - t0,
        simulate_s=time.perf_counter() - t1,
    )
