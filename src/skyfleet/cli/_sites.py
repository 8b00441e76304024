"""``skyfleet site``: plan a modular datacenter anywhere, register it, list sites with their links."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from skyfleet.cli._client import DEFAULT_SERVER, Api
from skyfleet.cli._client import JsonOption as _Json
from skyfleet.cli._client import ServerOption as _Server
from skyfleet.cli._client import TokenOption as _Token
from skyfleet.cli._client import once as _once
from skyfleet.cli._common import err, iso, out, parse_duration, parse_time, print_json, progress_bar
from skyfleet.cli._links import (
    ConstellationOption,
    FiberInflationOption,
    MinElevationOption,
    StartOption,
    TleOption,
    _workers,
    load_constellation,
    sparkline,
)
from skyfleet.cli._output import make_out_dir, write_atomic, write_json, write_table
from skyfleet.errors import InputError
from skyfleet.links import (
    DEFAULT_FIBER_INFLATION,
    SITE_MODES,
    LinkOptions,
    SitePlan,
    outages,
    plan_site,
    resolve_place,
    site_places,
    time_grid,
)

__all__ = ["site_app"]

site_app = typer.Typer(
    help="Modular datacenters anywhere: plan a site's link, register sites, list them with their links.",
    no_args_is_help=True,
)

_MODE_COLOURS = {"isl": "#1f77b4", "bent-pipe": "#ff7f0e"}


def _at(text: str) -> tuple[float, float]:
    place = resolve_place(text)
    return place.lat_deg, place.lon_deg


def _plan_table(s: dict[str, Any], plan: SitePlan) -> Table:
    t = Table(
        title=f"{s['site_name']} → {s['region']} · {s['constellation']} · "
        f"{iso(s['start_unix_s'])} + {s['duration_s'] / 3600:g} h at {s['step_s']:g} s",
        title_justify="left",
    )
    t.add_column("")
    for mode in SITE_MODES:
        t.add_column(mode, justify="right")
    t.add_column("fiber", justify="right")
    m = s["modes"]

    def ms(v: float | None) -> str:
        return "no path" if v is None else f"{v:.1f} ms"

    t.add_row("availability", *(f"{m[k]['availability_pct']:.2f} %" for k in SITE_MODES), "")
    for q in ("min", "p5", "p50", "p95", "p99", "max"):
        floor = f"{s['fiber_rtt_ms']:.1f} ms floor" if q == "min" else ""
        if q == "p50":
            floor = f"{s['internet_rtt_ms']:.1f} ms route"
        t.add_row(f"RTT {q}", *(ms(m[k]["rtt_ms"][q]) for k in SITE_MODES), floor)
    t.add_row(
        "faster than fiber route",
        *(f"{m[k]['faster_than_internet_pct']:.1f} % of time" for k in SITE_MODES),
        "",
    )
    t.add_row("handovers / h", *(f"{m[k]['handovers_per_hour']:.1f}" for k in SITE_MODES), "")
    t.add_row(
        "outages",
        *(f"{m[k]['outages']} ({m[k]['outage_s']:g} s in all)" for k in SITE_MODES),
        "",
    )
    t.add_row(
        "longest outage",
        *(
            f"{o[0]['duration_s']:g} s at +{o[0]['start_s'] / 3600:.2f} h"
            if (o := m[k]["longest_outages"])
            else "none"
            for k in SITE_MODES
        ),
        "",
    )
    t.add_row(
        "RTT over time",
        *(f"[cyan]{sparkline(plan.series[k].rtt_ms, 24)}[/]" for k in SITE_MODES),
        "",
    )
    return t


def plot_plan(path: Path, plan: SitePlan, title: str) -> None:
    """RTT over time per mode against fiber (outages shaded) and the distribution of RTT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = plan.series[SITE_MODES[0]]
    hours = first.t_s / 3600.0
    fig, (ax, cdf) = plt.subplots(
        1, 2, figsize=(13, 4.2), dpi=120, gridspec_kw={"width_ratios": [3, 1]}
    )
    for mode, s in plan.series.items():
        ax.plot(hours, s.rtt_ms, lw=0.8, color=_MODE_COLOURS[mode], label=f"satellite ({mode})")
        for o in outages(s):
            ax.axvspan(
                o["start_s"] / 3600.0, o["end_s"] / 3600.0, color=_MODE_COLOURS[mode], alpha=0.2
            )
        finite = np.sort(s.rtt_ms[np.isfinite(s.rtt_ms)])
        if finite.size:
            share = np.arange(1, finite.size + 1) / s.t_s.size * 100.0
            cdf.plot(finite, share, color=_MODE_COLOURS[mode], label=mode)
    for value, style, label in (
        (float(first.fiber_rtt_ms[0]), "--", "fiber, great-circle floor"),
        (float(first.internet_rtt_ms[0]), ":", "fiber, typical internet route"),
    ):
        ax.axhline(value, ls=style, color="#2ca02c", lw=1, label=label)
        cdf.axvline(value, ls=style, color="#2ca02c", lw=1)
    ax.set_xlabel(f"hours after {iso(first.start_unix_s)}")
    ax.set_ylabel("round-trip time (ms)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    cdf.set_xlabel("round-trip time (ms)")
    cdf.set_ylabel("time at or below (%)")
    cdf.set_ylim(0, 100)
    cdf.set_title("distribution")
    cdf.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _plan_rows(plan: SitePlan) -> dict[str, list[Any]]:
    first = plan.series[SITE_MODES[0]]
    cols: dict[str, list[Any]] = {
        "time_s": first.t_s.tolist(),
        "time_utc": [iso(first.start_unix_s + t) for t in first.t_s],
    }
    for mode, s in plan.series.items():
        key = mode.replace("-", "_")
        cols[f"rtt_{key}_ms"] = [None if np.isnan(r) else round(float(r), 4) for r in s.rtt_ms]
        cols[f"hops_{key}"] = s.hops.tolist()
    cols["fiber_rtt_ms"] = np.round(first.fiber_rtt_ms, 4).tolist()
    cols["internet_rtt_ms"] = np.round(first.internet_rtt_ms, 4).tolist()
    return cols


@site_app.command("plan")
def site_plan(
    at: Annotated[str, typer.Option("--at", help="Where the site stands: LAT,LON or city:NAME.")],
    region: Annotated[
        str, typer.Option("--region", help="Its cloud region, e.g. azure:australiaeast.")
    ],
    name: Annotated[str | None, typer.Option("--name", help="A label for reports.")] = None,
    constellation: ConstellationOption = "starlink-gen1",
    tle: TleOption = None,
    start: StartOption = None,
    duration: Annotated[str, typer.Option("--duration", help="How long: 1d, 7d, 12h, ...")] = "1d",
    step: Annotated[
        str,
        typer.Option("--step", help="Time step (15s matches Starlink's handover grid)."),
    ] = "15s",
    min_elevation: MinElevationOption = None,
    fiber_inflation: FiberInflationOption = DEFAULT_FIBER_INFLATION,
    top: Annotated[int, typer.Option("--top", min=1, help="How many longest outages to list.")] = 5,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for rtt.png, series.parquet and summary.json."),
    ] = None,
    as_json: _Json = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes (default: all cores, long runs).")
    ] = None,
) -> None:
    """Plan a site: availability, the RTT distribution by laser links and by bent-pipe against
    fiber, the longest outages and the handovers, over a window.

    Examples:

      skyfleet site plan --at -22.31,118.35 --region aws:ap-southeast-2

      skyfleet site plan --at 3.72,34.87 --region azure:southafricanorth --duration 7d --out kakuma/

      skyfleet site plan --at city:Nuuk --region aws:ca-central-1 -c kuiper --json
    """
    step_s = parse_duration(step, "step")
    duration_s = parse_duration(duration, "duration")
    if step_s <= 0 or duration_s <= 0:
        raise InputError("--step and --duration must be greater than zero")
    start_s = parse_time(start)
    site = resolve_place(at)
    if name:
        site = dataclasses.replace(site, label=name)
    dest = resolve_place(region)
    con = load_constellation(constellation, tle, min_elevation)
    steps = time_grid(start_s, duration_s, step_s).size
    for mode in SITE_MODES:  # every value is checked before the output folder is made
        LinkOptions(mode=mode, fiber_inflation=fiber_inflation)
    if out_dir is not None:
        make_out_dir(out_dir)
    with progress_bar(
        len(SITE_MODES) * steps, f"{con.name}: {steps} steps x {len(SITE_MODES)} modes"
    ) as tick:
        plan = plan_site(
            con,
            site,
            dest,
            start_s,
            duration_s,
            step_s,
            fiber_inflation=fiber_inflation,
            workers=_workers(steps, workers),
            progress=tick,
        )
    summary = plan.summary(top)
    if out_dir is not None:
        write_table(out_dir / "series.parquet", _plan_rows(plan))
        write_json(out_dir / "summary.json", summary)
        plot_plan(out_dir / "rtt.png", plan, f"{site.label} → {dest.spec} · {con.name}")
    if as_json:
        print_json(summary)
        return
    out.print(_plan_table(summary, plan))
    if out_dir is not None:
        err.print(f"wrote {out_dir}/rtt.png, series.parquet, summary.json")


@site_app.command("add")
def site_add(
    site_id: Annotated[str, typer.Argument(help="The site's id (its hawkBit controller id).")],
    at: Annotated[str, typer.Option("--at", help="Where it stands: LAT,LON or city:NAME.")],
    region: Annotated[str, typer.Option("--region", help="Its cloud region.")],
    constellation: Annotated[
        str, typer.Option("--constellation", "-c", help="The constellation it uses.")
    ] = "starlink-gen1",
    hw: Annotated[str, typer.Option(help="Hardware generation of its controller.")] = "site1",
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    version: Annotated[str | None, typer.Option(help="The version it runs now.")] = None,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """Register a site: a fleet device of kind site with a location and a cloud region.

    Prints its target token (shown once). Roll out to sites with a group such as 'kind:site'.

      skyfleet site add pilbara-mine --at -22.31,118.35 --region aws:ap-southeast-2
    """
    lat, lon = _at(at)
    attributes = {
        "lat_deg": f"{lat:.6f}",
        "lon_deg": f"{lon:.6f}",
        "region": resolve_place(region).spec,
        "constellation": load_constellation(constellation, None, None).name,
    }
    site_places(attributes, site_id)
    body = {
        "devices": [
            {
                "id": site_id,
                "kind": "site",
                "hw": hw,
                "tags": tag or [],
                "attributes": attributes,
                "installed_version": version,
            }
        ]
    }
    answer = _once(server, token, "POST", "/devices", json=body)
    if as_json:
        print_json(answer["devices"][0])
    else:
        out.print(f"registered site {site_id}; target token: {answer['devices'][0]['token']}")


def _rtt_cell(link: dict[str, Any] | None, mode: str) -> str:
    if link is None:
        return "-"
    m = link[mode]
    if m["rtt_now_ms"] is None:
        return f"[red]no path[/] ({m['availability_pct']:.0f} %)"
    return f"{m['rtt_now_ms']:.1f} ms ({m['availability_pct']:.0f} %)"


@site_app.command("list")
def site_list(
    estimate: Annotated[
        bool, typer.Option("--estimate/--no-estimate", help="Compute each site's link now.")
    ] = True,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """List the sites with their location, region and current link estimate (RTT now and
    availability over the next ten minutes, by laser links and by bent-pipe, against fiber)."""
    with Api(server, token) as api:
        answer = api.get("/sites", estimate=str(estimate).lower())
    if as_json:
        print_json(answer)
        return
    table = Table(title=f"{answer['total']} sites")
    for col in ("id", "location", "region", "isl now", "bent-pipe now", "fiber route", "last seen"):
        table.add_column(col)
    for s in answer["sites"]:
        link = s.get("link")
        table.add_row(
            s["id"],
            f"{s['lat_deg']:.2f},{s['lon_deg']:.2f}" if s["lat_deg"] is not None else "-",
            s["region"] or "-",
            _rtt_cell(link, "isl") if link else s.get("problem", "-"),
            _rtt_cell(link, "bent-pipe"),
            f"{link['internet_rtt_ms']:.1f} ms" if link else "-",
            iso(s["last_seen"]) if s["last_seen"] else "never",
        )
    out.print(table)
