"""Rollout groups: who is in each group (deterministically), and when a group passes or fails.

Group ``i`` takes ``percent`` of the devices its filter matches that no earlier group took. The
choice is a hash of the rollout's seed, the group index and the device id, so it never changes:
halting and resuming, restarting the server, or a device registering late all give the same answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from skyfleet.errors import FilterError
from skyfleet.rollout._actions import ActionState
from skyfleet.rollout._filters import DeviceFilter, DeviceRecord, parse_group_text

__all__ = [
    "CONFIRMED_MILESTONES_PCT",
    "GroupCounts",
    "GroupSpec",
    "Verdict",
    "assign_group",
    "judge_group",
    "sample_score",
]

#: The shares of a group's devices whose time to confirm a rollout's status reports, %.
CONFIRMED_MILESTONES_PCT = (50, 95)


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One wave of a rollout.

    ``success_pct``: share of the group's devices that must be confirmed before the group passes.
    ``auto_advance``: start the next group by itself when this one passes (else wait for resume).
    ``error_pct`` / ``error_count``: failures (failed or timed out) that halt the rollout, as a
    percentage of finished devices or as a count; judged once ``min_finished`` devices finished.
    ``timeout_s``: how long a device may stay silent in progress before it counts as failed.
    """

    filter: DeviceFilter = field(default_factory=DeviceFilter)
    percent: float = 100.0
    success_pct: float = 95.0
    auto_advance: bool = True
    error_pct: float | None = 10.0
    error_count: int | None = None
    min_finished: int = 5
    timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if not 0.0 < self.percent <= 100.0:
            raise FilterError(
                f"a group's percentage must be above 0 and at most 100, not {self.percent}"
            )
        if not 0.0 <= self.success_pct <= 100.0:
            raise FilterError(f"success threshold {self.success_pct}% must be within 0-100%")
        if self.error_pct is not None and not 0.0 <= self.error_pct <= 100.0:
            raise FilterError(f"error threshold {self.error_pct}% must be within 0-100%")
        if self.error_count is not None and self.error_count < 1:
            raise FilterError(f"error threshold count {self.error_count} must be at least 1")
        if self.min_finished < 1:
            raise FilterError(f"minimum sample {self.min_finished} must be at least 1 device")
        if not self.timeout_s > 0:
            raise FilterError(f"in-progress timeout {self.timeout_s} s must be positive")

    @classmethod
    def parse(cls, text: str, **options: object) -> GroupSpec:
        """A group from its operator text (``'hw:hw3 10%'``) and optional thresholds.

        >>> GroupSpec.parse("hw:hw3 10%", success_pct=90.0).percent
        10.0
        """
        device_filter, percent = parse_group_text(text)
        return cls(filter=device_filter, percent=percent, **options)  # type: ignore[arg-type]

    @property
    def text(self) -> str:
        """The operator text of the filter and percentage, e.g. ``'hw:hw3 10%'``."""
        pct = "" if self.percent == 100.0 else f" {self.percent:g}%"
        return f"{self.filter.text}{pct}"


def sample_score(seed: str, group_index: int, device_id: str) -> float:
    """A uniform number in [0, 1) fixed by the rollout seed, the group and the device.

    >>> sample_score("r1", 0, "car-1") == sample_score("r1", 0, "car-1")
    True
    """
    digest = hashlib.blake2b(
        f"{seed}\x00{group_index}\x00{device_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_group(seed: str, groups: Sequence[GroupSpec], device: DeviceRecord) -> int | None:
    """The index of the group that takes ``device``, or None when no group does.

    >>> groups = [GroupSpec.parse("tag:eap"), GroupSpec.parse("hw:hw3")]
    >>> assign_group("s", groups, DeviceRecord("a", hw="hw3", tags=frozenset({"eap"})))
    0
    >>> assign_group("s", groups, DeviceRecord("b", hw="hw3")), assign_group("s", groups, DeviceRecord("c", hw="hw4"))
    (1, None)
    """
    for index, group in enumerate(groups):
        if group.filter.matches(device) and (
            group.percent >= 100.0 or sample_score(seed, index, device.id) < group.percent / 100.0
        ):
            return index
    return None


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """How many of a group's actions are in each state (missing states count zero)."""

    by_state: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, state: ActionState) -> int:
        return int(self.by_state.get(state.value, 0))

    @property
    def total(self) -> int:
        """All of the group's actions."""
        return sum(int(v) for v in self.by_state.values())

    @property
    def confirmed(self) -> int:
        """Devices that booted the new version and said so."""
        return self[ActionState.CONFIRMED]

    @property
    def failures(self) -> int:
        """Devices that failed or went silent past the timeout."""
        return self[ActionState.FAILED] + self[ActionState.TIMED_OUT]

    @property
    def finished(self) -> int:
        """Devices that confirmed, failed or timed out."""
        return self.confirmed + self.failures


class Verdict(StrEnum):
    """What a group's counts say."""

    WAIT = "wait"
    PASS = "pass"
    HALT = "halt"


def judge_group(
    spec: GroupSpec, counts: GroupCounts, *, failures_before: int = 0, finished_before: int = 0
) -> tuple[Verdict, str]:
    """Judge a group: halt on too many failures, pass on enough confirmations, else wait.

    ``failures_before`` / ``finished_before`` are the counts an operator accepted when resuming
    after a halt; only what happened since is judged against the error threshold.

    >>> spec = GroupSpec(error_pct=10.0, min_finished=5, success_pct=90.0)
    >>> judge_group(spec, GroupCounts({"confirmed": 3, "failed": 1, "scheduled": 6}))[0]
    <Verdict.WAIT: 'wait'>
    >>> judge_group(spec, GroupCounts({"confirmed": 4, "failed": 1, "scheduled": 5}))
    (<Verdict.HALT: 'halt'>, '1 of 5 finished devices failed (20.0%), above the 10% error threshold')
    """
    failures = counts.failures - failures_before
    finished = counts.finished - finished_before
    total = counts.total - finished_before
    if finished >= min(spec.min_finished, max(total, 1)) and finished > 0:
        if spec.error_count is not None and failures >= spec.error_count:
            return Verdict.HALT, (
                f"{failures} devices failed, reaching the error threshold of {spec.error_count}"
            )
        if spec.error_pct is not None and failures * 100.0 > spec.error_pct * finished:
            return Verdict.HALT, (
                f"{failures} of {finished} finished devices failed "
                f"({100.0 * failures / finished:.1f}%), above the {spec.error_pct:g}% error threshold"
            )
    if counts.confirmed * 100.0 >= spec.success_pct * counts.total:
        return Verdict.PASS, (
            f"{counts.confirmed} of {counts.total} devices confirmed, "
            f"meeting the {spec.success_pct:g}% success threshold"
        )
    return Verdict.WAIT, f"{counts.confirmed} of {counts.total} devices confirmed"
