"""Remote monitoring: telemetry in (MQTT, and HTTP beside the DDI API), the fleet's status out.

- ``POST /{tenant}/controller/v1/{device}/telemetry``: a device reports one sample or a list,
  authenticated like every DDI request (``TargetToken``, or a gateway's ``GatewayToken``).
- ``GET /api/v1/fleet/status``: devices by connectivity, kind, link, version and rollout
  action; the silent ones listed (viewer role).
- ``GET /api/v1/devices/{id}/telemetry``: a device's latest sample and history, newest first.

:class:`TelemetryService` is what the app starts: the ingest worker, and the MQTT subscriber
when ``ServerConfig.mqtt_url`` is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from skyfleet import store
from skyfleet.server._access import Viewer
from skyfleet.server._config import ServerConfig
from skyfleet.server._ddi_auth import ControllerId, Device, runtime
from skyfleet.server._ddi_wire import DEVICE_ERRORS
from skyfleet.server._errors import error_responses
from skyfleet.server._ingest import TelemetryIngest
from skyfleet.server._mqtt import MqttSubscriber
from skyfleet.telemetry import LINKS, MAX_SAMPLES, parse_mqtt_url, parse_payload

__all__ = ["TelemetryService", "device_router", "operator_router"]


class TelemetryService:
    """The server's telemetry: the ingest worker, and the MQTT subscriber if configured."""

    def __init__(
        self, config: ServerConfig, db: store.Store, clock: Callable[[], float] = time.time
    ) -> None:
        self.ingest = TelemetryIngest(
            db, clock, tenant=config.tenant, history=config.telemetry_history
        )
        self.subscriber: MqttSubscriber | None = None
        if config.mqtt_url:
            self.subscriber = MqttSubscriber(
                parse_mqtt_url(config.mqtt_url),
                self.ingest,
                db,
                tenant=config.tenant,
                client_id=config.mqtt_client_id or f"skyfleet-{config.tenant}",
                session_expiry_s=config.mqtt_session_expiry_s,
            )

    def start(self) -> None:
        """Start ingesting (and subscribing)."""
        self.ingest.start()
        if self.subscriber is not None:
            self.subscriber.start()

    def stop(self) -> None:
        """Take no more messages, store those taken (and acknowledge them), disconnect."""
        if self.subscriber is not None:
            self.subscriber.pause()
        self.ingest.stop()
        if self.subscriber is not None:
            self.subscriber.stop()


def _service(request: Request) -> TelemetryService:
    service: TelemetryService = request.app.state.telemetry
    return service


# --- the device's side ---------------------------------------------------------------------------


class TelemetrySample(BaseModel):
    """One sample (documentation: the server checks samples itself, the same way for MQTT)."""

    model_config = ConfigDict(extra="allow")
    ts: float = Field(description="The device's time of the sample, UNIX seconds")
    lat_deg: float | None = Field(default=None, ge=-90, le=90, description="WGS84, north +")
    lon_deg: float | None = Field(default=None, ge=-180, le=180, description="WGS84, east +")
    link: str | None = Field(default=None, description=f"One of {', '.join(LINKS)}")
    rtt_ms: float | None = Field(default=None, ge=0, description="Round-trip time to the cloud")
    soc_pct: float | None = Field(default=None, ge=0, le=100, description="State of charge")
    version: str | None = Field(default=None, description="The software version installed")
    state: str | None = Field(default=None, max_length=64, description="Free text")
    freq_hz: float | None = Field(
        default=None, ge=0, le=100, description="Bus frequency the device measures, Hz"
    )
    power_w: float | None = Field(
        default=None,
        ge=-1e6,
        le=1e6,
        description="The device's power, W: positive = discharging into the house/bus",
    )


class TelemetryAnswer(BaseModel):
    """How many samples the server stored (or already had)."""

    accepted: int = Field(ge=0)


_SAMPLE_SCHEMA = TelemetrySample.model_json_schema()
_BODY_SCHEMA = {
    "anyOf": [
        _SAMPLE_SCHEMA,
        {"type": "array", "items": _SAMPLE_SCHEMA, "minItems": 1, "maxItems": MAX_SAMPLES},
    ]
}

device_router = APIRouter(tags=["device (hawkBit DDI)"], responses=DEVICE_ERRORS)


@device_router.post(
    "/{tenant}/controller/v1/{controller_id}/telemetry",
    summary="Report telemetry",
    response_model=TelemetryAnswer,
    responses=error_responses(400, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BODY_SCHEMA}},
        }
    },
)
async def report_telemetry(
    request: Request,
    tenant: str,
    controller_id: Annotated[str, ControllerId],
    device: Device,
) -> dict[str, Any]:
    """One sample or a list of up to 1,000 (a device catching up after an outage), checked as
    MQTT messages are; answered once they are stored. A sample older than the device's latest
    goes to the history only."""
    rt = runtime(request)
    body = await request.body()
    # up to 1 MiB of JSON, checked sample by sample: not on the event loop
    samples = await run_in_threadpool(parse_payload, body, now_s=rt.clock())
    await asyncio.wrap_future(_service(request).ingest.submit(controller_id, samples))
    return {"accepted": len(samples)}


# --- the operator's side -------------------------------------------------------------------------

operator_router = APIRouter(prefix="/api/v1", tags=["operator"])
_PARAMS = (401, 403, 503, 400, 422)


@operator_router.get(
    "/fleet/status", summary="The fleet at a glance", responses=error_responses(*_PARAMS)
)
def fleet_status(
    request: Request,
    who: Viewer,
    silent_after_s: Annotated[float, Query(gt=0, le=365 * 86400.0)] = 600.0,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> dict[str, Any]:
    """Devices by connectivity (``online``, ``silent``: not seen for ``silent_after_s``,
    ``never_seen``), kind, latest link (with the mean RTT), version and rollout action state;
    the silent devices, longest silent first (up to ``limit``); and the ingest counters."""
    rt = runtime(request)
    with rt.store.read() as conn:
        return store.fleet_status(conn, rt.clock(), silent_after_s=silent_after_s, limit=limit)


@operator_router.get(
    "/devices/{device_id}/telemetry",
    summary="A device's telemetry",
    responses=error_responses(*_PARAMS, 404),
)
def device_telemetry(
    request: Request,
    who: Viewer,
    device_id: str,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """The latest sample (null before the first) and the history, newest first; each sample
    has ``received_at`` and every field a device may report (null: not reported)."""
    with runtime(request).store.read() as conn:
        history = store.telemetry_history(conn, device_id, limit=limit)
        latest = store.latest_telemetry(conn, [device_id]).get(device_id)
    return {"device_id": device_id, "latest": latest, "history": history}
