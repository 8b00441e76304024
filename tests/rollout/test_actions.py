"""The device action state machine and how hawkBit DDI feedback drives it."""

from __future__ import annotations

import itertools

import pytest

from skyfleet.errors import ConflictError
from skyfleet.rollout import (
    FINISHED,
    IN_PROGRESS,
    OPEN,
    TERMINAL,
    ActionState,
    advance,
    feedback_target,
)

S = ActionState
#: The forward path of a successful update, in order.
PATH = [S.SCHEDULED, S.RETRIEVED, S.DOWNLOADING, S.DOWNLOADED, S.INSTALLING, S.REBOOTING]
CLOSED_FOR_GOOD = [S.CONFIRMED, S.FAILED, S.CANCELLED]


def _run(start: ActionState, reports: list[ActionState]) -> tuple[ActionState, int]:
    """Apply reports in order; the final state and how many reports changed it."""
    state, changes = start, 0
    for target in reports:
        new = advance(state, target)
        if new is not None:
            state, changes = new, changes + 1
    return state, changes


# --- the state sets ------------------------------------------------------------------------------


def test_every_state_is_either_open_or_terminal() -> None:
    assert set(ActionState) == OPEN | TERMINAL
    assert not OPEN & TERMINAL
    assert FINISHED <= TERMINAL
    assert S.CANCELLED not in FINISHED
    assert IN_PROGRESS <= OPEN
    assert S.SCHEDULED in OPEN and S.SCHEDULED not in IN_PROGRESS


# --- forward only --------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(PATH, 2)))
def test_progress_moves_forward_and_never_back(a: ActionState, b: ActionState) -> None:
    assert advance(a, b) == b
    assert advance(b, a) is None


@pytest.mark.parametrize("state", list(ActionState))
def test_a_repeated_report_changes_nothing(state: ActionState) -> None:
    assert advance(state, state) is None


def test_stages_may_be_skipped() -> None:
    assert advance(S.SCHEDULED, S.INSTALLING) == S.INSTALLING
    assert advance(S.RETRIEVED, S.REBOOTING) == S.REBOOTING


def test_feedback_sent_twice_is_counted_once() -> None:
    reports = [S.DOWNLOADING, S.DOWNLOADED, S.INSTALLING, S.REBOOTING]
    state, changes = _run(S.RETRIEVED, reports)
    assert (state, changes) == (S.REBOOTING, 4)
    again, more = _run(state, reports)  # a device re-sends everything after a restart
    assert (again, more) == (S.REBOOTING, 0)
    assert advance(S.CONFIRMED, S.CONFIRMED) is None
    assert advance(S.FAILED, S.FAILED) is None


def test_late_progress_report_is_ignored() -> None:
    state, changes = _run(S.SCHEDULED, [S.INSTALLING, S.DOWNLOADING, S.DOWNLOADED, S.REBOOTING])
    assert (state, changes) == (S.REBOOTING, 2)


@pytest.mark.parametrize("state", [s for s in OPEN if s != S.CANCELLING])
def test_any_open_action_can_confirm_or_fail(state: ActionState) -> None:
    assert advance(state, S.CONFIRMED) == S.CONFIRMED
    assert advance(state, S.FAILED) == S.FAILED


# --- terminal states -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in CLOSED_FOR_GOOD for t in TERMINAL if t != c],
)
def test_an_action_closed_for_good_refuses_another_outcome(
    current: ActionState, target: ActionState
) -> None:
    with pytest.raises(ConflictError) as caught:
        advance(current, target)
    assert current.value in str(caught.value)
    assert target.value in str(caught.value)


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in TERMINAL for t in ActionState if t not in TERMINAL],
)
def test_progress_reported_after_the_end_is_ignored(
    current: ActionState, target: ActionState
) -> None:
    assert advance(current, target) is None


@pytest.mark.parametrize("late", [S.CONFIRMED, S.FAILED])
def test_a_timed_out_action_takes_a_late_confirmed_or_failed(late: ActionState) -> None:
    assert advance(S.TIMED_OUT, late) == late


def test_a_timed_out_action_refuses_being_cancelled() -> None:
    with pytest.raises(ConflictError, match="timed_out"):
        advance(S.TIMED_OUT, S.CANCELLED)


# --- cancelling ----------------------------------------------------------------------------------


def test_a_scheduled_action_can_be_cancelled_at_once() -> None:
    assert advance(S.SCHEDULED, S.CANCELLED) == S.CANCELLED


@pytest.mark.parametrize("state", [s for s in IN_PROGRESS if s != S.CANCELLING])
def test_an_action_in_progress_goes_through_cancelling(state: ActionState) -> None:
    assert advance(state, S.CANCELLING) == S.CANCELLING
    assert advance(S.CANCELLING, S.CANCELLED) == S.CANCELLED


@pytest.mark.parametrize("progress", PATH[1:])
def test_progress_while_cancelling_waits_for_the_devices_verdict(progress: ActionState) -> None:
    assert advance(S.CANCELLING, progress) is None


@pytest.mark.parametrize("verdict", [S.CONFIRMED, S.FAILED, S.CANCELLED])
def test_a_cancelling_action_ends_in_the_state_the_device_reports(verdict: ActionState) -> None:
    assert advance(S.CANCELLING, verdict) == verdict


# --- DDI feedback --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("execution", "finished", "details", "target"),
    [
        ("closed", "success", [], S.CONFIRMED),
        ("CLOSED", "SUCCESS", [], S.CONFIRMED),
        ("closed", "failure", [], S.FAILED),
        ("closed", "none", [], S.FAILED),
        ("proceeding", "failure", [], S.FAILED),
        ("download", "failure", [], S.FAILED),
        ("rejected", "none", [], S.FAILED),
        ("canceled", "none", [], S.CANCELLED),
        ("download", "none", [], S.DOWNLOADING),
        ("downloaded", "none", [], S.DOWNLOADED),
        ("proceeding", "none", [], S.INSTALLING),
        ("proceeding", "none", ["writing image", "50%"], S.INSTALLING),
        ("proceeding", "none", ["REBOOTING into slot B"], S.REBOOTING),
        ("scheduled", "none", [], None),
        ("resumed", "none", [], None),
    ],
)
def test_ddi_feedback_maps_to_the_state_it_reports(
    execution: str, finished: str, details: list[str], target: ActionState | None
) -> None:
    assert feedback_target(execution, finished, details) == target


def test_a_full_ddi_conversation_ends_confirmed() -> None:
    conversation = [
        ("download", "none", []),
        ("downloaded", "none", []),
        ("proceeding", "none", ["installing"]),
        ("proceeding", "none", ["rebooting"]),
        ("resumed", "none", []),
        ("closed", "success", []),
    ]
    targets = [feedback_target(*step) for step in conversation]
    state, changes = _run(S.RETRIEVED, [t for t in targets if t is not None])
    assert (state, changes) == (S.CONFIRMED, 5)
