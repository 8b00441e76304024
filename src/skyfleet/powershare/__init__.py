"""Powershare: a vehicle and home batteries keep a house powered in an outage, with no network
between them.

Devices (:func:`vehicle`, :func:`home_battery`, :class:`SolarSpec`) are config data. Each device's
firmware (:mod:`._controller`, one implementation per ability level) senses only the bus and its own
state of charge; the frequency plan (:class:`FrequencyPlan`) puts "home battery first", "the
fuller one carries more" and "the vehicle takes over when the home battery is low" into the bus
frequency itself. :func:`simulate` runs the quasi-static island for many :class:`Scenario` at
once; :func:`trip_tests` and :func:`certify` check the protection and the invariants.

Powers in W (positive = discharging into the house), energies in kWh, state of charge in %,
frequency in Hz, voltage in per unit, time in s.
"""

from __future__ import annotations

from skyfleet.powershare._certify import (
    Certification,
    certify,
    matrix,
    scenario_from_id,
    scenario_id,
)
from skyfleet.powershare._devices import (
    FIRMWARES,
    Battery,
    Catalogue,
    Firmware,
    HomeBatterySpec,
    SolarSpec,
    TripSettings,
    VehicleSpec,
    describe,
    home_battery,
    home_battery_names,
    merge_catalogue,
    spec_dict,
    vehicle,
    vehicle_names,
)
from skyfleet.powershare._gateway import GatewaySpec, Reconnect
from skyfleet.powershare._island import DeviceResult, IslandResult, Limits, Scenario, simulate
from skyfleet.powershare._kernel import ROLES
from skyfleet.powershare._plan import FrequencyPlan, check_plan
from skyfleet.powershare._profiles import load_names, load_series, solar_series
from skyfleet.powershare._protection import TripTest, trip_tests

__all__ = [
    "FIRMWARES",
    "ROLES",
    "Battery",
    "Catalogue",
    "Certification",
    "DeviceResult",
    "Firmware",
    "FrequencyPlan",
    "GatewaySpec",
    "HomeBatterySpec",
    "IslandResult",
    "Limits",
    "Reconnect",
    "Scenario",
    "SolarSpec",
    "TripSettings",
    "TripTest",
    "VehicleSpec",
    "certify",
    "check_plan",
    "describe",
    "home_battery",
    "home_battery_names",
    "load_names",
    "load_series",
    "matrix",
    "merge_catalogue",
    "scenario_from_id",
    "scenario_id",
    "simulate",
    "solar_series",
    "spec_dict",
    "trip_tests",
    "vehicle",
    "vehicle_names",
]
