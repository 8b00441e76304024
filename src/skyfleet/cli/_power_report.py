"""Powershare outputs: the time series table, the run's plot, and the certification report
(HTML table and PNG summary). Every file is written atomically."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from skyfleet.cli._output import write_atomic, write_table
from skyfleet.powershare import ROLES, Certification, IslandResult

_COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]


def series_columns(result: IslandResult) -> dict[str, list[Any]]:
    """The recorded series as table columns, roles as names."""
    assert result.series is not None
    cols: dict[str, list[Any]] = {}
    for name, values in result.series.items():
        if name.endswith(".role"):
            cols[name] = [ROLES[int(v)] for v in values]
        elif name == "t_s":
            cols[name] = [round(float(v), 3) for v in values]
        else:
            cols[name] = np.round(values, 6).tolist()
    return cols


def write_series(path: Path, result: IslandResult) -> None:
    write_table(path, series_columns(result))


def plot_run(path: Path, result: IslandResult, title: str) -> None:
    """Five panels over the outage: frequency band, voltage band, power per device with load and
    solar, state of charge, and each device's role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.series
    assert s is not None
    hours = s["t_s"] / 3600.0
    labels = [d.label for d in result.devices]
    fig, axes = plt.subplots(
        5,
        1,
        figsize=(11, 11),
        dpi=110,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 2, 3, 2, 1.2]},
    )
    dark = s["f_min_hz"] <= 0.0  # the bus was dead for at least part of the interval
    live = s["f_max_hz"] > 0.0
    f_lo = np.where(live, np.where(dark, s["f_max_hz"], s["f_min_hz"]), np.nan)
    f_hi = np.where(live, s["f_max_hz"], np.nan)
    v_lo = np.where(live, np.where(dark, s["v_max_pu"], s["v_min_pu"]), np.nan)
    v_hi = np.where(live, s["v_max_pu"], np.nan)
    trip = result.trip_settings[0][1]
    ax = axes[0]
    ax.fill_between(hours, f_lo, f_hi, color="#1f77b4", alpha=0.35, lw=0)
    ax.plot(hours, f_lo, color="#1f77b4", lw=0.7)
    for value, name in ((trip.of1[0], "of1"), (trip.uf1[0], "uf1")):
        ax.axhline(value, color="#d62728", ls="--", lw=0.8)
        ax.text(
            float(hours[0]) if len(hours) else 0.0,
            value,
            f" {name} trip {value:g} Hz",
            color="#d62728",
            fontsize=7,
            va="bottom",
        )
    ax.set_ylabel("frequency (Hz)")
    ax.set_ylim(trip.uf1[0] - 0.3, trip.of1[0] + 0.3)
    ax.set_title(title)
    ax = axes[1]
    ax.fill_between(hours, v_lo, v_hi, color="#ff7f0e", alpha=0.35, lw=0)
    ax.plot(hours, v_lo, color="#ff7f0e", lw=0.7, label="lowest in each interval")
    ax.axhline(trip.uv1[0], color="#d62728", ls="--", lw=0.8)
    ax.axhline(trip.uv2[0], color="#d62728", ls=":", lw=0.8)
    ax.set_ylabel("voltage (pu)")
    ax.set_ylim(max(0.0, min(trip.uv2[0], float(np.nanmin(v_lo, initial=1.0)))) - 0.05, 1.15)
    for a in axes:
        a.fill_between(
            hours,
            0,
            1,
            where=dark,
            transform=a.get_xaxis_transform(),
            color="black",
            alpha=0.15,
            lw=0,
        )
    ax = axes[2]
    ax.plot(hours, s["load_w"] / 1000, color="black", lw=1, label="load")
    if np.any(s["solar_w"] > 0):
        ax.plot(hours, s["solar_w"] / 1000, color="#e6b800", lw=1, label="solar")
    for i, label in enumerate(labels):
        ax.plot(hours, s[f"{label}.p_w"] / 1000, lw=1, color=_COLORS[i % 4], label=label)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("power (kW, + = into the house)")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax = axes[3]
    for i, label in enumerate(labels):
        ax.plot(hours, s[f"{label}.soc_pct"], lw=1.2, color=_COLORS[i % 4], label=label)
    ax.set_ylabel("state of charge (%)")
    ax.set_ylim(0, 100)
    ax = axes[4]
    roles = (
        np.array([s[f"{label}.role"] for label in labels]) if labels else np.zeros((1, len(hours)))
    )
    cmap = matplotlib.colors.ListedColormap(
        ["#eeeeee", "#bbbbbb", "#8fb3d9", "#2ca02c", "#ffdd57", "#d62728"]
    )
    extent = (
        float(hours[0]) if len(hours) else 0.0,
        float(hours[-1]) if len(hours) else 1.0,
        len(labels) - 0.5,
        -0.5,
    )
    ax.imshow(
        roles,
        aspect="auto",
        cmap=cmap,
        vmin=-0.5,
        vmax=len(ROLES) - 0.5,
        extent=extent,
        interpolation="nearest",
    )
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    handles = [matplotlib.patches.Patch(color=cmap(i), label=name) for i, name in enumerate(ROLES)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=6, fontsize=7)
    ax.set_xlabel("hours into the outage")
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _group(r: IslandResult) -> tuple[str, str]:
    """(home-battery set, vehicle firmware) of a run, as the matrix names them."""
    sc = r.scenario
    homes = "+".join(h.name for h in sc.home_batteries) or "none"
    return homes, sc.vehicle.firmware if sc.vehicle is not None else "none"


def plot_certification(path: Path, cert: Certification) -> None:
    """Pass rate per home-battery set and vehicle firmware, and the lowest frequency and voltage
    each set reached against the trip settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: dict[tuple[str, str], list[IslandResult]] = defaultdict(list)
    ok: dict[tuple[str, str], int] = defaultdict(int)
    for r, v in zip(cert.results, cert.verdicts, strict=True):
        rows[_group(r)].append(r)
        ok[_group(r)] += not v
    homes = sorted({h for h, _ in rows}, key=lambda h: (h.count("+"), h))
    fws = sorted({f for _, f in rows})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
    grid = np.full((len(homes), len(fws)), np.nan)
    for (h, f), rs in rows.items():
        grid[homes.index(h), fws.index(f)] = 100.0 * ok[(h, f)] / len(rs)
    im = a1.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    for i in range(len(homes)):
        for j in range(len(fws)):
            a1.text(j, i, f"{grid[i, j]:.0f} %", ha="center", va="center", fontsize=8)
    a1.set_xticks(range(len(fws)), [f"vehicle {f}" for f in fws])
    a1.set_yticks(range(len(homes)), homes, fontsize=8)
    a1.set_title(f"scenarios passing ({len(cert.results)} in all)")
    fig.colorbar(im, ax=a1, fraction=0.04)
    y = np.arange(len(homes))
    fmin = [
        min(r.f_min_hz for (h, _), rs in rows.items() if h == home for r in rs) for home in homes
    ]
    vmin = [
        min(r.v_min_pu for (h, _), rs in rows.items() if h == home for r in rs) for home in homes
    ]
    a2.barh(
        y - 0.2,
        np.array(fmin) - 58.0,
        0.4,
        left=58.0,
        color="#1f77b4",
        label="lowest frequency (Hz)",
    )
    a2b = a2.twiny()
    a2b.barh(y + 0.2, vmin, 0.4, color="#ff7f0e", label="lowest voltage (pu)")
    a2.axvline(58.5, color="#d62728", ls="--", lw=0.8)
    a2.set_yticks(y, homes, fontsize=8)
    a2.set_xlim(58.0, 60.5)
    a2b.set_xlim(0.0, 1.2)
    a2.set_xlabel("lowest frequency (Hz); dashed: uf1 trip 58.5 Hz")
    a2b.set_xlabel("lowest voltage during motor starts (pu)")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def write_certification_html(path: Path, cert: Certification, png_name: str | None) -> None:
    """One self-contained page: verdict, trip tests, failures, and the whole matrix table."""
    d = cert.as_dict()
    esc = html.escape
    verdict = "PASSED" if cert.passed else f"FAILED ({len(cert.failures)})"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>skyfleet powershare certification</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}.ok{color:#2a7}.bad{color:#c22}</style>",
        "</head><body>",
        f"<h1>Powershare certification: <span class='{'ok' if cert.passed else 'bad'}'>{verdict}</span></h1>",
        f"<p>{d['scenarios']} scenarios, {d['scenario_steps']:,} scenario-steps of {cert.dt_s * 1000:g} ms, "
        f"{d['trip_tests']['passed']}/{d['trip_tests']['run']} trip tests passed, {d['elapsed_s']} s.</p>",
    ]
    if png_name:
        parts.append(f"<img src='{esc(png_name)}' style='max-width:100%'>")
    if cert.failures:
        parts.append("<h2>Failures</h2><ul>")
        for name, why in cert.failures:
            parts.append(f"<li><code>{esc(name)}</code>: {esc('; '.join(why))}</li>")
        parts.append("</ul>")
    parts.append(
        "<h2>Trip tests (IEEE 1547.1 manner)</h2><table><tr><th>device</th><th>element</th>"
        "<th>kind</th><th>rep</th><th>level</th><th>clearing s</th><th>trip s</th><th>ok</th></tr>"
    )
    for t in d["trip_tests"]["rows"]:
        parts.append(
            f"<tr><td>{esc(t['device'])}</td><td>{t['element']}</td><td>{t['kind']}</td><td>{t['repetition']}</td>"
            f"<td>{t['level']}</td><td>{t['clear_s']}</td><td>{'' if t['trip_s'] is None else t['trip_s']}</td>"
            f"<td class='{'ok' if t['passed'] else 'bad'}'>{'yes' if t['passed'] else 'NO'}</td></tr>"
        )
    parts.append(
        "</table><h2>Matrix</h2><table><tr><th>scenario</th><th>ok</th><th>hours powered</th>"
        "<th>vehicle kWh</th><th>home kWh</th><th>solar kWh</th><th>f min..max Hz</th>"
        "<th>V min..max pu</th><th>role changes</th><th>why</th></tr>"
    )
    for m in d["matrix"]:
        parts.append(
            f"<tr><td><code>{esc(m['id'])}</code></td><td class='{'ok' if m['passed'] else 'bad'}'>"
            f"{'yes' if m['passed'] else 'NO'}</td><td>{m['hours_powered']:.3f}</td><td>{m['vehicle_kwh']:.2f}</td>"
            f"<td>{m['home_kwh']:.2f}</td><td>{m['solar_kwh']:.2f}</td><td>{_fmt(m['f_min_hz'])}..{_fmt(m['f_max_hz'])}</td>"
            f"<td>{_fmt(m['v_min_pu'])}..{_fmt(m['v_max_pu'])}</td><td>{m['role_changes']}</td>"
            f"<td>{esc('; '.join(m['violations']))}</td></tr>"
        )
    parts.append("</table></body></html>\n")
    text = "".join(parts)

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    write_atomic(path, write)
