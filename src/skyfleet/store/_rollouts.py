"""Rollouts in the database: create, operate (start, halt, resume, cancel), roll back, and read.

The decisions come from :mod:`skyfleet.rollout`; these functions load what they need, apply what
it decides in the caller's transaction, and write the audit log.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from skyfleet.errors import ConflictError, FilterError
from skyfleet.rollout import (
    CONFIRMED_MILESTONES_PCT,
    FINISHED,
    IN_PROGRESS,
    ActionState,
    DeviceRecord,
    GroupSpec,
    RolloutStatus,
    check_operation,
)
from skyfleet.store import _audit
from skyfleet.store._assign import (
    _BATCH,
    _all_devices,
    _groups,
    _insert_actions,
    _insert_groups,
    _rollout_row,
    _spec,
    assignment_lock,
    device_record,
)
from skyfleet.store._catalog import get_release, release_rules
from skyfleet.store._judge import _counts, _set_status, _start_group, evaluate, locked, move_actions
from skyfleet.store._schema import actions, devices, releases, rollout_groups, rollouts

__all__ = [
    "create_rollout",
    "get_rollout",
    "list_actions",
    "list_rollouts",
    "operate",
    "rollback",
]


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
    assignment_lock(conn)
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
            if g.started_at is not None and status == RolloutStatus.HALTED:  # accept failures
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
        raise ConflictError(
            f"{operation!r} is not an operation here: use start, halt, resume or cancel"
        )
    if operation in ("start", "resume"):
        evaluate(conn, now_s, rollout_id, actor=actor)
    return get_rollout(conn, rollout_id)


def _cancel_actions(conn: Connection, now_s: float, rollout_id: int, actor: str) -> None:
    """Scheduled actions are cancelled; devices with the update in hand are asked to stop."""
    in_hand = sorted(s.value for s in IN_PROGRESS - {ActionState.CANCELLING})
    for from_states, to_state in (
        ([ActionState.SCHEDULED.value], ActionState.CANCELLED),
        (in_hand, ActionState.CANCELLING),
    ):
        query = select(actions.c.id, actions.c.device_id, actions.c.state).where(
            actions.c.rollout_id == rollout_id, actions.c.state.in_(from_states)
        )
        rows = conn.execute(locked(conn, query)).all()
        move_actions(
            conn, now_s, rollout_id, rows, from_states, to_state, "rollout cancelled", actor
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
    earlier = conn.execute(select(rollouts.c.id).where(rollouts.c.rollback_of == rollout_id))
    if (done := earlier.scalar()) is not None:
        raise ConflictError(f"rollout {rollout_id} was already rolled back by rollout {done}")
    if rollout.status in (RolloutStatus.RUNNING, RolloutStatus.WAITING, RolloutStatus.HALTED):
        _cancel_actions(conn, now_s, rollout_id, actor)  # first: no device slips in between
        _set_status(conn, now_s, rollout, RolloutStatus.CANCELLED, f"rolled back by {actor}", actor)
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


#: How many of the devices waiting for a link a rollout's status names, per group.
WAITING_NAMED = 20


def _time_to_confirmed(
    conn: Connection, rollout_id: int, group_idx: int, total: int, started_at: float | None
) -> dict[str, float | None]:
    """Seconds from the group's start until each milestone share of its devices had confirmed
    (confirmed is final, so an action's last update is its confirmation); None until then."""
    times: dict[str, float | None] = {}
    for pct in CONFIRMED_MILESTONES_PCT:
        key = f"time_to_{pct}_pct_s"
        times[key] = None
        needed = -(-total * pct // 100)  # ceil
        if started_at is None or needed == 0:
            continue
        at = conn.execute(
            select(actions.c.updated_at)
            .where(
                actions.c.rollout_id == rollout_id,
                actions.c.group_idx == group_idx,
                actions.c.state == ActionState.CONFIRMED.value,
            )
            .order_by(actions.c.updated_at)
            .limit(1)
            .offset(needed - 1)
        ).scalar()
        if at is not None:
            times[key] = round(max(0.0, float(at) - started_at), 3)
    return times


def _waiting_for_link(
    conn: Connection, rollout_id: int, group_idx: int, since_s: float
) -> tuple[int, list[str]]:
    """Devices with unfinished actions in the group that the server has heard from neither by a
    poll nor by feedback on the action since ``since_s``: out of reach, not failing. Those in
    progress still count as failed once the group's timeout passes; those not yet started wait
    as long as it takes."""
    unfinished = [ActionState.SCHEDULED.value, *(s.value for s in IN_PROGRESS)]
    where = and_(
        actions.c.rollout_id == rollout_id,
        actions.c.group_idx == group_idx,
        actions.c.state.in_(unfinished),
        (devices.c.last_seen.is_(None)) | (devices.c.last_seen < since_s),
        actions.c.updated_at < since_s,
    )
    joined = actions.join(devices, devices.c.id == actions.c.device_id)
    count = conn.execute(select(func.count()).select_from(joined).where(where)).scalar_one()
    if not count:
        return 0, []
    named = conn.execute(
        select(actions.c.device_id)
        .select_from(joined)
        .where(where)
        .order_by(actions.c.device_id)
        .limit(WAITING_NAMED)
    ).scalars()
    return int(count), list(named)


def get_rollout(
    conn: Connection,
    rollout_id: int,
    *,
    now_s: float | None = None,
    out_of_contact_s: float | None = None,
) -> dict[str, Any]:
    """A rollout with, per group, its filter, thresholds, counts by state and rates, and how
    long its devices took to confirm (``time_to_50_pct_s``, ``time_to_95_pct_s``).

    Given ``now_s`` and ``out_of_contact_s``, each started group of a running or halted rollout
    also counts the devices with unfinished actions that have not been heard from for
    ``out_of_contact_s`` seconds (``waiting_for_link``, and the first few ids in
    ``waiting_for_link_ids``): a vehicle in a dead zone or a site whose uplink is down. Those in
    progress count as failures only when the group's in-progress timeout passes.
    """
    rollout = _rollout_row(conn, rollout_id)
    group_rows = _groups(conn, rollout_id)
    counts = _counts(conn, rollout_id, len(group_rows))
    release = get_release(conn, rollout.release_id)
    groups = []
    for g, c in zip(group_rows, counts, strict=True):
        spec = _spec(g)
        reach: dict[str, Any] = {}
        if now_s is not None and out_of_contact_s is not None:
            live = rollout.status in (RolloutStatus.RUNNING.value, RolloutStatus.HALTED.value)
            n, ids = (
                _waiting_for_link(conn, rollout_id, g.idx, now_s - out_of_contact_s)
                if live and g.started_at is not None
                else (0, [])
            )
            reach = {"waiting_for_link": n, "waiting_for_link_ids": ids}
        groups.append(
            {
                **_time_to_confirmed(conn, rollout_id, g.idx, c.total, g.started_at),
                **reach,
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
