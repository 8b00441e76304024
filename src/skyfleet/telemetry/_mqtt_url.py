"""Where the MQTT broker is: a URL the server and simulated devices both read."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from skyfleet.errors import InputError

__all__ = ["MqttUrl", "parse_mqtt_url"]


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """Where the broker is: ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` (1883), or ``mqtts://``
    (TLS, 8883, the system's CA certificates)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttUrl:
    """The broker's address in ``url``; :class:`InputError` when it cannot be used.

    >>> parse_mqtt_url("mqtt://127.0.0.1:1884")
    MqttUrl(host='127.0.0.1', port=1884, username=None, password=None, tls=False)
    >>> parse_mqtt_url("mqtts://fleet:s3cret@broker.example").port
    8883
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InputError(f"cannot read MQTT URL {url!r}: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise InputError(
            f"MQTT URL {url!r} must look like mqtt://HOST[:PORT] or mqtts://USER:PASSWORD@HOST"
        )
    if parts.path not in ("", "/") or parts.query:
        raise InputError(f"MQTT URL {url!r} takes no path or query: mqtt://HOST[:PORT]")
    tls = parts.scheme == "mqtts"
    return MqttUrl(
        parts.hostname,
        port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls,
    )
