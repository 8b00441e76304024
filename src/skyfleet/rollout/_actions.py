"""The one state machine every device action follows, and how DDI feedback drives it.

::

    scheduled → retrieved → downloading → downloaded → installing → rebooting → confirmed
        │            └───────────┴─────────────┴────────────┴───────────┴──→ failed
        ├──→ cancelled          (any state before confirmed) ──→ cancelling → cancelled
        └──(silent past the group's timeout while in progress) ──→ timed_out

Progress only moves forward: a repeated or late report of an earlier stage changes nothing, so a
device that re-sends its feedback after a server restart is never counted twice. ``confirmed``
means the device reported success after booting the new version. A device that reports after it
was timed out still ends in the state it reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from skyfleet.errors import ConflictError

__all__ = [
    "FINISHED",
    "IN_PROGRESS",
    "OPEN",
    "TERMINAL",
    "ActionState",
    "advance",
    "feedback_target",
]


class ActionState(StrEnum):
    """Where one device stands with one rollout."""

    SCHEDULED = "scheduled"
    RETRIEVED = "retrieved"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


_RANK = {
    ActionState.SCHEDULED: 0,
    ActionState.RETRIEVED: 1,
    ActionState.DOWNLOADING: 2,
    ActionState.DOWNLOADED: 3,
    ActionState.INSTALLING: 4,
    ActionState.REBOOTING: 5,
}

#: States a device has left for good (a late report may still replace ``timed_out``).
TERMINAL = frozenset(
    {ActionState.CONFIRMED, ActionState.FAILED, ActionState.CANCELLED, ActionState.TIMED_OUT}
)
#: States in which the device has the update in hand and the group's timeout runs.
IN_PROGRESS = frozenset(
    {
        ActionState.RETRIEVED,
        ActionState.DOWNLOADING,
        ActionState.DOWNLOADED,
        ActionState.INSTALLING,
        ActionState.REBOOTING,
        ActionState.CANCELLING,
    }
)
#: States that still belong to a device's open action.
OPEN = frozenset(ActionState) - TERMINAL
#: States that count as finished when a group is judged.
FINISHED = frozenset({ActionState.CONFIRMED, ActionState.FAILED, ActionState.TIMED_OUT})


def feedback_target(
    execution: str, finished: str, details: Sequence[str] = ()
) -> ActionState | None:
    """The state a hawkBit DDI feedback asks for, or None when it carries no progress.

    ``execution`` is the DDI ``status.execution`` (closed, proceeding, canceled, scheduled,
    rejected, resumed, downloaded, download) and ``finished`` the ``status.result.finished``
    (success, failure, none). A ``proceeding`` whose details mention a reboot, or say that all
    chunks are installed (SWUpdate's suricatta, which then waits to boot the new image), means
    the device is rebooting into the new image.

    >>> feedback_target("closed", "success")
    <ActionState.CONFIRMED: 'confirmed'>
    >>> feedback_target("proceeding", "none", ["Rebooting into the new image"])
    <ActionState.REBOOTING: 'rebooting'>
    >>> feedback_target("resumed", "none") is None
    True
    """
    execution = execution.lower()
    finished = finished.lower()
    if execution == "closed":
        return ActionState.CONFIRMED if finished == "success" else ActionState.FAILED
    if finished == "failure" or execution == "rejected":
        return ActionState.FAILED
    if execution == "canceled":
        return ActionState.CANCELLED
    if execution == "download":
        return ActionState.DOWNLOADING
    if execution == "downloaded":
        return ActionState.DOWNLOADED
    if execution == "proceeding":
        if any("reboot" in d.lower() or "all chunks installed" in d.lower() for d in details):
            return ActionState.REBOOTING
        return ActionState.INSTALLING
    return None


def advance(current: ActionState, target: ActionState) -> ActionState | None:
    """The state after ``target`` is reported in ``current``, or None when nothing changes.

    Raises :class:`ConflictError` when the action was already closed another way (a device that
    was cancelled reports success, a confirmed device reports failure); progress reported after
    the end is ignored.

    >>> advance(ActionState.DOWNLOADING, ActionState.INSTALLING)
    <ActionState.INSTALLING: 'installing'>
    >>> advance(ActionState.INSTALLING, ActionState.DOWNLOADING) is None  # late, ignored
    True
    >>> advance(ActionState.CONFIRMED, ActionState.CONFIRMED) is None  # repeated, ignored
    True
    """
    if current == target:
        return None
    if current == ActionState.TIMED_OUT and target in (ActionState.CONFIRMED, ActionState.FAILED):
        return target
    if current in TERMINAL and target not in TERMINAL:
        return None  # a late progress report after the end changes nothing
    if current in TERMINAL:
        raise ConflictError(
            f"the action is already {current.value}; it cannot become {target.value}"
        )
    if target in TERMINAL:
        return target
    if current == ActionState.CANCELLING:
        return None  # progress while a cancel is pending: wait for the device's verdict
    if target == ActionState.CANCELLING:
        return target
    return target if _RANK[target] > _RANK[current] else None
