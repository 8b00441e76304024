"""``skyfleet demo``: a short connectivity report for a few well-known places."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from skyfleet.cli._common import iso, out, parse_duration, parse_time, print_json, progress_bar
from skyfleet.links import LinkOptions, Place, link_series_many, resolve_place, summarize, time_grid
from skyfleet.orbits import preset

# (label, from, to): sites that live on satellite links, each to its nearest cloud region.
DEMO_LINKS = (
    ("Seattle office", "city:Seattle", "azure:westus2"),
    ("Remote mine, Pilbara", "-22.31,118.35", "aws:ap-southeast-2"),
    ("Aid camp, Kakuma", "3.72,34.87", "azure:southafricanorth"),
    ("Ship, mid-Atlantic", "40.0,-40.0", "aws:us-east-1"),
    ("London office", "city:London", "city:New York"),
)
DEMO_START = "2026-01-01T00:00:00Z"


def demo(
    constellation: Annotated[
        str, typer.Option("--constellation", "-c", help="Preset to use.")
    ] = "starlink-gen1",
    duration: Annotated[str, typer.Option("--duration", help="Window to simulate.")] = "1h",
    start: Annotated[str, typer.Option("--start", help="Start time, ISO 8601 UTC.")] = DEMO_START,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what skyfleet does: links from a few well-known places to their cloud regions.

    Compares the laser-link (isl) and bent-pipe round-trip times with fiber, with availability
    and handovers, over a window of simulated time (one hour by default).
    """
    con = preset(constellation)
    start_s, duration_s, step_s = parse_time(start), parse_duration(duration), 15.0
    srcs: list[Place] = [resolve_place(a) for _, a, _ in DEMO_LINKS]
    dsts = [resolve_place(b) for _, _, b in DEMO_LINKS]
    steps = time_grid(start_s, duration_s, step_s).size
    results: dict[str, list[dict[str, Any]]] = {}
    with progress_bar(
        2 * steps, f"{con.name}: {len(srcs)} links, 2 modes", enabled=not as_json
    ) as tick:
        for mode in ("isl", "bent-pipe"):
            series = link_series_many(
                con, srcs, dsts, start_s, duration_s, step_s, LinkOptions(mode=mode), progress=tick
            )
            results[mode] = [summarize(s) for s in series]
    rows = []
    for i, (label, _, _) in enumerate(DEMO_LINKS):
        isl, bp = results["isl"][i], results["bent-pipe"][i]
        rows.append(
            {
                "label": label,
                "from": isl["source"],
                "to": isl["destination"],
                "to_label": dsts[i].spec if dsts[i].kind == "cloud-region" else dsts[i].label,
                "isl": {k: isl[k] for k in ("availability_pct", "rtt_ms", "handovers_per_hour")},
                "bent_pipe": {
                    k: bp[k] for k in ("availability_pct", "rtt_ms", "handovers_per_hour")
                },
                "fiber_rtt_ms": isl["fiber_rtt_ms"],
                "internet_rtt_ms": isl["internet_rtt_ms"],
            }
        )
    if as_json:
        print_json(
            {
                "constellation": con.name,
                "start": iso(start_s),
                "duration_s": duration_s,
                "step_s": step_s,
                "links": rows,
            }
        )
        return
    out.print(
        f"[bold]skyfleet demo[/] · {con.name} ({con.size:,} satellites) · {iso(start_s)} + {duration_s / 3600:g} h at {step_s:g} s steps\n"
    )
    t = Table(
        title="round-trip time, median / p95 (ms)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("site → region", "lasers", "bent-pipe", "fiber", "internet", "up", "HO"):
        t.add_column(col, justify="left" if col == "site → region" else "right", no_wrap=True)

    def ms(r: dict[str, Any]) -> str:
        q = r["rtt_ms"]
        return "—" if q["median"] is None else f"{q['median']:.0f} / {q['p95']:.0f}"

    for r in rows:
        t.add_row(
            f"{r['label']}\n[dim]→ {r['to_label']}[/]",
            ms(r["isl"]),
            ms(r["bent_pipe"]),
            f"{r['fiber_rtt_ms']:.0f}",
            f"{r['internet_rtt_ms']:.0f}",
            f"{min(r['isl']['availability_pct'], 100):.0f}%",
            f"{r['isl']['handovers_per_hour']:.0f}",
        )
    out.print(t)
    out.print(
        "[dim]lasers: over inter-satellite links · bent-pipe: via a gateway, then fiber\n"
        "fiber: great-circle floor · internet: typical fiber route (x2.1)\n"
        "up: availability over lasers · HO: satellite handovers per hour[/]"
    )
    out.print("\nNext: [bold]skyfleet link --from city:Paris --to aws:eu-west-3 --plot rtt.png[/]")
