"""A rollout's life: which operations its status allows, and what its groups' counts make it do.

::

    created ──start──→ running ──(group passes, manual)──→ waiting ──resume──→ running
                          │  └──(last group passes)──→ complete
                          └──(error threshold, or halt)──→ halted ──resume──→ running
    waiting ──halt──→ halted
    created / running / waiting / halted ──cancel──→ cancelled
    running / waiting / halted / complete / cancelled ──rollback──→ (a new rollout)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from skyfleet.errors import ConflictError
from skyfleet.rollout._filters import DeviceRecord
from skyfleet.rollout._groups import GroupCounts, GroupSpec, Verdict, judge_group
from skyfleet.rollout._versions import is_valid_version, same_line, version_key

__all__ = [
    "GroupProgress",
    "ReleaseRules",
    "RolloutStatus",
    "Step",
    "allowed_operations",
    "check_operation",
    "is_compatible",
    "plan_step",
]


class RolloutStatus(StrEnum):
    """Where a rollout stands."""

    CREATED = "created"
    RUNNING = "running"
    WAITING = "waiting"
    HALTED = "halted"
    COMPLETE = "complete"
    CANCELLED = "cancelled"


#: Statuses in which started groups hand the release to devices that poll.
OFFERING = frozenset({RolloutStatus.RUNNING, RolloutStatus.WAITING, RolloutStatus.COMPLETE})

_ALLOWED = {
    "start": {RolloutStatus.CREATED},
    "halt": {RolloutStatus.RUNNING, RolloutStatus.WAITING},
    "resume": {RolloutStatus.HALTED, RolloutStatus.WAITING},
    "cancel": {
        RolloutStatus.CREATED,
        RolloutStatus.RUNNING,
        RolloutStatus.WAITING,
        RolloutStatus.HALTED,
    },
    "rollback": {
        RolloutStatus.RUNNING,
        RolloutStatus.WAITING,
        RolloutStatus.HALTED,
        RolloutStatus.COMPLETE,
        RolloutStatus.CANCELLED,
    },
}


def allowed_operations(status: RolloutStatus | str) -> list[str]:
    """The operations a rollout in ``status`` accepts, in a fixed order.

    >>> allowed_operations("waiting")
    ['halt', 'resume', 'cancel', 'rollback']
    """
    return [op for op, statuses in _ALLOWED.items() if RolloutStatus(status) in statuses]


def check_operation(status: RolloutStatus, operation: str) -> None:
    """Raise :class:`ConflictError` unless ``operation`` is allowed in ``status``.

    >>> check_operation(RolloutStatus.CREATED, "start")
    >>> check_operation(RolloutStatus.CANCELLED, "resume")
    Traceback (most recent call last):
    ...
    skyfleet.errors.ConflictError: cannot resume a rollout that is cancelled (allowed when halted or waiting)
    """
    allowed = _ALLOWED.get(operation)
    if allowed is None:
        raise ConflictError(
            f"unknown operation {operation!r}: use start, halt, resume, cancel or rollback"
        )
    if status not in allowed:
        names = " or ".join(sorted(s.value for s in allowed))
        raise ConflictError(
            f"cannot {operation} a rollout that is {status.value} (allowed when {names})"
        )


@dataclass(frozen=True, slots=True)
class ReleaseRules:
    """Which devices a release may go to: hardware generations, and a minimum installed version."""

    generations: frozenset[str]
    min_installed_version: str | None = None


def is_compatible(rules: ReleaseRules, version: str, device: DeviceRecord) -> bool:
    """Whether ``device`` may receive release ``version``.

    It must be of a listed generation, not already run ``version``, and, when a minimum is set,
    report an installed version of the same line at or above it.

    >>> rules = ReleaseRules(frozenset({"hw3", "hw4"}), min_installed_version="2025.20")
    >>> is_compatible(rules, "2025.44.25.5", DeviceRecord("a", hw="hw3", installed_version="2025.38.1"))
    True
    >>> is_compatible(rules, "2025.44.25.5", DeviceRecord("b", hw="hw3", installed_version="2025.14"))
    False
    """
    if device.hw not in rules.generations or device.installed_version == version:
        return False
    minimum = rules.min_installed_version
    if minimum is None:
        return True
    installed = device.installed_version
    if installed is None or not is_valid_version(installed) or not same_line(installed, minimum):
        return False
    return version_key(installed) >= version_key(minimum)


@dataclass(frozen=True, slots=True)
class GroupProgress:
    """A group's place in its rollout: started or not, and the counts accepted at the last resume."""

    started: bool = False
    failures_before: int = 0
    finished_before: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    """What a rollout does next: its new status, a group to start, and why."""

    status: RolloutStatus
    start_group: int | None = None
    reason: str = ""


def plan_step(
    status: RolloutStatus,
    specs: Sequence[GroupSpec],
    progress: Sequence[GroupProgress],
    counts: Sequence[GroupCounts],
) -> Step:
    """Judge a running (or waiting) rollout's started groups and say what happens next.

    Any started group over its error threshold halts the rollout, also while it waits for an
    operator between groups. When the newest started group
    passes, the next group starts (or the rollout waits for an operator when the group is
    manual); when the last group passes, the rollout is complete.

    >>> specs = [GroupSpec.parse("tag:eap", min_finished=1), GroupSpec.parse("hw:hw3")]
    >>> plan_step(RolloutStatus.RUNNING, specs, [GroupProgress(True), GroupProgress()],
    ...           [GroupCounts({"confirmed": 2}), GroupCounts()]).start_group
    1
    """
    if status not in (RolloutStatus.RUNNING, RolloutStatus.WAITING):
        return Step(status)
    started = [i for i, p in enumerate(progress) if p.started]
    verdicts = {
        i: judge_group(
            specs[i],
            counts[i],
            failures_before=progress[i].failures_before,
            finished_before=progress[i].finished_before,
        )
        for i in started
    }
    for i, (verdict, why) in verdicts.items():
        if verdict == Verdict.HALT:
            return Step(RolloutStatus.HALTED, reason=f"group {i + 1}: {why}")
    if status == RolloutStatus.WAITING:
        return Step(status)  # started groups are still watched; the next waits for resume
    if not started:
        return Step(RolloutStatus.RUNNING, start_group=0, reason="rollout started")
    newest = started[-1]
    verdict, why = verdicts[newest]
    if verdict != Verdict.PASS:
        return Step(status)
    if newest + 1 >= len(specs):
        return Step(RolloutStatus.COMPLETE, reason=f"last group: {why}")
    if specs[newest].auto_advance:
        return Step(
            RolloutStatus.RUNNING, start_group=newest + 1, reason=f"group {newest + 1}: {why}"
        )
    return Step(RolloutStatus.WAITING, reason=f"group {newest + 1}: {why}; waiting for resume")
