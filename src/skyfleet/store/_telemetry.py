"""Telemetry: each device's latest sample, a bounded history, and the fleet's status from them.

Samples come in batches (a few thousand in one transaction): the history takes every sample of
a registered device once (a sample delivered twice, same device and device time, is stored
once), the latest state only a sample newer than the one it holds, so messages that arrive out
of order never move a device back in time. Samples of unregistered devices are counted and
dropped. ``devices.last_seen`` becomes the device time of the device's newest sample, no later
than the batch's time and never earlier than it was: samples that arrive hours late (queued on
the device or at an edge relay) say when the device was last heard from, not that it is online.

Rows are written in device id order (and device time), so that concurrent batches (another
server process, the last-seen flush) wait for each other on PostgreSQL rather than deadlock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from skyfleet.errors import NotFoundError
from skyfleet.rollout import RolloutStatus
from skyfleet.store._fleet import touch_devices
from skyfleet.store._schema import (
    actions,
    device_state,
    devices,
    rollouts,
    telemetry,
    telemetry_counters,
)
from skyfleet.telemetry import FIELDS, Telemetry

__all__ = [
    "TELEMETRY_COUNTERS",
    "Ingested",
    "fleet_status",
    "ingest_telemetry",
    "latest_telemetry",
    "prune_telemetry",
    "telemetry_counts",
    "telemetry_history",
]

#: What ingest counts (:func:`telemetry_counts`): valid samples received, samples newly stored,
#: samples already stored (delivered twice), samples older than the device's latest (history
#: only), samples of unregistered devices (dropped), and messages refused as invalid.
TELEMETRY_COUNTERS = (
    "samples",
    "stored",
    "duplicate",
    "stale",
    "unknown_device",
    "invalid_messages",
)

_FIELDS = ("ts", *FIELDS)  # a column each, in device_state and telemetry
_VALUES = attrgetter(*_FIELDS)  # a sample's values in that order, as a tuple
#: Rollout statuses whose actions count in the fleet status (not finished or cancelled).
_ACTIVE = sorted(
    s.value for s in (RolloutStatus.RUNNING, RolloutStatus.WAITING, RolloutStatus.HALTED)
)


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one batch did: ``per_device`` counts the samples of each registered device."""

    stored: int = 0
    duplicate: int = 0
    stale: int = 0
    unknown_device: int = 0
    per_device: dict[str, int] = field(default_factory=dict)


_COLUMNS = ("device_id", "received_at", *_FIELDS)
_TS = _COLUMNS.index("ts")
_NAMES = ", ".join(_COLUMNS)
_NEWER = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
# A batch is a few statements whatever its size. SQLite: executemany of plain tuples (no
# per-row work in SQLAlchemy), ids passed as one JSON array. PostgreSQL: one statement over
# arrays (unnest), with exact row counts and a text that does not grow with the batch.
_LITE_KNOWN = (
    "SELECT devices.id, device_state.ts FROM devices"
    " LEFT OUTER JOIN device_state ON device_state.device_id = devices.id"
    " WHERE devices.id IN (SELECT value FROM json_each(?))"
)
_LITE_VALUES = ", ".join("?" * len(_COLUMNS))
_LITE_HISTORY = (
    f"INSERT INTO telemetry ({_NAMES}) VALUES ({_LITE_VALUES})"
    " ON CONFLICT (device_id, ts) DO NOTHING"
)
_LITE_UPSERT = (
    f"INSERT INTO device_state ({_NAMES}) VALUES ({_LITE_VALUES})"
    f" ON CONFLICT (device_id) DO UPDATE SET {_NEWER} WHERE device_state.ts < excluded.ts"
)
_PG_KNOWN = text(
    "SELECT devices.id, device_state.ts FROM devices"
    " LEFT OUTER JOIN device_state ON device_state.device_id = devices.id"
    " WHERE devices.id = ANY(CAST(:ids AS varchar[]))"
)
_PG_TYPES = dict.fromkeys(_COLUMNS, "double precision[]") | {
    "device_id": "varchar[]",
    "link": "varchar[]",
    "version": "varchar[]",
    "state": "varchar[]",
}
_PG_ROWS = ", ".join(f"CAST(:{c} AS {_PG_TYPES[c]})" for c in _COLUMNS)
_PG_HISTORY = text(
    f"INSERT INTO telemetry ({_NAMES}) SELECT * FROM unnest({_PG_ROWS})"
    " ON CONFLICT (device_id, ts) DO NOTHING"
)
_PG_UPSERT = text(
    f"INSERT INTO device_state ({_NAMES}) SELECT * FROM unnest({_PG_ROWS})"
    f" ON CONFLICT (device_id) DO UPDATE SET {_NEWER} WHERE device_state.ts < excluded.ts"
)
_PG_PRUNE = text(
    "DELETE FROM telemetry USING ("
    " SELECT d, (SELECT ts FROM telemetry WHERE device_id = d ORDER BY ts DESC"
    "  LIMIT 1 OFFSET :skip) AS cut"
    " FROM unnest(CAST(:ids AS varchar[])) AS d) AS bound"
    " WHERE telemetry.device_id = bound.d AND telemetry.ts < bound.cut"
)

_Row = tuple[Any, ...]


def _known(conn: Connection, ids: list[str]) -> dict[str, float | None]:
    """The registered devices among ``ids``, with the ts of the latest sample each holds."""
    latest: dict[str, float | None] = {}
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        if postgres:
            rows = conn.execute(_PG_KNOWN, {"ids": chunk})
        else:
            rows = conn.exec_driver_sql(_LITE_KNOWN, (json.dumps(chunk),))
        latest.update((row[0], row[1]) for row in rows)
    return latest


def _write(conn: Connection, statements: tuple[Any, str], rows: list[_Row]) -> int:
    """Insert ``rows`` (tuples in :data:`_COLUMNS` order) with the PostgreSQL or the SQLite
    statement; how many rows changed."""
    if conn.dialect.name == "postgresql":
        columns = dict(zip(_COLUMNS, (list(c) for c in zip(*rows, strict=True)), strict=True))
        return max(0, conn.execute(statements[0], columns).rowcount)
    return max(0, conn.exec_driver_sql(statements[1], rows).rowcount)


def ingest_telemetry(
    conn: Connection,
    now_s: float,
    samples: Sequence[tuple[str, Telemetry]],
    *,
    invalid_messages: int = 0,
) -> Ingested:
    """Store a batch of ``(device id, sample)`` received at ``now_s`` (UNIX s), and count it.

    ``invalid_messages``: messages the caller refused before they became samples (counted
    only). Returns what happened to the samples; the counters of :func:`telemetry_counts` move
    in the same transaction. A device's ``last_seen`` moves on to its newest sample's ``ts``
    (at most ``now_s``), never back.
    """
    ids = sorted({device_id for device_id, _ in samples})
    if "\x00" in "".join(ids):  # PostgreSQL text cannot hold NUL: such an id names no device
        ids = [i for i in ids if "\x00" not in i]
    latest = _known(conn, ids)
    rows: list[_Row] = []
    newest: dict[str, _Row] = {}
    per_device: dict[str, int] = {}
    heard: dict[str, float] = {}  # each device's newest device time in the batch
    unknown = stale = 0
    for device_id, s in samples:
        if device_id not in latest:
            unknown += 1
            continue
        row: _Row = (device_id, now_s, *_VALUES(s))
        rows.append(row)
        per_device[device_id] = per_device.get(device_id, 0) + 1
        if s.ts > heard.get(device_id, -math.inf):
            heard[device_id] = s.ts
        kept = latest[device_id]
        if kept is not None and s.ts <= kept:
            stale += 1
        else:
            held = newest.get(device_id)
            if held is None or s.ts > held[_TS]:
                newest[device_id] = row
    rows.sort(key=lambda r: (r[0], r[_TS]))  # lock order: see the module's docstring
    stored = _write(conn, (_PG_HISTORY, _LITE_HISTORY), rows) if rows else 0
    if newest:
        _write(conn, (_PG_UPSERT, _LITE_UPSERT), [newest[d] for d in sorted(newest)])
    # last seen: when the device measured its newest sample (a device clock ahead of ours
    # counts as now); touch_devices never moves it back and goes in id order
    touch_devices(conn, {d: min(ts, now_s) for d, ts in heard.items()})
    result = Ingested(stored, len(rows) - stored, stale, unknown, per_device)
    _count(
        conn,
        {
            "samples": len(samples),
            "stored": result.stored,
            "duplicate": result.duplicate,
            "stale": stale,
            "unknown_device": unknown,
            "invalid_messages": invalid_messages,
        },
    )
    return result


def _count(conn: Connection, deltas: Mapping[str, int]) -> None:
    rows = [{"name": k, "value": v} for k, v in deltas.items() if v]
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(telemetry_counters)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": telemetry_counters.c.value + insert.excluded.value},
        ),
        rows,
    )


def telemetry_counts(conn: Connection) -> dict[str, int]:
    """What ingest has counted since the database was made, by name (:data:`TELEMETRY_COUNTERS`)."""
    counts = dict.fromkeys(TELEMETRY_COUNTERS, 0)
    for name, value in conn.execute(select(telemetry_counters.c.name, telemetry_counters.c.value)):
        counts[name] = int(value)
    return counts


def prune_telemetry(conn: Connection, device_ids: Iterable[str], keep: int) -> int:
    """Delete all but the newest ``keep`` samples (by device time) of each device; returns how
    many rows went."""
    ids = list(device_ids)
    if not ids:
        return 0
    skip = max(keep, 1) - 1
    if conn.dialect.name == "postgresql":
        return max(0, conn.execute(_PG_PRUNE, {"ids": ids, "skip": skip}).rowcount)
    newer = telemetry.alias("newer")
    nth_newest = (
        select(newer.c.ts)
        .where(newer.c.device_id == bindparam("device"))
        .order_by(newer.c.ts.desc())
        .limit(1)
        .offset(skip)
        .scalar_subquery()
    )
    doomed = delete(telemetry).where(
        telemetry.c.device_id == bindparam("device"), telemetry.c.ts < nth_newest
    )
    return max(0, conn.execute(doomed, [{"device": d} for d in ids]).rowcount)


def _sample(row: Any) -> dict[str, Any]:
    return {"received_at": row.received_at, **{k: getattr(row, k) for k in _FIELDS}}


def latest_telemetry(conn: Connection, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The latest sample of each of ``device_ids`` that reported one (``received_at`` and the
    sample's fields), keyed by device id."""
    found: dict[str, dict[str, Any]] = {}
    ids = [i for i in device_ids if "\x00" not in i]
    for start in range(0, len(ids), 1000):
        query = select(device_state).where(device_state.c.device_id.in_(ids[start : start + 1000]))
        found.update((row.device_id, _sample(row)) for row in conn.execute(query))
    return found


def telemetry_history(
    conn: Connection, device_id: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    """A device's stored samples, newest (by device time) first; :class:`NotFoundError` for an
    unknown device."""
    if (
        "\x00" in device_id
        or conn.execute(select(devices.c.id).where(devices.c.id == device_id)).first() is None
    ):
        raise NotFoundError(f"no device {device_id!r}; list them with 'skyfleet device list'")
    query = (
        select(telemetry)
        .where(telemetry.c.device_id == device_id)
        .order_by(telemetry.c.ts.desc())
        .limit(limit)
    )
    return [_sample(row) for row in conn.execute(query)]


def _counts(conn: Connection, query: Any) -> dict[str, int]:
    return {str(key): int(n) for key, n in conn.execute(query)}


def fleet_status(
    conn: Connection, now_s: float, *, silent_after_s: float, limit: int = 100
) -> dict[str, Any]:
    """The fleet at ``now_s`` (UNIX s): devices by connectivity, kind, link, installed version
    and rollout action, and the devices silent longer than ``silent_after_s`` (oldest first, at
    most ``limit`` of them).

    A device is ``online`` if it was seen (a poll, a report, telemetry) within
    ``silent_after_s``, ``silent`` if it was seen before that, ``never_seen`` otherwise. Links
    and versions are each device's latest report (``unreported``: no telemetry yet); the
    version falls back to the one registered or confirmed by a rollout. ``by_action_state``
    counts the actions of rollouts that are running, waiting or halted.
    """
    cutoff = now_s - silent_after_s
    seen = devices.c.last_seen
    connectivity = case(
        (seen.is_(None), "never_seen"), (seen < cutoff, "silent"), else_="online"
    ).label("state")
    by_state = dict.fromkeys(("online", "silent", "never_seen"), 0)
    by_state.update(_counts(conn, select(connectivity, func.count()).group_by(connectivity)))
    total = sum(by_state.values())
    by_kind = _counts(conn, select(devices.c.kind, func.count()).group_by(devices.c.kind))
    by_link: dict[str, int] = {}
    rtt_by_link: dict[str, float | None] = {}
    link = func.coalesce(device_state.c.link, "unreported")
    for name, n, rtt in conn.execute(
        select(link, func.count(), func.avg(device_state.c.rtt_ms)).group_by(link)
    ):
        by_link[str(name)] = int(n)
        rtt_by_link[str(name)] = None if rtt is None else round(float(rtt), 3)
    reported = sum(by_link.values())
    if total > reported:
        by_link["unreported"] = by_link.get("unreported", 0) + total - reported
        rtt_by_link.setdefault("unreported", None)
    version = func.coalesce(device_state.c.version, devices.c.installed_version, "unknown")
    by_version = _counts(
        conn,
        select(version, func.count())
        .select_from(devices.outerjoin(device_state))
        .group_by(version),
    )
    by_action = _counts(
        conn,
        select(actions.c.state, func.count())
        .select_from(actions.join(rollouts))
        .where(rollouts.c.status.in_(_ACTIVE))
        .group_by(actions.c.state),
    )
    silent_rows = conn.execute(
        select(
            devices.c.id,
            devices.c.kind,
            seen,
            device_state.c.link,
            device_state.c.soc_pct,
            func.coalesce(device_state.c.version, devices.c.installed_version),
        )
        .select_from(devices.outerjoin(device_state))
        .where(seen < cutoff)
        .order_by(seen, devices.c.id)
        .limit(limit)
    )
    return {
        "now": now_s,
        "silent_after_s": silent_after_s,
        "devices": total,
        "by_state": by_state,
        "by_kind": dict(sorted(by_kind.items())),
        "by_link": dict(sorted(by_link.items())),
        "rtt_ms_mean_by_link": dict(sorted(rtt_by_link.items())),
        "by_version": dict(sorted(by_version.items())),
        "by_action_state": dict(sorted(by_action.items())),
        "silent": [
            {
                "id": r[0],
                "kind": r[1],
                "last_seen": r[2],
                "silent_s": round(now_s - r[2], 3),
                "link": r[3],
                "soc_pct": r[4],
                "version": r[5],
            }
            for r in silent_rows
        ],
        "telemetry": telemetry_counts(conn),
    }
