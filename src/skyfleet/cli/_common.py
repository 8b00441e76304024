"""Shared CLI pieces: consoles, parsers for durations and times, JSON output, progress bars."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from skyfleet.errors import InputError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|min|s|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``2h``, ``90m``, ``1h30m``, ``15s``, ``100ms``, ``1d`` or plain seconds.

    >>> parse_duration("1h30m"), parse_duration("100ms"), parse_duration("45")
    (5400.0, 0.1, 45.0)
    """
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            break
        total += float(m.group(1)) * _UNITS[m.group(2) or "s"]
        pos = m.end()
    if not s or pos != len(s):
        raise InputError(f"cannot read {what} {text!r}: write e.g. 2h, 90m, 1h30m, 15s or 100ms")
    return total


def parse_time(text: str | None) -> float:
    """UTC unix seconds for an ISO 8601 time (naive means UTC); ``None`` or ``now`` is the clock."""
    if text is None or text.strip().lower() == "now":
        return float(int(datetime.now(UTC).timestamp()))
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"cannot read start time {text!r}: write ISO 8601, e.g. 2026-01-01T00:00:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(t_unix_s: float) -> str:
    """ISO 8601 UTC with a Z."""
    return datetime.fromtimestamp(t_unix_s, UTC).isoformat().replace("+00:00", "Z")


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")


@contextmanager
def progress_bar(total: int, label: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr; yields a callback taking the number of steps done."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def fail(message: str) -> typer.Exit:
    """Print one error line on stderr; return the exit to raise (status 2)."""
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(2)
