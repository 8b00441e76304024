"""Simulated devices that use the same public APIs a real device would (hawkBit DDI over HTTP).

For the demo, the tests and the benchmarks: a simulated device polls, downloads and checks its
artifacts, reports every stage, and can be told to fail or go silent.
"""

from __future__ import annotations

from skyfleet.sim._ddi_device import DdiDevice, Fault
from skyfleet.sim._fleet import run_round, run_rounds

__all__ = ["DdiDevice", "Fault", "run_round", "run_rounds"]
