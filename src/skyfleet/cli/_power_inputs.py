"""``skyfleet powershare`` inputs: powers, times of day, home batteries, device files, output
folders. Each bad value is one line (an InputError) before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from skyfleet.errors import InputError, PowershareError
from skyfleet.powershare import merge_catalogue

_POWER = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(kw|w|mw)?\s*$", re.IGNORECASE)


def parse_power_w(text: str, what: str) -> float:
    """Watts in ``8kW``, ``8000W``, ``8000`` (W) or ``0``."""
    m = _POWER.match(text)
    if not m:
        raise InputError(f"cannot read {what} {text!r}: write e.g. 8kW, 8000W or 0")
    scale = {"kw": 1e3, "mw": 1e6, "w": 1.0, None: 1.0}[(m.group(2) or "").lower() or None]
    return float(m.group(1)) * scale


def parse_clock_s(text: str) -> float:
    """Seconds after midnight in ``HH:MM``."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InputError(
            f"cannot read --start {text!r}: write the time of day as HH:MM, e.g. 18:30"
        )
    return int(m.group(1)) * 3600.0 + int(m.group(2)) * 60.0


def parse_home(text: str) -> tuple[str, float]:
    name, _, soc = text.partition(":")
    if not soc:
        return name.strip(), 100.0
    try:
        return name.strip(), float(soc)
    except ValueError:
        raise InputError(
            f"cannot read --home-battery {text!r}: write NAME or NAME:SOC, e.g. gen2:80"
        ) from None


def read_devices(path: Path | None) -> dict[str, Any] | None:
    """The packaged catalogue merged with a user's device file (JSON), or None without one."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(
            f"--devices {str(path)!r}: cannot read it ({exc.strerror or exc})"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--devices {str(path)!r} is not JSON: {exc}") from None
    try:
        return merge_catalogue(data)
    except PowershareError as exc:
        raise InputError(f"--devices {str(path)!r}: {exc}") from None


DevicesOption = Annotated[
    Path | None,
    typer.Option(
        "--devices",
        help='Your own vehicles and home batteries, added to the catalogue: JSON {"vehicles": '
        '{NAME: {...}}, "home_batteries": {NAME: {...}}} with the fields of the packaged rows '
        '(kW, kWh, %, an optional "trip" object).',
    ),
]
