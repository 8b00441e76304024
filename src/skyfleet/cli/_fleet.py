"""``skyfleet fleet status | telemetry``: what the fleet reports, from the server's operator API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from skyfleet.cli._client import DEFAULT_SERVER, Api
from skyfleet.cli._client import JsonOption as _Json
from skyfleet.cli._client import ServerOption as _Server
from skyfleet.cli._client import TokenOption as _Token
from skyfleet.cli._common import out, parse_duration, print_json
from skyfleet.errors import InputError

__all__ = ["fleet_app", "for_humans"]

fleet_app = typer.Typer(
    help="Remote monitoring: devices by state, link and version; silent devices; telemetry.",
    no_args_is_help=True,
)


def for_humans(seconds: float) -> str:
    """A duration as people say it, to the two largest units.

    >>> for_humans(42), for_humans(754), for_humans(93_784)
    ('42s', '12m 34s', '1d 2h')
    """
    left = max(0, round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _counts_table(title: str, counts: dict[str, int], extra: dict[str, Any] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(title.split(" ")[-1])
    table.add_column("devices", justify="right")
    if extra is not None:
        table.add_column("mean RTT", justify="right")
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        row = [key, f"{n:,}"]
        if extra is not None:
            rtt = extra.get(key)
            row.append("-" if rtt is None else f"{rtt:.1f} ms")
        table.add_row(*row)
    return table


@fleet_app.command("status")
def status(
    silent_after: Annotated[
        str,
        typer.Option(help="Flag devices not heard from for this long, e.g. 10m, 1h, 90s."),
    ] = "10m",
    limit: Annotated[
        int, typer.Option(min=0, max=10_000, help="List at most this many silent devices.")
    ] = 20,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """The fleet at a glance: online, silent and never-seen devices, and the silent ones.

    Devices by kind, latest link (with the mean RTT), installed version and rollout action;
    the silent devices, longest silent first; what telemetry ingest counted.

    Example: skyfleet fleet status --silent-after 30m --json
    """
    silent_s = parse_duration(silent_after, "--silent-after")
    if silent_s <= 0:
        raise InputError(f"--silent-after {silent_after!r} must be longer than 0 s")
    with Api(server, token) as api:
        answer = api.get("/fleet/status", silent_after_s=silent_s, limit=limit)
    if as_json:
        print_json(answer)
        return
    state = answer["by_state"]
    out.print(
        f"[bold]{answer['devices']:,} devices[/]: {state['online']:,} online, "
        f"{state['silent']:,} silent for more than {for_humans(silent_s)}, "
        f"{state['never_seen']:,} never seen"
    )
    out.print(_counts_table("by kind", answer["by_kind"]))
    out.print(_counts_table("by link", answer["by_link"], answer["rtt_ms_mean_by_link"]))
    out.print(_counts_table("by version", answer["by_version"]))
    if answer["by_action_state"]:
        out.print(_counts_table("rollout actions by state", answer["by_action_state"]))
    silent = answer["silent"]
    if silent:
        shown = f" (the first {len(silent)})" if len(silent) < state["silent"] else ""
        table = Table(title=f"silent devices{shown}", title_justify="left")
        for col in ("id", "kind", "link", "silent for", "SoC", "version"):
            table.add_column(col, justify="right" if col == "SoC" else "left")
        for d in silent:
            table.add_row(
                d["id"],
                d["kind"],
                d["link"] or "-",
                f"[red]{for_humans(d['silent_s'])}[/]",
                "-" if d["soc_pct"] is None else f"{d['soc_pct']:.0f} %",
                d["version"] or "-",
            )
        out.print(table)
    counts = answer["telemetry"]
    out.print(
        f"telemetry: {counts['samples']:,} samples, {counts['stored']:,} stored, "
        f"{counts['duplicate']:,} duplicates, {counts['stale']:,} out of order"
    )
    out.print(
        f"refused: {counts['invalid_messages']:,} invalid messages, "
        f"{counts['unknown_device']:,} samples of unregistered devices"
    )


@fleet_app.command("telemetry")
def telemetry(
    device_id: Annotated[str, typer.Argument(help="The device's id.")],
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, help="At most this many samples, newest first.")
    ] = 20,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """A device's telemetry, newest first: time, link, RTT, state of charge, position, and the
    power (W, + = discharging) and bus frequency (Hz) of devices that report them.

    Example: skyfleet fleet telemetry car-1 --limit 60 --json
    """
    with Api(server, token) as api:
        answer = api.get(f"/devices/{quote(device_id, safe='')}/telemetry", limit=limit)
    if as_json:
        print_json(answer)
        return
    history = answer["history"]
    latest = answer["latest"] or {}
    version = f", version {latest['version']}" if latest.get("version") else ""
    table = Table(
        title=f"{device_id}: {len(history)} samples, newest first{version}", title_justify="left"
    )
    # power and frequency: home devices report them, vehicles do not (no empty columns for them)
    power = any(s.get("power_w") is not None for s in history)
    freq = any(s.get("freq_hz") is not None for s in history)
    numeric = {"RTT ms", "SoC %", "power W", "freq Hz"}
    columns = ["device time (UTC)", "link", "RTT ms", "SoC %"]
    if power:
        columns.append("power W")
    if freq:
        columns.append("freq Hz")
    columns += ["lat,lon", "state"]
    for col in columns:
        table.add_column(col, justify="right" if col in numeric else "left")
    for s in history:
        row = [
            datetime.fromtimestamp(round(s["ts"]), UTC).strftime("%Y-%m-%d %H:%M:%S"),
            s["link"] or "-",
            "-" if s["rtt_ms"] is None else f"{s['rtt_ms']:.1f}",
            "-" if s["soc_pct"] is None else f"{s['soc_pct']:.0f}",
        ]
        if power:
            row.append("-" if s.get("power_w") is None else f"{s['power_w']:.0f}")
        if freq:
            row.append("-" if s.get("freq_hz") is None else f"{s['freq_hz']:.2f}")
        row.append("-" if s["lat_deg"] is None else f"{s['lat_deg']:.3f},{s['lon_deg']:.3f}")
        row.append(s["state"] or "-")
        table.add_row(*row)
    out.print(table)
