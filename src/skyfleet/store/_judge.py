"""The judge: time out silent devices, count each group's actions, and apply what the rollout's
rules decide (start the next group, wait for an operator, halt, complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select, text, update

from skyfleet.rollout import (
    IN_PROGRESS,
    ActionState,
    GroupCounts,
    GroupProgress,
    RolloutStatus,
    plan_step,
)
from skyfleet.store import _audit
from skyfleet.store._assign import _groups, _rollout_row, _spec
from skyfleet.store._schema import actions, rollout_groups, rollouts

__all__ = [
    "evaluate",
    "locked",
    "move_actions",
    "sweep",
    "timeout_silent",
]


def _counts(conn: Connection, rollout_id: int, n_groups: int) -> list[GroupCounts]:
    rows = conn.execute(
        select(actions.c.group_idx, actions.c.state, func.count())
        .where(actions.c.rollout_id == rollout_id)
        .group_by(actions.c.group_idx, actions.c.state)
    )
    by_group: list[dict[str, int]] = [{} for _ in range(n_groups)]
    for group_idx, state, count in rows:
        by_group[group_idx][state] = int(count)
    return [GroupCounts(c) for c in by_group]


def _set_status(
    conn: Connection, now_s: float, rollout: Any, status: RolloutStatus, reason: str, actor: str
) -> None:
    conn.execute(
        update(rollouts)
        .where(rollouts.c.id == rollout.id)
        .values(status=status.value, reason=reason, updated_at=now_s)
    )
    _audit.record(
        conn,
        now_s,
        actor=actor,
        event="rollout.status",
        rollout_id=rollout.id,
        from_state=rollout.status,
        to_state=status.value,
        detail=reason,
    )


def _start_group(conn: Connection, now_s: float, rollout_id: int, idx: int, actor: str) -> None:
    conn.execute(
        update(rollout_groups)
        .where(and_(rollout_groups.c.rollout_id == rollout_id, rollout_groups.c.idx == idx))
        .values(started_at=now_s)
    )
    _audit.record(
        conn,
        now_s,
        actor=actor,
        event="group.start",
        rollout_id=rollout_id,
        detail=f"group {idx + 1}",
    )


_JUDGE_LOCK = 0x5F1EE7A6  # advisory lock key (PostgreSQL): one judge at a time
#: Rollouts whose devices may still time out and whose groups are judged.
_LIVE = (RolloutStatus.RUNNING, RolloutStatus.WAITING, RolloutStatus.HALTED)
_IN_PROGRESS = sorted(s.value for s in IN_PROGRESS)


def evaluate(conn: Connection, now_s: float, rollout_id: int, *, actor: str = "skyfleet") -> str:
    """Judge a rollout's groups and apply what follows (start, wait, halt, complete).

    Only running and waiting rollouts change; returns the status afterwards. The rollout's row
    is locked while it is judged.
    """
    rollout = _rollout_row(conn, rollout_id, lock=True)
    group_rows = _groups(conn, rollout_id)
    specs = [_spec(g) for g in group_rows]
    for _ in range(len(specs) + 1):
        status = RolloutStatus(rollout.status)
        if status not in (RolloutStatus.RUNNING, RolloutStatus.WAITING):
            return status.value
        progress = [
            GroupProgress(g.started_at is not None, g.failures_before, g.finished_before)
            for g in group_rows
        ]
        step = plan_step(status, specs, progress, _counts(conn, rollout_id, len(specs)))
        if step.start_group is None and step.status == status:
            return status.value
        if step.start_group is not None:
            _start_group(conn, now_s, rollout_id, step.start_group, actor)
        if step.status != status:
            _set_status(conn, now_s, rollout, step.status, step.reason, actor)
        rollout = _rollout_row(conn, rollout_id)
        group_rows = _groups(conn, rollout_id)
    return str(rollout.status)


def locked(conn: Connection, query: Select[Any]) -> Select[Any]:
    """``query`` with ``FOR UPDATE`` on PostgreSQL (SQLite locks the whole database anyway)."""
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


def move_actions(
    conn: Connection,
    now_s: float,
    rollout_id: int,
    rows: Sequence[Any],
    from_states: Sequence[str],
    to_state: ActionState,
    detail: str,
    actor: str,
) -> None:
    """Move many actions (rows with ``id``, ``device_id``, ``state``) at once, still only from
    ``from_states``, with one audit entry each."""
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        conn.execute(
            update(actions)
            .where(actions.c.id.in_([r.id for r in chunk]), actions.c.state.in_(from_states))
            .values(state=to_state.value, updated_at=now_s)
        )
    _audit.record_many(
        conn,
        [
            {
                "ts": now_s,
                "actor": actor,
                "event": "action.state",
                "detail": detail,
                "rollout_id": rollout_id,
                "action_id": r.id,
                "device_id": r.device_id,
                "from_state": r.state,
                "to_state": to_state.value,
            }
            for r in rows
        ],
    )


def timeout_silent(
    conn: Connection, now_s: float, rollout_id: int, *, actor: str = "skyfleet"
) -> int:
    """Move the rollout's devices that stayed silent in progress past their group's timeout to
    ``timed_out`` (the caller holds the rollout's lock); returns how many."""
    moved = 0
    for g in _groups(conn, rollout_id):
        if g.started_at is None:
            continue
        silent = conn.execute(
            locked(
                conn,
                select(actions.c.id, actions.c.device_id, actions.c.state).where(
                    actions.c.rollout_id == rollout_id,
                    actions.c.group_idx == g.idx,
                    actions.c.state.in_(_IN_PROGRESS),
                    actions.c.updated_at < now_s - g.timeout_s,
                ),
            )
        ).all()
        move_actions(
            conn,
            now_s,
            rollout_id,
            silent,
            _IN_PROGRESS,
            ActionState.TIMED_OUT,
            f"silent for more than {g.timeout_s:g} s",
            actor,
        )
        moved += len(silent)
    return moved


def sweep(conn: Connection, now_s: float, *, actor: str = "skyfleet") -> list[int]:
    """Time out silent devices and judge every live rollout; returns the rollouts judged.

    One judge at a time: with several server processes on PostgreSQL, a sweep that finds
    another one running returns at once. Each rollout's row is locked before its actions are
    touched, the same order as the operator's operations, so the two never deadlock.
    """
    if conn.dialect.name == "postgresql":
        got = conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _JUDGE_LOCK})
        if not got.scalar():
            return []
    live = conn.execute(
        select(rollouts.c.id).where(rollouts.c.status.in_([s.value for s in _LIVE]))
    ).scalars()
    judged = []
    for rollout_id in list(live):
        _rollout_row(conn, rollout_id, lock=True)
        timeout_silent(conn, now_s, rollout_id, actor=actor)
        evaluate(conn, now_s, rollout_id, actor=actor)
        judged.append(rollout_id)
    return judged
