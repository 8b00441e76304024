"""Telemetry samples: what a payload must hold, and every way it can be refused."""

from __future__ import annotations

import json

import pytest

from skyfleet.errors import DeviceError, InputError
from skyfleet.telemetry import (
    MAX_FUTURE_S,
    MAX_SAMPLES,
    MIN_TS,
    MqttUrl,
    Telemetry,
    device_of_topic,
    parse_mqtt_url,
    parse_payload,
    parse_sample,
    telemetry_filter,
    telemetry_topic,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
FULL = {
    "ts": NOW - 5,
    "lat_deg": -33.86,
    "lon_deg": 151.21,
    "link": "satellite",
    "rtt_ms": 41.5,
    "soc_pct": 80,
    "version": "2025.44.25.5",
    "state": "driving",
    "freq_hz": 50.02,
    "power_w": -3300,
}


def test_a_full_sample_reads_back_as_sent() -> None:
    sample = parse_sample(FULL, now_s=NOW)
    assert sample == Telemetry(
        NOW - 5, -33.86, 151.21, "satellite", 41.5, 80.0, "2025.44.25.5", "driving", 50.02, -3300.0
    )
    assert sample.to_json() == {**FULL, "soc_pct": 80.0, "power_w": -3300.0}
    assert parse_payload(json.dumps(sample.to_json()), now_s=NOW) == [sample]


def test_only_ts_is_required_and_nulls_mean_not_reported() -> None:
    body = {"ts": NOW, "link": None, "rtt_ms": None, "freq_hz": None, "power_w": None}
    sample = parse_sample(body, now_s=NOW)
    assert sample == Telemetry(NOW)
    assert sample.to_json() == {"ts": NOW}
    with pytest.raises(DeviceError, match="needs ts"):
        parse_sample({"link": "wired"}, now_s=NOW)


def test_a_sample_made_with_the_first_eight_fields_positionally_reports_no_power() -> None:
    sample = Telemetry(NOW, 1.0, 2.0, "wired", 5.0, 60.0, "2025.1", "parked")
    assert (sample.state, sample.freq_hz, sample.power_w) == ("parked", None, None)
    assert "power_w" not in sample.to_json() and "freq_hz" not in sample.to_json()


def test_power_is_signed_positive_discharging_negative_charging() -> None:
    discharging = parse_sample({"ts": NOW, "power_w": 2400.5}, now_s=NOW)
    charging = parse_sample({"ts": NOW, "power_w": -7000}, now_s=NOW)
    assert (discharging.power_w, charging.power_w) == (2400.5, -7000.0)
    assert type(charging.power_w) is float  # an int in JSON is stored as a float


def test_fields_the_server_does_not_know_are_ignored() -> None:
    assert parse_sample({"ts": NOW, "tyre_pressure_kpa": 230}, now_s=NOW) == Telemetry(NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lat_deg", 90.0001),
        ("lat_deg", -90.5),
        ("lon_deg", 180.01),
        ("lon_deg", -181),
        ("soc_pct", -0.1),
        ("soc_pct", 100.01),
        ("rtt_ms", -1),
        ("freq_hz", -0.01),
        ("freq_hz", 100.001),
        ("power_w", 1_000_000.5),
        ("power_w", -1_000_001),
        ("ts", MIN_TS - 1),  # a clock that was never set
        ("ts", NOW + MAX_FUTURE_S + 1),  # would hold the latest state until then
    ],
)
def test_values_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(DeviceError, match=field):
        parse_sample({**FULL, field: value}, now_s=NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lat_deg", 90),
        ("lat_deg", -90),
        ("lon_deg", 180),
        ("lon_deg", -180),
        ("soc_pct", 0),
        ("soc_pct", 100),
        ("rtt_ms", 0),
        ("freq_hz", 0),
        ("freq_hz", 100),
        ("power_w", 1_000_000),
        ("power_w", -1_000_000),
        ("power_w", 0),
        ("ts", NOW + MAX_FUTURE_S),
        ("ts", MIN_TS),
    ],
)
def test_values_on_the_edge_of_their_range_are_taken(field: str, value: float) -> None:
    assert getattr(parse_sample({**FULL, field: value}, now_s=NOW), field) == value


@pytest.mark.parametrize(
    "text",
    [
        '{"ts": NaN}',
        '{"ts": 1767225600, "rtt_ms": Infinity}',
        '{"ts": 1767225600, "soc_pct": -Infinity}',
        '{"ts": 1767225600, "rtt_ms": 1e999}',  # parses as inf
        '{"ts": 1767225600, "rtt_ms": ' + "9" * 400 + "}",  # an int no float can hold
        '{"ts": 1767225600, "freq_hz": NaN}',
        '{"ts": 1767225600, "freq_hz": 1e999}',
        '{"ts": 1767225600, "power_w": Infinity}',
        '{"ts": 1767225600, "power_w": -Infinity}',
        '{"ts": 1767225600, "power_w": -1e999}',
        '{"ts": 1767225600, "power_w": ' + "9" * 400 + "}",
    ],
)
def test_numbers_must_be_finite(text: str) -> None:
    with pytest.raises(DeviceError) as refused:
        parse_payload(text, now_s=NOW)
    assert "\n" not in str(refused.value)  # one line


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({**FULL, "soc_pct": True}, "soc_pct must be a number"),  # a bool is not a number
        ({**FULL, "rtt_ms": "41.5"}, "rtt_ms must be a number"),
        ({**FULL, "freq_hz": True}, "freq_hz must be a number, not bool"),
        ({**FULL, "freq_hz": "50 Hz"}, "freq_hz must be a number, not str"),
        ({**FULL, "power_w": "-3.3kW"}, "power_w must be a number, not str"),
        ({**FULL, "power_w": [2400]}, "power_w must be a number, not list"),
        ({**FULL, "power_w": {"w": 1}}, "power_w must be a number, not dict"),
        ({**FULL, "link": "wifi"}, "link 'wifi' is unknown"),
        ({**FULL, "link": 3}, "link must be a string"),
        ({**FULL, "version": "1.0 beta"}, "version"),
        ({**FULL, "state": "x" * 65}, "state"),
        ({**FULL, "state": "line\nbreak"}, "state"),
        ({"ts": NOW, "lat_deg": 10.0}, "lat_deg and lon_deg go together"),
        ({"ts": NOW, "lon_deg": 10.0}, "lat_deg and lon_deg go together"),
    ],
)
def test_fields_of_the_wrong_kind_are_refused_saying_which(
    body: dict[str, object], match: str
) -> None:
    with pytest.raises(DeviceError, match=match) as refused:
        parse_sample(body, now_s=NOW)
    assert "\n" not in str(refused.value)  # one line


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"\xff\xfe", b"[]", b"42", b'"text"', b"[1, 2]", b"{" * 100_000],
)
def test_payloads_that_are_not_samples_are_refused_with_a_device_error(payload: bytes) -> None:
    with pytest.raises(DeviceError):
        parse_payload(payload, now_s=NOW)


def test_a_list_is_taken_whole_or_not_at_all() -> None:
    good = {"ts": NOW}
    assert len(parse_payload(json.dumps([good] * MAX_SAMPLES), now_s=NOW)) == MAX_SAMPLES
    with pytest.raises(DeviceError, match="1 to 1000"):
        parse_payload(json.dumps([good] * (MAX_SAMPLES + 1)), now_s=NOW)
    with pytest.raises(DeviceError, match="soc_pct"):
        parse_payload(json.dumps([good, {"ts": NOW, "soc_pct": 101}]), now_s=NOW)


def test_topics_name_the_tenant_and_the_device() -> None:
    topic = telemetry_topic("DEFAULT", "car-1")
    assert device_of_topic(topic, "DEFAULT") == "car-1"
    assert device_of_topic(topic, "other") is None
    assert telemetry_filter("DEFAULT") == "skyfleet/DEFAULT/devices/+/telemetry"
    for wrong in (
        "skyfleet/DEFAULT/devices//telemetry",
        "skyfleet/DEFAULT/devices/car-1/telemetry/extra",
        "skyfleet/DEFAULT/devices/car-1/status",
        "fleet/DEFAULT/devices/car-1/telemetry",
    ):
        assert device_of_topic(wrong, "DEFAULT") is None, wrong


def test_broker_urls() -> None:
    assert parse_mqtt_url("mqtt://127.0.0.1") == MqttUrl("127.0.0.1", 1883)
    assert parse_mqtt_url("mqtts://fleet:p%40ss@broker:9883/") == MqttUrl(
        "broker", 9883, "fleet", "p@ss", tls=True
    )
    for bad in ("http://broker", "mqtt://", "mqtt://broker:99999", "mqtt://broker/topic", "broker"):
        with pytest.raises(InputError):
            parse_mqtt_url(bad)
