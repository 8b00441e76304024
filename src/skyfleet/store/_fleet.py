"""Devices: register, update what they report, list and look up."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from skyfleet.errors import ConflictError, DeviceError, NotFoundError, PlaceError
from skyfleet.links import site_places
from skyfleet.rollout import DEVICE_KINDS, is_valid_hardware, is_valid_version
from skyfleet.store import _audit
from skyfleet.store._assign import assignment_lock, device_record, join_active_rollouts
from skyfleet.store._schema import devices

__all__ = [
    "UNKNOWN_HW",
    "NewDevice",
    "device_auth",
    "get_device",
    "hash_token",
    "list_devices",
    "register_devices",
    "token_matches",
    "touch_devices",
    "update_reported",
]


def hash_token(token: str) -> str:
    """The stored form of a device or gateway token (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str | None) -> bool:
    """Whether ``token`` hashes to ``token_hash`` (constant time)."""
    return token_hash is not None and hmac.compare_digest(hash_token(token), token_hash)


def _bad_id_char(c: str) -> bool:
    return c in "/\\" or c.isspace() or ord(c) < 32 or ord(c) == 127


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device to register. ``token`` None: one is generated and returned once."""

    id: str
    kind: str = "vehicle"
    hw: str = "hw3"
    attributes: Mapping[str, str] | None = None
    tags: Sequence[str] = ()
    installed_version: str | None = None
    token: str | None = None

    def check(self) -> None:
        """Raise :class:`DeviceError` for a field that cannot be stored."""
        if not self.id or len(self.id) > 128 or any(_bad_id_char(c) for c in self.id):
            raise DeviceError(
                f"device id {self.id!r} must be 1-128 characters without spaces, slashes or "
                "control characters"
            )
        if self.kind not in DEVICE_KINDS:
            raise DeviceError(
                f"device kind {self.kind!r} is unknown: use {', '.join(DEVICE_KINDS)}"
            )
        if not is_valid_hardware(self.hw):
            raise DeviceError(
                f"hardware generation {self.hw!r} must be 1-32 letters, digits and ._+~- (e.g. hw3)"
            )
        if self.installed_version is not None and not is_valid_version(self.installed_version):
            raise DeviceError(f"installed version {self.installed_version!r} is not usable")
        if self.kind == "site":
            try:
                site_places(self.attributes or {}, self.id)
            except PlaceError as exc:
                raise DeviceError(str(exc)) from None


def register_devices(
    conn: Connection, now_s: float, new: Iterable[NewDevice], *, actor: str
) -> list[tuple[str, str | None]]:
    """Insert devices; returns ``(id, token)`` with the token only where one was generated.

    Devices that register while rollouts run join the group whose filter they match.
    Raises :class:`ConflictError` (through the database's unique key) for an id that exists.
    """

    rows: list[dict[str, Any]] = []
    issued: list[tuple[str, str | None]] = []
    for device in new:
        device.check()
        token = device.token
        generated = None
        if token is None:
            token = generated = secrets.token_urlsafe(24)
        rows.append(
            {
                "id": device.id,
                "kind": device.kind,
                "hw": device.hw,
                "attributes": dict(device.attributes or {}),
                "tags": sorted(set(device.tags)),
                "installed_version": device.installed_version,
                "token_hash": hash_token(token),
                "registered_at": now_s,
                "last_seen": None,
            }
        )
        issued.append((device.id, generated))
    if not rows:
        return []
    assignment_lock(conn)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise DeviceError("the same device id appears twice in one registration")
    try:
        with conn.begin_nested():  # a savepoint: on a duplicate, find it, then refuse it all
            conn.execute(insert(devices), rows)
    except IntegrityError:
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            existing = conn.execute(select(devices.c.id).where(devices.c.id.in_(chunk))).first()
            if existing is not None:
                raise ConflictError(f"device {existing[0]!r} is already registered") from None
        raise
    if len(rows) <= 100:
        for row in rows:
            _audit.record(conn, now_s, actor=actor, event="device.register", device_id=row["id"])
    else:
        _audit.record(
            conn, now_s, actor=actor, event="device.register", detail=f"{len(rows)} devices"
        )
    join_active_rollouts(conn, now_s, [device_record(r) for r in rows], actor=actor)
    return issued


_GET_DEVICE = select(devices).where(devices.c.id == bindparam("device_id"))
UNKNOWN_HW = "unknown"  # what a device registered by a gateway is until it reports its hardware
_AUTH = select(devices.c.token_hash, devices.c.last_seen, devices.c.hw).where(
    devices.c.id == bindparam("device_id")
)


def device_auth(conn: Connection, device_id: str) -> tuple[str | None, float | None, str] | None:
    """``(token_hash, last_seen, hw)`` of a device, or None when it is unknown (the poll's
    lookup)."""
    row = conn.execute(_AUTH, {"device_id": device_id}).first()
    return None if row is None else (row.token_hash, row.last_seen, row.hw)


def get_device(conn: Connection, device_id: str) -> dict[str, Any]:
    """One device's row, or :class:`NotFoundError`."""
    row = conn.execute(_GET_DEVICE, {"device_id": device_id}).first()
    if row is None:
        raise NotFoundError(f"no device {device_id!r}; list them with 'skyfleet device list'")
    return dict(row._mapping)


def list_devices(
    conn: Connection,
    *,
    hw: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """``(total matching, one page of rows)``, ordered by id."""
    query = select(devices)
    if hw:
        query = query.where(devices.c.hw == hw)
    if kind:
        query = query.where(devices.c.kind == kind)
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(devices.c.id))] if tag else None
    if rows is not None:  # JSON containment differs per database: filter tags here
        matching = [r for r in rows if tag in (r["tags"] or [])]
        return len(matching), matching[offset : offset + limit]
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page = conn.execute(query.order_by(devices.c.id).limit(limit).offset(offset))
    return int(total), [dict(r._mapping) for r in page]


def update_reported(
    conn: Connection,
    device_id: str,
    *,
    attributes: Mapping[str, Any] | None = None,
    mode: str = "merge",
    installed_version: str | None = None,
    hw: str | None = None,
    last_seen: float | None = None,
    now_s: float | None = None,
) -> None:
    """Record what a device reported (DDI ``configData``): attributes, version, hardware.

    ``mode`` as in hawkBit: ``merge`` adds and overwrites attributes, ``replace`` keeps only the
    ones sent, ``remove`` drops the keys sent.

    A device may set its hardware generation only while it is ``unknown`` (a gateway registered
    it before it said what it is); it then joins the groups of running rollouts it matches. The
    generation an operator registered is never overwritten by the device.
    """
    values: dict[str, Any] = {}
    if last_seen is not None:
        values["last_seen"] = last_seen
    sent = {str(k): str(v) for k, v in (attributes or {}).items()}
    needs_row = hw is not None or sent or mode == "replace"
    row = get_device(conn, device_id) if needs_row else None
    rejoin = False
    if hw is not None and row is not None and row["hw"] == UNKNOWN_HW and hw != UNKNOWN_HW:
        if not is_valid_hardware(hw):
            raise DeviceError(
                f"hardware generation {hw!r} must be 1-32 letters, digits and ._+~- (e.g. hw3)"
            )
        values["hw"] = hw
        rejoin = True
    if mode not in ("merge", "replace", "remove"):
        raise DeviceError(f"configData mode {mode!r} is unknown: use merge, replace or remove")
    if row is not None and (sent or mode == "replace"):
        current = dict(row["attributes"] or {})
        if mode == "merge":
            values["attributes"] = {**current, **sent}
        elif mode == "replace":
            values["attributes"] = sent
        else:
            values["attributes"] = {k: v for k, v in current.items() if k not in sent}
    if installed_version is not None:
        if not is_valid_version(installed_version):
            raise DeviceError(
                f"reported version {installed_version!r} is not usable: "
                "use letters, digits and ._+~- (e.g. 2025.44.25.5)"
            )
        values["installed_version"] = installed_version
    if values:
        conn.execute(update(devices).where(devices.c.id == device_id).values(**values))
    if rejoin:
        assignment_lock(conn)
        record = device_record({**(row or {}), **values})
        when = now_s if now_s is not None else (last_seen or 0.0)
        join_active_rollouts(conn, when, [record], actor=device_id, only_missing=True)


# The rows are locked in id order (the sub-select's ORDER BY ... FOR UPDATE) before any is
# changed: two transactions that touch overlapping devices (the last-seen flush, a telemetry
# batch, another server process) then wait for each other instead of deadlocking.
_TOUCH_PG = text(
    "UPDATE devices SET last_seen = v.ts FROM ("
    " SELECT d.id AS did, u.ts FROM devices AS d JOIN unnest(CAST(:ids AS varchar[]),"
    "  CAST(:ts AS double precision[])) AS u(did, ts) ON d.id = u.did"
    " ORDER BY d.id FOR UPDATE OF d) AS v"
    " WHERE devices.id = v.did AND (devices.last_seen IS NULL OR devices.last_seen < v.ts)"
)
_TOUCH_LITE = (
    "UPDATE devices SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)"
)


def touch_devices(conn: Connection, last_seen: Mapping[str, float]) -> None:
    """Record when devices were last seen (UNIX s; a batch, written behind the polls).

    ``last_seen`` never moves back: a device keeps the later of the time it has and the one
    given. The rows are updated in id order (no deadlock between concurrent batches). On
    PostgreSQL one statement for the whole batch (thousands of polls a second would otherwise
    cost one UPDATE each).
    """
    if not last_seen:
        return
    ids = sorted(last_seen)
    if conn.dialect.name == "postgresql":
        conn.execute(_TOUCH_PG, {"ids": ids, "ts": [last_seen[i] for i in ids]})
        return
    conn.exec_driver_sql(_TOUCH_LITE, [(last_seen[i], i, last_seen[i]) for i in ids])
