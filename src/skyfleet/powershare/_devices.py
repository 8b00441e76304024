"""Devices as config data: vehicles, home batteries, solar, their trip settings, and the catalogue.

Every device is a frozen dataclass built from the packaged catalogue (``data/powershare.json``)
or by hand; :func:`vehicle` and :func:`home_battery` look names up and raise
:class:`~skyfleet.errors.UnknownDeviceError` with the names that exist. Powers are in W (positive =
discharging into the house), energies in kWh, states of charge in percent.

>>> v = vehicle("cybertruck", breaker_a=50)
>>> v.v2h_w, v.usable_kwh(80.0)
(9600.0, 73.8)
>>> home_battery("gen1").firmware
'basic'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Protocol

from skyfleet.data import read_json
from skyfleet.errors import PowershareConfigError, UnknownDeviceError

__all__ = [
    "FIRMWARES",
    "Battery",
    "Catalogue",
    "Firmware",
    "HomeBatterySpec",
    "SolarSpec",
    "TripSettings",
    "VehicleSpec",
    "describe",
    "home_battery",
    "home_battery_names",
    "merge_catalogue",
    "spec_dict",
    "vehicle",
    "vehicle_names",
]

Firmware = Literal["basic", "adaptive"]
FIRMWARES: tuple[Firmware, ...] = ("basic", "adaptive")
"""Controller ability levels: ``basic`` has a fixed droop and no state-of-charge signalling;
``adaptive`` moves its droop with its state of charge and signals it through bus frequency."""


class Battery(Protocol):
    """What the controller needs to know of any battery-backed inverter (vehicle or home)."""

    @property
    def capacity_kwh(self) -> float: ...
    @property
    def reserve_pct(self) -> float: ...
    @property
    def continuous_w(self) -> float: ...
    @property
    def peak_w(self) -> float: ...
    @property
    def charge_w(self) -> float: ...


@dataclass(frozen=True)
class TripSettings:
    """Abnormal frequency and voltage trip settings of one inverter: (threshold, clearing time s)
    per element. Defaults are IEEE 1547-2018 category III's default settings (frequency in Hz at a
    60 Hz nominal, voltage in per unit of nominal).

    >>> TripSettings().uf1
    (58.5, 300.0)
    """

    of2: tuple[float, float] = (62.0, 0.16)
    of1: tuple[float, float] = (61.2, 300.0)
    uf1: tuple[float, float] = (58.5, 300.0)
    uf2: tuple[float, float] = (56.5, 0.16)
    ov2: tuple[float, float] = (1.20, 0.16)
    ov1: tuple[float, float] = (1.10, 13.0)
    uv1: tuple[float, float] = (0.88, 21.0)
    uv2: tuple[float, float] = (0.50, 2.0)

    ELEMENTS = ("of2", "of1", "uf1", "uf2", "ov2", "ov1", "uv1", "uv2")
    """Element names in the order the simulator keeps them: over-frequency, under-frequency,
    over-voltage, under-voltage (2 = the fast, wide setting; 1 = the slow, narrow one)."""

    def __post_init__(self) -> None:
        for name in self.ELEMENTS:
            value, clear_s = getattr(self, name)
            if not (math.isfinite(value) and value > 0 and math.isfinite(clear_s) and clear_s > 0):
                raise PowershareConfigError(
                    f"trip setting {name}={value}/{clear_s}: threshold and clearing time must "
                    "be positive numbers"
                )
        if not (self.of2[0] >= self.of1[0] > self.uf1[0] >= self.uf2[0]):
            raise PowershareConfigError(
                f"frequency trip settings out of order: need of2 >= of1 > uf1 >= uf2, got "
                f"{self.of2[0]}, {self.of1[0]}, {self.uf1[0]}, {self.uf2[0]} Hz"
            )
        if not (self.ov2[0] >= self.ov1[0] > 1.0 > self.uv1[0] >= self.uv2[0]):
            raise PowershareConfigError(
                f"voltage trip settings out of order: need ov2 >= ov1 > 1 > uv1 >= uv2, got "
                f"{self.ov2[0]}, {self.ov1[0]}, {self.uv1[0]}, {self.uv2[0]} pu"
            )

    def rows(self) -> list[tuple[str, float, float]]:
        """(element, threshold, clearing time s) in simulator order."""
        return [(name, *getattr(self, name)) for name in self.ELEMENTS]

    def with_setting(self, name: str, value: float, clear_s: float | None = None) -> TripSettings:
        """A copy with element ``name`` changed (its clearing time kept unless given)."""
        if name not in self.ELEMENTS:
            raise PowershareConfigError(
                f"unknown trip element {name!r}: use one of {', '.join(self.ELEMENTS)}"
            )
        old = getattr(self, name)
        return replace(
            self, **{name: (float(value), float(old[1] if clear_s is None else clear_s))}
        )


def check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise PowershareConfigError(f"{owner}: {name} must be a positive number, got {value}")


def _percent(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and 0.0 <= value < 100.0):
            raise PowershareConfigError(
                f"{owner}: {name} must be at least 0 and below 100 %, got {value}"
            )


def _inverter(owner: str, efficiency: float, firmware: str) -> None:
    if not 0.5 <= efficiency <= 1.0:
        raise PowershareConfigError(f"{owner}: efficiency must be 0.5..1, got {efficiency}")
    if firmware not in FIRMWARES:
        raise PowershareConfigError(
            f"{owner}: unknown firmware {firmware!r}: use {' or '.join(FIRMWARES)}"
        )


@dataclass(frozen=True)
class VehicleSpec:
    """An electric vehicle with a bidirectional charger. ``v2h_w`` is its vehicle-to-home limit
    for the breaker it is connected through; it never charges from the island."""

    name: str
    pack_kwh: float
    reserve_pct: float
    v2h_w: float
    v2l_w: float
    efficiency: float = 0.94
    firmware: Firmware = "adaptive"
    breaker_a: int = 60
    trip: TripSettings = field(default_factory=TripSettings)

    def __post_init__(self) -> None:
        owner = f"vehicle {self.name!r}"
        check_positive(owner, pack_kwh=self.pack_kwh, v2h_w=self.v2h_w, v2l_w=self.v2l_w)
        _percent(owner, reserve_pct=self.reserve_pct)
        _inverter(owner, self.efficiency, self.firmware)

    @property
    def capacity_kwh(self) -> float:
        return self.pack_kwh

    @property
    def continuous_w(self) -> float:
        return self.v2h_w

    @property
    def peak_w(self) -> float:
        return self.v2h_w

    @property
    def peak_s(self) -> float:
        return 0.0

    @property
    def charge_w(self) -> float:
        return 0.0

    def usable_kwh(self, soc_pct: float) -> float:
        """Energy above the reserve at ``soc_pct``, kWh (rounded to Wh)."""
        return round(max(0.0, soc_pct - self.reserve_pct) / 100.0 * self.pack_kwh, 3)


@dataclass(frozen=True)
class HomeBatterySpec:
    """A home battery with a grid-forming inverter. Powers in W: ``continuous_w`` for as long
    as it has energy, ``peak_w`` for ``peak_s`` seconds at a time, ``charge_w`` the most it takes
    in (a magnitude; charging power is negative on the bus). Energy in kWh, reserve in %."""

    name: str
    capacity_kwh: float
    continuous_w: float
    peak_w: float
    peak_s: float
    charge_w: float
    reserve_pct: float = 5.0
    efficiency: float = 0.95
    firmware: Firmware = "adaptive"
    trip: TripSettings = field(default_factory=TripSettings)

    def __post_init__(self) -> None:
        owner = f"home battery {self.name!r}"
        check_positive(
            owner,
            capacity_kwh=self.capacity_kwh,
            continuous_w=self.continuous_w,
            peak_w=self.peak_w,
            charge_w=self.charge_w,
        )
        _percent(owner, reserve_pct=self.reserve_pct)
        if self.peak_w < self.continuous_w:
            raise PowershareConfigError(f"{owner}: peak power is below continuous power")
        if not (math.isfinite(self.peak_s) and self.peak_s >= 0):
            raise PowershareConfigError(f"{owner}: peak_s must be >= 0, got {self.peak_s}")
        _inverter(owner, self.efficiency, self.firmware)


@dataclass(frozen=True)
class SolarSpec:
    """AC-coupled solar: a grid-following inverter that curtails along a frequency-watt curve
    (full output up to ``fw_start_hz``, none at ``fw_full_hz``) and re-enters service
    ``enter_service_s`` after the bus is back (IEEE 1547's default is 300 s)."""

    rated_w: float
    fw_start_hz: float = 60.5
    fw_full_hz: float = 61.0
    enter_service_s: float = 300.0
    trip: TripSettings = field(default_factory=TripSettings)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rated_w) and self.rated_w >= 0):
            raise PowershareConfigError(f"solar: rated power must be >= 0 W, got {self.rated_w}")
        if not self.fw_start_hz < self.fw_full_hz:
            raise PowershareConfigError(
                "solar: the frequency-watt curve must start below where it ends "
                f"({self.fw_start_hz} >= {self.fw_full_hz} Hz)"
            )
        if not self.enter_service_s >= 0:  # inf: never enters service
            raise PowershareConfigError("solar: enter_service_s must be >= 0")


Catalogue = Mapping[str, Any]
"""Device data in the packaged file's shape: ``{"vehicles": {NAME: row}, "home_batteries":
{NAME: row}}`` (see ``data/powershare.json`` for the fields of a row)."""


def _catalogue(extra: Catalogue | None = None) -> dict[str, Any]:
    data: dict[str, Any] = read_json("powershare.json")
    if extra is None:
        return data
    return {
        group: {**data[group], **dict(extra.get(group) or {})}
        for group in ("vehicles", "home_batteries", "loads")
    }


def merge_catalogue(extra: Any) -> dict[str, Any]:
    """The packaged catalogue with ``extra``'s vehicles and home batteries added (or replacing
    ones of the same name); every device in ``extra`` is built once so that a bad row is refused
    here, with its name and field."""
    if not isinstance(extra, Mapping) or not set(extra) <= {"vehicles", "home_batteries"}:
        raise PowershareConfigError(
            'a device file is a JSON object with "vehicles" and/or "home_batteries", each '
            "mapping a name to its data (see 'skyfleet powershare devices --json')"
        )
    for group in ("vehicles", "home_batteries"):
        rows = extra.get(group) or {}
        if not isinstance(rows, Mapping) or not all(isinstance(r, Mapping) for r in rows.values()):
            raise PowershareConfigError(f'"{group}" must map each device name to an object')
    merged = _catalogue(extra)
    for name, row in (extra.get("vehicles") or {}).items():
        breakers = row.get("v2h_kw_by_breaker_a") or {"60": None}
        for amps in breakers:
            if not str(amps).isdigit():
                raise PowershareConfigError(
                    f"vehicle {name!r}: breaker {amps!r} must be a whole number of amps"
                )
            vehicle(name, breaker_a=int(amps), catalogue=merged)
    for name in extra.get("home_batteries") or {}:
        home_battery(name, catalogue=merged)
    return merged


def vehicle_names(catalogue: Catalogue | None = None) -> list[str]:
    """Vehicle names in the catalogue (the packaged one unless given)."""
    return sorted((catalogue or _catalogue())["vehicles"])


def home_battery_names(catalogue: Catalogue | None = None) -> list[str]:
    """Home battery names in the catalogue (the packaged one unless given)."""
    return sorted((catalogue or _catalogue())["home_batteries"])


def _field(kind: str, name: str, row: Mapping[str, Any], key: str) -> float:
    try:
        return float(row[key])
    except KeyError:
        raise PowershareConfigError(f"{kind} {name!r} has no {key!r}") from None
    except (TypeError, ValueError):
        raise PowershareConfigError(
            f"{kind} {name!r}: {key} must be a number, got {row[key]!r}"
        ) from None


def _row(cat: Catalogue, group: str, kind: str, name: str) -> Mapping[str, Any]:
    rows = cat[group]
    if name not in rows:
        raise UnknownDeviceError(f"unknown {kind} {name!r}: use one of {', '.join(sorted(rows))}")
    row: Mapping[str, Any] = rows[name]
    return row


def _trip(kind: str, name: str, row: Mapping[str, Any], given: TripSettings | None) -> TripSettings:
    """``given``, else the row's ``"trip"`` object (element: [threshold, seconds]) over the
    IEEE 1547 category III defaults."""
    if given is not None:
        return given
    trip = TripSettings()
    rows = row.get("trip") or {}
    if not isinstance(rows, Mapping):
        raise PowershareConfigError(f"{kind} {name!r}: trip must map elements to [value, seconds]")
    for element, setting in rows.items():
        try:
            value, clear_s = setting
            trip = trip.with_setting(str(element), float(value), float(clear_s))
        except (TypeError, ValueError):
            raise PowershareConfigError(
                f"{kind} {name!r}: trip {element} must be [threshold, seconds], got {setting!r}"
            ) from None
        except PowershareConfigError as exc:
            raise PowershareConfigError(f"{kind} {name!r}: {exc}") from None
    return trip


def vehicle(
    name: str,
    *,
    breaker_a: int | None = None,
    firmware: Firmware = "adaptive",
    reserve_pct: float | None = None,
    trip: TripSettings | None = None,
    catalogue: Catalogue | None = None,
) -> VehicleSpec:
    """The catalogue vehicle ``name`` connected through a ``breaker_a`` amp breaker (default:
    60 A where the vehicle lists a limit for it, else the first breaker it lists)."""
    cat = catalogue or _catalogue()
    row = _row(cat, "vehicles", "vehicle", name)
    limits = row.get("v2h_kw_by_breaker_a")
    if not isinstance(limits, Mapping) or not limits:
        raise PowershareConfigError(f"vehicle {name!r} has no v2h_kw_by_breaker_a limits")
    if breaker_a is None:
        breaker_a = 60 if "60" in limits else int(next(iter(limits)))
    if str(breaker_a) not in limits:
        raise PowershareConfigError(
            f"vehicle {name!r} has no vehicle-to-home limit for a {breaker_a} A breaker: "
            f"use {', '.join(sorted(limits, key=str))} A"
        )
    return VehicleSpec(
        name=name,
        pack_kwh=_field("vehicle", name, row, "pack_kwh"),
        reserve_pct=(
            _field("vehicle", name, row, "reserve_pct") if reserve_pct is None else reserve_pct
        ),
        v2h_w=_field("vehicle", name, limits, str(breaker_a)) * 1000.0,
        v2l_w=_field("vehicle", name, row, "v2l_kw") * 1000.0,
        efficiency=_field("vehicle", name, row, "efficiency"),
        firmware=firmware,
        breaker_a=breaker_a,
        trip=_trip("vehicle", name, row, trip),
    )


def home_battery(
    name: str,
    *,
    firmware: Firmware | None = None,
    trip: TripSettings | None = None,
    catalogue: Catalogue | None = None,
) -> HomeBatterySpec:
    """The catalogue home battery ``name`` (its own firmware level unless ``firmware`` is given)."""
    cat = catalogue or _catalogue()
    row = _row(cat, "home_batteries", "home battery", name)

    def f(key: str) -> float:
        return _field("home battery", name, row, key)

    return HomeBatterySpec(
        name=name,
        capacity_kwh=f("capacity_kwh"),
        continuous_w=f("continuous_kw") * 1000.0,
        peak_w=f("peak_kw") * 1000.0,
        peak_s=f("peak_s"),
        charge_w=f("charge_kw") * 1000.0,
        reserve_pct=f("reserve_pct"),
        efficiency=f("efficiency"),
        firmware=firmware or row.get("firmware", "basic"),
        trip=_trip("home battery", name, row, trip),
    )


def describe(name: str, catalogue: Catalogue | None = None) -> str:
    """The catalogue's one-line description of a vehicle or home battery."""
    cat = catalogue or _catalogue()
    for group in ("vehicles", "home_batteries"):
        if name in cat[group]:
            return str(cat[group][name].get("description", ""))
    raise UnknownDeviceError(f"unknown device {name!r}")


def spec_dict(spec: VehicleSpec | HomeBatterySpec) -> dict[str, Any]:
    """A JSON-ready view of a device spec (trip settings as element: [threshold, seconds])."""
    out: dict[str, Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        out[f.name] = (
            {n: [v, s] for n, v, s in value.rows()} if isinstance(value, TripSettings) else value
        )
    return out
