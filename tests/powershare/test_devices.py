"""Devices as config data: the catalogue, its published figures, and the errors for bad input.

Vehicle-to-home limits are the manufacturer's figures for the breaker the vehicle is connected
through (Cybertruck Powershare: 11.5 kW on 60 A, 9.6 kW on 50 A, 7.6 kW on 40 A); home battery
figures are the published ones for the three generations modelled (13.5 kWh each; 5 / 7 kW,
5.8 / 10 kW and 11.5 / 15.4 kW continuous / peak).
"""

from __future__ import annotations

import dataclasses

import pytest

from skyfleet.errors import (
    PowershareConfigError,
    PowershareError,
    SkyfleetError,
    UnknownDeviceError,
)
from skyfleet.powershare import (
    FrequencyPlan,
    HomeBatterySpec,
    Scenario,
    SolarSpec,
    TripSettings,
    VehicleSpec,
    check_plan,
    home_battery,
    home_battery_names,
    load_series,
    simulate,
    vehicle,
    vehicle_names,
)


@pytest.mark.parametrize(("breaker_a", "v2h_kw"), [(60, 11.5), (50, 9.6), (40, 7.6)])
def test_cybertruck_vehicle_to_home_limit_follows_its_breaker(
    breaker_a: int, v2h_kw: float
) -> None:
    v = vehicle("cybertruck", breaker_a=breaker_a)
    assert v.v2h_w == pytest.approx(v2h_kw * 1000.0, abs=0.5)
    assert v.continuous_w == v.peak_w == v.v2h_w
    assert v.charge_w == 0.0  # a vehicle never charges from the island
    assert v.breaker_a == breaker_a


def test_breaker_without_a_published_limit_is_refused_with_the_ones_that_exist() -> None:
    with pytest.raises(PowershareConfigError, match=r"30 A breaker.*40, 50, 60 A"):
        vehicle("cybertruck", breaker_a=30)


def test_usable_energy_is_what_lies_above_the_reserve() -> None:
    v = vehicle("cybertruck")
    # 123 kWh pack, 20 % reserve: (80 - 20) % of 123 kWh
    assert v.usable_kwh(80.0) == pytest.approx(0.60 * 123.0, abs=0.001)
    assert v.usable_kwh(20.0) == 0.0
    assert v.usable_kwh(10.0) == 0.0
    assert vehicle("cybertruck", reserve_pct=10.0).usable_kwh(80.0) == pytest.approx(
        0.70 * 123.0, abs=0.001
    )


@pytest.mark.parametrize(
    ("name", "firmware", "continuous_kw", "peak_kw"),
    [
        ("gen1", "basic", 5.0, 7.0),
        ("gen2", "adaptive", 5.8, 10.0),
        ("gen3", "adaptive", 11.5, 15.4),
    ],
)
def test_home_battery_generations_have_their_published_ratings(
    name: str, firmware: str, continuous_kw: float, peak_kw: float
) -> None:
    b = home_battery(name)
    assert b.capacity_kwh == pytest.approx(13.5, abs=0.001)
    assert b.continuous_w == pytest.approx(continuous_kw * 1000.0, abs=0.5)
    assert b.peak_w == pytest.approx(peak_kw * 1000.0, abs=0.5)
    assert b.firmware == firmware
    assert 0.0 <= b.reserve_pct < 100.0


def test_firmware_level_can_be_overridden() -> None:
    assert home_battery("gen1", firmware="adaptive").firmware == "adaptive"
    assert home_battery("gen3", firmware="basic").firmware == "basic"
    assert vehicle("cybertruck", firmware="basic").firmware == "basic"


def test_catalogue_lists_every_device_that_can_be_looked_up() -> None:
    assert {"cybertruck", "lightning"} <= set(vehicle_names())
    assert {"gen1", "gen2", "gen3"} <= set(home_battery_names())
    assert vehicle_names() == sorted(vehicle_names())
    for name in vehicle_names():
        assert vehicle(name).name == name
    for name in home_battery_names():
        assert home_battery(name).name == name


def test_unknown_vehicle_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownDeviceError) as err:
        vehicle("model-x")
    assert "model-x" in str(err.value)
    for name in vehicle_names():
        assert name in str(err.value)


def test_unknown_home_battery_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownDeviceError) as err:
        home_battery("gen9")
    for name in ("gen1", "gen2", "gen3"):
        assert name in str(err.value)


def test_unknown_load_profile_is_refused_with_the_known_names() -> None:
    for call in (
        lambda: Scenario(vehicle=vehicle("cybertruck"), load="mansion"),
        lambda: load_series("mansion", start_s=0.0, duration_s=60.0, seed=0),
    ):
        with pytest.raises(UnknownDeviceError) as err:
            call()
        for name in ("essential", "heavy", "typical"):
            assert name in str(err.value)


def test_powershare_errors_belong_to_the_skyfleet_hierarchy() -> None:
    assert issubclass(UnknownDeviceError, PowershareError)
    assert issubclass(UnknownDeviceError, LookupError)
    assert issubclass(PowershareConfigError, PowershareError)
    assert issubclass(PowershareConfigError, ValueError)
    assert issubclass(PowershareError, SkyfleetError)


GEN3 = dict(
    name="custom", capacity_kwh=13.5, continuous_w=11_500.0, peak_w=15_400.0, peak_s=10.0,
    charge_w=5_000.0,
)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"capacity_kwh": -13.5}, r"capacity_kwh must be a positive number, got -13.5"),
        ({"capacity_kwh": float("nan")}, r"capacity_kwh must be a positive number"),
        ({"continuous_w": 0.0}, r"continuous_w must be a positive number"),
        ({"peak_w": 10_000.0}, r"peak power is below continuous power"),
        ({"reserve_pct": 120.0}, r"reserve_pct must be at least 0 and below 100 %, got 120.0"),
        ({"reserve_pct": -1.0}, r"reserve_pct must be at least 0 and below 100 %"),
        ({"efficiency": 1.2}, r"efficiency must be 0.5..1, got 1.2"),
        ({"peak_s": -1.0}, r"peak_s must be >= 0"),
        ({"firmware": "quantum"}, r"unknown firmware 'quantum': use basic or adaptive"),
    ],
)
def test_impossible_home_battery_is_refused_with_a_clear_message(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(PowershareConfigError, match=message) as err:
        HomeBatterySpec(**{**GEN3, **change})  # type: ignore[arg-type]
    assert "home battery 'custom'" in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pack_kwh": -1.0}, r"pack_kwh must be a positive number"),
        ({"v2h_w": 0.0}, r"v2h_w must be a positive number"),
        ({"reserve_pct": 101.0}, r"reserve_pct must be at least 0 and below 100 %"),
        ({"reserve_pct": 100.0}, r"reserve_pct must be at least 0 and below 100 %"),
        ({"efficiency": 0.2}, r"efficiency must be 0.5..1"),
    ],
)
def test_impossible_vehicle_is_refused_with_a_clear_message(
    change: dict[str, object], message: str
) -> None:
    good = vehicle("cybertruck")
    with pytest.raises(PowershareConfigError, match=message):
        dataclasses.replace(good, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vehicle_soc_pct": 100.5},
        {"vehicle_soc_pct": -0.1},
        {"home_batteries": (home_battery("gen3"),), "home_soc_pct": (101.0,)},
        {"home_batteries": (home_battery("gen3"),), "home_soc_pct": (float("nan"),)},
    ],
)
def test_state_of_charge_outside_0_to_100_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(PowershareConfigError, match=r"between 0 and 100 %"):
        Scenario(vehicle=vehicle("cybertruck"), **kwargs)  # type: ignore[arg-type]


def test_scenario_needs_a_source_and_at_most_three_home_batteries() -> None:
    with pytest.raises(PowershareConfigError, match="a vehicle or at least one home battery"):
        Scenario(vehicle=None)
    with pytest.raises(PowershareConfigError, match="at most 3 home batteries, got 4"):
        Scenario(vehicle=None, home_batteries=(home_battery("gen3"),) * 4)
    with pytest.raises(PowershareConfigError, match="1 home states of charge for 2 home batteries"):
        Scenario(vehicle=None, home_batteries=(home_battery("gen3"),) * 2, home_soc_pct=(50.0,))


def test_solar_curve_must_fall_with_frequency() -> None:
    with pytest.raises(PowershareConfigError, match="frequency-watt curve"):
        SolarSpec(rated_w=5_000.0, fw_start_hz=61.0, fw_full_hz=60.5)
    with pytest.raises(PowershareConfigError, match="rated power"):
        SolarSpec(rated_w=-1.0)


def test_trip_settings_out_of_order_are_refused() -> None:
    with pytest.raises(PowershareConfigError, match="frequency trip settings out of order"):
        TripSettings(of1=(62.5, 300.0))  # above of2
    with pytest.raises(PowershareConfigError, match="voltage trip settings out of order"):
        TripSettings(uv2=(0.9, 2.0))  # above uv1
    with pytest.raises(PowershareConfigError, match="must be positive numbers"):
        TripSettings(uv1=(0.88, 0.0))


def test_changing_one_trip_element_keeps_the_others() -> None:
    base = TripSettings()
    changed = base.with_setting("uv2", 0.45, 1.0)
    assert changed.uv2 == (0.45, 1.0)
    assert changed.of1 == base.of1
    assert base.with_setting("of2", 62.5).of2 == (62.5, 0.16)  # clearing time kept
    with pytest.raises(PowershareConfigError, match="unknown trip element 'of3'"):
        base.with_setting("of3", 63.0)


# --- the frequency plan against the trip settings --------------------------------------------


def test_default_plan_fits_inside_ieee_1547_category_iii_settings() -> None:
    check_plan(FrequencyPlan(), [("vehicle", TripSettings()), ("home", TripSettings())], None)
    check_plan(FrequencyPlan(), [("solar", TripSettings())], SolarSpec(rated_w=8_000.0))


def test_plan_signalling_band_spans_its_lowest_and_highest_droop() -> None:
    plan = FrequencyPlan()
    # lowest: a low home battery at its limit, twice its droop below the assist frequency;
    # highest: a home battery at its charging limit, twice its droop above the top of its band
    assert plan.lowest_hz() == pytest.approx(59.1 - 2 * 0.075, abs=1e-9)
    assert plan.highest_hz() == pytest.approx(60.25 + 2 * 0.075, abs=1e-9)
    assert plan.highest_hz(61.0) == pytest.approx(61.0, abs=1e-9)


@pytest.mark.parametrize(
    "trip",
    [
        TripSettings(uf1=(59.0, 300.0)),  # cuts the home batteries' reserve band (down to 58.95)
        TripSettings(uf2=(58.9, 0.16), uf1=(58.9, 2.0)),
        TripSettings(of1=(60.45, 300.0)),  # cuts the charging band (up to 60.4 Hz)
        TripSettings(uv1=(0.95, 21.0)),  # no room for normal voltage
        TripSettings(ov1=(1.04, 13.0)),
    ],
)
def test_trip_settings_that_cut_the_signalling_band_are_refused(trip: TripSettings) -> None:
    with pytest.raises(PowershareConfigError, match="vehicle"):
        check_plan(FrequencyPlan(), [("vehicle", trip)], None)
    # and a run with such a device is refused before it starts
    sc = Scenario(vehicle=vehicle("cybertruck", trip=trip), load="essential", duration_s=60.0)
    with pytest.raises(PowershareConfigError, match="vehicle:cybertruck"):
        simulate([sc])


def test_solar_over_frequency_trip_below_its_curtailment_is_refused() -> None:
    solar = SolarSpec(rated_w=8_000.0, fw_start_hz=60.5, fw_full_hz=61.0)
    with pytest.raises(PowershareConfigError, match="signalling band"):
        check_plan(FrequencyPlan(), [("solar", TripSettings(of1=(61.05, 300.0)))], solar)


def test_solar_curtailing_inside_the_charging_band_is_refused() -> None:
    solar = SolarSpec(rated_w=8_000.0, fw_start_hz=60.3, fw_full_hz=61.0)
    with pytest.raises(PowershareConfigError, match="charging band"):
        check_plan(FrequencyPlan(), [], solar)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low_pct": 40.0, "high_pct": 35.0}, "hysteresis"),
        ({"home_droop_hz": 0.15}, "vehicle's band"),  # 60 - 2 x 0.15 < 59.8
        ({"vehicle_droop_hz": 0.5}, "reserve band"),  # 59.8 - 2 x 0.5 < 59.1
        ({"dead_bus_min_s": 3.0}, "dead_bus_min_s exceeds dead_bus_max_s"),
        ({"nominal_hz": -60.0}, "nominal_hz must be >= 0"),
    ],
)
def test_inconsistent_frequency_plan_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PowershareConfigError, match=message):
        FrequencyPlan(**kwargs)


def test_plan_constants_reach_the_kernel_in_field_order() -> None:
    plan = FrequencyPlan(low_pct=25.0, vehicle_hz=59.7)
    values = plan.as_array()
    names = [f.name for f in dataclasses.fields(plan)]
    assert values[names.index("low_pct")] == 25.0
    assert values[names.index("vehicle_hz")] == 59.7
    assert len(values) == len(names)


def test_vehicle_spec_is_frozen_config_data() -> None:
    v = vehicle("cybertruck")
    assert isinstance(v, VehicleSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.v2h_w = 20_000.0  # type: ignore[misc]
