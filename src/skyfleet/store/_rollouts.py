"""Rollouts in the database: create (assign every device to its group once), operate, judge.

The decisions come from :mod:`skyfleet.rollout`; this module loads what they need, applies what
they decide in the same transaction, and writes the audit log.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from skyfleet.errors import ConflictError, FilterError, NotFoundError
from skyfleet.rollout import (
    FINISHED,
    IN_PROGRESS,
    OFFERING,
    ActionState,
    DeviceRecord,
    GroupCounts,
    GroupProgress,
    GroupSpec,
    ReleaseRules,
    RolloutStatus,
    assign_group,
    check_operation,
    is_compatible,
    parse_filter,
    plan_step,
)
from skyfleet.store import _audit
from skyfleet.store._catalog import get_release, release_rules
from skyfleet.store._fleet import device_record
from skyfleet.store._schema import actions, devices, releases, rollout_groups, rollouts

__all__ = [
    "create_rollout",
    "evaluate",
    "get_rollout",
    "join_active_rollouts",
    "list_actions",
    "list_rollouts",
    "operate",
    "rollback",
    "sweep",
]

_BATCH = 5000
_ASSIGNING = (
    RolloutStatus.CREATED,
    RolloutStatus.RUNNING,
    RolloutStatus.WAITING,
    RolloutStatus.HALTED,
)


def _spec(row: Any) -> GroupSpec:
    return GroupSpec(
        filter=parse_filter(row.filter),
        percent=row.percent,
        success_pct=row.success_pct,
        auto_advance=row.auto_advance,
        error_pct=row.error_pct,
        error_count=row.error_count,
        min_finished=row.min_finished,
        timeout_s=row.timeout_s,
    )


def _rollout_row(conn: Connection, rollout_id: int, *, lock: bool = False) -> Any:
    query = select(rollouts).where(rollouts.c.id == rollout_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"no rollout {rollout_id}; list them with 'skyfleet rollout list'")
    return row


def _groups(conn: Connection, rollout_id: int) -> list[Any]:
    query = select(rollout_groups).where(rollout_groups.c.rollout_id == rollout_id)
    return list(conn.execute(query.order_by(rollout_groups.c.idx)))


def _insert_actions(
    conn: Connection,
    now_s: float,
    rollout_id: int,
    seed: str,
    specs: Sequence[GroupSpec],
    rules: ReleaseRules | None,
    version: str,
    records: Iterable[DeviceRecord],
) -> int:
    batch: list[dict[str, Any]] = []
    count = 0
    for device in records:
        if rules is not None and not is_compatible(rules, version, device):
            continue
        group = assign_group(seed, specs, device)
        if group is None:
            continue
        batch.append(
            {
                "rollout_id": rollout_id,
                "device_id": device.id,
                "group_idx": group,
                "state": ActionState.SCHEDULED.value,
                "from_version": device.installed_version,
                "created_at": now_s,
                "updated_at": now_s,
            }
        )
        if len(batch) >= _BATCH:
            conn.execute(insert(actions), batch)
            count += len(batch)
            batch.clear()
    if batch:
        conn.execute(insert(actions), batch)
        count += len(batch)
    return count


def _all_devices(conn: Connection) -> Iterable[DeviceRecord]:
    query = select(devices).order_by(devices.c.id).execution_options(yield_per=_BATCH)
    result = conn.execute(query)
    for row in result:
        yield device_record(row._mapping)


def create_rollout(
    conn: Connection,
    now_s: float,
    *,
    release: str,
    groups: Sequence[GroupSpec],
    name: str | None = None,
    actor: str,
    seed: str | None = None,
) -> dict[str, Any]:
    """Create a rollout of ``release`` over ``groups`` and assign every device to its group.

    Devices not compatible with the release, or matched by no group, get no action. The
    rollout starts in ``created``; nothing reaches a device before :func:`operate` ``start``.
    """
    if not groups:
        raise FilterError("a rollout needs at least one group, e.g. --group 'tag:eap'")
    rel = get_release(conn, release)
    seed = seed or secrets.token_hex(8)
    rollout_id = conn.execute(
        insert(rollouts).values(
            name=name or f"{rel['version']} rollout",
            release_id=rel["id"],
            status=RolloutStatus.CREATED.value,
            seed=seed,
            reason="",
            created_at=now_s,
            updated_at=now_s,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    _insert_groups(conn, rollout_id, groups)
    assigned = _insert_actions(
        conn,
        now_s,
        rollout_id,
        seed,
        groups,
        release_rules(rel),
        rel["version"],
        _all_devices(conn),
    )
    _audit.record(
        conn,
        now_s,
        actor=actor,
        event="rollout.create",
        rollout_id=rollout_id,
        to_state=RolloutStatus.CREATED.value,
        detail=f"{rel['version']}: {len(groups)} groups, {assigned} devices",
    )
    return get_rollout(conn, rollout_id)


def _insert_groups(conn: Connection, rollout_id: int, groups: Sequence[GroupSpec]) -> None:
    conn.execute(
        insert(rollout_groups),
        [
            {
                "rollout_id": rollout_id,
                "idx": i,
                "filter": g.filter.text,
                "percent": g.percent,
                "success_pct": g.success_pct,
                "auto_advance": g.auto_advance,
                "error_pct": g.error_pct,
                "error_count": g.error_count,
                "min_finished": g.min_finished,
                "timeout_s": g.timeout_s,
                "started_at": None,
                "failures_before": 0,
                "finished_before": 0,
            }
            for i, g in enumerate(groups)
        ],
    )


def join_active_rollouts(
    conn: Connection, now_s: float, records: Sequence[DeviceRecord], *, actor: str
) -> None:
    """Give devices their group in every rollout that has not ended and has none for them yet.

    Called when devices register, and when a device first reports its hardware (a gateway
    registers unknown devices before they say what they are).
    """
    active = conn.execute(
        select(rollouts).where(rollouts.c.status.in_([s.value for s in _ASSIGNING]))
    ).all()
    for rollout in active:
        if rollout.rollback_of is not None:
            continue  # a rollback targets the devices the original rollout reached, no others
        if len(records) <= 1000:
            taken = set(
                conn.execute(
                    select(actions.c.device_id).where(
                        actions.c.rollout_id == rollout.id,
                        actions.c.device_id.in_([r.id for r in records]),
                    )
                ).scalars()
            )
            records = [r for r in records if r.id not in taken]
        rel = get_release(conn, rollout.release_id)
        specs = [_spec(g) for g in _groups(conn, rollout.id)]
        _insert_actions(
            conn,
            now_s,
            rollout.id,
            rollout.seed,
            specs,
            release_rules(rel),
            rel["version"],
            records,
        )


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


def evaluate(conn: Connection, now_s: float, rollout_id: int, *, actor: str = "skyfleet") -> str:
    """Judge a running rollout's groups and apply what follows (start, wait, halt, complete).

    Returns the rollout's status afterwards. Safe to call at any time, from any server process:
    the rollout's row is locked while it is judged.
    """
    rollout = _rollout_row(conn, rollout_id, lock=True)
    group_rows = _groups(conn, rollout_id)
    specs = [_spec(g) for g in group_rows]
    for _ in range(len(specs) + 1):
        status = RolloutStatus(rollout.status)
        if status != RolloutStatus.RUNNING:
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


def operate(
    conn: Connection, now_s: float, rollout_id: int, operation: str, *, actor: str
) -> dict[str, Any]:
    """Start, halt, resume or cancel a rollout (:class:`ConflictError` when its status forbids)."""
    rollout = _rollout_row(conn, rollout_id, lock=True)
    status = RolloutStatus(rollout.status)
    check_operation(status, operation)
    if operation == "start":
        _set_status(conn, now_s, rollout, RolloutStatus.RUNNING, "started", actor)
    elif operation == "halt":
        _set_status(conn, now_s, rollout, RolloutStatus.HALTED, f"halted by {actor}", actor)
    elif operation == "resume":
        group_rows = _groups(conn, rollout_id)
        counts = _counts(conn, rollout_id, len(group_rows))
        for g, c in zip(group_rows, counts, strict=True):
            if g.started_at is not None:
                conn.execute(
                    update(rollout_groups)
                    .where(
                        and_(
                            rollout_groups.c.rollout_id == rollout_id, rollout_groups.c.idx == g.idx
                        )
                    )
                    .values(failures_before=c.failures, finished_before=c.finished)
                )
        if status == RolloutStatus.WAITING:
            started = [g.idx for g in group_rows if g.started_at is not None]
            nxt = (started[-1] + 1) if started else 0
            if nxt < len(group_rows):
                _start_group(conn, now_s, rollout_id, nxt, actor)
        _set_status(conn, now_s, rollout, RolloutStatus.RUNNING, f"resumed by {actor}", actor)
    elif operation == "cancel":
        _cancel_actions(conn, now_s, rollout_id, actor)
        _set_status(conn, now_s, rollout, RolloutStatus.CANCELLED, f"cancelled by {actor}", actor)
    else:
        raise ConflictError(f"unknown operation {operation!r}: use start, halt, resume or cancel")
    if operation in ("start", "resume"):
        evaluate(conn, now_s, rollout_id, actor=actor)
    return get_rollout(conn, rollout_id)


def _cancel_actions(conn: Connection, now_s: float, rollout_id: int, actor: str) -> None:
    moves = (
        ([ActionState.SCHEDULED.value], ActionState.CANCELLED),
        (sorted(s.value for s in IN_PROGRESS - {ActionState.CANCELLING}), ActionState.CANCELLING),
    )
    for from_states, to_state in moves:
        rows = conn.execute(
            update(actions)
            .where(and_(actions.c.rollout_id == rollout_id, actions.c.state.in_(from_states)))
            .values(state=to_state.value, updated_at=now_s)
            .returning(actions.c.id, actions.c.device_id)
        ).all()
        _audit.record_many(
            conn,
            [
                {
                    "ts": now_s,
                    "actor": actor,
                    "event": "action.state",
                    "detail": "rollout cancelled",
                    "rollout_id": rollout_id,
                    "action_id": r.id,
                    "device_id": r.device_id,
                    "from_state": None,
                    "to_state": to_state.value,
                }
                for r in rows
            ],
        )


def rollback(
    conn: Connection, now_s: float, rollout_id: int, *, to_version: str | None, actor: str
) -> dict[str, Any]:
    """Cancel a rollout and create a new one that brings its devices back to the previous release.

    Only devices the rollout reached (retrieved or later) are rolled back; the previous release
    is ``to_version`` or the version most of them ran before. The new rollout is started.
    """
    rollout = _rollout_row(conn, rollout_id, lock=True)
    check_operation(RolloutStatus(rollout.status), "rollback")
    reached = conn.execute(
        select(actions.c.device_id, actions.c.from_version).where(
            and_(
                actions.c.rollout_id == rollout_id,
                actions.c.state.notin_([ActionState.SCHEDULED.value, ActionState.CANCELLED.value]),
            )
        )
    ).all()
    if to_version is None:
        versions = Counter(r.from_version for r in reached if r.from_version)
        if not versions:
            raise ConflictError(
                f"rollout {rollout_id} reached no device with a known previous version; "
                "name the release to roll back to"
            )
        to_version = versions.most_common(1)[0][0]
    target = get_release(conn, to_version)
    if target["id"] == rollout.release_id:
        raise ConflictError(
            f"rollout {rollout_id} already ships {to_version}; nothing to roll back"
        )
    if rollout.status in (RolloutStatus.RUNNING, RolloutStatus.WAITING, RolloutStatus.HALTED):
        _cancel_actions(conn, now_s, rollout_id, actor)
        _set_status(conn, now_s, rollout, RolloutStatus.CANCELLED, f"rolled back by {actor}", actor)
    seed = secrets.token_hex(8)
    new_id = conn.execute(
        insert(rollouts).values(
            name=f"rollback of rollout {rollout_id} to {to_version}",
            release_id=target["id"],
            status=RolloutStatus.CREATED.value,
            seed=seed,
            reason="",
            rollback_of=rollout_id,
            created_at=now_s,
            updated_at=now_s,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    spec = GroupSpec(success_pct=100.0, error_pct=None, min_finished=1)
    _insert_groups(conn, new_id, [spec])
    ids = [r.device_id for r in reached]
    records: list[DeviceRecord] = []
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        records.extend(
            device_record(r._mapping)
            for r in conn.execute(select(devices).where(devices.c.id.in_(chunk)))
        )
    generations = frozenset(target["generations"])
    eligible = [d for d in records if d.hw in generations and d.installed_version != to_version]
    _insert_actions(conn, now_s, new_id, seed, [spec], None, to_version, eligible)
    _audit.record(
        conn,
        now_s,
        actor=actor,
        event="rollout.rollback",
        rollout_id=new_id,
        detail=f"rollback of rollout {rollout_id} to {to_version}: {len(eligible)} devices",
    )
    return operate(conn, now_s, new_id, "start", actor=actor)


def sweep(conn: Connection, now_s: float, *, actor: str = "skyfleet") -> list[int]:
    """Time out silent devices and judge every running rollout; returns the rollouts judged."""
    offering = conn.execute(
        select(rollouts.c.id, rollouts.c.status).where(
            rollouts.c.status.in_([s.value for s in OFFERING])
        )
    ).all()
    in_progress = sorted(s.value for s in IN_PROGRESS)
    for rollout_id, _status in offering:
        for g in _groups(conn, rollout_id):
            if g.started_at is None:
                continue
            rows = conn.execute(
                update(actions)
                .where(
                    and_(
                        actions.c.rollout_id == rollout_id,
                        actions.c.group_idx == g.idx,
                        actions.c.state.in_(in_progress),
                        actions.c.updated_at < now_s - g.timeout_s,
                    )
                )
                .values(state=ActionState.TIMED_OUT.value, updated_at=now_s)
                .returning(actions.c.id, actions.c.device_id)
            ).all()
            _audit.record_many(
                conn,
                [
                    {
                        "ts": now_s,
                        "actor": actor,
                        "event": "action.state",
                        "detail": f"silent for more than {g.timeout_s:g} s",
                        "rollout_id": rollout_id,
                        "action_id": r.id,
                        "device_id": r.device_id,
                        "from_state": None,
                        "to_state": ActionState.TIMED_OUT.value,
                    }
                    for r in rows
                ],
            )
    judged = []
    for rollout_id, status in offering:
        if status == RolloutStatus.RUNNING.value:
            evaluate(conn, now_s, rollout_id, actor=actor)
            judged.append(rollout_id)
    return judged


def get_rollout(conn: Connection, rollout_id: int) -> dict[str, Any]:
    """A rollout with, per group, its filter, thresholds, counts by state and rates."""
    rollout = _rollout_row(conn, rollout_id)
    group_rows = _groups(conn, rollout_id)
    counts = _counts(conn, rollout_id, len(group_rows))
    release = get_release(conn, rollout.release_id)
    groups = []
    for g, c in zip(group_rows, counts, strict=True):
        spec = _spec(g)
        groups.append(
            {
                "index": g.idx + 1,
                "group": spec.text,
                "started": g.started_at is not None,
                "started_at": g.started_at,
                "total": c.total,
                "counts": {s.value: c[s] for s in ActionState},
                "success_rate_pct": 100.0 * c.confirmed / c.total if c.total else 0.0,
                "error_rate_pct": 100.0 * c.failures / c.finished if c.finished else 0.0,
                "success_pct": g.success_pct,
                "auto_advance": g.auto_advance,
                "error_pct": g.error_pct,
                "error_count": g.error_count,
                "min_finished": g.min_finished,
                "timeout_s": g.timeout_s,
            }
        )
    finished_states = {s.value for s in FINISHED}
    return {
        "id": rollout.id,
        "name": rollout.name,
        "release": release["version"],
        "status": rollout.status,
        "reason": rollout.reason,
        "rollback_of": rollout.rollback_of,
        "created_at": rollout.created_at,
        "updated_at": rollout.updated_at,
        "total": sum(c.total for c in counts),
        "finished": sum(v for c in counts for k, v in c.by_state.items() if k in finished_states),
        "groups": groups,
    }


def list_rollouts(conn: Connection) -> list[dict[str, Any]]:
    """Every rollout (newest first) with its release version and status."""
    query = (
        select(rollouts, releases.c.version.label("release"))
        .join(releases, releases.c.id == rollouts.c.release_id)
        .order_by(rollouts.c.id.desc())
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def list_actions(
    conn: Connection,
    rollout_id: int,
    *,
    group: int | None = None,
    state: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """A rollout's device actions (``group`` counts from 1), ordered by id."""
    _rollout_row(conn, rollout_id)
    query = select(actions).where(actions.c.rollout_id == rollout_id)
    if group is not None:
        query = query.where(actions.c.group_idx == group - 1)
    if state is not None:
        query = query.where(actions.c.state == state)
    rows = conn.execute(query.order_by(actions.c.id).limit(limit).offset(offset))
    return [{**dict(r._mapping), "group": r.group_idx + 1} for r in rows]
