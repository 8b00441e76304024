"""Link schedules of simulated devices: which link holds when, and what it can carry."""

from __future__ import annotations

import numpy as np
import pytest

from skyfleet.errors import InputError
from skyfleet.sim import DOWNLOAD_BIT_PER_S, LinkSchedule


def test_cellular_is_preferred_over_satellite_and_wired_over_both() -> None:
    s = LinkSchedule.from_masks(
        100.0,
        10.0,
        cellular=[True, True, False, False],
        satellite=[True, False, True, False],
        wired=[False, True, False, False],
    )
    assert s.kind_at(np.array([100.0, 110.0, 120.0, 130.0])).tolist() == [
        "cellular",
        "wired",
        "satellite",
        "none",
    ]
    assert s.share_pct() == {"none": 25.0, "cellular": 25.0, "satellite": 25.0, "wired": 25.0}


def test_scalar_and_array_times_agree_and_ends_extend() -> None:
    s = LinkSchedule.from_masks(0.0, 60.0, satellite=[False, True])
    times = np.array([-500.0, 0.0, 59.9, 60.0, 10_000.0])
    assert s.connected(times).tolist() == [s.connected(float(t)) for t in times]
    assert s.connected(times).tolist() == [False, False, False, True, True]
    assert isinstance(s.kind_at(30.0), str)


def test_bits_between_integrates_rates_over_partial_steps() -> None:
    s = LinkSchedule.from_masks(0.0, 10.0, cellular=[True, False, True])
    cell = DOWNLOAD_BIT_PER_S["cellular"]
    # 5 s of the first step, none in the second, 2.5 s of the third.
    assert s.bits_between(5.0, 22.5) == pytest.approx(7.5 * cell)
    # Past the end the last kind (cellular) holds.
    assert s.bits_between(30.0, 40.0) == pytest.approx(10.0 * cell)
    assert s.bits_between(22.5, 5.0) == 0.0
    # Split intervals add up.
    assert s.bits_between(3.0, 11.0) + s.bits_between(11.0, 27.0) == pytest.approx(
        s.bits_between(3.0, 27.0)
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: LinkSchedule.from_masks(0.0, 0.0, cellular=[True]),
        lambda: LinkSchedule.from_masks(0.0, 1.0),
        lambda: LinkSchedule.from_masks(0.0, 1.0, cellular=[True], satellite=[True, False]),
        lambda: LinkSchedule.always("carrier-pigeon"),
    ],
)
def test_bad_schedules_are_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError):
        build()


def test_schedule_from_the_link_model_follows_the_satellite_gaps(s1) -> None:  # type: ignore[no-untyped-def]
    from skyfleet.links import link_series, resolve_place

    # Starlink shell 1 (53 degrees) leaves gaps at 61.5 N; cellular covers the first ten minutes.
    series = link_series(s1, resolve_place("61.5,10.0"), resolve_place("aws:eu-north-1"),
                         1_767_225_600.0, 3600.0, 30.0)  # fmt: skip
    has_path = np.isfinite(series.rtt_ms)
    assert 0 < has_path.sum() < has_path.size
    cellular = np.arange(has_path.size) < 20
    s = LinkSchedule.from_link_series(series, cellular)
    t = series.start_unix_s + series.t_s
    assert s.connected(t).tolist() == (has_path | cellular).tolist()
    kinds = s.kind_at(t)
    assert (kinds[cellular] == "cellular").all()
    assert (kinds[~cellular & has_path] == "satellite").all()


def test_a_time_that_is_not_a_number_has_no_link() -> None:
    s = LinkSchedule.always("satellite")
    assert s.connected(float("nan")) is False and s.kind_at(float("nan")) == "none"
    assert s.connected(np.array([0.0, np.nan])).tolist() == [True, False]
    assert s.bits_between(0.0, float("nan")) == 0.0


def test_bits_between_takes_arrays_like_scalars() -> None:
    s = LinkSchedule.from_masks(0.0, 10.0, cellular=[True, False, True], satellite=[0, 1, 0])
    t0, t1 = np.array([0.0, 5.0, 12.0]), np.array([10.0, 25.0, 40.0])
    assert s.bits_between(t0, t1).tolist() == [
        s.bits_between(a, b) for a, b in zip(t0, t1, strict=True)
    ]


def test_codes_must_be_whole_numbers_and_the_start_a_time() -> None:
    with pytest.raises(InputError):
        LinkSchedule(0.0, 1.0, np.array([0.5, 1.0]))
    with pytest.raises(InputError):
        LinkSchedule(float("inf"), 1.0, np.array([1], dtype=np.int8))
