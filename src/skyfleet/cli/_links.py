"""``skyfleet link``, ``skyfleet constellation`` and ``skyfleet places``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from rich.table import Table

from skyfleet.cli._common import (
    err,
    iso,
    out,
    parse_duration,
    parse_time,
    print_json,
    progress_bar,
)
from skyfleet.cli._output import (
    TABLE_SUFFIXES,
    check_output_path,
    plot_series,
    series_rows,
    write_table,
)
from skyfleet.errors import InputError
from skyfleet.links import (
    DEFAULT_FIBER_INFLATION,
    LinkOptions,
    LinkSeries,
    Mode,
    Place,
    Route,
    cloud_regions,
    gateways,
    largest_cities,
    link_series,
    load_route,
    pops,
    resolve_place,
    summarize,
    time_grid,
)
from skyfleet.orbits import (
    Constellation,
    TleConstellation,
    WalkerConstellation,
    preset,
    preset_names,
)

constellation_app = typer.Typer(
    help="Constellation presets from the operators' filings.", no_args_is_help=True
)
places_app = typer.Typer(
    help="Named places: cloud regions, gateways, points of presence, cities.", no_args_is_help=True
)

# Options the link, route and site commands share.
ConstellationOption = Annotated[
    str,
    typer.Option("--constellation", "-c", help="Preset name (see 'skyfleet constellation list')."),
]
TleOption = Annotated[
    Path | None, typer.Option("--tle", help="Use a TLE catalogue file instead of a preset.")
]
ModeOption = Annotated[
    str, typer.Option("--mode", help="isl (laser links), bent-pipe (via a gateway) or best.")
]
MinElevationOption = Annotated[
    float | None,
    typer.Option(
        "--min-elevation", help="Minimum elevation, degrees (default: the constellation's)."
    ),
]
StartOption = Annotated[
    str | None, typer.Option("--start", help="Start time, ISO 8601 UTC (default: now).")
]
FiberInflationOption = Annotated[
    float, typer.Option("--fiber-inflation", help="Terrestrial route length over great circle.")
]

STALE_TLE_DAYS = 14.0
_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray[Any, Any], width: int = 60) -> str:
    """A one-line picture of a series (a space where there is no value)."""
    if values.size == 0:
        return ""
    cols = np.array_split(values, min(width, values.size))
    means = [float(np.nanmean(c)) if np.isfinite(c).any() else np.nan for c in cols]
    finite = [m for m in means if np.isfinite(m)]
    if not finite:
        return " " * len(means)
    lo, hi = min(finite), max(finite)
    scale = (len(_SPARK) - 1) / (hi - lo) if hi > lo else 0.0
    return "".join(_SPARK[round((m - lo) * scale)] if np.isfinite(m) else " " for m in means)


def load_constellation(name: str, tle: Path | None, min_elevation: float | None) -> Constellation:
    """A preset by name, or a TLE catalogue file (which wins when given)."""
    if tle is not None:
        kw = {} if min_elevation is None else {"min_elevation_deg": min_elevation}
        return TleConstellation.from_file(tle, **kw)
    return preset(name, min_elevation)


def warn_stale_tle(con: Constellation, start_s: float) -> None:
    """Warn on stderr when a TLE catalogue's elements are far from the start time."""
    if isinstance(con, TleConstellation):
        days = float(np.max(np.abs(con.epochs_unix_s - start_s))) / 86_400.0
        if days > STALE_TLE_DAYS:
            err.print(
                f"[yellow]warning:[/] some TLEs are {days:.0f} days from the start time; SGP4 "
                "drifts by kilometres per day, so use recent elements or --start near their epoch",
                soft_wrap=True,
            )


def _workers(steps: int, workers: int | None) -> int:
    if workers is not None:
        if workers < 1:
            raise InputError(f"--workers must be 1 or more, got {workers}")
        return workers
    return min(os.cpu_count() or 1, 4) if steps >= 2000 else 1


def _print_summary(s: dict[str, Any], series: LinkSeries) -> None:
    r = s["rtt_ms"]
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("link", f"{s['source']} → {s['destination']}")
    t.add_row("constellation", f"{s['constellation']} (mode {s['mode']})")
    t.add_row(
        "window",
        f"{iso(s['start_unix_s'])} + {s['duration_s'] / 3600:g} h, step {s['step_s']:g} s ({s['steps']} steps)",
    )
    t.add_row("availability", f"{s['availability_pct']:.2f} %")
    if r["median"] is not None:
        t.add_row(
            "RTT",
            f"min {r['min']:.1f} · median {r['median']:.1f} · p95 {r['p95']:.1f} · max {r['max']:.1f} ms",
        )
        t.add_row(
            "RTT over time", f"[cyan]{sparkline(series.rtt_ms)}[/] {r['min']:.0f}–{r['max']:.0f} ms"
        )
    else:
        t.add_row("RTT", "[red]no path at any step[/]")
    t.add_row(
        "fiber",
        f"{s['fiber_rtt_ms']:.1f} ms great-circle floor · {s['internet_rtt_ms']:.1f} ms typical internet route",
    )
    t.add_row("handovers", f"{s['handovers']} ({s['handovers_per_hour']:.1f} per hour)")
    t.add_row("satellites in view", f"{s['visible_sats_median']:g} (median)")
    g = s["gaps"]
    longest = max((x["end_s"] - x["start_s"] for x in g), default=0.0)
    t.add_row(
        "gaps",
        f"{len(g)}" + (f", longest {longest:g} s, first at {g[0]['start_s']:g} s" if g else ""),
    )
    out.print(t)


def link(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Destination: LAT,LON, city:NAME, aws:REGION, azure:REGION, gcp:REGION, gateway:ID or pop:ID.",
        ),
    ],
    source: Annotated[
        str | None, typer.Option("--from", help="Where the link starts (same forms as --to).")
    ] = None,
    route: Annotated[
        Path | None,
        typer.Option("--route", help="A moving start: CSV of lat,lon[,time] or a GPX file."),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", help="Speed along --route, km/h (default: the file's times, else 80)."
        ),
    ] = None,
    constellation: ConstellationOption = "starlink-gen1",
    tle: TleOption = None,
    mode: ModeOption = "best",
    start: StartOption = None,
    duration: Annotated[str, typer.Option("--duration", help="How long: 2h, 90m, 1d, ...")] = "1h",
    step: Annotated[str, typer.Option("--step", help="Time step: 15s, 100ms, ...")] = "15s",
    min_elevation: MinElevationOption = None,
    fiber_inflation: FiberInflationOption = DEFAULT_FIBER_INFLATION,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the time series: FILE.csv or FILE.parquet.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw RTT over time to FILE.png.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the summary.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Processes to use (default: 1, or all cores for long runs)."
        ),
    ] = None,
) -> None:
    """Round-trip time from a place (or a moving vehicle) to a cloud region or another place, over time.

    Examples:

      skyfleet link --from city:Seattle --to azure:westus2

      skyfleet link --from 40.0,-40.0 --to aws:us-east-1 --mode isl --duration 6h --json

      skyfleet link --route trip.gpx --to aws:us-west-2 --out trip.parquet --plot trip.png
    """
    if (source is None) == (route is None):
        raise InputError("give exactly one of --from PLACE or --route FILE")
    step_s = parse_duration(step, "step")
    duration_s = parse_duration(duration, "duration")
    if step_s <= 0:
        raise InputError(f"--step must be greater than zero, got {step!r}")
    if duration_s <= 0:
        raise InputError(f"--duration must be greater than zero, got {duration!r}")
    start_s = parse_time(start)
    if out_file is not None:
        check_output_path(out_file, "--out", TABLE_SUFFIXES)
    if plot is not None:
        check_output_path(plot, "--plot", (".png",))
    src: Place | Route = (
        load_route(route, speed) if route is not None else resolve_place(source or "")
    )
    dst = resolve_place(to)
    opts = LinkOptions(
        mode=cast(Mode, mode),
        fiber_inflation=fiber_inflation,
        detail=out_file is not None,
    )
    con = load_constellation(constellation, tle, min_elevation)
    warn_stale_tle(con, start_s)
    steps = time_grid(start_s, duration_s, step_s).size
    with progress_bar(
        steps, f"{con.name}: {steps} steps", enabled=steps * con.size > 2_000_000
    ) as tick:
        series = link_series(
            con, src, dst, start_s, duration_s, step_s, opts, _workers(steps, workers), tick
        )
    summary = summarize(series)
    if out_file is not None:
        write_table(
            out_file,
            series_rows(
                series, con.sat_names, [g.spec.removeprefix("gateway:") for g in gateways()]
            ),
        )
    if plot is not None:
        plot_series(plot, series, f"{summary['source']} → {summary['destination']} · {con.name}")
    if as_json:
        print_json(summary)
        return
    _print_summary(summary, series)
    for path in (out_file, plot):
        if path is not None:
            err.print(f"wrote {path}")


@constellation_app.command("list")
def constellation_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the packaged constellation presets."""
    rows: list[dict[str, Any]] = []
    for name in preset_names():
        c = preset(name)
        rows.append(
            {
                "name": name,
                "satellites": c.size,
                "shells": len(c.shells),
                "min_elevation_deg": c.min_elevation_deg,
                "description": c.description,
            }
        )
    if as_json:
        print_json(rows)
        return
    t = Table("name", "satellites", "shells", "min elev.", "description")
    for r in rows:
        t.add_row(
            r["name"],
            f"{r['satellites']:,}",
            str(r["shells"]),
            f"{r['min_elevation_deg']:g}°",
            r["description"],
        )
    out.print(t)


def _shell_rows(c: WalkerConstellation) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "altitude_km": s.altitude_km,
            "inclination_deg": s.inclination_deg,
            "planes": s.planes,
            "sats_per_plane": s.sats_per_plane,
            "phasing": s.phasing,
            "satellites": s.size,
            "period_min": round(s.period_s / 60.0, 2),
            "node_drift_deg_per_day": round(float(np.degrees(s.raan_rate_rad_s) * 86400.0), 3),
        }
        for s in c.shells
    ]


@constellation_app.command("show")
def constellation_show(
    name: Annotated[str, typer.Argument(help="Preset name, e.g. starlink-gen1.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a preset's shells: altitude, inclination, planes, period, node drift, laser links."""
    c = preset(name)
    info: dict[str, Any] = {
        "name": c.name,
        "satellites": c.size,
        "min_elevation_deg": c.min_elevation_deg,
        "laser_links": int(c.isl_pairs().shape[0]),
        "description": c.description,
        "source": c.source,
        "shells": _shell_rows(c),
    }
    if as_json:
        print_json(info)
        return
    out.print(f"[bold]{c.name}[/]: {c.description}")
    out.print(
        f"{c.size:,} satellites, {info['laser_links']:,} laser links (+Grid), minimum elevation {c.min_elevation_deg:g}°"
    )
    out.print(f"[dim]source: {c.source}[/]")
    t = Table("shell", "altitude", "incl.", "planes × sats", "F", "period", "node drift")
    for s in info["shells"]:
        t.add_row(
            s["name"],
            f"{s['altitude_km']:g} km",
            f"{s['inclination_deg']:g}°",
            f"{s['planes']} × {s['sats_per_plane']}",
            str(s["phasing"]),
            f"{s['period_min']:.2f} min",
            f"{s['node_drift_deg_per_day']:+.2f}°/day",
        )
    out.print(t)


def _places_out(places: list[Place], as_json: bool, search: str | None) -> None:
    if search:
        q = search.casefold()
        places = [p for p in places if q in p.spec.casefold() or q in p.label.casefold()]
    if as_json:
        print_json(
            [
                {"id": p.spec, "name": p.label, "lat_deg": p.lat_deg, "lon_deg": p.lon_deg}
                for p in places
            ]
        )
        return
    t = Table("id", "name", "lat", "lon")
    for p in places:
        t.add_row(p.spec, p.label, f"{p.lat_deg:.2f}", f"{p.lon_deg:.2f}")
    out.print(t)


_Search = Annotated[
    str | None, typer.Option("--search", "-s", help="Only names containing this text.")
]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@places_app.command("regions")
def places_regions(search: _Search = None, as_json: _Json = False) -> None:
    """Cloud regions (AWS, Azure, Google Cloud) usable as --to."""
    _places_out(cloud_regions(), as_json, search)


@places_app.command("gateways")
def places_gateways(search: _Search = None, as_json: _Json = False) -> None:
    """Gateway sites of the packaged ground segment."""
    _places_out(gateways(), as_json, search)


@places_app.command("pops")
def places_pops(search: _Search = None, as_json: _Json = False) -> None:
    """Points of presence of the packaged ground segment."""
    _places_out(pops(), as_json, search)


@places_app.command("cities")
def places_cities(
    top: Annotated[int, typer.Option("--top", help="How many of the largest cities.")] = 50,
    search: _Search = None,
    as_json: _Json = False,
) -> None:
    """The largest cities (GeoNames), usable as city:NAME."""
    _places_out(largest_cities(top), as_json, search)
