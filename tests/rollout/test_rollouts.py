"""A rollout's life: allowed operations, release compatibility, and what the judge does next."""

from __future__ import annotations

import pytest

from skyfleet.errors import ConflictError
from skyfleet.rollout import (
    OFFERING,
    DeviceRecord,
    GroupCounts,
    GroupProgress,
    GroupSpec,
    ReleaseRules,
    RolloutStatus,
    check_operation,
    is_compatible,
    plan_step,
)

R = RolloutStatus

# The edges of the diagram in skyfleet.rollout._rollouts, written out by hand:
#   created --start--> running;  running --halt--> halted;  halted/waiting --resume--> running;
#   created/running/waiting/halted --cancel--> cancelled;
#   running/waiting/halted/complete/cancelled --rollback--> a new rollout.
# A waiting rollout still offers its started groups, so it can be halted too.
DIAGRAM = {
    ("start", R.CREATED),
    ("halt", R.RUNNING),
    ("halt", R.WAITING),
    ("resume", R.HALTED),
    ("resume", R.WAITING),
    ("cancel", R.CREATED),
    ("cancel", R.RUNNING),
    ("cancel", R.WAITING),
    ("cancel", R.HALTED),
    ("rollback", R.RUNNING),
    ("rollback", R.WAITING),
    ("rollback", R.HALTED),
    ("rollback", R.COMPLETE),
    ("rollback", R.CANCELLED),
}
OPERATIONS = ["start", "halt", "resume", "cancel", "rollback"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("status", list(RolloutStatus))
def test_operations_follow_the_documented_diagram(operation: str, status: RolloutStatus) -> None:
    if (operation, status) in DIAGRAM:
        check_operation(status, operation)
        return
    with pytest.raises(ConflictError) as caught:
        check_operation(status, operation)
    message = str(caught.value)
    assert operation in message and status.value in message
    for allowed in sorted(s.value for op, s in DIAGRAM if op == operation):
        assert allowed in message  # the message says when the operation is allowed


def test_an_unknown_operation_is_refused_as_a_conflict_naming_it() -> None:
    with pytest.raises(ConflictError) as caught:
        check_operation(R.RUNNING, "explode")
    assert "explode" in str(caught.value)


def test_only_running_waiting_and_complete_rollouts_offer_the_release() -> None:
    assert {R.RUNNING, R.WAITING, R.COMPLETE} == OFFERING


# --- compatibility -------------------------------------------------------------------------------

RULES = ReleaseRules(frozenset({"hw3", "hw4"}), min_installed_version="2025.20")


def _car(hw: str = "hw3", installed: str | None = "2025.38.1") -> DeviceRecord:
    return DeviceRecord("car", hw=hw, installed_version=installed)


def test_a_device_of_a_listed_generation_at_or_above_the_minimum_is_compatible() -> None:
    assert is_compatible(RULES, "2025.44.25.5", _car("hw3", "2025.38.1"))
    assert is_compatible(RULES, "2025.44.25.5", _car("hw4", "2025.20"))
    assert is_compatible(RULES, "2025.44.25.5", _car("hw4", "2025.100"))


def test_a_device_below_the_minimum_is_not_compatible_numerically() -> None:
    assert not is_compatible(RULES, "2025.44.25.5", _car(installed="2025.19.99"))
    assert not is_compatible(RULES, "2025.44.25.5", _car(installed="2025.3"))  # 3 < 20


def test_an_unknown_or_other_line_installed_version_fails_a_minimum() -> None:
    assert not is_compatible(RULES, "2025.44.25.5", _car(installed=None))
    assert not is_compatible(RULES, "2025.44.25.5", _car(installed="fsd-14.2"))
    assert not is_compatible(RULES, "2025.44.25.5", _car(installed="bad version"))


def test_other_generations_are_not_compatible() -> None:
    assert not is_compatible(RULES, "2025.44.25.5", _car(hw="hw2"))
    assert not is_compatible(RULES, "2025.44.25.5", _car(hw=""))


def test_a_device_already_on_the_release_is_not_offered_it_again() -> None:
    assert not is_compatible(RULES, "2025.44.25.5", _car(installed="2025.44.25.5"))


def test_without_a_minimum_any_device_of_a_listed_generation_is_compatible() -> None:
    rules = ReleaseRules(frozenset({"hw3"}))
    assert is_compatible(rules, "2.0", _car(installed=None))
    assert is_compatible(rules, "2.0", _car(installed="fsd-1.0"))
    assert not is_compatible(rules, "2.0", _car(installed="2.0"))


# --- plan_step -----------------------------------------------------------------------------------


def _spec(**options: object) -> GroupSpec:
    defaults: dict[str, object] = {"success_pct": 90.0, "error_pct": 10.0, "min_finished": 5}
    return GroupSpec(**{**defaults, **options})  # type: ignore[arg-type]


def _c(**by_state: int) -> GroupCounts:
    return GroupCounts(dict(by_state))


STARTED = GroupProgress(started=True)
WAITING_TO_START = GroupProgress()


def test_a_running_rollout_with_no_group_started_starts_the_first() -> None:
    specs = [_spec(), _spec()]
    step = plan_step(R.RUNNING, specs, [WAITING_TO_START] * 2, [_c(scheduled=10)] * 2)
    assert (step.status, step.start_group) == (R.RUNNING, 0)


@pytest.mark.parametrize("status", [s for s in RolloutStatus if s != R.RUNNING])
def test_only_a_running_rollout_moves(status: RolloutStatus) -> None:
    specs = [_spec(), _spec()]
    step = plan_step(status, specs, [STARTED, WAITING_TO_START], [_c(confirmed=10), _c()])
    assert (step.status, step.start_group) == (status, None)


def test_a_group_still_short_of_its_success_threshold_waits() -> None:
    specs = [_spec(), _spec()]
    step = plan_step(
        R.RUNNING, specs, [STARTED, WAITING_TO_START], [_c(confirmed=8, installing=2), _c()]
    )
    assert (step.status, step.start_group) == (R.RUNNING, None)


def test_a_passing_auto_advance_group_starts_the_next() -> None:
    specs = [_spec(auto_advance=True), _spec()]
    step = plan_step(
        R.RUNNING, specs, [STARTED, WAITING_TO_START], [_c(confirmed=9, installing=1), _c()]
    )
    assert (step.status, step.start_group) == (R.RUNNING, 1)
    assert "group 1" in step.reason


def test_a_passing_manual_group_waits_for_an_operator() -> None:
    specs = [_spec(auto_advance=False), _spec()]
    step = plan_step(R.RUNNING, specs, [STARTED, WAITING_TO_START], [_c(confirmed=10), _c()])
    assert (step.status, step.start_group) == (R.WAITING, None)
    assert "resume" in step.reason


def test_the_newest_started_group_decides_the_next_step() -> None:
    specs = [_spec(), _spec(), _spec()]
    progress = [STARTED, STARTED, WAITING_TO_START]
    waiting = plan_step(R.RUNNING, specs, progress, [_c(confirmed=10), _c(scheduled=10), _c()])
    passing = plan_step(R.RUNNING, specs, progress, [_c(confirmed=10), _c(confirmed=10), _c()])
    assert waiting.start_group is None
    assert passing.start_group == 2


def test_the_last_group_passing_completes_the_rollout() -> None:
    specs = [_spec(), _spec(auto_advance=False)]
    step = plan_step(R.RUNNING, specs, [STARTED, STARTED], [_c(confirmed=10), _c(confirmed=10)])
    assert (step.status, step.start_group) == (R.COMPLETE, None)
    assert "last group" in step.reason


def test_the_newest_group_over_its_error_threshold_halts() -> None:
    specs = [_spec(), _spec()]
    step = plan_step(
        R.RUNNING,
        specs,
        [STARTED, STARTED],
        [_c(confirmed=10), _c(confirmed=3, failed=2, scheduled=5)],
    )
    assert step.status == R.HALTED
    assert step.reason.startswith("group 2:")


def test_an_earlier_started_group_over_its_error_threshold_halts() -> None:
    # group 1 passed long ago; its stragglers have since failed
    specs = [_spec(success_pct=50.0), _spec()]
    counts = [_c(confirmed=6, failed=4), _c(confirmed=10)]
    step = plan_step(R.RUNNING, specs, [STARTED, STARTED], counts)
    assert step.status == R.HALTED
    assert step.reason.startswith("group 1:")


def test_failures_in_a_group_not_started_do_not_halt() -> None:
    specs = [_spec(), _spec()]
    counts = [_c(confirmed=2, scheduled=8), _c(failed=10)]
    step = plan_step(R.RUNNING, specs, [STARTED, WAITING_TO_START], counts)
    assert step.status == R.RUNNING


def test_failures_accepted_at_resume_do_not_halt_again() -> None:
    specs = [_spec(), _spec()]
    counts = [_c(confirmed=3, failed=2, scheduled=15), _c()]
    halted = plan_step(R.RUNNING, specs, [STARTED, WAITING_TO_START], counts)
    assert halted.status == R.HALTED
    resumed = GroupProgress(started=True, failures_before=2, finished_before=5)
    step = plan_step(R.RUNNING, specs, [resumed, WAITING_TO_START], counts)
    assert (step.status, step.start_group) == (R.RUNNING, None)


def test_a_group_resumed_past_accepted_failures_can_still_pass_and_complete() -> None:
    # one failure reached the error count and halted the rollout; the operator accepted it and
    # resumed; every other device then confirmed, meeting the 95% success threshold
    spec = GroupSpec(success_pct=95.0, error_pct=None, error_count=1, min_finished=1)
    counts = [_c(confirmed=19, failed=1)]
    assert plan_step(R.RUNNING, [spec], [STARTED], counts).status == R.HALTED
    resumed = GroupProgress(started=True, failures_before=1, finished_before=1)
    step = plan_step(R.RUNNING, [spec], [resumed], counts)
    assert step.status == R.COMPLETE


def test_a_resumed_group_with_accepted_failures_advances_to_the_next_group() -> None:
    # 1 of 5 early finishes failed (20% > 10%): halted, then resumed with that baseline;
    # now 8 of 10 confirmed (80%, the success threshold) and none of the 4 devices that
    # finished since the resume failed (1 of 9 overall, but that one was accepted)
    specs = [_spec(success_pct=80.0), _spec()]
    counts = [_c(confirmed=8, failed=1, installing=1), _c()]
    resumed = GroupProgress(started=True, failures_before=1, finished_before=5)
    step = plan_step(R.RUNNING, specs, [resumed, WAITING_TO_START], counts)
    assert (step.status, step.start_group) == (R.RUNNING, 1)


def test_a_rollout_of_empty_groups_runs_through() -> None:
    specs = [_spec(), _spec()]
    first = plan_step(R.RUNNING, specs, [WAITING_TO_START] * 2, [_c(), _c()])
    assert first.start_group == 0
    second = plan_step(R.RUNNING, specs, [STARTED, WAITING_TO_START], [_c(), _c()])
    assert second.start_group == 1
    last = plan_step(R.RUNNING, specs, [STARTED, STARTED], [_c(), _c()])
    assert last.status == R.COMPLETE
