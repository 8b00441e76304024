"""The MQTT topics devices publish telemetry on."""

from __future__ import annotations

__all__ = ["device_of_topic", "telemetry_filter", "telemetry_topic"]

_ROOT = "skyfleet"
_LEAF = "telemetry"


def telemetry_topic(tenant: str, device_id: str) -> str:
    """The topic a device publishes its telemetry on.

    >>> telemetry_topic("DEFAULT", "car-1")
    'skyfleet/DEFAULT/devices/car-1/telemetry'
    """
    return f"{_ROOT}/{tenant}/devices/{device_id}/{_LEAF}"


def telemetry_filter(tenant: str) -> str:
    """The subscription that takes every device's telemetry of ``tenant``.

    >>> telemetry_filter("DEFAULT")
    'skyfleet/DEFAULT/devices/+/telemetry'
    """
    return telemetry_topic(tenant, "+")


def device_of_topic(topic: str, tenant: str) -> str | None:
    """The device id in a telemetry topic of ``tenant``, or None for any other topic.

    >>> device_of_topic("skyfleet/DEFAULT/devices/car-1/telemetry", "DEFAULT")
    'car-1'
    >>> device_of_topic("skyfleet/other/devices/car-1/telemetry", "DEFAULT") is None
    True
    """
    parts = topic.split("/")
    if (
        len(parts) == 5
        and parts[0] == _ROOT
        and parts[1] == tenant
        and parts[2] == "devices"
        and parts[4] == _LEAF
        and parts[3]
    ):
        return parts[3]
    return None
