"""What devices report about themselves: position, link, round-trip time, state of charge,
installed version and, for home devices, bus frequency and power, one sample at a time, and the MQTT topics (and broker URLs) they publish on.

Pure code: a payload and the server's time in, checked :class:`Telemetry` records out (or a
:class:`~skyfleet.errors.DeviceError` saying what was wrong). The store keeps the latest sample
of each device and a bounded history; the server takes samples over MQTT and HTTP.

A payload is one JSON object, or a list of them::

    {"ts": 1767225600.0, "lat_deg": 47.61, "lon_deg": -122.33, "link": "satellite",
     "rtt_ms": 41.5, "soc_pct": 81.0, "version": "2025.44.25.5", "state": "driving"}

and a home battery's (power positive = discharging into the house)::

    {"ts": 1767225600.0, "soc_pct": 64.5, "freq_hz": 50.02, "power_w": 2400.0, "state": "island"}
"""

from __future__ import annotations

from skyfleet.telemetry._mqtt_url import MqttUrl, parse_mqtt_url
from skyfleet.telemetry._record import (
    FIELDS,
    LINKS,
    MAX_FUTURE_S,
    MAX_SAMPLES,
    MIN_TS,
    Telemetry,
    parse_payload,
    parse_sample,
)
from skyfleet.telemetry._topics import device_of_topic, telemetry_filter, telemetry_topic

__all__ = [
    "FIELDS",
    "LINKS",
    "MAX_FUTURE_S",
    "MAX_SAMPLES",
    "MIN_TS",
    "MqttUrl",
    "Telemetry",
    "device_of_topic",
    "parse_mqtt_url",
    "parse_payload",
    "parse_sample",
    "telemetry_filter",
    "telemetry_topic",
]
