"""Group sampling (deterministic, binomial shares, exclusive groups) and group judgement."""

from __future__ import annotations

import math

import pytest

from skyfleet.errors import FilterError
from skyfleet.rollout import (
    DeviceRecord,
    GroupCounts,
    GroupSpec,
    Verdict,
    assign_group,
    judge_group,
    parse_filter,
    sample_score,
)

N = 20_000


def _fleet(n: int = N, hw: str = "hw3") -> list[DeviceRecord]:
    return [DeviceRecord(f"{hw}-car-{i:05d}", hw=hw) for i in range(n)]


def _within_sigmas(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """Whether ``observed`` successes of ``n`` trials is within ``sigmas`` of a binomial(n, p)."""
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1.0 - p))


# --- sampling ------------------------------------------------------------------------------------


def test_sample_score_is_fixed_by_seed_group_and_device() -> None:
    assert sample_score("seed", 0, "car-1") == sample_score("seed", 0, "car-1")
    scores = {
        sample_score("seed", 0, "car-1"),
        sample_score("other", 0, "car-1"),
        sample_score("seed", 1, "car-1"),
        sample_score("seed", 0, "car-2"),
    }
    assert len(scores) == 4


def test_sample_scores_are_uniform_in_the_unit_interval() -> None:
    scores = [sample_score("s", 0, d.id) for d in _fleet()]
    assert all(0.0 <= s < 1.0 for s in scores)
    # mean of U(0,1) is 1/2 with standard deviation sqrt(1/12/N); allow 4 sigma
    assert abs(sum(scores) / N - 0.5) <= 4.0 * math.sqrt(1.0 / 12.0 / N)
    # every tenth of the interval holds its share
    for decile in range(10):
        count = sum(1 for s in scores if decile / 10 <= s < (decile + 1) / 10)
        assert _within_sigmas(count, N, 0.1), (decile, count)


@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0])
def test_a_percentage_group_takes_its_share_within_binomial_tolerance(percent: float) -> None:
    groups = [GroupSpec.parse(f"hw:hw3 {percent:g}%")]
    taken = sum(1 for d in _fleet() if assign_group("rollout-7", groups, d) == 0)
    assert _within_sigmas(taken, N, percent / 100.0), taken


def test_assignment_is_deterministic_and_depends_on_the_seed() -> None:
    groups = [GroupSpec.parse("hw:hw3 10%")]
    fleet = _fleet(5000)
    first = [assign_group("seed-a", groups, d) for d in fleet]
    again = [assign_group("seed-a", groups, d) for d in fleet]
    other = [assign_group("seed-b", groups, d) for d in fleet]
    assert first == again
    assert first != other
    # two independent 10% samples overlap on about 1% of the fleet, not on 10%
    both = sum(1 for a, b in zip(first, other, strict=True) if a == 0 and b == 0)
    assert _within_sigmas(both, 5000, 0.01), both


def test_assignment_does_not_depend_on_the_other_devices() -> None:
    groups = [GroupSpec.parse("hw:hw3 10%"), GroupSpec.parse("hw:hw3 50%")]
    fleet = _fleet(2000)
    alone = {d.id: assign_group("s", groups, d) for d in fleet}
    shuffled = {d.id: assign_group("s", groups, d) for d in reversed(fleet)}
    late = DeviceRecord("late-joiner", hw="hw3")
    assert alone == shuffled
    assert assign_group("s", groups, late) == assign_group("s", groups, late)


def test_a_device_not_matched_by_any_group_gets_none() -> None:
    groups = [GroupSpec.parse("tag:eap"), GroupSpec.parse("hw:hw3")]
    assert assign_group("s", groups, DeviceRecord("x", hw="hw4")) is None
    assert assign_group("s", [], DeviceRecord("x", hw="hw3")) is None


def test_earlier_groups_win_when_filters_overlap() -> None:
    groups = [GroupSpec.parse("tag:eap"), GroupSpec.parse("hw:hw3"), GroupSpec.parse("*")]
    assert assign_group("s", groups, DeviceRecord("a", hw="hw3", tags=frozenset({"eap"}))) == 0
    assert assign_group("s", groups, DeviceRecord("b", hw="hw3")) == 1
    assert assign_group("s", groups, DeviceRecord("c", hw="hw4")) == 2


def test_a_later_group_takes_its_percentage_of_what_earlier_groups_left() -> None:
    groups = [
        GroupSpec.parse("hw:hw3 10%"),
        GroupSpec.parse("hw:hw3 50%"),
        GroupSpec.parse("hw:hw3"),
    ]
    assigned = [assign_group("wave", groups, d) for d in _fleet()]
    first = assigned.count(0)
    second = assigned.count(1)
    rest = assigned.count(2)
    assert first + second + rest == N  # every device in exactly one group
    assert _within_sigmas(first, N, 0.10), first
    # 50% of the ~90% that group 1 left, not 50% of the fleet
    assert _within_sigmas(second, N - first, 0.50), second
    assert rest == N - first - second


def test_a_percentage_applies_only_to_the_devices_the_filter_matches() -> None:
    groups = [GroupSpec.parse("hw:hw3 20%"), GroupSpec.parse("*")]
    fleet = _fleet(5000, "hw3") + _fleet(5000, "hw4")
    assigned = {d.id: assign_group("s", groups, d) for d in fleet}
    hw3_first = sum(1 for d in fleet if d.hw == "hw3" and assigned[d.id] == 0)
    assert all(assigned[d.id] == 1 for d in fleet if d.hw == "hw4")
    assert _within_sigmas(hw3_first, 5000, 0.20), hw3_first


# --- group specs ---------------------------------------------------------------------------------


def test_group_spec_parses_operator_text_and_options() -> None:
    spec = GroupSpec.parse("hw:hw3 tag:eap 10%", success_pct=90.0, auto_advance=False)
    assert spec.filter == parse_filter("hw:hw3 tag:eap")
    assert (spec.percent, spec.success_pct, spec.auto_advance) == (10.0, 90.0, False)
    assert spec.text == "hw:hw3 tag:eap 10%"
    assert GroupSpec.parse(spec.text, success_pct=90.0, auto_advance=False) == spec
    assert GroupSpec.parse("*").text == "*"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"percent": 0.0}, "percentage"),
        ({"percent": 100.1}, "percentage"),
        ({"percent": math.nan}, "percentage"),
        ({"success_pct": -1.0}, "success threshold"),
        ({"success_pct": 101.0}, "success threshold"),
        ({"error_pct": -0.5}, "error threshold"),
        ({"error_pct": 100.5}, "error threshold"),
        ({"error_count": 0}, "error threshold count"),
        ({"min_finished": 0}, "minimum sample"),
        ({"timeout_s": 0.0}, "timeout"),
        ({"timeout_s": -5.0}, "timeout"),
        ({"timeout_s": math.nan}, "timeout"),
    ],
)
def test_impossible_group_thresholds_raise_filter_error(
    options: dict[str, float], name: str
) -> None:
    with pytest.raises(FilterError, match=name):
        GroupSpec(**options)  # type: ignore[arg-type]


# --- judging a group -----------------------------------------------------------------------------


def _counts(**by_state: int) -> GroupCounts:
    return GroupCounts(dict(by_state))


def test_group_counts_add_failures_and_finished() -> None:
    c = _counts(confirmed=3, failed=2, timed_out=1, scheduled=4, installing=1)
    assert (c.total, c.confirmed, c.failures, c.finished) == (11, 3, 3, 6)
    assert GroupCounts().total == 0


def test_failures_below_the_minimum_sample_do_not_halt() -> None:
    spec = GroupSpec(error_pct=10.0, min_finished=5)
    verdict, _ = judge_group(spec, _counts(failed=4, scheduled=16))
    assert verdict == Verdict.WAIT
    verdict, why = judge_group(spec, _counts(failed=5, scheduled=15))
    assert verdict == Verdict.HALT
    assert "5 of 5" in why


def test_a_group_smaller_than_the_minimum_sample_is_judged_when_all_finished() -> None:
    spec = GroupSpec(error_pct=10.0, min_finished=5)
    assert judge_group(spec, _counts(failed=1, confirmed=1, scheduled=1))[0] == Verdict.WAIT
    assert judge_group(spec, _counts(failed=1, confirmed=2))[0] == Verdict.HALT


def test_error_percentage_halts_only_above_the_threshold() -> None:
    spec = GroupSpec(error_pct=10.0, min_finished=10, success_pct=100.0)
    at = judge_group(spec, _counts(failed=1, confirmed=9, scheduled=10))
    above = judge_group(spec, _counts(failed=2, confirmed=8, scheduled=10))
    assert at[0] == Verdict.WAIT
    assert above[0] == Verdict.HALT
    assert "20.0%" in above[1] and "10%" in above[1]


def test_timed_out_devices_count_as_failures() -> None:
    spec = GroupSpec(error_pct=10.0, min_finished=5)
    assert judge_group(spec, _counts(timed_out=2, confirmed=3, scheduled=5))[0] == Verdict.HALT


def test_error_count_halts_when_reached() -> None:
    spec = GroupSpec(error_pct=None, error_count=3, min_finished=1, success_pct=100.0)
    assert judge_group(spec, _counts(failed=2, confirmed=50, scheduled=48))[0] == Verdict.WAIT
    verdict, why = judge_group(spec, _counts(failed=3, confirmed=50, scheduled=47))
    assert verdict == Verdict.HALT
    assert "threshold of 3" in why


def test_no_error_threshold_never_halts() -> None:
    spec = GroupSpec(error_pct=None, error_count=None, min_finished=1, success_pct=100.0)
    assert judge_group(spec, _counts(failed=10))[0] == Verdict.WAIT


def test_a_group_passes_when_enough_devices_confirmed() -> None:
    spec = GroupSpec(success_pct=90.0, error_pct=50.0, min_finished=1)
    assert judge_group(spec, _counts(confirmed=8, installing=2))[0] == Verdict.WAIT
    verdict, why = judge_group(spec, _counts(confirmed=9, installing=1))
    assert verdict == Verdict.PASS
    assert "9 of 10" in why


def test_an_empty_group_passes() -> None:
    assert judge_group(GroupSpec(), GroupCounts())[0] == Verdict.PASS


def test_failures_accepted_at_resume_are_not_judged_again() -> None:
    spec = GroupSpec(error_pct=10.0, min_finished=5, success_pct=95.0)
    halted = _counts(failed=2, confirmed=3, scheduled=15)
    assert judge_group(spec, halted)[0] == Verdict.HALT
    # the operator resumed with these counts as the baseline: only what follows is judged
    baseline = {"failures_before": 2, "finished_before": 5}
    assert judge_group(spec, halted, **baseline)[0] == Verdict.WAIT
    later = _counts(failed=2, confirmed=8, scheduled=10)
    assert judge_group(spec, later, **baseline)[0] == Verdict.WAIT
    worse = _counts(failed=3, confirmed=7, scheduled=10)
    verdict, why = judge_group(spec, worse, **baseline)
    assert verdict == Verdict.HALT
    assert "1 of 5" in why


def test_after_resume_the_minimum_sample_counts_only_new_finishes() -> None:
    spec = GroupSpec(error_pct=10.0, min_finished=5)
    counts = _counts(failed=3, confirmed=2, scheduled=15)
    baseline = {"failures_before": 2, "finished_before": 4}
    # one new finish (a failure) since the resume: below the minimum sample of 5
    assert judge_group(spec, counts, **baseline)[0] == Verdict.WAIT
