"""What a device may see and do: its offered action, the deployment, feedback, its artifacts.

The server's hawkBit DDI routes are thin wrappers around these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, or_, select, update

from skyfleet.errors import ConflictError, NotFoundError
from skyfleet.rollout import OFFERING, OPEN, TERMINAL, ActionState, advance, feedback_target
from skyfleet.store import _audit
from skyfleet.store._catalog import release_artifacts_for
from skyfleet.store._fleet import update_reported
from skyfleet.store._schema import (
    actions,
    artifacts,
    devices,
    release_artifacts,
    releases,
    rollout_groups,
    rollouts,
)

__all__ = [
    "Offer",
    "PollView",
    "apply_feedback",
    "deployment",
    "device_artifact",
    "installed_action",
    "offered_action",
    "poll_statement",
    "poll_views",
    "poll_views_from_rows",
]


@dataclass(frozen=True, slots=True)
class Offer:
    """The action a polling device should work on; ``cancel`` when it is being cancelled."""

    action_id: int
    state: ActionState
    cancel: bool


_OPEN_STATES = sorted(s.value for s in OPEN)
#: A device may fetch the bytes of an action it has in hand, finished, or went silent on.
_MAY_DOWNLOAD = sorted(
    s.value
    for s in (OPEN | {ActionState.CONFIRMED, ActionState.TIMED_OUT})
    - {ActionState.SCHEDULED, ActionState.CANCELLING}
)
_OFFERING = sorted(s.value for s in OFFERING)


# The device API's hot path: statements built once (SQLAlchemy caches their compiled form).
#: Open actions a device may see, oldest first (a cancellation first); to be narrowed to a device.
_VISIBLE = (
    select(actions.c.id, actions.c.state)
    .join(rollouts, rollouts.c.id == actions.c.rollout_id)
    .join(
        rollout_groups,
        and_(
            rollout_groups.c.rollout_id == actions.c.rollout_id,
            rollout_groups.c.idx == actions.c.group_idx,
        ),
    )
    .where(
        actions.c.state.in_(_OPEN_STATES),
        or_(
            actions.c.state != ActionState.SCHEDULED.value,
            and_(rollouts.c.status.in_(_OFFERING), rollout_groups.c.started_at.is_not(None)),
        ),
    )
    .order_by((actions.c.state == ActionState.CANCELLING.value).desc(), actions.c.id)
    .limit(1)
)
_OFFERED = _VISIBLE.where(actions.c.device_id == bindparam("device_id"))
_INSTALLED = (
    select(actions.c.id)
    .where(
        actions.c.device_id == bindparam("device_id"),
        actions.c.state == ActionState.CONFIRMED.value,
    )
    .order_by(actions.c.updated_at.desc(), actions.c.id.desc())
    .limit(1)
)


def offered_action(conn: Connection, device_id: str) -> Offer | None:
    """The device's oldest open action that it may see, or None.

    A scheduled action is offered only once its group has started and its rollout is running,
    waiting or complete; an action already in the device's hands is always shown.
    """
    row = conn.execute(_OFFERED, {"device_id": device_id}).first()
    if row is None:
        return None
    state = ActionState(row.state)
    return Offer(int(row.id), state, state == ActionState.CANCELLING)


def _action(conn: Connection, device_id: str, action_id: int, *, lock: bool = False) -> Any:
    query = (
        select(actions, releases.c.version, releases.c.id.label("release_id"))
        .join(rollouts, rollouts.c.id == actions.c.rollout_id)
        .join(releases, releases.c.id == rollouts.c.release_id)
        .where(actions.c.id == action_id, actions.c.device_id == device_id)
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=actions)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"device {device_id!r} has no action {action_id}")
    return row


def _move(
    conn: Connection, now_s: float, action: Any, to: ActionState, detail: str, actor: str
) -> None:
    conn.execute(
        update(actions).where(actions.c.id == action.id).values(state=to.value, updated_at=now_s)
    )
    _audit.record(
        conn,
        now_s,
        actor=actor,
        event="action.state",
        rollout_id=action.rollout_id,
        action_id=action.id,
        device_id=action.device_id,
        from_state=action.state,
        to_state=to.value,
        detail=detail,
    )


def deployment(
    conn: Connection, now_s: float, device_id: str, action_id: int, *, installed: bool = False
) -> dict[str, Any]:
    """The release and artifacts of an offered action; the first fetch marks it retrieved.

    A cancelled, failed or timed-out action has nothing to deploy; a confirmed one only through
    ``installed`` (DDI ``installedBase``).
    """
    offer = offered_action(conn, device_id)
    action = _action(conn, device_id, action_id, lock=True)
    state = ActionState(action.state)
    if (state == ActionState.CONFIRMED) != installed or (state in TERMINAL and not installed):
        what = "confirmed" if state == ActionState.CONFIRMED else state.value
        raise NotFoundError(f"action {action_id} of device {device_id!r} is {what}")
    if state == ActionState.SCHEDULED:
        if offer is None or offer.action_id != action_id:
            raise NotFoundError(f"action {action_id} is not offered to device {device_id!r} yet")
        _move(conn, now_s, action, ActionState.RETRIEVED, "deployment fetched", device_id)
    hw = conn.execute(select(devices.c.hw).where(devices.c.id == device_id)).scalar_one()
    return {
        "action_id": action_id,
        "release_id": action.release_id,
        "version": action.version,
        "state": action.state if action.state != "scheduled" else "retrieved",
        "artifacts": release_artifacts_for(conn, action.release_id, hw).get(hw, []),
    }


def installed_action(conn: Connection, device_id: str) -> int | None:
    """The device's most recent confirmed action, or None."""
    found: int | None = conn.execute(_INSTALLED, {"device_id": device_id}).scalar()
    return found


def apply_feedback(
    conn: Connection,
    now_s: float,
    device_id: str,
    action_id: int,
    *,
    execution: str,
    finished: str,
    details: Sequence[str] = (),
) -> tuple[str, bool]:
    """Apply a device's DDI feedback; returns ``(state afterwards, whether it just finished)``.

    Repeated or late feedback changes no state, but counts as a sign of life for the group's
    in-progress timeout. Success confirms the action and records the release's version as the
    device's installed version. Only an action the server is cancelling can be reported
    cancelled.
    """
    action = _action(conn, device_id, action_id, lock=True)
    target = feedback_target(execution, finished, details)
    current = ActionState(action.state)
    if target is None:
        return current.value, False
    if target == ActionState.CANCELLED and current not in (
        ActionState.CANCELLING,
        ActionState.CANCELLED,
    ):
        raise ConflictError(f"action {action_id} is {current.value}, not being cancelled")
    offer = offered_action(conn, device_id) if current == ActionState.SCHEDULED else None
    if current == ActionState.SCHEDULED and (offer is None or offer.action_id != action_id):
        raise ConflictError(f"action {action_id} has not been offered to device {device_id!r}")
    new = advance(current, target)
    if new is None:
        if current in OPEN:  # alive: the in-progress timeout starts again
            conn.execute(update(actions).where(actions.c.id == action.id).values(updated_at=now_s))
        return current.value, False
    _move(conn, now_s, action, new, "; ".join(details)[:2000], device_id)
    if new == ActionState.CONFIRMED:
        update_reported(conn, device_id, installed_version=action.version)
    return new.value, new in TERMINAL


def device_artifact(
    conn: Connection, device_id: str, release_id: int, filename: str
) -> dict[str, Any]:
    """An artifact the device may download: in a release it was assigned, for its hardware."""
    row = conn.execute(
        select(artifacts)
        .join(release_artifacts, release_artifacts.c.artifact_id == artifacts.c.id)
        .join(devices, devices.c.hw == release_artifacts.c.hw)
        .join(rollouts, rollouts.c.release_id == release_artifacts.c.release_id)
        .join(
            actions,
            and_(actions.c.rollout_id == rollouts.c.id, actions.c.device_id == devices.c.id),
        )
        .where(
            devices.c.id == device_id,
            release_artifacts.c.release_id == release_id,
            artifacts.c.filename == filename,
            actions.c.state.in_(_MAY_DOWNLOAD),
        )
        .limit(1)
    ).first()
    if row is None:
        raise NotFoundError(
            f"no artifact {filename!r} in release {release_id} for device {device_id!r}"
        )
    return dict(row._mapping)


@dataclass(frozen=True, slots=True)
class PollView:
    """Everything a base poll needs, read in one statement: who the device is, what it may do."""

    token_hash: str | None
    last_seen: float | None
    hw: str
    offer: Offer | None
    installed_action_id: int | None


def poll_statement(which_devices: ColumnElement[bool]) -> Select[Any]:
    """The poll view of the devices ``which_devices`` selects: id, token hash, last-seen time,
    hardware, offered action (id and state) and installed action, one row per known device."""
    offered_id = (
        _VISIBLE.with_only_columns(actions.c.id)
        .where(actions.c.device_id == devices.c.id)
        .scalar_subquery()
    )
    installed_id = (
        select(actions.c.id)
        .where(actions.c.device_id == devices.c.id, actions.c.state == ActionState.CONFIRMED.value)
        .order_by(actions.c.updated_at.desc(), actions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    offered = actions.alias("offered")
    return (
        select(
            devices.c.id,
            devices.c.token_hash,
            devices.c.last_seen,
            devices.c.hw,
            offered.c.id.label("offer_id"),
            offered.c.state.label("offer_state"),
            installed_id.label("installed_id"),
        )
        .select_from(devices.outerjoin(offered, offered.c.id == offered_id))
        .where(which_devices)
    )


_POLL = poll_statement(devices.c.id.in_(bindparam("device_ids", expanding=True)))


def poll_views_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, PollView]:
    """Poll views keyed by device id, from rows of :func:`poll_statement`'s columns."""
    views = {}
    for device_id, token_hash, last_seen, hw, offer_id, offer_state, installed_id in rows:
        offer = None
        if offer_id is not None:
            state = ActionState(offer_state)
            offer = Offer(int(offer_id), state, state == ActionState.CANCELLING)
        views[device_id] = PollView(token_hash, last_seen, hw, offer, installed_id)
    return views


def poll_views(conn: Connection, device_ids: Sequence[str]) -> dict[str, PollView]:
    """For each known device of ``device_ids``: its token hash, last-seen time, hardware,
    offered action and installed action, all in one statement (the fleet's hot path: a server
    answers the polls that arrive together with one read)."""
    return poll_views_from_rows(conn.execute(_POLL, {"device_ids": list(device_ids)}))
