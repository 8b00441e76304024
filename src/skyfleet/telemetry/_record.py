"""One telemetry sample, and the checks a payload passes before it becomes one."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skyfleet.errors import DeviceError
from skyfleet.rollout import is_valid_version

__all__ = [
    "FIELDS",
    "LINKS",
    "MAX_FUTURE_S",
    "MAX_SAMPLES",
    "MIN_TS",
    "Telemetry",
    "parse_payload",
    "parse_sample",
]

#: How a device reaches the cloud right now.
LINKS = ("cellular", "satellite", "wired", "none")
_LINKS = frozenset(LINKS)
#: Samples older than 2000-01-01 come from a clock that was never set.
MIN_TS = 946_684_800.0
#: How far ahead of the server's clock a device's clock may run (seconds). A sample from further
#: ahead would hold the latest state until that time, so it is refused.
MAX_FUTURE_S = 300.0
#: At most this many samples in one message (a device sending what it kept during an outage).
MAX_SAMPLES = 1000
_MAX_STATE_CHARS = 64
#: The fields of a sample besides ``ts``, in :class:`Telemetry`'s order: what a payload may hold,
#: what the store keeps (one column each) and what the API answers.
FIELDS = (
    "lat_deg",
    "lon_deg",
    "link",
    "rtt_ms",
    "soc_pct",
    "version",
    "state",
    "freq_hz",
    "power_w",
)
#: Bus frequency (Hz) and device power (W) a sample may report: wider than any grid or island
#: runs at, so that a device in trouble can still say so, and no wider.
_MAX_FREQ_HZ = 100.0
_MAX_POWER_W = 1e6


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What a device reports about itself at one time.

    ``ts``: the device's time of the sample, UNIX seconds. ``lat_deg``, ``lon_deg``: WGS84
    position, degrees, north and east positive (both or neither). ``link``: one of
    :data:`LINKS`. ``rtt_ms``: round-trip time to the cloud, milliseconds. ``soc_pct``: state of
    charge, percent. ``version``: the software version installed. ``state``: free text the
    device chooses (``driving``, ``charging``...), at most 64 characters. ``freq_hz``: the
    frequency of the bus (or house) the device measures, hertz, 0-100. ``power_w``: the device's
    own power, watts, positive = discharging into the house or bus, negative = charging; at most
    1 MW either way. None: not reported.
    """

    ts: float
    lat_deg: float | None = None
    lon_deg: float | None = None
    link: str | None = None
    rtt_ms: float | None = None
    soc_pct: float | None = None
    version: str | None = None
    state: str | None = None
    freq_hz: float | None = None
    power_w: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The sample as a payload: ``ts`` and the fields reported.

        >>> Telemetry(1767225600.0, link="satellite", rtt_ms=41.5).to_json()
        {'ts': 1767225600.0, 'link': 'satellite', 'rtt_ms': 41.5}
        """
        body: dict[str, Any] = {"ts": self.ts}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not float and type(value) is not int:  # bool is an int: refused too
        raise DeviceError(f"telemetry {name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not (math.isfinite(number) and low <= number <= high):
        raise DeviceError(f"telemetry {name} {value!r} is out of range [{low:g}, {high:g}]")
    return number


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or type(value) is str:
        return value
    raise DeviceError(f"telemetry {name} must be a string, not {type(value).__name__}")


def parse_sample(body: Any, *, now_s: float) -> Telemetry:
    """A sample from a decoded JSON object, checked; :class:`DeviceError` says what is wrong.

    ``ts`` is required, from 2000-01-01 to at most :data:`MAX_FUTURE_S` after ``now_s`` (the
    server's time, UNIX seconds); every other field may be left out or null. Numbers must be
    finite and in range: latitude ±90, longitude ±180, state of charge 0-100 %, RTT >= 0 ms,
    bus frequency 0-100 Hz, power ±1e6 W (positive = discharging into the bus).
    Fields the server does not know are ignored, so that newer devices keep reporting to older
    servers.

    >>> parse_sample({"ts": 1767225600, "soc_pct": 80, "link": "wired"}, now_s=1767225600.0)
    Telemetry(ts=1767225600.0, lat_deg=None, lon_deg=None, link='wired', rtt_ms=None, soc_pct=80.0, version=None, state=None, freq_hz=None, power_w=None)
    >>> home = {"ts": 1767225600, "soc_pct": 64.5, "freq_hz": 50.02, "power_w": -3300}
    >>> parse_sample(home, now_s=1767225600.0).power_w  # charging at 3.3 kW
    -3300.0
    >>> parse_sample({"ts": 1767225600, "soc_pct": 101}, now_s=1767225600.0)
    Traceback (most recent call last):
    ...
    skyfleet.errors.DeviceError: telemetry soc_pct 101 is out of range [0, 100]
    """
    if not isinstance(body, dict):
        raise DeviceError(f"a telemetry sample must be a JSON object, not {type(body).__name__}")
    ts = _number(body, "ts", MIN_TS, now_s + MAX_FUTURE_S)
    if ts is None:
        raise DeviceError("telemetry needs ts: the device's time of the sample, UNIX seconds")
    lat = _number(body, "lat_deg", -90.0, 90.0)
    lon = _number(body, "lon_deg", -180.0, 180.0)
    if (lat is None) != (lon is None):
        raise DeviceError("telemetry lat_deg and lon_deg go together: send both or neither")
    link = _text(body, "link")
    if link is not None and link not in _LINKS:
        raise DeviceError(f"telemetry link {link!r} is unknown: use {', '.join(LINKS)}")
    version = _text(body, "version")
    if version is not None and not is_valid_version(version):
        raise DeviceError(f"telemetry version {version[:140]!r} is not a usable version")
    state = _text(body, "state")
    if state is not None and (
        len(state) > _MAX_STATE_CHARS or not state.isprintable() or "\x00" in state
    ):
        raise DeviceError(
            f"telemetry state must be at most {_MAX_STATE_CHARS} printable characters"
        )
    return Telemetry(
        ts,
        lat,
        lon,
        link,
        _number(body, "rtt_ms", 0.0, math.inf),
        _number(body, "soc_pct", 0.0, 100.0),
        version,
        state,
        freq_hz=_number(body, "freq_hz", 0.0, _MAX_FREQ_HZ),
        power_w=_number(body, "power_w", -_MAX_POWER_W, _MAX_POWER_W),
    )


def _refuse_constant(name: str) -> Any:
    raise DeviceError(f"telemetry must not contain {name}: numbers must be finite")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # one, not one per message


def parse_payload(payload: bytes | bytearray | str, *, now_s: float) -> list[Telemetry]:
    """The samples in one message: a JSON object, or a list of up to :data:`MAX_SAMPLES`
    (UTF-8).

    :class:`DeviceError` for anything that is not (text that is not JSON, NaN, a field out of
    range: see :func:`parse_sample`); a list is taken whole or not at all.

    >>> [s.ts for s in parse_payload(b'[{"ts": 1767225600}, {"ts": 1767225610}]', now_s=1767225610.0)]
    [1767225600.0, 1767225610.0]
    """
    try:
        text = payload if isinstance(payload, str) else payload.decode()
        body = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        if isinstance(exc, DeviceError):
            raise
        raise DeviceError(f"telemetry is not JSON: {str(exc)[:120]}") from None
    if isinstance(body, list):
        if not 1 <= len(body) <= MAX_SAMPLES:
            raise DeviceError(f"a telemetry list holds 1 to {MAX_SAMPLES} samples, not {len(body)}")
        return [parse_sample(item, now_s=now_s) for item in body]
    return [parse_sample(body, now_s=now_s)]
