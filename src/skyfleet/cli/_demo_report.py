"""What the demo shows: the live summary (a rich panel, or a line now and then where stdout is
not a terminal) and the final report (rich tables, or one JSON object), from the server's own
operator API and what the simulated devices did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from skyfleet.cli._common import iso
from skyfleet.sim import Scenario
from skyfleet.sim._homes import ISLAND_STATES

#: Where the outage figures of the scenario come from (not from the run).
PRECOMPUTED = "simulated by skyfleet.powershare before the run"

__all__ = [
    "Watch",
    "group_rows",
    "link_shares",
    "live_panel",
    "outage_observed",
    "outage_view",
    "report_tables",
    "status_line",
]


@dataclass
class Watch:
    """What the demo knows now: the server's rollout and fleet views, and when the judge halted
    the rollout (simulated UNIX s, and why)."""

    url: str
    rate: float
    rollout: dict[str, Any] = field(default_factory=dict)
    fleet: dict[str, Any] = field(default_factory=dict)
    halted_at_s: float | None = None
    halted_reason: str | None = None
    halted_group: int | None = None
    halted_by: str | None = None
    monitor_errors: int = 0


def _hms(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def outage_view(scenario: Scenario, now_s: float) -> dict[str, Any]:
    """The grid outage: where and when, whether it is on at ``now_s``, and the Powershare
    homes in it (islanded, kept powered), with the scenario's own summary."""
    o = scenario.outage
    in_outage = [h for h in scenario.homes if h.in_outage]
    summary = scenario.outage_summary.as_dict()
    view: dict[str, Any] = {
        "region": o.region,
        "lat_deg": o.lat_deg,
        "lon_deg": o.lon_deg,
        "radius_km": o.radius_km,
        "start": iso(o.start_s),
        "end": iso(o.end_s),
        "active": o.start_s <= now_s < o.end_s,
        "homes": len(scenario.homes),
        "homes_in_outage": len(in_outage),
        "home_devices": sum(len(h.devices) for h in scenario.homes),
        "homes_powered_through": sum(1 for h in in_outage if h.powered_through),
        "summary": summary,
        "source": PRECOMPUTED,
    }
    return view


def outage_observed(
    histories: Mapping[str, list[dict[str, Any]]], start_s: float, end_s: float
) -> dict[str, Any]:
    """What the server stored from the outage homes' devices (``histories``: each device's
    telemetry samples as GET /devices/{id}/telemetry returns them) during ``[start_s, end_s)``:
    how many devices reported an island state (forming, following, connected) and how many a
    trip, their lowest ``soc_pct`` and the lowest and highest ``freq_hz`` on the island."""
    island = ISLAND_STATES - {"tripped"}
    devices = tripped = samples = 0
    socs: list[float] = []
    freqs: list[float] = []
    for history in histories.values():
        during = [x for x in history if start_s <= float(x["ts"]) < end_s]
        on_island = [x for x in during if x.get("state") in island]
        devices += bool(on_island)
        tripped += any(x.get("state") == "tripped" for x in during)
        samples += len(on_island)
        socs += [float(x["soc_pct"]) for x in on_island if x.get("soc_pct") is not None]
        freqs += [float(x["freq_hz"]) for x in on_island if x.get("freq_hz") is not None]
    return {
        "source": "the server's telemetry API, after the run",
        "devices": len(histories),
        "devices_reported_island": devices,
        "devices_reported_tripped": tripped,
        "island_samples": samples,
        "lowest_soc_pct": min(socs) if socs else None,
        "min_freq_hz": min(freqs) if freqs else None,
        "max_freq_hz": max(freqs) if freqs else None,
    }


def link_shares(
    scenario: Scenario, t0_s: float, t1_s: float, step_s: float = 60.0
) -> dict[str, float]:
    """Share of vehicle-time (%) with each link kind from ``t0_s`` to ``t1_s``."""
    times = np.arange(t0_s, max(t1_s, t0_s + step_s), step_s)
    counts: dict[str, int] = {}
    for vehicle in scenario.vehicles:
        kinds, n = np.unique(vehicle.link.kind_at(times), return_counts=True)
        for k, c in zip(kinds.tolist(), n.tolist(), strict=True):
            counts[str(k)] = counts.get(str(k), 0) + int(c)
    total = sum(counts.values()) or 1
    return {
        k: round(100.0 * counts.get(k, 0) / total, 2)
        for k in ("none", "cellular", "satellite", "wired")
    }


def group_rows(rollout: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per group of the rollout: the figures the report and the panel show."""
    rows = []
    for g in rollout.get("groups", []):
        counts = g["counts"]
        reached = g["total"] - counts.get("scheduled", 0)
        rows.append(
            {
                "index": g["index"],
                "group": g["group"],
                "started": g["started"],
                "started_at": g["started_at"],
                "total": g["total"],
                "reached": reached,
                "confirmed": counts.get("confirmed", 0),
                "failed": counts.get("failed", 0) + counts.get("timed_out", 0),
                "in_progress": reached
                - counts.get("confirmed", 0)
                - counts.get("failed", 0)
                - counts.get("timed_out", 0)
                - counts.get("cancelled", 0),
                "error_rate_pct": round(g["error_rate_pct"], 1),
                "success_rate_pct": round(g["success_rate_pct"], 1),
                "waiting_for_link": g.get("waiting_for_link", 0),
                "counts": counts,
            }
        )
    return rows


def _state(row: Mapping[str, Any], rollout: Mapping[str, Any], halted_group: int | None) -> str:
    if not row["started"]:
        return "[dim]waiting[/]"
    if halted_group == row["index"]:
        return "[bold red]halted[/]"
    if row["total"] and row["confirmed"] + row["failed"] >= row["total"]:
        return "[green]done[/]"
    if rollout.get("status") == "halted":
        return "[yellow]stopped[/]"
    return "[cyan]rolling[/]"


def _groups_table(watch: Watch) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for col in ("#", "wave", "state", "done/total", "confirmed", "errors", "no link"):
        table.add_column(col, justify="left" if col in ("wave", "state") else "right", no_wrap=True)
    for row in group_rows(watch.rollout):
        table.add_row(
            str(row["index"]),
            row["group"],
            _state(row, watch.rollout, watch.halted_group),
            f"{row['confirmed'] + row['failed']}/{row['total']}",
            f"{row['success_rate_pct']:.0f}%",
            f"{row['failed']}" + (f" ({row['error_rate_pct']:.0f}%)" if row["failed"] else ""),
            str(row["waiting_for_link"] or ""),
        )
    return table


def live_panel(
    watch: Watch,
    scenario: Scenario,
    now_s: float,
    links: Mapping[str, int],
    requests_per_s: float,
    errors: int,
    lag_s: float = 0.0,
    on_time_pct: float | None = None,
) -> RenderableType:
    """The live summary: clock and rate, links, rollout waves, the halt, the outage, load."""
    end_s = scenario.start_s + scenario.duration_s
    phase = "" if now_s < end_s else " [dim](past the scenario's end: the fleet keeps polling)[/]"
    lines: list[RenderableType] = [
        Text.from_markup(f"[bold]skyfleet demo[/] · dashboard: [link={watch.url}]{watch.url}[/]"),
        Text.from_markup(f"[bold]{_hms(now_s)}[/]  x{watch.rate:,.0f}{phase}"),
        Text.from_markup(
            "vehicles by link: "
            + ", ".join(f"{k} {links.get(k, 0):,}" for k in ("satellite", "cellular", "none"))
        ),
    ]
    if watch.rollout:
        status = watch.rollout.get("status", "?")
        lines.append(Text.from_markup(f"rollout [bold]{watch.rollout.get('release')}[/]: {status}"))
        lines.append(_groups_table(watch))
    if watch.halted_at_s is not None:
        lines.append(
            Text.from_markup(
                f"[bold red]judge halted the rollout[/] at {_hms(watch.halted_at_s)}: "
                f"{watch.halted_reason}"
            )
        )
    o = outage_view(scenario, now_s)
    state = "[bold yellow]GRID DOWN[/]" if o["active"] else "grid up"
    lines.append(
        Text.from_markup(
            f"outage {o['region']} {o['start'][11:16]}-{o['end'][11:16]} UTC: {state}; "
            f"{o['homes_in_outage']} of {o['homes']} Powershare homes in it"
            + (" islanded, kept powered" if o["active"] else "")
        )
    )
    late = (
        f", polls {lag_s / 60:,.0f} min late (the machine cannot keep up)" if lag_s > 1800 else ""
    )
    on_time = "" if on_time_pct is None else f", {on_time_pct:.0f}% of polls on time"
    lines.append(
        Text(f"requests {requests_per_s:,.0f}/s, errors {errors:,}{on_time}{late} · Ctrl-C stops")
    )
    return Group(*lines)


def status_line(watch: Watch, now_s: float, requests_per_s: float, lag_s: float = 0.0) -> str:
    """One line of the live summary, for a log that is not a terminal."""
    parts = [f"{_hms(now_s)} x{watch.rate:g}", f"{requests_per_s:.0f} req/s"]
    if lag_s > 1800:
        parts.append(f"polls {lag_s / 60:,.0f} min late")
    if watch.rollout:
        waves = " ".join(
            f"{r['index']}:{r['confirmed'] + r['failed']}/{r['total']}"
            for r in group_rows(watch.rollout)
        )
        parts.append(f"rollout {watch.rollout.get('status')} [{waves}]")
    return " · ".join(parts)


def report_tables(report: Mapping[str, Any]) -> list[RenderableType]:
    """The final report as rich renderables."""
    s, r, links, p, req = (
        report["scenario"],
        report["rollout"],
        report["links"],
        report["powershare"],
        report["requests"],
    )
    out: list[RenderableType] = [
        Text.from_markup(
            f"[bold]skyfleet demo[/] · {s['constellation']} · {s['vehicles']:,} vehicles, "
            f"{s['homes']:,} homes ({s['home_devices']:,} devices), {s['sites']} sites · "
            f"{s['start']} + {s['duration_s'] / 3600:g} h simulated in {report['wall_s']:.1f} s "
            f"(x{report['effective_rate']:,.0f}, asked x{report['rate']:,.0f})"
        )
    ]
    table = Table(
        title=f"rollout {r['release']}: {r['status']}", title_justify="left", box=box.SIMPLE_HEAD
    )
    for col in ("#", "wave", "devices", "reached", "confirmed", "failed", "error rate", "started"):
        table.add_column(col, justify="left" if col in ("wave", "started") else "right")
    for g in r["groups"]:
        table.add_row(
            str(g["index"]),
            g["group"] + (" [red](halted)[/]" if g["index"] == r.get("halted_group") else ""),
            f"{g['total']:,}",
            f"{g['reached']:,}",
            f"{g['confirmed']:,}",
            f"{g['failed']:,}",
            f"{g['error_rate_pct']:.1f}%",
            "-" if g["started_at"] is None else iso(g["started_at"])[11:19],
        )
    out.append(table)
    story = report["story"]
    if story["halted_by_judge"]:
        out.append(
            Text(
                f"halted by the judge at {iso(r['halted_at'])} in wave {story['halted_wave']}"
                f" (the regression is in wave {story['regression_wave']}): {r['reason']}"
            )
        )
    elif r["status"] == "halted":
        out.append(Text(f"halted by {r['halted_by']}, not the judge: {r['reason']}"))
    else:
        out.append(Text("the judge did not halt the rollout in this run (the story is not done)"))
    k = report["kept_up"]
    on_time = k["polls_on_time_pct"]
    out.append(
        Text(
            "polls on time (within one interval of "
            f"{k['poll_interval_s'] / 60:g} simulated min): "
            + ("-" if on_time is None else f"{on_time:.1f}%")
            + f"; the latest started {k['max_lag_s'] / 60:,.1f} simulated min after it was due"
        )
    )
    lt = Table(title="vehicle-time by link", title_justify="left", box=box.SIMPLE_HEAD)
    for k in links["vehicle_time_pct"]:
        lt.add_column(k, justify="right")
    lt.add_row(*(f"{v:.1f}%" for v in links["vehicle_time_pct"].values()))
    out.append(lt)
    out.append(
        Text(
            f"grid outage {p['region']} {p['start']} to {p['end']}: {p['homes_in_outage']} of "
            f"{p['homes']} Powershare homes in it; {p['source']}:"
            + "".join(
                f" {k.replace('_', ' ')} {v};"
                for k, v in p.get("summary", {}).items()
                if isinstance(v, (int, float, str))
            )
        )
    )
    seen = p.get("server_observed")
    if seen is not None:
        out.append(
            Text(
                f"seen by the server: {seen['devices_reported_island']} of {seen['devices']} "
                f"outage-home devices reported islanding ({seen['island_samples']:,} samples), "
                f"{seen['devices_reported_tripped']} a trip; lowest soc "
                f"{_num(seen['lowest_soc_pct'], '%')}, frequency "
                f"{_num(seen['min_freq_hz'], ' Hz')} to {_num(seen['max_freq_hz'], ' Hz')}"
            )
        )
    rt = Table(title="requests", title_justify="left", box=box.SIMPLE_HEAD)
    cols = ("device requests", "per s", "errors", "polls", "telemetry sent", "stored", "via")
    for col in (*cols, "server: seen"):
        rt.add_column(col, justify="right")
    tel = report["telemetry"]
    undelivered = tel["mqtt_undelivered_messages"]
    rt.add_row(
        f"{req['device_requests']:,}",
        f"{req['per_s']:,.0f}",
        f"{req['errors']:,}",
        f"{req['polls']:,}",
        f"{tel['samples_sent']:,} samples",
        "-" if tel["samples_stored_by_server"] is None else f"{tel['samples_stored_by_server']:,}",
        report["telemetry_via"]
        + (f" ({undelivered:,} messages undelivered)" if undelivered else ""),
        f"{report['server']['seen']:,} of {report['server']['devices']:,}",
    )
    out.append(rt)
    return out


def _num(x: float | None, unit: str) -> str:
    return "-" if x is None else f"{x:g}{unit}"


def finite(x: float) -> float | None:
    """``x``, or None when it is not a finite number (JSON has no NaN)."""
    return x if math.isfinite(x) else None
