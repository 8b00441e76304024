"""``skyfleet powershare``: simulate a house in an outage, certify the controllers, list devices."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from skyfleet.cli._common import err, out, parse_duration, print_json, progress_bar
from skyfleet.cli._output import make_out_dir, write_json
from skyfleet.cli._power_inputs import (
    DevicesOption,
    parse_clock_s,
    parse_home,
    parse_power_w,
    read_devices,
)
from skyfleet.cli._power_report import (
    plot_certification,
    plot_run,
    write_certification_html,
    write_series,
)
from skyfleet.errors import InputError
from skyfleet.powershare import (
    FIRMWARES,
    FrequencyPlan,
    IslandResult,
    Limits,
    Scenario,
    SolarSpec,
    certify,
    describe,
    home_battery,
    home_battery_names,
    load_names,
    matrix,
    scenario_from_id,
    scenario_id,
    simulate,
    spec_dict,
    vehicle,
    vehicle_names,
)
from skyfleet.powershare._jit import compiled_before

powershare_app = typer.Typer(
    help="Vehicle-to-home with home batteries, no network between them: simulate and certify.",
    no_args_is_help=True,
)


def _num(x: float | None, digits: int) -> float | None:
    """``x`` rounded, or None (JSON null) for a figure that does not exist: the frequency of a
    house that never had power."""
    return None if x is None or math.isnan(x) else round(x, digits)


def _show(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def first_run_note(quiet: bool) -> None:
    """Say so when the simulator has to be compiled (the first run after installing)."""
    if not quiet and not compiled_before():
        err.print("first run: compiling the island simulator, about 30 s (once per install)")


def _summary(r: IslandResult) -> dict[str, Any]:
    sc = r.scenario
    return {
        "scenario": scenario_id(sc),
        "outage_h": sc.duration_s / 3600.0,
        "hours_powered": round(r.hours_powered, 4),
        "dark_s": round(r.dark_s, 3),
        "first_powered_s": r.first_powered_s,
        "demand_kwh": round(r.demand_kwh, 4),
        "served_kwh": round(r.served_kwh, 4),
        "unserved_kwh": round(r.unserved_kwh, 4),
        "solar_kwh": round(r.solar_kwh, 4),
        "lowest_frequency_hz": _num(r.f_min_hz, 4),
        "highest_frequency_hz": _num(r.f_max_hz, 4),
        "lowest_voltage_pu": _num(r.v_min_pu, 4),
        "highest_voltage_pu": _num(r.v_max_pu, 4),
        "role_changes": r.role_changes,
        "reconnect": {
            "how": r.reconnect.how,
            "wait_s": r.reconnect.wait_s,
            "dark_s": r.reconnect.dark_s,
        },
        "devices": [
            {
                "device": d.label,
                "firmware": d.firmware,
                "energy_out_kwh": round(d.out_kwh, 4),
                "energy_in_kwh": round(d.in_kwh, 4),
                "soc_start_pct": round(d.soc_start_pct, 3),
                "soc_end_pct": round(d.soc_end_pct, 3),
                "soc_min_pct": round(d.soc_min_pct, 3),
                "max_power_w": round(d.max_power_w, 1),
                "role_changes": d.role_changes,
                "trips": d.trips,
                "role_end": d.role_end,
            }
            for d in r.devices
        ],
        "energy_balance_error": r.balance_error,
        "violations": r.violations(),
    }


def _print_run(s: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("outage", f"{s['outage_h']:.2f} h")
    t.add_row(
        "powered",
        f"{s['hours_powered']:.2f} h (dark {s['dark_s']:.1f} s"
        + (
            f", first power after {s['first_powered_s']:.2f} s)"
            if s["first_powered_s"] is not None
            else ", never powered)"
        ),
    )
    t.add_row(
        "load",
        f"{s['served_kwh']:.2f} kWh served of {s['demand_kwh']:.2f} kWh; solar {s['solar_kwh']:.2f} kWh",
    )
    t.add_row(
        "frequency",
        f"{_show(s['lowest_frequency_hz'], '.3f')} .. {_show(s['highest_frequency_hz'], '.3f')} Hz",
    )
    t.add_row(
        "voltage",
        f"{_show(s['lowest_voltage_pu'], '.3f')} .. {_show(s['highest_voltage_pu'], '.3f')} pu",
    )
    t.add_row("role changes", str(s["role_changes"]))
    rc = s["reconnect"]
    t.add_row(
        "grid returns",
        f"reconnects {rc['how']}"
        + (f" (within {rc['wait_s']:g} s)" if rc["wait_s"] else "")
        + (f", {rc['dark_s']:g} s dark" if rc["dark_s"] else ""),
    )
    out.print(t)
    d = Table(title="devices", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    d.add_column("device", no_wrap=True)
    for col in ("firmware", "out kWh", "in kWh", "SoC %", "max kW", "roles", "trips"):
        d.add_column(col, justify="right" if col != "firmware" else "left")
    for x in s["devices"]:
        d.add_row(
            x["device"],
            x["firmware"],
            f"{x['energy_out_kwh']:.2f}",
            f"{x['energy_in_kwh']:.2f}",
            f"{x['soc_start_pct']:.0f}→{x['soc_end_pct']:.0f}",
            f"{x['max_power_w'] / 1000:.2f}",
            str(x["role_changes"]),
            str(x["trips"]),
        )
    out.print(d)
    if s["violations"]:
        for v in s["violations"]:
            out.print(f"[bold red]violation:[/] {v}")
    else:
        out.print("[green]every invariant held[/]")


@powershare_app.command("simulate")
def simulate_cmd(
    vehicle_name: Annotated[
        str,
        typer.Option(
            "--vehicle", help="Vehicle name (see 'skyfleet powershare devices'), or none."
        ),
    ] = "cybertruck",
    vehicle_firmware: Annotated[
        str, typer.Option("--vehicle-firmware", help="basic (fixed droop) or adaptive.")
    ] = "adaptive",
    breaker: Annotated[
        int | None,
        typer.Option(
            "--breaker",
            help="Breaker the vehicle connects through, A (default 60, or the vehicle's first).",
        ),
    ] = None,
    vehicle_soc: Annotated[
        float, typer.Option("--vehicle-soc", help="Vehicle state of charge, %.")
    ] = 80.0,
    reserve: Annotated[
        float | None,
        typer.Option(
            "--reserve", help="Vehicle reserve it never goes below, % (default: the vehicle's)."
        ),
    ] = None,
    homes: Annotated[
        list[str] | None,
        typer.Option(
            "--home-battery", help="A home battery NAME or NAME:SOC (repeat for several, up to 3)."
        ),
    ] = None,
    load: Annotated[
        str, typer.Option("--load", help="Load profile: typical, essential or heavy.")
    ] = "typical",
    solar: Annotated[
        str, typer.Option("--solar", help="AC-coupled solar rating, e.g. 8kW (0: none).")
    ] = "0",
    outage: Annotated[
        str, typer.Option("--outage", help="How long the outage lasts: 24h, 90m, 2d.")
    ] = "24h",
    start: Annotated[
        str, typer.Option("--start", help="Time of day the outage starts, HH:MM.")
    ] = "18:00",
    step: Annotated[
        str, typer.Option("--step", help="Simulation step, at most 60 ms (the dead-bus slot).")
    ] = "20ms",
    record_every: Annotated[
        str, typer.Option("--record-every", help="Time series interval.")
    ] = "1s",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the load and cloud draws.")] = 0,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for series.parquet (or .csv), summary.json and powershare.png."
        ),
    ] = None,
    series_format: Annotated[
        str, typer.Option("--format", help="Time series format: parquet or csv.")
    ] = "parquet",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    devices: DevicesOption = None,
) -> None:
    """Simulate a house through an outage: who forms the grid, who follows, for how long.

    Each device runs its own firmware and senses only the bus; the home battery supplies first
    and the vehicle takes over when the home battery's state of charge, signalled through the bus
    frequency, runs low.

    Examples:

      skyfleet powershare simulate --vehicle cybertruck --home-battery gen2 --home-battery gen3 --load typical --solar 8kW --outage 24h --out run1

      skyfleet powershare simulate --home-battery gen1:30 --vehicle-soc 50 --outage 6h --json
    """
    if vehicle_firmware not in FIRMWARES:
        raise InputError(f"--vehicle-firmware {vehicle_firmware!r}: use {' or '.join(FIRMWARES)}")
    if series_format not in ("parquet", "csv"):
        raise InputError(f"--format {series_format!r}: use parquet or csv")
    dt_s = parse_duration(step, "step")
    duration_s = parse_duration(outage, "outage")
    rec_s = parse_duration(record_every, "record interval")
    if not 0 < dt_s <= FrequencyPlan().slot_s + 1e-12:
        raise InputError(
            f"--step must be more than 0 and at most 60 ms (the dead-bus slot), got {step!r}"
        )
    if duration_s <= 0 or duration_s > 14 * 86_400:
        raise InputError(f"--outage must be more than 0 and at most 14 days, got {outage!r}")
    if rec_s < dt_s:
        raise InputError(f"--record-every {record_every!r} is shorter than the step {step!r}")
    solar_w = parse_power_w(solar, "--solar")
    catalogue = read_devices(devices)
    spec_v = (
        None
        if vehicle_name == "none"
        else vehicle(
            vehicle_name,
            breaker_a=breaker,
            firmware=vehicle_firmware,
            reserve_pct=reserve,
            catalogue=catalogue,
        )
    )
    parsed = [parse_home(h) for h in homes or []]
    scenario = Scenario(
        vehicle=spec_v,
        home_batteries=tuple(home_battery(name, catalogue=catalogue) for name, _ in parsed),
        vehicle_soc_pct=vehicle_soc,
        home_soc_pct=tuple(soc for _, soc in parsed),
        load=load,
        solar=SolarSpec(rated_w=solar_w) if solar_w > 0 else None,
        start_s=parse_clock_s(start),
        duration_s=duration_s,
        seed=seed,
    )
    if out_dir is not None:
        make_out_dir(out_dir)
    steps = round(duration_s / dt_s)
    first_run_note(as_json)
    with progress_bar(
        steps, f"simulating {outage} at {step} steps", enabled=not as_json and steps > 200_000
    ) as tick:
        result = simulate([scenario], dt_s=dt_s, record_every_s=rec_s, progress=tick)[0]
    summary = _summary(result)
    if out_dir is not None:
        write_series(out_dir / f"series.{series_format}", result)
        write_json(out_dir / "summary.json", summary)
        homes_text = " + ".join(h.name for h in scenario.home_batteries) or "no home battery"
        title = f"{vehicle_name} + {homes_text} · {load} load · solar {solar} · outage from {start}"
        plot_run(out_dir / "powershare.png", result, title)
    if as_json:
        print_json(summary)
    else:
        _print_run(summary)
        if out_dir is not None:
            err.print(f"wrote {out_dir}/series.{series_format}, summary.json, powershare.png")


@powershare_app.command("certify")
def certify_cmd(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario", help="Run only this matrix scenario (an id from a report); repeatable."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Every 10th matrix scenario only.")
    ] = False,
    step: Annotated[
        str, typer.Option("--step", help="Simulation step, at most 60 ms (the dead-bus slot).")
    ] = "20ms",
    max_role_changes: Annotated[
        float,
        typer.Option("--max-role-changes", help="Role changes allowed per device and hour."),
    ] = 4.0,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for certification.html, certification.png and certification.json."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
) -> None:
    """Certify the controllers: IEEE 1547.1-style trip tests, then the validation matrix.

    The matrix crosses vehicle firmware, home batteries (none to three, each generation and
    mixed), starting states of charge, load profiles with motor starts, solar or none and the time
    the outage starts: 1,600 one-hour scenarios at 20 ms. Every scenario must keep the house
    powered while usable energy remains, every device within its power and energy limits, the
    bus inside every device's trip settings, the home battery first, roles steady and energy
    balanced to 0.1 %. Exit status 1 if anything fails; each failure is named so that
    '--scenario ID' re-runs it alone.

    Examples:

      skyfleet powershare certify

      skyfleet powershare certify --quick --json

      skyfleet powershare certify --scenario 'fw=basic/home=gen1/soc=22,15/load=typical/solar=0kW/start=18:30'
    """
    dt_s = parse_duration(step, "step")
    if not 0 < dt_s <= FrequencyPlan().slot_s + 1e-12:
        raise InputError(
            f"--step must be more than 0 and at most 60 ms (the dead-bus slot), got {step!r}"
        )
    if not max_role_changes >= 0:
        raise InputError(f"--max-role-changes must be >= 0, got {max_role_changes}")
    if scenario and quick:
        raise InputError("give --scenario or --quick, not both")
    if scenario:
        runs = [scenario_from_id(s) for s in scenario]
    else:
        runs = matrix()
        if quick:
            runs = runs[::10]
    if out_dir is not None:
        make_out_dir(out_dir)
    total = sum(round(s.duration_s / dt_s) for s in runs)
    first_run_note(as_json)
    with progress_bar(total, f"certifying {len(runs)} scenarios", enabled=not as_json) as tick:
        cert = certify(
            runs, dt_s=dt_s, limits=Limits(max_role_changes_per_h=max_role_changes), progress=tick
        )
    report = cert.as_dict()
    if out_dir is not None:
        write_json(out_dir / "certification.json", report)
        plot_certification(out_dir / "certification.png", cert)
        write_certification_html(out_dir / "certification.html", cert, "certification.png")
    if as_json:
        print_json(report)
    else:
        tt = report["trip_tests"]
        rate = report["scenario_steps"] / max(cert.simulate_s, 1e-9)
        out.print(
            f"trip tests: {tt['passed']}/{tt['run']} passed (8 elements x inside/past x 5, per device)"
        )
        passed = sum(m["passed"] for m in report["matrix"])
        out.print(
            f"matrix: {passed}/{len(report['matrix'])} scenarios passed; "
            f"{report['scenario_steps']:,} scenario-steps in {cert.simulate_s:.1f} s ({rate / 1e6:.2f} M/s)"
        )
        extra = "".join(
            f" {flag} {value}"
            for flag, value, default in (
                ("--step", step, "20ms"),
                ("--max-role-changes", f"{max_role_changes:g}", "4"),
            )
            if value != default
        )
        for name, why in cert.failures[:50]:
            out.print(f"[bold red]FAIL[/] {name}: {'; '.join(why)}", soft_wrap=True)
            if name.startswith("fw="):  # one unbroken line, to copy
                out.print(
                    f"     re-run: skyfleet powershare certify --scenario '{name}'{extra}",
                    soft_wrap=True,
                )
        if len(cert.failures) > 50:
            out.print(f"... and {len(cert.failures) - 50} more (see --json or --out)")
        if cert.passed:
            out.print("[green]certified: every trip test and every invariant held[/]")
        if out_dir is not None:
            err.print(f"wrote {out_dir}/certification.html, certification.png, certification.json")
    if not cert.passed:
        raise typer.Exit(1)


@powershare_app.command("devices")
def devices_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    devices: DevicesOption = None,
) -> None:
    """The packaged vehicles, home batteries and load profiles (and yours, with --devices)."""
    cat = read_devices(devices)
    vs = [vehicle(n, catalogue=cat) for n in vehicle_names(cat)]
    hs = [home_battery(n, catalogue=cat) for n in home_battery_names(cat)]
    if as_json:
        print_json(
            {
                "vehicles": [spec_dict(v) | {"description": describe(v.name, cat)} for v in vs],
                "home_batteries": [
                    spec_dict(h) | {"description": describe(h.name, cat)} for h in hs
                ],
                "loads": load_names(),
            }
        )
        return
    t = Table(title="vehicles (V2H limit at a 60 A breaker, or the first the vehicle lists)")
    for col in ("name", "pack kWh", "reserve %", "V2H kW", "V2L kW", "description"):
        t.add_column(col)
    for v in vs:
        t.add_row(
            v.name,
            f"{v.pack_kwh:g}",
            f"{v.reserve_pct:g}",
            f"{v.v2h_w / 1000:g}",
            f"{v.v2l_w / 1000:g}",
            describe(v.name, cat),
        )
    out.print(t)
    t = Table(title="home batteries")
    for col in ("name", "kWh", "continuous kW", "peak kW", "firmware", "description"):
        t.add_column(col)
    for h in hs:
        t.add_row(
            h.name,
            f"{h.capacity_kwh:g}",
            f"{h.continuous_w / 1000:g}",
            f"{h.peak_w / 1000:g}",
            h.firmware,
            describe(h.name, cat),
        )
    out.print(t)
    out.print(f"load profiles: {', '.join(load_names())}")
