"""Simulated telemetry: samples for many devices, published over MQTT (paho) or posted over HTTP,
as real devices would.

:func:`simulated_sample` is pure (a device id and a time in, a plausible sample out: a vehicle
circling near its home, mostly on satellite, its battery draining and recharging);
:class:`MqttTelemetryPublisher` publishes any samples for any number of devices over one
connection, QoS 1, keeping every message until the broker acknowledged it, so that nothing is
lost while the broker restarts; :func:`post_telemetry` sends them to the HTTP endpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from skyfleet.telemetry import LINKS, Telemetry, parse_mqtt_url, telemetry_topic

__all__ = ["MqttTelemetryPublisher", "post_telemetry", "simulated_sample"]


def _unit(device_id: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def simulated_sample(
    device_id: str, t_s: float, *, version: str | None = "2025.44.25.5"
) -> Telemetry:
    """A plausible sample of device ``device_id`` at ``t_s`` (UNIX s), the same on every call.

    Each device has a home somewhere between 60°S and 60°N, drives a 20 km circle around it
    once an hour, is on satellite (70 %), cellular (25 %) or wired (5 %) by its id, with an RTT
    typical of that link (about 40, 60 or 15 ms, ±20 %), and a battery that goes between 20 and
    100 % over a day. It reports no bus frequency or power (``freq_hz``, ``power_w`` None): a
    vehicle on the road has no bus to measure; home devices send their own samples.

    >>> a = simulated_sample("car-1", 1767225600.0)
    >>> a == simulated_sample("car-1", 1767225600.0), a.link in ("satellite", "cellular", "wired")
    (True, True)
    """
    lat0 = -60.0 + 120.0 * _unit(device_id, "lat")
    lon0 = -180.0 + 360.0 * _unit(device_id, "lon")
    phase = 2.0 * math.pi * (t_s / 3600.0 + _unit(device_id, "phase"))
    lat = lat0 + 0.09 * math.sin(phase)  # ~10 km
    lon = lon0 + 0.09 * math.cos(phase) / max(math.cos(math.radians(lat0)), 0.2)
    lon = (lon + 180.0) % 360.0 - 180.0
    pick = _unit(device_id, "link")
    link = LINKS[1] if pick < 0.70 else LINKS[0] if pick < 0.95 else LINKS[2]
    base_ms = {"satellite": 40.0, "cellular": 60.0, "wired": 15.0}[link]
    jitter = math.sin(t_s * 0.7 + 10.0 * _unit(device_id, "rtt"))
    soc = 60.0 + 40.0 * math.sin(2.0 * math.pi * (t_s / 86400.0 + _unit(device_id, "soc")))
    return Telemetry(
        ts=t_s,
        lat_deg=round(lat, 6),
        lon_deg=round(lon, 6),
        link=link,
        rtt_ms=round(base_ms * (1.0 + 0.2 * jitter), 2),
        soc_pct=round(min(100.0, max(20.0, soc)), 1),
        version=version,
        state="driving",
    )


def _payload(sample: Telemetry | Sequence[Telemetry] | bytes) -> bytes:
    if isinstance(sample, bytes):
        return sample
    if isinstance(sample, Telemetry):
        return json.dumps(sample.to_json(), separators=(",", ":")).encode()
    return json.dumps([s.to_json() for s in sample], separators=(",", ":")).encode()


class MqttTelemetryPublisher:
    """Publishes telemetry for many devices over one MQTT connection (paho, MQTT 3.1.1).

    QoS 1: a message counts as published once the broker acknowledged it (:attr:`acked`);
    messages published while the broker is away, or sent and not acknowledged when the
    connection broke, wait in the client and go (again) when it is back. ``inflight``: messages
    sent ahead of the broker's acks.
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "DEFAULT",
        client_id: str | None = None,
        qos: int = 1,
        inflight: int = 1000,
    ) -> None:
        self.broker = parse_mqtt_url(url)
        self.tenant = tenant
        self.qos = qos
        self.published = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        name = client_id or f"skyfleet-sim-{hashlib.sha256(url.encode()).hexdigest()[:8]}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=name,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if self.broker.username is not None:
            self.client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)  # no limit: keep everything until it is sent
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def _on_connect(self, *args: Any) -> None:
        reason: ReasonCode = args[3]
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _on_publish(self, *_args: Any) -> None:
        with self._lock:
            self.acked += 1

    def connect(self, timeout_s: float = 10.0) -> MqttTelemetryPublisher:
        """Connect (and keep reconnecting in the background); ``TimeoutError`` if the broker
        does not answer within ``timeout_s``."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.close()
            raise TimeoutError(f"no MQTT broker at {self.broker.host}:{self.broker.port}")
        return self

    def publish(self, device_id: str, sample: Telemetry | Sequence[Telemetry] | bytes) -> None:
        """Publish a sample, a list of samples, or raw bytes (to test what the server refuses)
        on the device's telemetry topic."""
        self.client.publish(telemetry_topic(self.tenant, device_id), _payload(sample), qos=self.qos)
        self.published += 1

    @property
    def pending(self) -> int:
        """Messages published and not acknowledged by the broker yet."""
        with self._lock:
            return self.published - self.acked

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the broker acknowledged everything published; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pending > 0 and self.qos > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Disconnect (the broker keeps the session) and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttTelemetryPublisher:
        return self.connect()

    def __exit__(self, *_exc: object) -> None:
        self.close()


async def post_telemetry(
    client: httpx.AsyncClient,
    device_id: str,
    token: str,
    samples: Telemetry | Sequence[Telemetry],
    *,
    tenant: str = "DEFAULT",
) -> httpx.Response:
    """POST samples to ``/{tenant}/controller/v1/{device}/telemetry`` with the device's target
    token; the response (200 once stored)."""
    return await client.post(
        f"/{tenant}/controller/v1/{device_id}/telemetry",
        content=_payload(samples),
        headers={"Authorization": f"TargetToken {token}", "Content-Type": "application/json"},
    )
