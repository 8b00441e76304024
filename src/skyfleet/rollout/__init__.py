"""Which device gets which release when: filters, groups, gates, the action state machine, and
the signed update metadata (TUF roles, the Uptane image repository and director) that tells a
device so in a way it can verify.

Pure code: records and bytes in, decisions and bytes out. The store persists what it decides and
the server applies it to devices that poll; nothing here reads a clock or touches a file.
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
    CONFIRMED_MILESTONES_PCT,
    GroupCounts,
    GroupSpec,
    Verdict,
    assign_group,
    judge_group,
    sample_score,
)
from skyfleet.rollout._repository import (
    Lifetimes,
    Published,
    RepoHead,
    refresh,
    target_file,
    target_path,
)
from skyfleet.rollout._rollouts import (
    OFFERING,
    GroupProgress,
    ReleaseRules,
    RolloutStatus,
    Step,
    allowed_operations,
    check_operation,
    is_compatible,
    plan_step,
)
from skyfleet.rollout._signing import (
    ONLINE_ROLES,
    ROLES,
    accept_root,
    expiry_datetime,
    generate_key,
    load_signer,
    new_root,
    next_root,
    parse,
    role_signers,
    serialize,
    sign_root,
)
from skyfleet.rollout._uptane import verify_assignment
from skyfleet.rollout._versions import is_valid_hardware, is_valid_version, same_line, version_key

__all__ = [
    "CONFIRMED_MILESTONES_PCT",
    "DEVICE_KINDS",
    "FINISHED",
    "IN_PROGRESS",
    "OFFERING",
    "ONLINE_ROLES",
    "OPEN",
    "ROLES",
    "TERMINAL",
    "ActionState",
    "DeviceFilter",
    "DeviceRecord",
    "GroupCounts",
    "GroupProgress",
    "GroupSpec",
    "Lifetimes",
    "Published",
    "ReleaseRules",
    "RepoHead",
    "RolloutStatus",
    "Step",
    "Verdict",
    "accept_root",
    "advance",
    "allowed_operations",
    "assign_group",
    "check_operation",
    "expiry_datetime",
    "feedback_target",
    "generate_key",
    "is_compatible",
    "is_valid_hardware",
    "is_valid_version",
    "judge_group",
    "load_signer",
    "new_root",
    "next_root",
    "parse",
    "parse_filter",
    "parse_group_text",
    "plan_step",
    "refresh",
    "role_signers",
    "same_line",
    "sample_score",
    "serialize",
    "sign_root",
    "target_file",
    "target_path",
    "verify_assignment",
    "version_key",
]
