"""The transfer switch: no device energises the house before it has opened, and when the grid
returns it closes in sync, by an open transition, or onto a dead house."""

from __future__ import annotations

import pytest

from skyfleet.errors import PowershareConfigError
from skyfleet.powershare import GatewaySpec, Scenario, home_battery, simulate, vehicle


def _house(gateway: GatewaySpec, **kw: object) -> Scenario:
    return Scenario(
        vehicle=vehicle("cybertruck"),
        home_batteries=(home_battery("gen3"),),
        load="essential",
        duration_s=60.0,
        gateway=gateway,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("open_s", [0.0, 0.1, 3.0])
def test_no_device_energises_the_house_before_the_switch_opens(open_s: float) -> None:
    r = simulate([_house(GatewaySpec(open_s=open_s))])[0]
    assert r.first_powered_s is not None and r.first_powered_s >= open_s
    # and not much later: the full home battery forms within its shortest dead-bus delay
    assert r.first_powered_s < open_s + 0.6
    # waiting for the switch is not "dark while usable energy remained"
    assert r.violations() == []


def test_island_at_grid_frequency_recloses_in_sync_within_a_slip_period() -> None:
    g = GatewaySpec()
    rc = g.reconnect(60.04, 1.01, True)
    assert rc.how == "in sync" and rc.dark_s == 0.0
    assert rc.wait_s == pytest.approx(1.0 / 0.04)  # s: one full slip of the phase


def test_island_the_vehicle_carries_is_outside_the_window_and_blinks() -> None:
    # a low home battery: the vehicle carries the house below 59.8 Hz, nothing steers it to 60
    sc = _house(GatewaySpec(), home_soc_pct=(10.0,))
    r = simulate([sc])[0]
    assert r.f_end_hz < 59.8 and r.live_end
    assert r.reconnect.how == "open transition"
    assert r.reconnect.dark_s == GatewaySpec().open_transition_s


def test_dead_house_is_simply_closed() -> None:
    assert GatewaySpec().reconnect(0.0, 0.0, False).how == "dead bus"


@pytest.mark.parametrize(
    "bad", [{"open_s": -1.0}, {"open_s": 120.0}, {"sync_hz": 0.0}, {"open_transition_s": -0.5}]
)
def test_impossible_gateway_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(PowershareConfigError, match="gateway"):
        GatewaySpec(**bad)
