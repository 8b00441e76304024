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

from skyfleet.powershare._devices import (
    FIRMWARES,
    Battery,
    Firmware,
    HomeBatterySpec,
    SolarSpec,
    TripSettings,
    VehicleSpec,
    home_battery,
    home_battery_names,
    vehicle,
    vehicle_names,
)
from skyfleet.powershare._island import DeviceResult, IslandResult, Limits, Scenario, simulate
from skyfleet.powershare._plan import FrequencyPlan, check_plan
from skyfleet.powershare._profiles import load_names, load_series, solar_series
from skyfleet.powershare._protection import TripTest, trip_tests

__all__ = [
    "FIRMWARES",
    "Battery",
    "DeviceResult",
    "Firmware",
    "FrequencyPlan",
    "HomeBatterySpec",
    "IslandResult",
    "Limits",
    "Scenario",
    "SolarSpec",
    "TripSettings",
    "TripTest",
    "VehicleSpec",
    "check_plan",
    "home_battery",
    "home_battery_names",
    "load_names",
    "load_series",
    "simulate",
    "solar_series",
    "trip_tests",
    "vehicle",
    "vehicle_names",
]
