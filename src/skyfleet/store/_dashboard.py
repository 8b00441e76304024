"""What the dashboard draws of every device, in one query: who it is, where it is and on which
link (its latest telemetry), and where it stands with its latest rollout action."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from skyfleet.store._schema import actions, device_state, devices

__all__ = ["DEVICE_COLUMNS", "dashboard_devices"]

#: The columns :func:`dashboard_devices` returns, in order.
DEVICE_COLUMNS = (
    "id",
    "kind",
    "hw",
    "tags",
    "home",
    "lat_deg",
    "lon_deg",
    "link",
    "rtt_ms",
    "version",
    "update",
    "last_seen",
)


def dashboard_devices(conn: Connection, *, limit: int = 20_000) -> tuple[int, dict[str, list[Any]]]:
    """``(total devices, columns)`` for the first ``limit`` devices by id: one list per name in
    :data:`DEVICE_COLUMNS`, all the same length.

    ``home`` is the device's ``home`` attribute (Powershare homes group a home battery and a
    vehicle); ``lat_deg``, ``lon_deg`` (degrees), ``link`` and ``rtt_ms`` (ms) come from its
    latest telemetry (None before any); ``version`` is the version it reported last, else the
    one registered or confirmed; ``update`` is the state of its latest rollout action (``none``
    without one); ``last_seen`` is UNIX s (None: never seen).
    """
    total = int(conn.execute(select(func.count()).select_from(devices)).scalar_one())
    latest = (
        select(actions.c.device_id, func.max(actions.c.id).label("action_id"))
        .group_by(actions.c.device_id)
        .subquery()
    )
    query = (
        select(
            devices.c.id,
            devices.c.kind,
            devices.c.hw,
            devices.c.tags,
            devices.c.attributes,
            devices.c.installed_version,
            devices.c.last_seen,
            device_state.c.lat_deg,
            device_state.c.lon_deg,
            device_state.c.link,
            device_state.c.rtt_ms,
            device_state.c.version,
            actions.c.state,
        )
        .select_from(
            devices.outerjoin(device_state, device_state.c.device_id == devices.c.id)
            .outerjoin(latest, latest.c.device_id == devices.c.id)
            .outerjoin(actions, actions.c.id == latest.c.action_id)
        )
        .order_by(devices.c.id)
        .limit(limit)
    )
    columns: dict[str, list[Any]] = {name: [] for name in DEVICE_COLUMNS}
    append = [columns[name].append for name in DEVICE_COLUMNS]
    for row in conn.execute(query):
        attrs = row.attributes or {}
        home = attrs.get("home")
        values = (
            row.id,
            row.kind,
            row.hw,
            row.tags or [],
            home if isinstance(home, str) else None,
            row.lat_deg,
            row.lon_deg,
            row.link,
            row.rtt_ms,
            row.version or row.installed_version,
            row.state or "none",
            row.last_seen,
        )
        for add, value in zip(append, values, strict=True):
            add(value)
    return total, columns
