"""Who is in which group: a rollout's groups, and each device's action, assigned once.

A device's group is decided when the rollout is created, or when the device registers (or first
reports its hardware) while the rollout has not ended. Assignment runs under one lock per database
so that a registration and a rollout creation never miss each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, text

from skyfleet.errors import NotFoundError
from skyfleet.rollout import (
    ActionState,
    DeviceRecord,
    GroupSpec,
    ReleaseRules,
    RolloutStatus,
    assign_group,
    is_compatible,
    parse_filter,
)
from skyfleet.store._catalog import get_release, release_rules
from skyfleet.store._schema import actions, devices, rollout_groups, rollouts

__all__ = [
    "assignment_lock",
    "device_record",
    "join_active_rollouts",
]

_BATCH = 5000
_ASSIGNMENT_LOCK = 0x5F1EE7A5  # advisory lock key (PostgreSQL) for group assignment
_ASSIGNING = (
    RolloutStatus.CREATED,
    RolloutStatus.RUNNING,
    RolloutStatus.WAITING,
    RolloutStatus.HALTED,
)


def device_record(row: Mapping[Any, Any]) -> DeviceRecord:
    """The filterable view of a ``devices`` row."""
    return DeviceRecord(
        id=row["id"],
        kind=row["kind"],
        hw=row["hw"],
        tags=frozenset(row["tags"] or ()),
        attributes={str(k): str(v) for k, v in (row["attributes"] or {}).items()},
        installed_version=row["installed_version"],
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


def assignment_lock(conn: Connection) -> None:
    """Serialise group assignment: rollout creation and device registration never interleave.

    SQLite transactions already run one writer at a time; on PostgreSQL this takes a
    transaction-scoped advisory lock, released at commit or rollback.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ASSIGNMENT_LOCK})


def join_active_rollouts(
    conn: Connection,
    now_s: float,
    records: Sequence[DeviceRecord],
    *,
    actor: str,
    only_missing: bool = False,
) -> None:
    """Give devices their group in every rollout that has not ended.

    Called (under :func:`assignment_lock`) when devices register, and with ``only_missing``
    when a device first reports its hardware: a gateway registers unknown devices before they
    say what they are, and a rollout that already has an action for the device keeps it.
    """
    active = conn.execute(
        select(rollouts).where(rollouts.c.status.in_([s.value for s in _ASSIGNING]))
    ).all()
    for rollout in active:
        if rollout.rollback_of is not None:
            continue  # a rollback targets the devices the original rollout reached, no others
        candidates = list(records)
        if only_missing:
            taken = set(
                conn.execute(
                    select(actions.c.device_id).where(
                        actions.c.rollout_id == rollout.id,
                        actions.c.device_id.in_([r.id for r in candidates]),
                    )
                ).scalars()
            )
            candidates = [r for r in candidates if r.id not in taken]
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
            candidates,
        )
