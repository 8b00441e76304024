"""The audit log: one row per action transition or operator operation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from skyfleet.store._schema import audit

__all__ = ["list_audit", "record", "record_many"]


def record(
    conn: Connection,
    now_s: float,
    *,
    actor: str,
    event: str,
    detail: str = "",
    rollout_id: int | None = None,
    action_id: int | None = None,
    device_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
) -> None:
    """Append one entry to the audit log (inside the caller's transaction)."""
    conn.execute(
        insert(audit).values(
            ts=now_s,
            actor=actor,
            event=event,
            detail=detail,
            rollout_id=rollout_id,
            action_id=action_id,
            device_id=device_id,
            from_state=from_state,
            to_state=to_state,
        )
    )


def record_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append many entries at once; each dict has the keys of :func:`record` plus ``ts``."""
    if rows:
        conn.execute(insert(audit), list(rows))


def list_audit(
    conn: Connection,
    *,
    rollout_id: int | None = None,
    device_id: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """The newest entries first, optionally for one rollout or one device."""
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if rollout_id is not None:
        query = query.where(audit.c.rollout_id == rollout_id)
    if device_id is not None:
        query = query.where(audit.c.device_id == device_id)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    return [dict(row._mapping) for row in conn.execute(query)]
