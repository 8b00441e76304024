"""Reading a rollout's actions in the store tests."""

from __future__ import annotations

from sqlalchemy import Connection

from skyfleet.store import list_actions


def groups_of(conn: Connection, rollout_id: int) -> dict[str, int]:
    """Device id -> group number (from 1)."""
    return {a["device_id"]: a["group"] for a in list_actions(conn, rollout_id, limit=100_000)}


def states_of(conn: Connection, rollout_id: int) -> dict[str, str]:
    """Device id -> action state."""
    return {a["device_id"]: a["state"] for a in list_actions(conn, rollout_id, limit=100_000)}


def action_id(conn: Connection, rollout_id: int, device_id: str) -> int:
    """The id of the device's one action in the rollout."""
    rows = [a for a in list_actions(conn, rollout_id) if a["device_id"] == device_id]
    assert len(rows) == 1, rows
    return int(rows[0]["id"])
