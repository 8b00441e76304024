"""``skyfleet device|release|rollout``: the operator CLI, a client of the server's REST API."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from skyfleet.cli._client import DEFAULT_SERVER, Api
from skyfleet.cli._client import JsonOption as _Json
from skyfleet.cli._client import ServerOption as _Server
from skyfleet.cli._client import TokenOption as _Token
from skyfleet.cli._client import once as _once
from skyfleet.cli._common import err, iso, out, parse_duration, print_json
from skyfleet.errors import InputError
from skyfleet.rollout import CONFIRMED_MILESTONES_PCT, IN_PROGRESS, ActionState, GroupSpec

__all__ = ["device_app", "release_app", "rollout_app"]

device_app = typer.Typer(help="Devices of the fleet: list and register.", no_args_is_help=True)
release_app = typer.Typer(
    help="Releases: a version with one artifact set per hardware generation.", no_args_is_help=True
)
rollout_app = typer.Typer(
    help="Staged rollouts: groups, thresholds, start / halt / resume / cancel / rollback.",
    no_args_is_help=True,
)

_Id = Annotated[int, typer.Argument(help="The rollout's id (see 'skyfleet rollout list').")]


def _parse_pairs(values: list[str], what: str, example: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key or not val:
            raise InputError(f"cannot read {what} {value!r}: write {example}")
        pairs[key.strip()] = val.strip()
    return pairs


# --- devices -------------------------------------------------------------------------------------


@device_app.command("list")
def device_list(
    hw: Annotated[str | None, typer.Option(help="Only this hardware generation, e.g. hw4.")] = None,
    kind: Annotated[str | None, typer.Option(help="vehicle, home-battery or site.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only devices with this tag, e.g. eap.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """List devices: hardware, tags, installed version, last seen."""
    with Api(server, token) as api:
        answer = api.get("/devices", hw=hw, kind=kind, tag=tag, limit=limit)
    if as_json:
        print_json(answer)
        return
    table = Table(
        title=f"{answer['total']} devices"
        + (f" (first {limit})" if answer["total"] > limit else "")
    )
    for col in ("id", "kind", "hw", "tags", "installed", "attributes", "last seen"):
        table.add_column(col)
    for d in answer["devices"]:
        table.add_row(
            d["id"],
            d["kind"],
            d["hw"],
            ",".join(d["tags"]),
            d["installed_version"] or "-",
            " ".join(f"{k}={v}" for k, v in sorted(d["attributes"].items())),
            iso(d["last_seen"]) if d["last_seen"] else "never",
        )
    out.print(table)


@device_app.command("register")
def device_register(
    device_id: Annotated[str, typer.Argument(help="The device's id (its hawkBit controller id).")],
    hw: Annotated[str, typer.Option(help="Hardware generation, e.g. hw3.")] = "hw3",
    kind: Annotated[str, typer.Option(help="vehicle, home-battery or site.")] = "vehicle",
    tag: Annotated[list[str] | None, typer.Option(help="A tag such as eap (repeatable).")] = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE attribute (repeatable).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="The version it runs now.")] = None,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """Register a device and print its target token (shown once; the server keeps a hash)."""
    body = {
        "devices": [
            {
                "id": device_id,
                "hw": hw,
                "kind": kind,
                "tags": tag or [],
                "attributes": _parse_pairs(attr or [], "attribute", "KEY=VALUE, e.g. region=eu"),
                "installed_version": version,
            }
        ]
    }
    answer = _once(server, token, "POST", "/devices", json=body)
    if as_json:
        print_json(answer["devices"][0])
    else:
        out.print(f"registered {device_id}; target token: {answer['devices'][0]['token']}")


# --- releases ------------------------------------------------------------------------------------


@release_app.command("create")
def release_create(
    version: Annotated[
        str, typer.Argument(help="The version, e.g. 2025.44.25.5 or fsd-14.2.1.25.")
    ],
    artifact: Annotated[
        list[str],
        typer.Option(help="HW=FILE: the update for one hardware generation (repeatable)."),
    ],
    notes: Annotated[Path | None, typer.Option(help="A file with the release notes.")] = None,
    min_installed: Annotated[
        str | None, typer.Option(help="Only devices at this version or newer may take it.")
    ] = None,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """Upload the artifacts (streamed, checked by SHA-256) and create the release.

    Example: skyfleet release create 2025.44.25.5 --artifact hw3=hw3.swu --artifact hw4=hw4.swu
    """
    pairs = _parse_pairs(artifact, "--artifact", "HW=FILE, e.g. hw3=update.swu")
    files = {hw: Path(f) for hw, f in pairs.items()}
    for path in files.values():
        if not path.is_file():
            raise InputError(f"artifact file {str(path)!r} does not exist")
    if notes is not None and not notes.is_file():
        raise InputError(f"notes file {str(notes)!r} does not exist")
    text = notes.read_text(encoding="utf-8") if notes else ""
    with Api(server, token) as api:
        uploaded: dict[Path, int] = {}
        for path in dict.fromkeys(files.values()):
            uploaded[path] = api.upload(path)["id"]
        body = {
            "version": version,
            "notes": text,
            "artifacts": {hw: [uploaded[path]] for hw, path in files.items()},
            "min_installed_version": min_installed,
        }
        answer = api.post("/releases", body)
    if as_json:
        print_json(answer)
    else:
        gens = ", ".join(answer["generations"])
        out.print(f"release {answer['version']} created for {gens}")


@release_app.command("list")
def release_list(
    server: _Server = DEFAULT_SERVER, token: _Token = None, as_json: _Json = False
) -> None:
    """List releases."""
    answer = _once(server, token, "GET", "/releases")
    if as_json:
        print_json(answer)
        return
    table = Table(title="releases")
    for col in ("version", "generations", "min installed", "created"):
        table.add_column(col)
    for r in answer["releases"]:
        table.add_row(
            r["version"],
            ",".join(r["generations"]),
            r["min_installed_version"] or "-",
            iso(r["created_at"]),
        )
    out.print(table)


# --- rollouts ------------------------------------------------------------------------------------


@rollout_app.command("create")
def rollout_create(
    release: Annotated[str, typer.Argument(help="The release's version.")],
    group: Annotated[
        list[str],
        typer.Option(
            help="A group, in order: filter terms and a percentage, e.g. 'tag:eap', 'hw:hw3 10%'. "
            "Terms: hw:, tag:, kind:, id:, KEY=VALUE, version<V."
        ),
    ],
    success: Annotated[
        float, typer.Option(help="Percent of a group confirmed before the next starts.")
    ] = 95.0,
    error_pct: Annotated[
        float | None,
        typer.Option(help="Halt when more than this percent of finished devices fail."),
    ] = 10.0,
    error_count: Annotated[
        int | None, typer.Option(help="Halt when this many devices fail.")
    ] = None,
    min_finished: Annotated[
        int, typer.Option(help="Judge errors only after this many devices finished.")
    ] = 5,
    timeout: Annotated[
        str, typer.Option(help="A device silent this long in progress counts as failed.")
    ] = "1h",
    manual: Annotated[bool, typer.Option(help="Wait for 'rollout resume' between groups.")] = False,
    name: Annotated[str | None, typer.Option(help="A name for the rollout.")] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            help="Decides which devices a percentage takes: the same seed, groups and devices "
            "give the same members (default: a random one). Letters, digits, '.', '_', '-'."
        ),
    ] = None,
    start: Annotated[bool, typer.Option(help="Start it right away.")] = False,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """Create a rollout: each group takes its share of the devices no earlier group took.

    Example: skyfleet rollout create 2025.44.25.5 --group 'tag:eap' --group 'hw:hw3 1%'
    --group 'hw:hw3 10%' --group 'hw:hw3' --group 'hw:hw4 10%' --group 'hw:hw4'
    """
    options = {
        "success_pct": success,
        "auto_advance": not manual,
        "error_pct": error_pct,
        "error_count": error_count,
        "min_finished": min_finished,
        "timeout_s": parse_duration(timeout, "timeout"),
    }
    for text in group:
        GroupSpec.parse(text, **options)  # bad input is reported here, before any request
    body: dict[str, Any] = {
        "release": release,
        "name": name,
        "groups": [{"group": g, **options} for g in group],
    }
    if seed is not None:
        body["seed"] = seed
    with Api(server, token) as api:
        answer = api.post("/rollouts", body)
        if start:
            answer = api.post(f"/rollouts/{answer['id']}/start")
    for g in answer["groups"]:
        if g["total"] == 0:
            err.print(
                f"[yellow]warning:[/] group {g['index']} ({g['group']}) matches no device; "
                "it passes at once"
            )
    if as_json:
        print_json(answer)
    else:
        out.print(
            f"rollout {answer['id']} of {answer['release']}: {answer['total']} devices, {answer['status']}"
        )
        out.print(_status_table(answer))


@rollout_app.command("list")
def rollout_list(
    server: _Server = DEFAULT_SERVER, token: _Token = None, as_json: _Json = False
) -> None:
    """List rollouts, newest first."""
    answer = _once(server, token, "GET", "/rollouts")
    if as_json:
        print_json(answer)
        return
    table = Table(title="rollouts")
    for col in ("id", "name", "release", "status", "reason", "updated"):
        table.add_column(col)
    for r in answer["rollouts"]:
        table.add_row(
            str(r["id"]), r["name"], r["release"], r["status"], r["reason"], iso(r["updated_at"])
        )
    out.print(table)


def _operation(
    operation: str, rollout_id: int, server: str, token: str | None, as_json: bool
) -> None:
    answer = _once(server, token, "POST", f"/rollouts/{rollout_id}/{operation}")
    if as_json:
        print_json(answer)
    else:
        out.print(
            f"rollout {answer['id']}: {answer['status']}"
            + (f" ({answer['reason']})" if answer["reason"] else "")
        )


@rollout_app.command("start")
def rollout_start(
    rollout_id: _Id, server: _Server = DEFAULT_SERVER, token: _Token = None, as_json: _Json = False
) -> None:
    """Start a created rollout: its first group is offered to devices."""
    _operation("start", rollout_id, server, token, as_json)


@rollout_app.command("halt")
def rollout_halt(
    rollout_id: _Id, server: _Server = DEFAULT_SERVER, token: _Token = None, as_json: _Json = False
) -> None:
    """Halt: no further device receives the release; devices already updating finish."""
    _operation("halt", rollout_id, server, token, as_json)


@rollout_app.command("resume")
def rollout_resume(
    rollout_id: _Id, server: _Server = DEFAULT_SERVER, token: _Token = None, as_json: _Json = False
) -> None:
    """Resume a halted rollout (failures so far are accepted) or start the next manual group."""
    _operation("resume", rollout_id, server, token, as_json)


@rollout_app.command("cancel")
def rollout_cancel(
    rollout_id: _Id, server: _Server = DEFAULT_SERVER, token: _Token = None, as_json: _Json = False
) -> None:
    """Cancel: scheduled devices are dropped, devices in progress are asked to stop."""
    _operation("cancel", rollout_id, server, token, as_json)


@rollout_app.command("rollback")
def rollout_rollback(
    rollout_id: _Id,
    to: Annotated[
        str | None,
        typer.Option(help="The release to go back to (default: the one most devices ran)."),
    ] = None,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """Cancel the rollout and start a new one to the previous release for the devices it reached."""
    answer = _once(server, token, "POST", f"/rollouts/{rollout_id}/rollback", json={"to": to})
    if as_json:
        print_json(answer)
    else:
        out.print(
            f"rollout {answer['id']} rolls {answer['total']} devices back to {answer['release']}"
        )


_IN_PROGRESS = [s.value for s in sorted(IN_PROGRESS)]


def _status_table(r: dict[str, Any]) -> Table:
    reason = f" · {r['reason']}" if r["reason"] else ""
    table = Table(title=f"rollout {r['id']} · {r['release']} · {r['status']}{reason}")
    table.add_column("#", justify="right")
    table.add_column("group", min_width=14, overflow="fold")
    for col in ("devices", "waiting", "updating", "confirmed", "failed", "timed out"):
        table.add_column(col, justify="right")
    table.add_column("success", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("no link", justify="right")
    table.add_column("50% / 95% in", justify="right")
    for g in r["groups"]:
        c: Counter[str] = Counter(g["counts"])
        milestones = " / ".join(
            _span(g.get(f"time_to_{pct}_pct_s")) for pct in CONFIRMED_MILESTONES_PCT
        )
        table.add_row(
            str(g["index"]),
            g["group"] + ("" if g["started"] else " (not started)"),
            str(g["total"]),
            str(c[ActionState.SCHEDULED.value]),
            str(sum(c[s] for s in _IN_PROGRESS)),
            str(c[ActionState.CONFIRMED.value]),
            str(c[ActionState.FAILED.value]),
            str(c[ActionState.TIMED_OUT.value]),
            f"{g['success_rate_pct']:.0f}%",
            f"{g['error_rate_pct']:.0f}%",
            str(g.get("waiting_for_link", "-")),
            milestones,
        )
    return table


def _span(seconds: float | None) -> str:
    """``-`` or a short duration: 45s, 12m, 3.5h."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@rollout_app.command("status")
def rollout_status(
    rollout_id: _Id,
    watch: Annotated[
        bool, typer.Option(help="Refresh until the rollout ends (Ctrl-C to stop).")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between refreshes with --watch.")
    ] = 2.0,
    server: _Server = DEFAULT_SERVER,
    token: _Token = None,
    as_json: _Json = False,
) -> None:
    """Per group: devices by state, success and error rates, devices waiting for a link (not
    heard from for two polling intervals), and the time to 50 % and 95 % confirmed."""
    with Api(server, token) as api:
        _status(api, rollout_id, watch, interval, as_json)


def _status(api: Api, rollout_id: int, watch: bool, interval: float, as_json: bool) -> None:
    answer = api.get(f"/rollouts/{rollout_id}")
    if as_json and not watch:
        print_json(answer)
        return
    if not watch:
        out.print(_status_table(answer))
        return
    ended = {"complete", "cancelled", "halted"}
    if as_json:
        while True:
            print_json(answer)
            if answer["status"] in ended:
                return
            time.sleep(interval)
            answer = api.get(f"/rollouts/{rollout_id}")
    with Live(Group(_status_table(answer)), console=out, refresh_per_second=4) as live:
        while answer["status"] not in ended:
            time.sleep(interval)
            answer = api.get(f"/rollouts/{rollout_id}")
            live.update(Group(_status_table(answer)))
    err.print(f"rollout {rollout_id} is {answer['status']}")
