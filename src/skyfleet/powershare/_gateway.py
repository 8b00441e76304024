"""The transfer switch (gateway) between the house and the utility: it islands the house when
the grid fails and puts it back when the grid returns.

Islanding: the switch opens ``open_s`` after the grid fails; no device may energise the house
before (it would back-feed the utility's dead line). The simulator holds every device off until
then.

Reconnecting: when the grid returns, a sync-check closes the switch only while the island's
frequency and voltage match the grid's (within ``sync_hz`` and ``sync_pu``), at the moment
the phases line up, which takes at most one slip period ``1 / |f - 60|`` s. The devices share no
network with the gateway, so nothing steers the island onto the grid's frequency: an island
outside the window is reconnected by an open transition instead (the gateway opens the house
for ``open_transition_s``, then closes onto the grid), a brief blink like the one at the start.
A dead house is simply closed.

>>> g = GatewaySpec()
>>> g.reconnect(60.05, 0.99, True)
Reconnect(how='in sync', wait_s=20.0, dark_s=0.0)
>>> g.reconnect(59.7, 1.0, True).how
'open transition'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skyfleet.errors import PowershareConfigError
from skyfleet.powershare._devices import check_positive

__all__ = ["GatewaySpec", "Reconnect"]


@dataclass(frozen=True)
class Reconnect:
    """How the house went back on the grid: ``how`` is ``in sync``, ``open transition`` or
    ``dead bus``; ``wait_s`` the longest the sync-check can wait for the phases (s); ``dark_s``
    how long the house is without power doing it (s)."""

    how: str
    wait_s: float
    dark_s: float


@dataclass(frozen=True)
class GatewaySpec:
    """Transfer switch settings: ``open_s`` (s) to island after the grid fails; the sync-check
    window ``sync_hz`` (Hz) and ``sync_pu`` (per unit); ``open_transition_s`` (s) off between
    opening the island and closing onto the grid."""

    open_s: float = 0.1
    sync_hz: float = 0.1
    sync_pu: float = 0.05
    open_transition_s: float = 0.5
    nominal_hz: float = 60.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.open_s) and 0.0 <= self.open_s <= 60.0):
            raise PowershareConfigError(f"gateway: open_s must be 0..60 s, got {self.open_s}")
        check_positive(
            "gateway",
            sync_hz=self.sync_hz,
            sync_pu=self.sync_pu,
            open_transition_s=self.open_transition_s,
            nominal_hz=self.nominal_hz,
        )

    def reconnect(self, f_hz: float, v_pu: float, live: bool) -> Reconnect:
        """How the switch closes when the grid returns to an island at ``f_hz`` and ``v_pu``."""
        if not live:
            return Reconnect("dead bus", 0.0, 0.0)
        slip_hz = abs(f_hz - self.nominal_hz)
        if slip_hz <= self.sync_hz and abs(v_pu - 1.0) <= self.sync_pu:
            return Reconnect("in sync", round(1.0 / slip_hz, 3) if slip_hz > 0 else 0.0, 0.0)
        return Reconnect("open transition", 0.0, self.open_transition_s)
