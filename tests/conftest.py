"""Shared fixtures."""

from __future__ import annotations

import pytest

from skyfleet.orbits import WalkerConstellation, preset

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="session")
def s1() -> WalkerConstellation:
    """Starlink shell 1 (72 x 22 at 550 km, 53 deg)."""
    return preset("starlink-s1")
