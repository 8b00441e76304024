"""Simulated devices that use the same public APIs a real device would (hawkBit DDI over HTTP,
TUF metadata verified with python-tuf's own client).

For the demo, the tests and the benchmarks: a simulated device polls, downloads and checks its
artifacts, reports every stage, and can be told to fail or go silent; an :class:`UptaneDevice`
verifies what the director assigned it against the image repository before it downloads;
:class:`MqttTelemetryPublisher` and :func:`post_telemetry` report telemetry for many devices
(:func:`simulated_sample` makes it up).
"""

from __future__ import annotations

from skyfleet.sim._ddi_device import DdiDevice, Fault
from skyfleet.sim._fleet import run_round, run_rounds
from skyfleet.sim._homes import HomeDevicePlan, HomePlan, Outage, OutageSummary
from skyfleet.sim._links import DOWNLOAD_BIT_PER_S, LINK_KINDS, LinkSchedule
from skyfleet.sim._routes import VehiclePlan
from skyfleet.sim._scenario import (
    DEMO_START_S,
    Scenario,
    SitePlan,
    build_scenario,
    check_scenario,
)
from skyfleet.sim._telemetry import MqttTelemetryPublisher, post_telemetry, simulated_sample
from skyfleet.sim._uptane import TokenFetcher, UptaneDevice

__all__ = [
    "DEMO_START_S",
    "DOWNLOAD_BIT_PER_S",
    "LINK_KINDS",
    "DdiDevice",
    "Fault",
    "HomeDevicePlan",
    "HomePlan",
    "LinkSchedule",
    "MqttTelemetryPublisher",
    "Outage",
    "OutageSummary",
    "Scenario",
    "SitePlan",
    "TokenFetcher",
    "UptaneDevice",
    "VehiclePlan",
    "build_scenario",
    "check_scenario",
    "post_telemetry",
    "run_round",
    "run_rounds",
    "simulated_sample",
]
