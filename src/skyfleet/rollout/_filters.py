"""Device filters and rollout groups, written the way an operator types them.

A group is a space-separated list of terms, all of which must hold, and an optional percentage::

    tag:eap                      devices tagged ``eap``
    hw:hw3 10%                   10% of the hw3 devices no earlier group took
    hw:hw2,hw3 region=eu 1%      hw2 or hw3, with attribute region = eu
    kind:vehicle version<2025.40 vehicles whose installed version is older than 2025.40
    *                            every device (the rest)

Terms: ``hw:A[,B]``, ``tag:T[,U]`` (any of them), ``kind:K[,L]``, ``id:D[,E]``, ``KEY=V[,W]`` for a
free attribute, and ``version<V``, ``version<=V``, ``version>=V``, ``version>V``, ``version=V`` on
the installed version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from skyfleet.errors import FilterError
from skyfleet.rollout._versions import is_valid_version, same_line, version_key

__all__ = ["DeviceFilter", "DeviceRecord", "parse_filter", "parse_group_text"]

DEVICE_KINDS = ("vehicle", "home-battery", "site")

_TERM_RE = re.compile(r"^(hw|tag|kind|id):([^\s:=<>]+)$")
_ATTR_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=([^\s]+)$")
_VERSION_TERM_RE = re.compile(r"^version(<=|>=|<|>|=)(\S+)$")
_PERCENT_RE = re.compile(r"^(\d+(?:\.\d+)?)%$")


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What a filter can see of a device.

    ``hw`` is the hardware generation (``hw3``), ``kind`` one of vehicle, home-battery, site;
    ``installed_version`` is what the device last reported, or None.
    """

    id: str
    kind: str = "vehicle"
    hw: str = ""
    tags: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)
    installed_version: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """A conjunction of terms over device fields; the empty filter matches every device."""

    hw: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    attributes: tuple[tuple[str, frozenset[str]], ...] = ()
    versions: tuple[tuple[str, str], ...] = ()
    text: str = "*"

    def matches(self, device: DeviceRecord) -> bool:
        """Whether ``device`` satisfies every term.

        >>> f = parse_filter("hw:hw3 tag:eap")
        >>> f.matches(DeviceRecord("a", hw="hw3", tags=frozenset({"eap"})))
        True
        >>> f.matches(DeviceRecord("b", hw="hw4", tags=frozenset({"eap"})))
        False
        """
        if self.hw and device.hw not in self.hw:
            return False
        if self.tags and not (self.tags & device.tags):
            return False
        if self.kinds and device.kind not in self.kinds:
            return False
        if self.ids and device.id not in self.ids:
            return False
        for key, allowed in self.attributes:
            if str(device.attributes.get(key, "")) not in allowed:
                return False
        for op, bound in self.versions:
            if not _version_holds(device.installed_version, op, bound):
                return False
        return True


def _version_holds(installed: str | None, op: str, bound: str) -> bool:
    if installed is None or not is_valid_version(installed) or not same_line(installed, bound):
        return False
    a, b = version_key(installed), version_key(bound)
    return {
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
        "=": a == b,
    }[op]


def _values(raw: str, what: str) -> frozenset[str]:
    values = frozenset(v for v in raw.split(",") if v)
    if not values:
        raise FilterError(f"{what} needs at least one value, e.g. '{what}:hw3'")
    return values


def parse_filter(text: str) -> DeviceFilter:
    """Parse a filter (the terms of a group without the percentage).

    >>> parse_filter("hw:hw3,hw4 region=eu").attributes
    (('region', frozenset({'eu'})),)
    >>> parse_filter("color:red")
    Traceback (most recent call last):
    ...
    skyfleet.errors.FilterError: unknown filter term 'color:red': use hw:, tag:, kind:, id:, KEY=VALUE or version<V
    """
    terms = text.split()
    if not terms or terms == ["*"]:
        return DeviceFilter()
    hw: set[str] = set()
    tags: set[str] = set()
    kinds: set[str] = set()
    ids: set[str] = set()
    attributes: dict[str, frozenset[str]] = {}
    versions: list[tuple[str, str]] = []
    for term in terms:
        if term == "*":
            continue
        if match := _TERM_RE.match(term):
            key, values = match.group(1), _values(match.group(2), match.group(1))
            if key == "kind":
                unknown = sorted(values - set(DEVICE_KINDS))
                if unknown:
                    raise FilterError(
                        f"unknown device kind {unknown[0]!r} in {term!r}: use {', '.join(DEVICE_KINDS)}"
                    )
            {"hw": hw, "tag": tags, "kind": kinds, "id": ids}[key].update(values)
        elif match := _VERSION_TERM_RE.match(term):
            op, bound = match.group(1), match.group(2)
            if not is_valid_version(bound):
                raise FilterError(f"{term!r} compares with an unusable version {bound!r}")
            versions.append((op, bound))
        elif match := _ATTR_RE.match(term):
            attributes[match.group(1)] = _values(match.group(2), match.group(1))
        else:
            raise FilterError(
                f"unknown filter term {term!r}: use hw:, tag:, kind:, id:, KEY=VALUE or version<V"
            )
    return DeviceFilter(
        hw=frozenset(hw),
        tags=frozenset(tags),
        kinds=frozenset(kinds),
        ids=frozenset(ids),
        attributes=tuple(sorted(attributes.items())),
        versions=tuple(versions),
        text=" ".join(t for t in terms if t != "*") or "*",
    )


def parse_group_text(text: str) -> tuple[DeviceFilter, float]:
    """Split ``'hw:hw3 10%'`` into its filter and percentage (100 when none is given).

    >>> f, pct = parse_group_text("hw:hw3 10%")
    >>> f.text, pct
    ('hw:hw3', 10.0)
    >>> parse_group_text("hw:hw3 150%")
    Traceback (most recent call last):
    ...
    skyfleet.errors.FilterError: percentage 150% in 'hw:hw3 150%' must be above 0% and at most 100%
    """
    terms = text.split()
    if not terms:
        raise FilterError("a group needs filter terms, e.g. 'hw:hw3 10%'; use '*' for every device")
    percent = 100.0
    if terms[-1].endswith("%") and not _PERCENT_RE.match(terms[-1]):
        raise FilterError(f"cannot read the percentage {terms[-1]!r} in {text!r}: write e.g. 10%")
    if terms and (match := _PERCENT_RE.match(terms[-1])):
        percent = float(match.group(1))
        terms = terms[:-1]
        if not 0.0 < percent <= 100.0:
            raise FilterError(
                f"percentage {match.group(0)} in {text!r} must be above 0% and at most 100%"
            )
    elif any(t.endswith("%") for t in terms):
        raise FilterError(f"the percentage in {text!r} must be the last term, like 'hw:hw3 10%'")
    return parse_filter(" ".join(terms)), percent
