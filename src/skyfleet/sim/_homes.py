"""The demo's Powershare homes: a home battery and a truck per house, a grid outage over one
region, and what the devices report minute by minute.

Homes in the outage run through :func:`skyfleet.powershare.simulate` all at once (one scenario
per house: its battery generation, truck, states of charge, load profile and the outage's local
time of day); its one-minute records become the devices' samples during the outage. Outside
the outage a device reports the grid: idle at its state of charge, the grid's frequency, and
after the outage charging back (negative power) to where it started.

Times are UNIX seconds, powers W (positive = discharging into the house), state of charge %,
frequency Hz, energy kWh, distances km.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyfleet.links import great_circle_km, resolve_place
from skyfleet.powershare import (
    ROLES,
    FrequencyPlan,
    IslandResult,
    Scenario,
    TripSettings,
    home_battery,
    simulate,
    vehicle,
)
from skyfleet.telemetry import Telemetry

__all__ = [
    "GRID_STATE",
    "HOME_REGIONS",
    "ISLAND_STATES",
    "HomeDevicePlan",
    "HomePlan",
    "Outage",
    "OutageSummary",
    "plan_homes",
]

#: Where the homes are: (``city:`` name, share of the homes, whether its grid goes down).
HOME_REGIONS: tuple[tuple[str, float, bool], ...] = (
    ("Houston,US", 0.2, True),
    ("Phoenix,US", 0.3, False),
    ("Atlanta,US", 0.25, False),
    ("Denver,US", 0.25, False),
)
#: Homes lie within this distance of their city's centre, km; the outage reaches a bit further.
HOME_SPREAD_KM = 30.0
OUTAGE_RADIUS_KM = 40.0
#: A device's state on the grid, and the states it reports on the island (by Powershare role).
GRID_STATE = "grid"
_ROLE_STATES = {"forming": "grid-forming", "following": "following", "tripped": "tripped"}
ISLAND_STATES = frozenset({"island", *_ROLE_STATES.values()})
#: The simulator's step, s: the frequency plan's dead-bus slot, the longest step it allows.
ISLAND_DT_S = FrequencyPlan().slot_s
#: A truck charges back from the home's charger at this power after the outage, W (48 A at 240 V).
TRUCK_CHARGE_W = 11_520.0
_NOMINAL_HZ = 60.0
_SAMPLE_S = 60.0


@dataclass(frozen=True)
class Outage:
    """A grid outage: ``region`` (a name), its centre (degrees) and radius (km), and when it
    holds, ``[start_s, end_s)`` UNIX seconds."""

    region: str
    lat_deg: float
    lon_deg: float
    radius_km: float
    start_s: float
    end_s: float


@dataclass(frozen=True, eq=False)
class HomeDevicePlan:
    """A device at a home: ``kind`` ``home-battery`` (``hw`` its generation, ``gen1``..) or
    ``vehicle`` (the truck; ``hw`` ``hw3``/``hw4``, ``model`` the Powershare catalogue vehicle).
    ``soc_start_pct`` is its state of charge on the grid before the outage; ``charge_w`` the power
    it charges back at after it. During the outage, one entry per minute: ``island_soc_pct`` at
    the minute's end, ``island_power_w`` its mean and ``island_role`` (a Powershare role)."""

    device_id: str
    kind: str
    hw: str
    attributes: dict[str, str]
    model: str = ""
    capacity_kwh: float = 0.0
    soc_start_pct: float = 0.0
    charge_w: float = 0.0
    island_soc_pct: np.ndarray[Any, Any] = field(default_factory=lambda: np.empty(0), repr=False)
    island_power_w: np.ndarray[Any, Any] = field(default_factory=lambda: np.empty(0), repr=False)
    island_role: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, eq=False)
class HomePlan:
    """A home: where it is, whether its grid goes down, its devices, and (in the outage) the
    island's frequency per minute (Hz, NaN while the house is dark) and whether Powershare kept
    it powered from the first moment a device formed the island to the end (``powered_through``;
    None outside the outage)."""

    home_id: str
    lat_deg: float
    lon_deg: float
    in_outage: bool
    devices: tuple[HomeDevicePlan, ...]
    outage_start_s: float = math.nan
    outage_end_s: float = math.nan
    island_freq_hz: np.ndarray[Any, Any] = field(default_factory=lambda: np.empty(0), repr=False)
    powered_through: bool | None = None

    def samples_between(self, t0_s: float, t1_s: float) -> dict[str, list[Telemetry]]:
        """Each device's samples, one per whole simulated minute ``ts`` in ``[t0_s, t1_s)``
        (UNIX s): ``soc_pct``, ``power_w`` (W, positive = discharging into the house),
        ``freq_hz`` (None while the house is dark) and ``state`` (``grid``, or on the island
        ``grid-forming``, ``following``, ``island`` (connected, not supplying) or ``tripped``),
        at the home's position. A sample on the island describes the minute starting at ``ts``
        (mean power, state of charge and role at its end)."""
        ts = np.arange(math.ceil(t0_s / _SAMPLE_S), math.ceil(t1_s / _SAMPLE_S)) * _SAMPLE_S
        return self.samples_at(ts)

    def samples_at(self, ts: np.ndarray[Any, Any]) -> dict[str, list[Telemetry]]:
        """Each device's samples at the times ``ts`` (UNIX s, whole minutes, ascending), as
        :meth:`samples_between` makes them (a caller that keeps only some builds only those)."""
        out: dict[str, list[Telemetry]] = {}
        for dev in self.devices:
            soc, power, freq, states = self._series(dev, ts)
            out[dev.device_id] = [
                Telemetry(
                    float(t),
                    lat_deg=self.lat_deg,
                    lon_deg=self.lon_deg,
                    soc_pct=round(float(s), 3),
                    state=st,
                    freq_hz=None if not math.isfinite(f) else round(float(f), 4),
                    power_w=round(float(p), 1),
                )
                for t, s, p, f, st in zip(ts, soc, power, freq, states, strict=True)
            ]
        return out

    def _series(self, dev: HomeDevicePlan, ts: np.ndarray[Any, Any]) -> tuple[Any, Any, Any, Any]:
        soc = np.full(ts.shape, dev.soc_start_pct)
        power = np.zeros(ts.shape)
        freq = _NOMINAL_HZ + 0.012 * np.sin(2 * math.pi * ts / 900.0 + math.radians(self.lon_deg))
        states = np.full(ts.shape, GRID_STATE, dtype=object)
        if not self.in_outage or dev.island_soc_pct.size == 0:
            return soc, power, freq, states
        row = np.floor((ts - self.outage_start_s) / _SAMPLE_S).astype(np.int64)
        island = (ts >= self.outage_start_s) & (ts < self.outage_end_s)
        island &= row < dev.island_soc_pct.size
        r = row[island]
        soc[island] = dev.island_soc_pct[r]
        power[island] = dev.island_power_w[r]
        freq[island] = self.island_freq_hz[r]
        states[island] = [_ROLE_STATES.get(dev.island_role[i], "island") for i in r]
        after = ts >= self.outage_end_s
        soc_end = float(dev.island_soc_pct[-1])
        rate_pct_s = dev.charge_w / (dev.capacity_kwh * 3.6e4) if dev.capacity_kwh > 0 else 0.0
        back = np.minimum(dev.soc_start_pct, soc_end + rate_pct_s * (ts - self.outage_end_s))
        soc[after] = np.maximum(back[after], soc_end)
        power[after] = np.where(soc[after] < dev.soc_start_pct, -dev.charge_w, 0.0)
        return soc, power, freq, states


@dataclass(frozen=True)
class OutageSummary:
    """What Powershare did in the outage: homes in it and kept powered, the island's lowest and
    highest frequency (Hz) against the devices' slow trip settings (``freq_limits_hz``: under-,
    over-frequency), the lowest state of charge (%, and whose), energy from home batteries and
    trucks and served to the houses (kWh), and every limit a run crossed (empty: none)."""

    homes_in_outage: int
    homes_kept_powered: int
    min_freq_hz: float
    max_freq_hz: float
    freq_limits_hz: tuple[float, float]
    lowest_soc_pct: float
    lowest_soc_device: str
    home_battery_kwh: float
    vehicle_kwh: float
    served_kwh: float
    unserved_kwh: float
    limits_crossed: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (rounded) for a report."""
        return {
            "homes_in_outage": self.homes_in_outage,
            "homes_kept_powered": self.homes_kept_powered,
            "min_freq_hz": round(self.min_freq_hz, 3),
            "max_freq_hz": round(self.max_freq_hz, 3),
            "freq_limits_hz": list(self.freq_limits_hz),
            "lowest_soc_pct": round(self.lowest_soc_pct, 2),
            "lowest_soc_device": self.lowest_soc_device,
            "home_battery_kwh": round(self.home_battery_kwh, 2),
            "vehicle_kwh": round(self.vehicle_kwh, 2),
            "served_kwh": round(self.served_kwh, 2),
            "unserved_kwh": round(self.unserved_kwh, 3),
            "limits_crossed": list(self.limits_crossed),
        }


def _local_time_of_day_s(unix_s: float, lon_deg: float) -> float:
    """Seconds after local midnight, with the zone taken as the nearest whole hour of longitude."""
    return float((unix_s + round(lon_deg / 15.0) * 3600.0) % 86_400.0)


def _kept_powered(r: IslandResult) -> bool:
    """Powered from the first live moment to the end (the black start itself is dark)."""
    if r.first_powered_s is None:
        return False
    return r.dark_s - r.first_powered_s <= 2 * r.dt_s + 1e-9


def _summary(ids: Sequence[str], results: Sequence[IslandResult]) -> OutageSummary:
    trips = TripSettings()
    if not results:
        limits = (trips.uf1[0], trips.of1[0])
        return OutageSummary(0, 0, math.nan, math.nan, limits, math.nan, "", 0.0, 0.0, 0.0, 0.0, ())
    settings = [t for r in results for _, t in r.trip_settings]
    low = max(t.uf1[0] for t in settings)
    high = min(t.of1[0] for t in settings)
    pairs = list(zip(ids, results, strict=True))
    lowest = min((d.soc_min_pct, f"{h}/{d.label}") for h, r in pairs for d in r.devices)
    crossed = [f"{h}: {v}" for h, r in pairs for v in r.violations()]
    crossed += [
        f"{h}: house dark after the island formed" for h, r in pairs if not _kept_powered(r)
    ]
    return OutageSummary(
        homes_in_outage=len(results),
        homes_kept_powered=sum(_kept_powered(r) for r in results),
        min_freq_hz=float(np.nanmin([r.f_min_hz for r in results])),
        max_freq_hz=float(np.nanmax([r.f_max_hz for r in results])),
        freq_limits_hz=(low, high),
        lowest_soc_pct=float(lowest[0]),
        lowest_soc_device=lowest[1],
        home_battery_kwh=sum(d.out_kwh for r in results for d in r.devices if d.kind == "home"),
        vehicle_kwh=sum(d.out_kwh for r in results for d in r.devices if d.kind == "vehicle"),
        served_kwh=sum(r.served_kwh for r in results),
        unserved_kwh=sum(r.unserved_kwh for r in results),
        limits_crossed=tuple(crossed),
    )


def _island_rows(series: dict[str, np.ndarray], label: str) -> tuple[Any, Any, tuple[str, ...]]:
    roles = tuple(ROLES[int(x)] for x in series[f"{label}.role"])
    return series[f"{label}.soc_pct"].copy(), series[f"{label}.p_w"].copy(), roles


def plan_homes(
    truck_ids: Sequence[str],
    truck_hw: Sequence[str],
    rng: np.random.Generator,
    outage_start_s: float,
    outage_end_s: float,
    progress: Callable[[float], None] | None = None,
) -> tuple[tuple[HomePlan, ...], Outage, OutageSummary]:
    """One home per truck (``truck_ids[i]`` with hardware ``truck_hw[i]`` parks at home ``i``),
    spread over :data:`HOME_REGIONS`, each with a home battery; the outage over the first region
    with its grid going down, ``[outage_start_s, outage_end_s)``, simulated with Powershare for
    every home in it. ``progress`` is told the fraction of the simulation done (0..1)."""
    n = len(truck_ids)
    centres = [resolve_place(f"city:{c}") for c, _, _ in HOME_REGIONS]
    down = next(i for i, (_, _, d) in enumerate(HOME_REGIONS) if d)
    c = centres[down]
    outage = Outage(c.label, c.lat_deg, c.lon_deg, OUTAGE_RADIUS_KM, outage_start_s, outage_end_s)
    shares = np.array([s for _, s, _ in HOME_REGIONS])
    region = np.searchsorted(np.cumsum(shares / shares.sum()), (np.arange(n) + 0.5) / n)
    dist_km = HOME_SPREAD_KM * np.sqrt(rng.uniform(size=n))
    bearing = rng.uniform(0.0, 2 * math.pi, size=n)
    clat = np.array([centres[k].lat_deg for k in region])
    clon = np.array([centres[k].lon_deg for k in region])
    lat = clat + np.degrees(dist_km * np.cos(bearing) / 6371.0)
    lon = clon + np.degrees(dist_km * np.sin(bearing) / 6371.0) / np.cos(np.radians(clat))
    in_outage = great_circle_km(lat, lon, outage.lat_deg, outage.lon_deg) <= outage.radius_km
    gens = rng.choice(["gen1", "gen2", "gen3"], size=n, p=[0.3, 0.4, 0.3])
    models = rng.choice(["cybertruck", "lightning"], size=n)
    home_soc = rng.uniform(25.0, 90.0, size=n).round(1)
    truck_soc = rng.uniform(45.0, 90.0, size=n).round(1)
    loads = rng.choice(["typical", "heavy", "essential"], size=n, p=[0.5, 0.3, 0.2])
    seeds = rng.integers(0, 2**31, size=n)
    width = len(str(n))
    home_ids = [f"home-{i + 1:0{width}d}" for i in range(n)]
    idx = np.flatnonzero(in_outage)
    scenarios = [
        Scenario(
            vehicle=vehicle(str(models[i])),
            home_batteries=(home_battery(str(gens[i])),),
            vehicle_soc_pct=float(truck_soc[i]),
            home_soc_pct=(float(home_soc[i]),),
            load=str(loads[i]),
            start_s=_local_time_of_day_s(outage_start_s, float(lon[i])),
            duration_s=outage_end_s - outage_start_s,
            seed=int(seeds[i]),
            name=home_ids[i],
        )
        for i in idx
    ]
    total = max(1.0, sum(round(s.duration_s / ISLAND_DT_S) for s in scenarios))
    done = [0]

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(min(1.0, done[0] / total))

    results = simulate(scenarios, dt_s=ISLAND_DT_S, record_every_s=_SAMPLE_S, progress=step)
    by_home = dict(zip(idx.tolist(), results, strict=True))
    homes = []
    for i in range(n):
        attrs = {"home": home_ids[i]}
        battery = home_battery(str(gens[i]))
        truck = vehicle(str(models[i]))
        hb: dict[str, Any] = {
            "model": battery.name,
            "capacity_kwh": battery.capacity_kwh,
            "soc_start_pct": float(home_soc[i]),
            "charge_w": battery.charge_w,
        }
        tr: dict[str, Any] = {
            "model": truck.name,
            "capacity_kwh": truck.capacity_kwh,
            "soc_start_pct": float(truck_soc[i]),
            "charge_w": TRUCK_CHARGE_W,
        }
        extra: dict[str, Any] = {}
        r = by_home.get(i)
        if r is not None and r.series is not None:
            labels = {d.kind: d.label for d in r.devices}  # one vehicle, one home battery
            v_label, h_label = labels["vehicle"], labels["home"]
            for d, label in ((hb, h_label), (tr, v_label)):
                d["island_soc_pct"], d["island_power_w"], d["island_role"] = _island_rows(
                    r.series, label
                )
            f_lo, f_hi = r.series["f_min_hz"], r.series["f_max_hz"]
            ok = np.isfinite(f_lo) & np.isfinite(f_hi) & (f_lo > 0) & (f_hi < 100)
            extra = {
                "outage_start_s": outage_start_s,
                "outage_end_s": outage_end_s,
                "island_freq_hz": np.where(ok, (f_lo + f_hi) / 2.0, np.nan),
                "powered_through": _kept_powered(r),
            }
        homes.append(
            HomePlan(
                home_ids[i],
                round(float(lat[i]), 6),
                round(float(lon[i]), 6),
                bool(in_outage[i]),
                (
                    HomeDevicePlan(
                        f"hb-{i + 1:0{width}d}", "home-battery", str(gens[i]), attrs, **hb
                    ),
                    HomeDevicePlan(truck_ids[i], "vehicle", truck_hw[i], attrs, **tr),
                ),
                **extra,
            )
        )
    summary = _summary([home_ids[i] for i in idx], results)
    return tuple(homes), outage, summary
