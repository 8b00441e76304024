"""Version ordering and the group filter grammar (skyfleet.rollout._versions, _filters)."""

from __future__ import annotations

import random

import pytest

from skyfleet.errors import FilterError, ReleaseError
from skyfleet.rollout import (
    DeviceFilter,
    DeviceRecord,
    is_valid_version,
    parse_filter,
    parse_group_text,
    same_line,
    version_key,
)

# --- versions ------------------------------------------------------------------------------------


def test_version_parts_compare_as_numbers_not_text() -> None:
    versions = ["2025.44.25.10", "2025.9", "2025.44.25.5", "2025.100", "2025.44.3"]
    ordered = sorted(versions, key=version_key)
    assert ordered == ["2025.9", "2025.44.3", "2025.44.25.5", "2025.44.25.10", "2025.100"]
    assert version_key("1.10") > version_key("1.9")
    assert version_key("1.02") == version_key("1.2")


def test_a_longer_version_with_the_same_start_is_newer() -> None:
    assert version_key("2025.44") < version_key("2025.44.0") < version_key("2025.44.0.1")


def test_numbers_sort_before_text_at_the_same_position() -> None:
    assert version_key("1.2.3") < version_key("1.2.a")
    assert sorted(["1.2.b", "1.2.10", "1.2.a", "1.2.2"], key=version_key) == [
        "1.2.2",
        "1.2.10",
        "1.2.a",
        "1.2.b",
    ]


def test_text_prefix_is_the_product_line_whatever_its_case_or_separator() -> None:
    assert same_line("fsd-14.2.1.25", "FSD-15.0")
    assert same_line("fsd-14.2", "fsd_14.3")
    assert same_line("fsd-14.2", "fsd14.3")
    assert same_line("2025.44.25.5", "2026.1")
    assert not same_line("fsd-14.2", "2025.44")
    assert not same_line("v1.2.0", "1.2.0")
    assert not same_line("fsd-14.2", "nav-14.2")


def test_versions_of_one_line_order_by_their_numbers_after_the_prefix() -> None:
    assert version_key("fsd-14.2") > version_key("fsd-14.1.9")
    assert version_key("fsd-9.0") < version_key("fsd-14.0")
    assert version_key("FSD-14.2") == version_key("fsd-14.2")


def test_usable_versions_are_1_to_128_safe_characters() -> None:
    for good in ("1", "2025.44.25.5", "fsd-14.2.1.25", "v1.2.0-rc1", "1.0+build~2", "a" * 128):
        assert is_valid_version(good), good
    for bad in ("", "a b", ".1", "-1", "1/2", "a" * 129, "é1"):
        assert not is_valid_version(bad), bad


def test_a_version_with_a_trailing_newline_is_unusable() -> None:
    # a newline is not one of [A-Za-z0-9._+~-]; it must not slip into stored versions
    assert not is_valid_version("1.0\n")
    assert not is_valid_version("fsd-14.2\n")
    with pytest.raises(ReleaseError):
        version_key("1.0\n")


@pytest.mark.parametrize("bad", ["", "a b", "../1", "x" * 129])
def test_version_key_of_an_unusable_version_says_what_is_allowed(bad: str) -> None:
    with pytest.raises(ReleaseError, match="1-128 characters"):
        version_key(bad)


# --- filters -------------------------------------------------------------------------------------


def _car(
    device_id: str = "car-1",
    *,
    kind: str = "vehicle",
    hw: str = "hw3",
    tags: tuple[str, ...] = (),
    installed: str | None = None,
    **attributes: str,
) -> DeviceRecord:
    return DeviceRecord(
        device_id,
        kind=kind,
        hw=hw,
        tags=frozenset(tags),
        attributes=attributes,
        installed_version=installed,
    )


@pytest.mark.parametrize("text", ["", "   ", "*", " * "])
def test_the_empty_filter_and_star_match_every_device(text: str) -> None:
    f = parse_filter(text)
    assert f == DeviceFilter()
    assert f.text == "*"
    for device in (_car(), _car("b", kind="site", hw="x"), _car("c", installed="fsd-1")):
        assert f.matches(device)


def test_hw_term_matches_any_listed_generation() -> None:
    f = parse_filter("hw:hw3,hw4")
    assert f.matches(_car(hw="hw3"))
    assert f.matches(_car(hw="hw4"))
    assert not f.matches(_car(hw="hw2"))


def test_tag_term_matches_a_device_with_any_listed_tag() -> None:
    f = parse_filter("tag:eap,beta")
    assert f.matches(_car(tags=("beta",)))
    assert f.matches(_car(tags=("eap", "other")))
    assert not f.matches(_car(tags=("other",)))
    assert not f.matches(_car())


def test_kind_and_id_terms_match_listed_values() -> None:
    f = parse_filter("kind:site,home-battery")
    assert f.matches(_car(kind="site"))
    assert f.matches(_car(kind="home-battery"))
    assert not f.matches(_car(kind="vehicle"))
    g = parse_filter("id:car-1,car-7")
    assert g.matches(_car("car-7"))
    assert not g.matches(_car("car-2"))


def test_attribute_term_matches_listed_values_and_not_missing_attributes() -> None:
    f = parse_filter("region=eu,uk")
    assert f.matches(_car(region="uk"))
    assert not f.matches(_car(region="us"))
    assert not f.matches(_car())
    assert f.attributes == (("region", frozenset({"eu", "uk"})),)


def test_all_terms_must_hold() -> None:
    f = parse_filter("hw:hw3 tag:eap region=eu kind:vehicle")
    assert f.matches(_car(hw="hw3", tags=("eap",), region="eu"))
    assert not f.matches(_car(hw="hw4", tags=("eap",), region="eu"))
    assert not f.matches(_car(hw="hw3", region="eu"))
    assert not f.matches(_car(hw="hw3", tags=("eap",), region="us"))
    assert not f.matches(_car(kind="site", hw="hw3", tags=("eap",), region="eu"))


@pytest.mark.parametrize(
    ("op", "below", "equal", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        ("=", False, True, False),
        (">=", False, True, True),
        (">", False, False, True),
    ],
)
def test_version_terms_compare_the_installed_version_numerically(
    op: str, below: bool, equal: bool, above: bool
) -> None:
    f = parse_filter(f"version{op}2025.40")
    assert f.matches(_car(installed="2025.9.7")) is below
    assert f.matches(_car(installed="2025.40")) is equal
    assert f.matches(_car(installed="2025.100")) is above


def test_version_terms_never_match_another_product_line_or_an_unknown_version() -> None:
    for op in ("<", "<=", "=", ">=", ">"):
        f = parse_filter(f"version{op}2025.40")
        assert not f.matches(_car(installed="fsd-14.2"))
        assert not f.matches(_car(installed=None))
        assert not f.matches(_car(installed="not a version"))


def test_two_version_terms_make_a_range() -> None:
    f = parse_filter("version>=2025.20 version<2025.40")
    assert [
        f.matches(_car(installed=v)) for v in ("2025.19", "2025.20", "2025.39.9", "2025.40")
    ] == [
        False,
        True,
        True,
        False,
    ]


def test_filter_text_keeps_the_terms_and_round_trips() -> None:
    text = "hw:hw3,hw4 tag:eap region=eu version<2025.40"
    f = parse_filter(text)
    assert f.text == text
    assert parse_filter(f.text) == f
    assert parse_filter("hw:hw3 *").text == "hw:hw3"


def test_filter_decisions_agree_with_a_direct_reading_of_the_device() -> None:
    rng = random.Random(7)
    f = parse_filter("hw:hw3,hw4 tag:eap region=eu")
    for i in range(500):
        device = _car(
            f"d{i}",
            hw=rng.choice(["hw2", "hw3", "hw4"]),
            tags=tuple(rng.sample(["eap", "beta", "fleet"], rng.randint(0, 2))),
            region=rng.choice(["eu", "us"]),
        )
        expected = (
            device.hw in {"hw3", "hw4"}
            and "eap" in device.tags
            and device.attributes["region"] == "eu"
        )
        assert f.matches(device) is expected, device


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("color:red", ["'color:red'", "hw:", "tag:"]),
        ("hw3", ["'hw3'", "hw:"]),
        ("tag:", ["'tag:'"]),
        ("region=", ["'region='"]),
        ("=eu", ["'=eu'"]),
        ("hw:hw3 tag:a:b", ["'tag:a:b'"]),
        ("version<", ["'version<'"]),
        ("version~1.0", ["'version~1.0'"]),
        ("hw:,", ["hw", "at least one value"]),
        ("tag:,,", ["tag", "at least one value"]),
        ("kind:car", ["'car'", "vehicle", "home-battery", "site"]),
        ("kind:vehicle,boat", ["'boat'", "vehicle"]),
        ("version<.5", ["'.5'", "unusable version"]),
        ("version>=%%", ["'%%'", "unusable version"]),
        ("version<=", ["'='", "unusable version"]),
    ],
)
def test_malformed_filters_raise_filter_error_naming_the_problem(
    text: str, names: list[str]
) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    message = str(caught.value)
    for name in names:
        assert name in message, message


# --- groups' text: filter plus percentage --------------------------------------------------------


def test_group_text_splits_filter_and_percentage() -> None:
    f, pct = parse_group_text("hw:hw3 tag:eap 12.5%")
    assert (f.text, pct) == ("hw:hw3 tag:eap", 12.5)
    assert f == parse_filter("hw:hw3 tag:eap")


def test_group_text_without_percentage_takes_every_matching_device() -> None:
    assert parse_group_text("hw:hw3")[1] == 100.0
    f, pct = parse_group_text("5%")
    assert (f, pct) == (DeviceFilter(), 5.0)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("hw:hw3 0%", ["0%", "above 0%"]),
        ("hw:hw3 0.0%", ["0.0%", "above 0%"]),
        ("hw:hw3 100.5%", ["100.5%", "at most 100%"]),
        ("hw:hw3 150%", ["150%", "at most 100%"]),
        ("10% hw:hw3", ["'10% hw:hw3'", "last term"]),
        ("hw:hw3 10% tag:eap", ["last term"]),
        ("hw:hw3 -5%", ["'hw:hw3 -5%'"]),
        ("hw:hw3 ten%", ["'hw:hw3 ten%'"]),
        ("hw:hw3 10% 20%", ["'10%'"]),
        ("color:red 10%", ["'color:red'"]),
    ],
)
def test_malformed_group_texts_raise_filter_error_naming_the_problem(
    text: str, names: list[str]
) -> None:
    with pytest.raises(FilterError) as caught:
        parse_group_text(text)
    message = str(caught.value)
    for name in names:
        assert name in message, message


def test_filter_error_is_a_value_error_for_callers_that_catch_those() -> None:
    with pytest.raises(ValueError, match="unknown filter term"):
        parse_filter("color:red")
