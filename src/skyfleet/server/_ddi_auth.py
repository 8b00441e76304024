"""Who a DDI request acts for: the tenant, the device's target token or a gateway's token, and a
gateway registering a device it polls for. Shared by the DDI, TUF and telemetry routes.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from skyfleet import store
from skyfleet.errors import ConflictError, DeviceAuthError, NotFoundError
from skyfleet.server._limits import mark_device
from skyfleet.server._runtime import Runtime

__all__ = [
    "CONTROLLER_ID",
    "ControllerId",
    "Device",
    "IdempotencyKey",
    "authorize",
    "check_tenant",
    "register_unknown",
    "runtime",
]


CONTROLLER_ID = r"[^/\\\s\x00-\x1f\x7f]{1,128}"  # no slashes, spaces or control characters
ControllerId = Path(pattern=f"^{CONTROLLER_ID}$", description="the device id")


def runtime(request: Request) -> Runtime:
    """The server's shared state."""
    rt: Runtime = request.app.state.runtime
    return rt


def check_tenant(rt: Runtime, tenant: str) -> None:
    if tenant.lower() != rt.config.tenant.lower():
        raise NotFoundError(f"unknown tenant {tenant!r}")


def authorize(
    rt: Runtime, tenant: str, authorization: str | None, token_hash: str | None, known: bool
) -> bool:
    """Whether the request may act for the device: True for a known device with its target
    token (or the gateway token), False for an unknown device with the gateway token (to be
    registered); :class:`DeviceAuthError` or :class:`NotFoundError` otherwise."""
    check_tenant(rt, tenant)
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    gateway = rt.config.gateway_token
    is_gateway = (
        scheme == "GatewayToken"
        and gateway is not None
        and hmac.compare_digest(token.encode(), gateway.encode())
    )
    if not known:
        if is_gateway:
            return False
    elif is_gateway or (scheme == "TargetToken" and store.token_matches(token, token_hash)):
        return True
    raise DeviceAuthError(
        "missing or wrong device token: send 'Authorization: TargetToken <token>'"
    )


def _authenticate(
    rt: Runtime, conn: Connection, tenant: str, controller_id: str, authorization: str | None
) -> dict[str, Any] | None:
    """``{"last_seen": ..., "hw": ...}`` of the device, or None for an unknown device that
    presented the gateway token; :class:`DeviceAuthError` for anything else."""
    found = store.device_auth(conn, controller_id)
    token_hash = found[0] if found else None
    if not authorize(rt, tenant, authorization, token_hash, found is not None):
        return None
    assert found is not None
    return {"last_seen": found[1], "hw": found[2]}


def register_unknown(rt: Runtime, controller_id: str) -> None:
    """Register a device a gateway polls for; two first polls at once both succeed."""
    try:
        with rt.store.begin() as conn:
            store.register_devices(
                conn,
                rt.clock(),
                [store.NewDevice(controller_id, hw=store.UNKNOWN_HW)],
                actor="gateway",
            )
    except (ConflictError, IntegrityError):
        pass  # registered by the other poll


def _device(
    request: Request,
    tenant: str,
    controller_id: str = ControllerId,
    authorization: str | None = Header(default=None),
) -> dict[str, Any]:
    rt = runtime(request)
    with rt.store.read() as conn:
        device = _authenticate(rt, conn, tenant, controller_id, authorization)
    if device is None:
        register_unknown(rt, controller_id)
        device = {"last_seen": None, "hw": store.UNKNOWN_HW}
    mark_device(request.scope)
    return device


Device = Annotated[dict[str, Any], Depends(_device)]

#: A report that carries an ``Idempotency-Key`` is applied at most once (an edge relay re-sends
#: what it cannot be sure arrived with the same key): see :mod:`skyfleet.store._idempotency`.
IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=r"^[!-~]{1,200}$",
        description="Apply this report at most once: a repeat with the same key (for this "
        "device) is answered 200 and changes nothing. An edge relay sends RELAY-ID:SEQ.",
    ),
]
