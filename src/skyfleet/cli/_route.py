"""``skyfleet route analyze``: where a vehicle on a route has cellular, satellite, both or neither."""

from __future__ import annotations

import gzip
import textwrap
import zlib
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from rich.table import Table

from skyfleet.cli._common import err, iso, out, parse_duration, parse_time, print_json, progress_bar
from skyfleet.cli._links import (
    ConstellationOption,
    MinElevationOption,
    ModeOption,
    StartOption,
    TleOption,
    _workers,
    load_constellation,
    warn_stale_tle,
)
from skyfleet.cli._output import make_out_dir, write_atomic, write_json, write_table
from skyfleet.errors import CoverageError, InputError
from skyfleet.links import (
    CONNECTIVITY_CLASSES,
    CellCoverage,
    LinkOptions,
    LinkSeries,
    Mode,
    Place,
    Route,
    builtin_coverage,
    cellular_mask,
    cloud_regions,
    connectivity_class,
    great_circle_km,
    link_series,
    load_route,
    parse_geojson_coverage,
    parse_opencellid_csv,
    resolve_place,
    route_connectivity,
    summarize,
    time_grid,
)

route_app = typer.Typer(
    help="Routes: where a vehicle has cellular, satellite, both or neither.", no_args_is_help=True
)

_LABELS = {
    "both": "cellular and satellite",
    "cellular_only": "cellular only",
    "satellite_only": "satellite only",
    "none": "neither",
}
_COLORS = {
    "both": "#2ca02c",
    "cellular_only": "#1f77b4",
    "satellite_only": "#ff7f0e",
    "none": "#d62728",
}
_STYLE = {"both": "green", "cellular_only": "blue", "satellite_only": "yellow", "none": "red"}
_GAPS_SHOWN = 10


def read_coverage(path: Path | None, route: Route | None = None) -> CellCoverage:
    """The coverage in ``path`` (OpenCelliD ``.csv``, GeoJSON ``.geojson``/``.json``, either
    optionally ``.gz``), or the built-in approximation when ``path`` is None. An OpenCelliD file
    is read line by line and keeps only the cells within reach of ``route``."""
    if path is None:
        return builtin_coverage()
    name = path.name.lower()
    packed = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix not in (".csv", ".geojson", ".json"):
        raise InputError(
            f"--coverage {str(path)!r}: use an OpenCelliD .csv or a GeoJSON .geojson/.json file "
            "(optionally .gz)"
        )
    near = (route.lat_deg, route.lon_deg) if route is not None else None
    try:
        opener = gzip.open if packed else open
        with opener(path, "rt", encoding="utf-8", newline="") as lines:
            if suffix == ".csv":
                return parse_opencellid_csv(lines, path.name, near)
            return parse_geojson_coverage(lines.read(), path.name)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CoverageError(f"cannot read coverage file {str(path)!r}: {why}") from None


def nearest_cloud_region(lat_deg: float, lon_deg: float) -> Place:
    """The packaged cloud region nearest a point (great circle)."""
    regions = cloud_regions()
    d = great_circle_km(
        lat_deg, lon_deg, [r.lat_deg for r in regions], [r.lon_deg for r in regions]
    )
    return regions[int(np.argmin(d))]


def _span(seconds: float) -> str:
    """``1 h 05 min``, ``4 min 30 s`` or ``45 s``."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if m else f"{sec} s"


def _clock(seconds: float) -> str:
    """Time into the trip as ``H:MM:SS``."""
    h, rest = divmod(round(seconds), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def _print_summary(s: dict[str, Any]) -> None:
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "route",
        f"{s['route']}: {s['distance_km']:,.1f} km in {_span(s['duration_s'])}",
    )
    head.add_row("window", f"{iso(s['start_unix_s'])}, step {s['step_s']:g} s ({s['steps']} steps)")
    rtt = s["satellite_rtt_ms"]["median"]
    head.add_row(
        "satellite",
        f"{s['constellation']} (mode {s['mode']}) to {s['destination']}"
        + (f", median RTT {rtt:.1f} ms" if rtt is not None else ", no path at any step"),
    )
    head.add_row("cellular", s["coverage"])
    out.print(head)
    t = Table("connectivity", "time", "share", "")
    for key in (*CONNECTIVITY_CLASSES, "either"):
        pct = s["time_pct"][key]
        bar = "█" * round(pct / 5)
        style = _STYLE.get(key, "bold")
        label = _LABELS.get(key, "either")
        t.add_row(label, _span(s["time_s"][key]), f"{pct:.1f} %", f"[{style}]{bar}[/]")
    out.print(t)
    g = s["gaps"]
    if not g:
        out.print("[green]no gaps[/]: cellular or satellite at every step")
        return
    longest = s["longest_gap"]
    out.print(
        f"[bold]{len(g)} gap{'s' if len(g) > 1 else ''}[/] with neither; longest "
        f"{_span(longest['duration_s'])} from {_clock(longest['start_s'])} at "
        f"{longest['lat_deg']:.4f},{longest['lon_deg']:.4f}"
    )
    gt = Table("from", "to", "lasts", "starts at (lat,lon)", caption="times into the trip, H:MM:SS")
    for x in g[:_GAPS_SHOWN]:
        gt.add_row(
            _clock(x["start_s"]),
            _clock(x["end_s"]),
            _span(x["duration_s"]),
            f"{x['lat_deg']:.4f},{x['lon_deg']:.4f}",
        )
    out.print(gt)
    if len(g) > _GAPS_SHOWN:
        out.print(f"... and {len(g) - _GAPS_SHOWN} more (see --json or --out)")


def route_columns(series: LinkSeries, cellular: np.ndarray[Any, Any]) -> dict[str, list[Any]]:
    """The time series table: one row per step (``rtt_ms`` None without a satellite path)."""
    satellite = np.isfinite(series.rtt_ms)
    cls = connectivity_class(cellular, satellite)
    return {
        "time_s": series.t_s.tolist(),
        "time_utc": [iso(series.start_unix_s + t) for t in series.t_s],
        "lat_deg": np.round(series.lat_deg, 6).tolist(),
        "lon_deg": np.round(series.lon_deg, 6).tolist(),
        "cellular": cellular.tolist(),
        "satellite": satellite.tolist(),
        "connectivity": [CONNECTIVITY_CLASSES[c] for c in cls],
        "rtt_ms": [None if np.isnan(r) else round(float(r), 4) for r in series.rtt_ms],
    }


def plot_route(
    path: Path,
    series: LinkSeries,
    cellular: np.ndarray[Any, Any],
    coverage: CellCoverage,
    summary: dict[str, Any],
) -> None:
    """A PNG of the route on a longitude/latitude map, each stretch coloured by connectivity,
    over the coverage's towers (range discs) and polygons near it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import EllipseCollection, LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import offset_copy

    lat = series.lat_deg
    lon = np.degrees(np.unwrap(np.radians(series.lon_deg)))  # continuous across the antimeridian
    cls = connectivity_class(cellular, np.isfinite(series.rtt_ms))
    pad = max(0.2, 0.08 * max(np.ptp(lat), np.ptp(lon)))
    x0, x1 = float(lon.min()) - pad, float(lon.max()) + pad
    y0, y1 = float(lat.min()) - pad, float(lat.max()) + pad
    aspect = 1.0 / max(np.cos(np.radians(float(np.mean(lat)))), 0.05)
    ratio = (y1 - y0) * aspect / (x1 - x0)  # map height over width on the page
    if ratio > 1.0:  # a north-south route: widen the map to a square
        grow = (x1 - x0) * (ratio - 1.0) / 2.0
        x0, x1, ratio = x0 - grow, x1 + grow, 1.0
    elif ratio < 0.4:  # an east-west route: make room above and below
        grow = (y1 - y0) * (0.4 / ratio - 1.0) / 2.0
        y0, y1, ratio = y0 - grow, y1 + grow, 0.4
    fig, ax = plt.subplots(figsize=(9, 9 * ratio + 1.5), dpi=120)
    near = _towers_near(coverage, x0, x1, y0, y1)
    if near.size:
        tl, to, r_km = (
            coverage.tower_lat_deg[near],
            coverage.tower_lon_deg[near],
            coverage.tower_range_m[near] / 1e3,
        )
        to = to + 360.0 * np.round((float(lon.mean()) - to) / 360.0)
        h = 2.0 * r_km / 111.195  # degrees of latitude
        w = h / np.maximum(np.cos(np.radians(tl)), 0.05)
        ax.add_collection(
            EllipseCollection(
                w,
                h,
                np.zeros_like(w),
                units="xy",
                offsets=np.column_stack([to, tl]),
                offset_transform=ax.transData,
                facecolors="#7f7f7f",
                alpha=0.08,
                edgecolors="none",
            )
        )
    for poly in coverage.polygons:
        for ring in (poly.exterior_lonlat_deg, *poly.holes_lonlat_deg):
            ax.plot(ring[:, 0], ring[:, 1], color="#7f7f7f", lw=0.6, alpha=0.5)
    xy = np.column_stack([lon, lat])
    segs = np.stack([xy[:-1], xy[1:]], axis=1) if len(xy) > 1 else np.empty((0, 2, 2))
    colors = [_COLORS[CONNECTIVITY_CLASSES[c]] for c in cls[:-1]]
    ax.add_collection(
        LineCollection(list(segs), colors=colors, linewidths=3.0, capstyle="round", zorder=3)
    )
    ax.plot(lon[0], lat[0], "o", color="black", ms=6, zorder=4)
    ax.plot(lon[-1], lat[-1], "s", color="black", ms=6, zorder=4)
    handles = [
        Line2D(
            [], [], color=_COLORS[k], lw=3, label=f"{_LABELS[k]} ({summary['time_pct'][k]:.1f} %)"
        )
        for k in CONNECTIVITY_CLASSES
    ]
    handles += [
        Line2D([], [], marker="o", color="black", ls="", label="start"),
        Line2D([], [], marker="s", color="black", ls="", label="end"),
    ]
    if near.size or coverage.polygons:
        handles.append(Line2D([], [], color="#7f7f7f", alpha=0.3, lw=6, label="cellular coverage"))
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),  # below the axis label, whatever the map's height
        bbox_transform=offset_copy(ax.transAxes, fig=fig, y=-0.5, units="inches"),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(aspect)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{(x + 180.0) % 360.0 - 180.0:g}"))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{summary['route']} · {summary['distance_km']:,.0f} km · {summary['constellation']} "
        f"to {summary['destination']}\n" + textwrap.fill(f"cellular: {summary['coverage']}", 110),
        fontsize=9,
    )
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    plt.close(fig)


def _towers_near(cov: CellCoverage, x0: float, x1: float, y0: float, y1: float) -> Any:
    """Indices of the towers whose disc may reach the map (at most 20,000, the largest first)."""
    if not cov.towers:
        return np.empty(0, dtype=np.int64)
    reach = cov.tower_range_m / 111_195.0
    dlon = (cov.tower_lon_deg - (x0 + x1) / 2.0 + 180.0) % 360.0 - 180.0
    slack = reach / np.maximum(np.cos(np.radians(cov.tower_lat_deg)), 0.05)
    near = np.flatnonzero(
        (np.abs(dlon) <= (x1 - x0) / 2.0 + slack)
        & (cov.tower_lat_deg >= y0 - reach)
        & (cov.tower_lat_deg <= y1 + reach)
    )
    return near[np.argsort(-cov.tower_range_m[near])][:20_000]


@route_app.command("analyze")
def analyze(
    route: Annotated[
        Path,
        typer.Option("--route", help="The route: CSV of lat,lon[,time] or a GPX file."),
    ],
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", help="Speed along the route, km/h (default: the file's times, else 80)."
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Where the satellite link goes (default: the cloud region nearest the start).",
        ),
    ] = None,
    constellation: ConstellationOption = "starlink-gen1",
    tle: TleOption = None,
    mode: ModeOption = "best",
    min_elevation: MinElevationOption = None,
    start: StartOption = None,
    step: Annotated[str, typer.Option("--step", help="Time step: 15s, 1m, ...")] = "15s",
    coverage: Annotated[
        Path | None,
        typer.Option(
            "--coverage",
            help="Cellular coverage: OpenCelliD .csv or GeoJSON .geojson/.json, optionally .gz "
            "(default: a built-in approximation around towns).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for route.csv (or .parquet), summary.json and route.png."
        ),
    ] = None,
    table_format: Annotated[
        str, typer.Option("--format", help="Time series format: csv or parquet.")
    ] = "csv",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Where a vehicle on a route has cellular, satellite, both or neither, and the gaps.

    Satellite: the link to --to has a path at that step. Cellular: the position is within a cell's range or inside a coverage polygon (built-in approximation unless --coverage).

    Examples:

      skyfleet route analyze --route trip.gpx

      skyfleet route analyze --route trip.csv --speed 90 -c starlink-s1 --coverage 310.csv.gz --json

      skyfleet route analyze --route trip.gpx --to aws:us-west-2 --out trip-analysis
    """
    step_s = parse_duration(step, "step")
    if step_s <= 0:
        raise InputError(f"--step must be greater than zero, got {step!r}")
    if table_format not in ("csv", "parquet"):
        raise InputError(f"--format {table_format!r}: use csv or parquet")
    start_s = parse_time(start)
    rt = load_route(route, speed)
    if not rt.duration_s > 0:
        raise InputError(
            f"route {str(route)!r} takes no time: it needs two or more different points"
        )
    cov = read_coverage(coverage, rt)
    dst = (
        resolve_place(to)
        if to is not None
        else nearest_cloud_region(float(rt.lat_deg[0]), float(rt.lon_deg[0]))
    )
    opts = LinkOptions(mode=cast(Mode, mode))
    con = load_constellation(constellation, tle, min_elevation)
    steps = time_grid(start_s, rt.duration_s, step_s).size
    if out_dir is not None:
        make_out_dir(out_dir)
    warn_stale_tle(con, start_s)
    with progress_bar(
        steps, f"{con.name}: {steps} steps", enabled=steps * con.size > 2_000_000
    ) as tick:
        series = link_series(
            con, rt, dst, start_s, rt.duration_s, step_s, opts, _workers(steps, None), tick
        )
    cellular = cellular_mask(cov, series.lat_deg, series.lon_deg)
    summary: dict[str, Any] = {
        "route": rt.name,
        "distance_km": round(rt.length_km, 3),
        "duration_s": round(rt.duration_s, 3),
        "start_unix_s": start_s,
        "step_s": step_s,
        "steps": steps,
        "destination": dst.spec,
        "constellation": con.name,
        "mode": opts.mode,
        "coverage": cov.source,
        **route_connectivity(series, cellular),
        "satellite_rtt_ms": summarize(series)["rtt_ms"],
    }
    if out_dir is not None:
        write_table(out_dir / f"route.{table_format}", route_columns(series, cellular))
        write_json(out_dir / "summary.json", summary)
        plot_route(out_dir / "route.png", series, cellular, cov, summary)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)
    if out_dir is not None:
        err.print(f"wrote {out_dir}/route.{table_format}, summary.json, route.png")
