"""Which device gets which release when: filters, groups, gates and the action state machine.

Pure code: records in, decisions out. The store persists what it decides and the server applies
it to devices that poll; nothing here reads a clock or touches a file.
"""

from __future__ import annotations

from skyfleet.rollout._actions import (
    FINISHED,
    IN_PROGRESS,
    OPEN,
    TERMINAL,
    ActionState,
    advance,
    feedback_target,
)
from skyfleet.rollout._filters import (
    DEVICE_KINDS,
    DeviceFilter,
    DeviceRecord,
    parse_filter,
    parse_group_text,
)
from skyfleet.rollout._groups import (
    GroupCounts,
    GroupSpec,
    Verdict,
    assign_group,
    judge_group,
    sample_score,
)
from skyfleet.rollout._rollouts import (
    OFFERING,
    GroupProgress,
    ReleaseRules,
    RolloutStatus,
    Step,
    check_operation,
    is_compatible,
    plan_step,
)
from skyfleet.rollout._versions import is_valid_version, same_line, version_key

__all__ = [
    "DEVICE_KINDS",
    "FINISHED",
    "IN_PROGRESS",
    "OFFERING",
    "OPEN",
    "TERMINAL",
    "ActionState",
    "DeviceFilter",
    "DeviceRecord",
    "GroupCounts",
    "GroupProgress",
    "GroupSpec",
    "ReleaseRules",
    "RolloutStatus",
    "Step",
    "Verdict",
    "advance",
    "assign_group",
    "check_operation",
    "feedback_target",
    "is_compatible",
    "is_valid_version",
    "judge_group",
    "parse_filter",
    "parse_group_text",
    "plan_step",
    "same_line",
    "sample_score",
    "version_key",
]
