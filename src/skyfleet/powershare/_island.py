"""Scenarios in, results out: the Python side of the island simulator.

A :class:`Scenario` is a house in an outage: a vehicle, zero to three home batteries with their
starting states of charge, a load profile, solar or none, when the outage starts and how long it
lasts. :func:`simulate` runs many at once (every scenario on the cores at once, in compiled code)
and returns one :class:`IslandResult` each: energies, extremes, roles, trips, the invariants a
certification checks (:meth:`IslandResult.violations`) and, if asked, a time series.

>>> from skyfleet.powershare import Scenario, home_battery, simulate, vehicle
>>> s = Scenario(vehicle=vehicle("cybertruck"), home_batteries=(home_battery("gen3"),),
...              load="essential", duration_s=600.0)
>>> r = simulate([s])[0]
>>> r.violations()
[]
>>> r.devices[0].out_kwh, r.devices[1].out_kwh > 0   # home battery first: the vehicle gives 0 kWh
(0.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from skyfleet.errors import PowershareConfigError, UnknownDeviceError
from skyfleet.powershare import _kernel as K  # noqa: N812 (the kernel's field indices, K.X_E_WH, ...)
from skyfleet.powershare._devices import (
    HomeBatterySpec,
    SolarSpec,
    TripSettings,
    VehicleSpec,
)
from skyfleet.powershare._gateway import GatewaySpec, Reconnect
from skyfleet.powershare._plan import FrequencyPlan, check_plan
from skyfleet.powershare._profiles import LOAD_NAMES, load_series, solar_series

__all__ = ["DeviceResult", "IslandResult", "Limits", "Scenario", "simulate"]

MAX_HOME_BATTERIES = 3


@dataclass(frozen=True)
class Scenario:
    """One house in one outage. States of charge in %, ``start_s`` the time of day the outage
    starts (s after local midnight), ``duration_s`` how long it lasts."""

    vehicle: VehicleSpec | None
    home_batteries: tuple[HomeBatterySpec, ...] = ()
    vehicle_soc_pct: float = 80.0
    home_soc_pct: tuple[float, ...] | None = None
    load: str = "typical"
    solar: SolarSpec | None = None
    start_s: float = 18 * 3600.0
    duration_s: float = 3600.0
    seed: int = 0
    name: str = ""
    gateway: GatewaySpec = field(default_factory=GatewaySpec)

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**63:
            raise PowershareConfigError(f"seed must be a whole number >= 0, got {self.seed}")
        if self.vehicle is None and not self.home_batteries:
            raise PowershareConfigError("a scenario needs a vehicle or at least one home battery")
        if len(self.home_batteries) > MAX_HOME_BATTERIES:
            raise PowershareConfigError(
                f"at most {MAX_HOME_BATTERIES} home batteries, got {len(self.home_batteries)}"
            )
        if self.load not in LOAD_NAMES:
            raise UnknownDeviceError(
                f"unknown load profile {self.load!r}: use one of {', '.join(LOAD_NAMES)}"
            )
        socs = self.home_socs()
        if len(socs) != len(self.home_batteries):
            raise PowershareConfigError(
                f"{len(socs)} home states of charge for {len(self.home_batteries)} home batteries"
            )
        for what, soc in [("vehicle", self.vehicle_soc_pct), *(("home battery", x) for x in socs)]:
            if not (math.isfinite(soc) and 0.0 <= soc <= 100.0):
                raise PowershareConfigError(
                    f"{what} state of charge must be between 0 and 100 %, got {soc}"
                )

    def home_socs(self) -> tuple[float, ...]:
        """Starting state of charge of each home battery (100 % unless given)."""
        if self.home_soc_pct is None:
            return tuple(100.0 for _ in self.home_batteries)
        return tuple(float(x) for x in self.home_soc_pct)

    def trip_settings(self) -> list[tuple[str, TripSettings]]:
        """(label, trip settings) of every device, and of solar if there is any."""
        out = [(label, spec.trip) for label, spec, _ in self.devices()]
        if self.solar is not None and self.solar.rated_w > 0:
            out.append(("solar", self.solar.trip))
        return out

    def devices(self) -> list[tuple[str, VehicleSpec | HomeBatterySpec, float]]:
        """(label, spec, starting state of charge) in simulator order: vehicle first."""
        out: list[tuple[str, VehicleSpec | HomeBatterySpec, float]] = []
        if self.vehicle is not None:
            out.append((f"vehicle:{self.vehicle.name}", self.vehicle, self.vehicle_soc_pct))
        for i, (spec, soc) in enumerate(zip(self.home_batteries, self.home_socs(), strict=True)):
            out.append((f"home{i + 1}:{spec.name}", spec, soc))
        return out


@dataclass(frozen=True)
class Limits:
    """What a certification demands of every scenario: role changes per device and hour, the
    energy balance as a fraction of the energy served, and the vehicle energy (kWh) tolerated
    while a home battery could have supplied."""

    max_role_changes_per_h: float = 4.0
    balance_tolerance_frac: float = 0.001
    early_vehicle_kwh: float = 0.001


@dataclass(frozen=True)
class DeviceResult:
    """One device over the run. Energies in kWh (``out`` = discharged into the house), powers
    in W."""

    label: str
    kind: str
    firmware: str
    soc_start_pct: float
    soc_end_pct: float
    soc_min_pct: float
    soc_max_pct: float
    reserve_pct: float
    out_kwh: float
    in_kwh: float
    loss_kwh: float
    stored_drop_kwh: float
    max_power_w: float
    peak_w: float
    continuous_w: float
    peak_s: float
    max_above_continuous_s: float
    role_changes: int
    trips: int
    role_end: str


@dataclass
class IslandResult:
    """One scenario's run: totals, extremes, per-device results, and the time series when
    recorded (``series``: column name -> array, one row per record interval)."""

    scenario: Scenario
    dt_s: float
    hours_powered: float
    dark_s: float
    dark_with_energy_s: float
    first_powered_s: float | None
    demand_kwh: float
    served_kwh: float
    unserved_kwh: float
    solar_kwh: float
    vehicle_early_kwh: float
    f_min_hz: float
    f_max_hz: float
    v_min_pu: float
    v_max_pu: float
    collisions: int
    solar_trips: int
    max_residual_w: float
    f_end_hz: float
    v_end_pu: float
    live_end: bool
    devices: list[DeviceResult]
    trip_settings: list[tuple[str, TripSettings]]
    series: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def balance_error(self) -> float:
        """|energy in - energy out| / energy served, where in = energy the batteries gave up
        plus solar, out = served load plus losses."""
        supplied = sum(d.stored_drop_kwh for d in self.devices) + self.solar_kwh
        used = self.served_kwh + sum(d.loss_kwh for d in self.devices)
        return abs(supplied - used) / max(self.served_kwh, 1e-6)

    @property
    def reconnect(self) -> Reconnect:
        """How the transfer switch puts the house back on the grid when the outage ends."""
        return self.scenario.gateway.reconnect(self.f_end_hz, self.v_end_pu, self.live_end)

    @property
    def role_changes(self) -> int:
        return sum(d.role_changes for d in self.devices)

    def violations(self, limits: Limits | None = None) -> list[str]:
        """The invariants this run broke, one sentence each (empty: it passed)."""
        lim = limits or Limits()
        out: list[str] = []
        if self.dark_with_energy_s > 0:
            out.append(f"house dark {self.dark_with_energy_s:.1f} s while usable energy remained")
        hours = max(1.0, self.scenario.duration_s / 3600.0)
        for d in self.devices:
            if d.max_power_w > d.peak_w * (1 + 1e-9):
                out.append(
                    f"{d.label} delivered {d.max_power_w:.0f} W, over its {d.peak_w:.0f} W limit"
                )
            if d.max_above_continuous_s > d.peak_s + self.dt_s * 1.5:
                out.append(
                    f"{d.label} stayed above its continuous {d.continuous_w:.0f} W for "
                    f"{d.max_above_continuous_s:.1f} s (peak allowed {d.peak_s:.0f} s)"
                )
            if d.soc_min_pct < min(d.reserve_pct, d.soc_start_pct) - 1e-6:  # it may start below
                out.append(
                    f"{d.label} went to {d.soc_min_pct:.3f} %, below its {d.reserve_pct} % reserve"
                )
            if d.soc_max_pct > 100.0 + 1e-6:
                out.append(f"{d.label} charged to {d.soc_max_pct:.3f} %")
            if d.trips:
                out.append(f"{d.label} tripped {d.trips} time(s)")
            if d.role_changes > lim.max_role_changes_per_h * hours:
                out.append(
                    f"{d.label} changed role {d.role_changes} times in {hours:.1f} h "
                    f"(at most {lim.max_role_changes_per_h:g} an hour)"
                )
        if self.solar_trips:
            out.append(f"solar tripped {self.solar_trips} time(s)")
        if self.vehicle_early_kwh > lim.early_vehicle_kwh:
            out.append(
                f"the vehicle supplied {self.vehicle_early_kwh:.3f} kWh while a home battery "
                "could still supply (home battery first)"
            )
        if self.max_residual_w > 1e-3:
            out.append(f"bus power does not balance: {self.max_residual_w:.3g} W left over")
        if self.balance_error > lim.balance_tolerance_frac:
            out.append(f"energy does not balance: {100 * self.balance_error:.3f} % off")
        if self.collisions:
            out.append(f"{self.collisions} simultaneous black start(s)")
        return out


def _new_state(n: int, d: int) -> dict[str, np.ndarray]:
    """Zeroed state and accumulator arrays for ``n`` scenarios of up to ``d`` devices."""
    acc = np.zeros((n, d, K.NA))
    acc[:, :, K.A_MIN_SOC] = np.inf
    acc[:, :, K.A_MAX_SOC] = -np.inf
    sacc = np.zeros((n, K.NS))
    sacc[:, K.S_F_MIN] = np.inf
    sacc[:, K.S_V_MIN] = np.inf
    sacc[:, K.S_F_MAX] = -np.inf
    sacc[:, K.S_V_MAX] = -np.inf
    sacc[:, K.S_FIRST_LIVE_S] = np.nan
    return {
        "x": np.zeros((n, d, K.NX)),
        "i": np.zeros((n, d, K.NI), dtype=np.int64),
        "timers": np.zeros((n, d + 1, 8)),
        "bus": np.zeros((n, K.NB)),
        "acc": acc,
        "sacc": sacc,
    }


def _columns(labels: list[str]) -> list[str]:
    base = ["t_s", "f_min_hz", "f_max_hz", "v_min_pu", "v_max_pu", "load_w", "served_w", "solar_w"]
    for label in labels:
        base += [f"{label}.p_w", f"{label}.q_var", f"{label}.soc_pct", f"{label}.role"]
    return base


def _device_rows(sc: Scenario, slots: int) -> np.ndarray:
    dev = np.zeros((slots, K.NP))
    for j, (_, spec, _soc) in enumerate(sc.devices()):
        is_vehicle = isinstance(spec, VehicleSpec)
        dev[j, K.K_KIND] = K.KIND_VEHICLE if is_vehicle else K.KIND_HOME
        dev[j, K.K_FW] = K.FW_ADAPTIVE if spec.firmware == "adaptive" else K.FW_BASIC
        dev[j, K.K_CAP_WH] = spec.capacity_kwh * 1000.0
        dev[j, K.K_RESERVE] = spec.reserve_pct
        dev[j, K.K_CONT_W] = spec.continuous_w
        dev[j, K.K_PEAK_W] = spec.peak_w
        dev[j, K.K_PEAK_S] = spec.peak_s
        dev[j, K.K_CHARGE_W] = spec.charge_w
        dev[j, K.K_ETA] = spec.efficiency
    return dev


def simulate(
    scenarios: Sequence[Scenario],
    *,
    dt_s: float = 0.02,
    plan: FrequencyPlan | None = None,
    record_every_s: float | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_s: float = 300.0,
) -> list[IslandResult]:
    """Run every scenario (each ``duration_s`` long, at steps of ``dt_s`` seconds) and return
    their results in order. ``record_every_s`` keeps a time series at that interval (means of
    power, extremes of frequency and voltage). ``progress`` is called with the number of
    scenario-steps done after each chunk of ``chunk_s`` simulated seconds."""
    plan = plan or FrequencyPlan()
    if not (math.isfinite(dt_s) and 0.0 < dt_s <= plan.slot_s + 1e-12):
        raise PowershareConfigError(
            f"step must be more than 0 and at most the dead-bus slot, {plan.slot_s * 1000:g} ms "
            f"(a longer step cannot keep two devices from starting together), got {dt_s} s"
        )
    if not scenarios:
        return []
    for sc in scenarios:
        if sc.duration_s < dt_s:
            raise PowershareConfigError(
                f"the outage ({sc.duration_s:g} s) is shorter than one step ({dt_s:g} s)"
            )
    results: list[IslandResult | None] = [None] * len(scenarios)
    by_duration: dict[float, list[int]] = {}
    for i, sc in enumerate(scenarios):
        by_duration.setdefault(sc.duration_s, []).append(i)
    for duration, idx in by_duration.items():
        group = [scenarios[i] for i in idx]
        for i, res in zip(
            idx,
            _run_group(group, duration, dt_s, plan, record_every_s, progress, chunk_s),
            strict=True,
        ):
            results[i] = res
    return [r for r in results if r is not None]


def _run_group(
    group: list[Scenario],
    duration_s: float,
    dt_s: float,
    plan: FrequencyPlan,
    record_every_s: float | None,
    progress: Callable[[int], None] | None,
    chunk_s: float,
) -> list[IslandResult]:
    n = len(group)
    slots = max(len(sc.devices()) for sc in group)
    nsteps = round(duration_s / dt_s)
    nsec = math.ceil(duration_s)
    dev = np.zeros((n, slots, K.NP))
    trips = np.zeros((n, slots + 1, 8, 2))
    solar = np.zeros((n, K.NQ))
    load_p = np.zeros((n, nsec))
    load_q = np.zeros((n, nsec))
    solar_w = np.zeros((n, nsec))
    series_ev = []
    state = _new_state(n, slots)
    for s, sc in enumerate(group):
        sol = sc.solar or SolarSpec(rated_w=0.0, enter_service_s=math.inf)  # never in service
        check_plan(plan, sc.trip_settings(), sc.solar)
        dev[s] = _device_rows(sc, slots)
        homes = 0
        for j, (_, spec, soc) in enumerate(sc.devices()):
            # dead-bus slots: home batteries first (1..3), the vehicle last (4): in a tie, the
            # home battery forms the bus
            if isinstance(spec, VehicleSpec):
                dev[s, j, K.K_SLOT] = plan.slot_s * 4
            else:
                homes += 1
                dev[s, j, K.K_SLOT] = plan.slot_s * homes
            trips[s, j] = [[v, c] for _, v, c in spec.trip.rows()]
            state["x"][s, j, K.X_E_WH] = spec.capacity_kwh * 1000.0 * soc / 100.0
            state["x"][s, j, K.X_BUDGET] = spec.peak_s
        trips[s, slots] = [[v, c] for _, v, c in sol.trip.rows()]
        solar[s] = [sol.fw_start_hz, sol.fw_full_hz, sol.enter_service_s, sc.gateway.open_s]
        p, q, ev = load_series(sc.load, start_s=sc.start_s, duration_s=duration_s, seed=sc.seed)
        load_p[s], load_q[s] = p, q
        solar_w[s] = solar_series(
            sol.rated_w, start_s=sc.start_s, duration_s=duration_s, seed=sc.seed
        )
        series_ev.append(ev)
    n_ev = np.array([len(e) for e in series_ev], dtype=np.int64)
    events = np.zeros((n, max(1, int(n_ev.max())), 4))
    for s, ev in enumerate(series_ev):
        events[s, : len(ev)] = ev
    rec_every = 0
    if record_every_s is not None:
        rec_every = max(1, round(record_every_s / dt_s))
    nrec = -(-nsteps // rec_every) if rec_every else 0  # the last, partial interval too
    rec = np.zeros((n, nrec, K.NR_BASE + K.NR_DEV * slots))
    e0 = state["x"][:, :, K.X_E_WH].copy()
    chunk = max(1, int(chunk_s / dt_s))
    if rec_every:
        chunk = max(rec_every, chunk - chunk % rec_every)
    pa = plan.as_array()
    k = 0
    while k < nsteps:
        m = min(chunk, nsteps - k)
        K.run(
            k,
            m,
            float(dt_s),
            pa,
            dev,
            trips,
            solar,
            load_p,
            load_q,
            solar_w,
            events,
            n_ev,
            state["x"],
            state["i"],
            state["timers"],
            state["bus"],
            state["acc"],
            state["sacc"],
            rec,
            rec_every,
            nsteps,
        )
        k += m
        if progress is not None:
            progress(m * n)
    return [_result(sc, s, dt_s, dev, e0, state, rec, rec_every) for s, sc in enumerate(group)]


def _result(
    sc: Scenario,
    s: int,
    dt_s: float,
    dev: np.ndarray,
    e0: np.ndarray,
    state: dict[str, np.ndarray],
    rec: np.ndarray,
    rec_every: int,
) -> IslandResult:
    acc, sacc, x, ii = state["acc"], state["sacc"], state["x"], state["i"]
    devices = []
    labels = []
    for j, (label, spec, soc0) in enumerate(sc.devices()):
        cap = spec.capacity_kwh * 1000.0
        labels.append(label)
        devices.append(
            DeviceResult(
                label=label,
                kind="vehicle" if isinstance(spec, VehicleSpec) else "home",
                firmware=spec.firmware,
                soc_start_pct=soc0,
                soc_end_pct=float(100.0 * x[s, j, K.X_E_WH] / cap),
                soc_min_pct=float(min(soc0, acc[s, j, K.A_MIN_SOC])),
                soc_max_pct=float(max(soc0, acc[s, j, K.A_MAX_SOC])),
                reserve_pct=spec.reserve_pct,
                out_kwh=float(acc[s, j, K.A_OUT_WH] / 1000.0),
                in_kwh=float(acc[s, j, K.A_IN_WH] / 1000.0),
                loss_kwh=float(acc[s, j, K.A_LOSS_WH] / 1000.0),
                stored_drop_kwh=float((e0[s, j] - x[s, j, K.X_E_WH]) / 1000.0),
                max_power_w=float(acc[s, j, K.A_MAX_RATIO] * spec.peak_w),
                peak_w=spec.peak_w,
                continuous_w=spec.continuous_w,
                peak_s=spec.peak_s,
                max_above_continuous_s=float(acc[s, j, K.A_MAX_ABOVE_S]),
                role_changes=int(acc[s, j, K.A_ROLE_CHANGES]),
                trips=int(acc[s, j, K.A_TRIPS]),
                role_end=K.ROLES[int(ii[s, j, K.I_ROLE])],
            )
        )
    series = None
    if rec_every:
        cols = _columns(labels)
        table = rec[s, :, : len(cols)]
        series = {c: table[:, i].copy() for i, c in enumerate(cols)}
    first = sacc[s, K.S_FIRST_LIVE_S]
    live = sacc[s, K.S_LIVE_S] > 0

    def _f(i: int) -> float:
        return float(sacc[s, i]) if live else math.nan

    return IslandResult(
        scenario=sc,
        dt_s=dt_s,
        hours_powered=float(sacc[s, K.S_LIVE_S] / 3600.0),
        dark_s=float(sacc[s, K.S_DARK_S]),
        dark_with_energy_s=float(sacc[s, K.S_DARK_ENERGY_S]),
        first_powered_s=None if math.isnan(first) else float(first),
        demand_kwh=float(sacc[s, K.S_DEMAND_WH] / 1000.0),
        served_kwh=float(sacc[s, K.S_SERVED_WH] / 1000.0),
        unserved_kwh=float(sacc[s, K.S_UNSERVED_WH] / 1000.0),
        solar_kwh=float(sacc[s, K.S_SOLAR_WH] / 1000.0),
        vehicle_early_kwh=float(sacc[s, K.S_EARLY_WH] / 1000.0),
        f_min_hz=_f(K.S_F_MIN),
        f_max_hz=_f(K.S_F_MAX),
        v_min_pu=_f(K.S_V_MIN),
        v_max_pu=_f(K.S_V_MAX),
        collisions=int(sacc[s, K.S_COLLISIONS]),
        max_residual_w=float(sacc[s, K.S_MAX_RESID_W]),
        f_end_hz=float(state["bus"][s, K.B_F]),
        v_end_pu=float(state["bus"][s, K.B_V]),
        live_end=bool(state["bus"][s, K.B_LIVE] > 0.5),
        solar_trips=int(sacc[s, K.S_SOLAR_TRIPS]),
        devices=devices,
        trip_settings=sc.trip_settings(),
        series=series,
    )
