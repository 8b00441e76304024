"""The demo while it runs and when it ends: a monitor that reads the server's operator API
(the rollout, the fleet) twice a second and shows the live summary, and the final report.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from rich.live import Live

from skyfleet.cli._client import Api
from skyfleet.cli._common import err, iso, out, print_json
from skyfleet.cli._demo_fleet import TELEMETRY_HISTORY, Fleet
from skyfleet.cli._demo_report import (
    Watch,
    group_rows,
    link_shares,
    live_panel,
    outage_observed,
    outage_view,
    report_tables,
    status_line,
)
from skyfleet.cli._demo_seed import GATES, HOLIDAY, REGRESSION_WAVE, Seed
from skyfleet.sim import Scenario

__all__ = ["JUDGE_ACTOR", "Monitor", "final_report", "halt_entry", "show_report"]

_GROUP = re.compile(r"group (\d+)")
#: The name the server's judge writes in the audit log (an operator's is their token's name).
JUDGE_ACTOR = "skyfleet"
_AUDIT_PAGE = 10_000


def halt_entry(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest audit entry of those given that halted a rollout, or None."""
    for entry in entries:
        if entry.get("event") == "rollout.status" and entry.get("to_state") == "halted":
            return entry
    return None


def _find_halt(api: Api, rollout_id: int, pages: int = 50) -> dict[str, Any] | None:
    """The audit entry of the rollout's latest halt, paging back through its log."""
    before: int | None = None
    for _ in range(pages):
        params: dict[str, Any] = {"rollout_id": rollout_id, "limit": _AUDIT_PAGE}
        if before is not None:
            params["before_id"] = before
        entries = api.get("/audit", **params)["entries"]
        found = halt_entry(entries)
        if found is not None or len(entries) < _AUDIT_PAGE:
            return found
        before = int(entries[-1]["id"])
    return None


class Monitor:
    """Reads the rollout (every 0.5 s) and the fleet (every 2 s) from the server."""

    def __init__(
        self,
        base_url: str,
        token: str,
        rollout_id: int,
        dashboard_url: str,
        rate: float,
        scenario: Scenario,
        fleet: Fleet,
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.rollout_id = rollout_id
        self.scenario = scenario
        self.fleet = fleet
        self.watch = Watch(dashboard_url, rate)
        self.halt_line: str | None = None

    async def _read(self, client: httpx.AsyncClient, with_fleet: bool) -> None:
        try:
            answer = await client.get(f"/rollouts/{self.rollout_id}")
            if answer.status_code == 200:
                self.watch.rollout = answer.json()
            if self.watch.rollout.get("status") == "halted" and self.watch.halted_at_s is None:
                audit = await client.get(
                    "/audit", params={"rollout_id": self.rollout_id, "limit": _AUDIT_PAGE}
                )
                if audit.status_code == 200:
                    self.halted(halt_entry(audit.json()["entries"]))
            if with_fleet:
                silent = 2.0 * self.fleet.poll_s
                fleet = await client.get(
                    "/fleet/status", params={"silent_after_s": silent, "limit": 0}
                )
                if fleet.status_code == 200:
                    self.watch.fleet = fleet.json()
        except httpx.HTTPError:
            self.watch.monitor_errors += 1

    def halted(self, entry: dict[str, Any] | None) -> None:
        """Note the halt from its audit entry (when, why, which wave, by whom)."""
        w = self.watch
        if entry is None:
            return
        w.halted_at_s = float(entry["ts"])
        w.halted_reason = str(entry.get("detail") or "")
        w.halted_by = str(entry.get("actor") or "")
        found = _GROUP.search(w.halted_reason)
        w.halted_group = int(found.group(1)) if found else None
        who = "the judge" if w.halted_by == JUDGE_ACTOR else f"operator {w.halted_by}"
        self.halt_line = f"{who} halted the rollout at {iso(w.halted_at_s)}: {w.halted_reason}"

    def panel(self) -> Any:
        """The live summary now."""
        now_s = self.fleet.clock()
        t = self.fleet.traffic
        return live_panel(
            self.watch,
            self.scenario,
            now_s,
            self.fleet.links_now(now_s),
            t.per_s(),
            t.errors,
            t.lag_s,
            t.on_time_pct(),
        )

    async def run(self, stop: asyncio.Event, live: bool) -> None:
        """Until ``stop``: read the server, refresh the panel (or log a line every 5 s)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(
            base_url=self.base_url + "/api/v1", headers=headers, timeout=10.0
        ) as client:
            with self._display(live) as display:
                tick = 0
                printed_halt = False
                while not stop.is_set():
                    await self._read(client, with_fleet=tick % 4 == 0)
                    if display is not None:
                        display.update(self.panel())
                    else:
                        if self.halt_line and not printed_halt:
                            err.print(self.halt_line, soft_wrap=True, markup=False)
                            printed_halt = True
                        if tick % 10 == 0:
                            t = self.fleet.traffic
                            line = status_line(self.watch, self.fleet.clock(), t.per_s(), t.lag_s)
                            err.print(line, soft_wrap=True, markup=False)
                    tick += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=0.5)

    @contextlib.contextmanager
    def _display(self, live: bool) -> Iterator[Live | None]:
        if not live:
            yield None
            return
        with Live(self.panel(), console=out, refresh_per_second=2, transient=False) as display:
            yield display


def _confirm_times(api: Api, rollout_id: int, groups: int) -> dict[int, list[float]]:
    """Per group: when each confirmed device confirmed (server time), in order."""
    times: dict[int, list[float]] = {}
    for index in range(1, groups + 1):
        rows = api.get(
            f"/rollouts/{rollout_id}/actions", group=index, state="confirmed", limit=100_000
        )
        times[index] = sorted(float(a["updated_at"]) for a in rows["actions"])
    return times


def _fleet_status(api: Api, fleet: Fleet, *, wait_for_mqtt: bool) -> dict[str, Any]:
    """The server's fleet view; over MQTT, once the server stored what was sent (the broker
    hands it on a moment later), or after 5 s."""
    deadline = time.monotonic() + 5.0
    while True:
        status: dict[str, Any] = api.get(
            "/fleet/status", silent_after_s=2.0 * fleet.poll_s, limit=0
        )
        stored = int(status.get("telemetry", {}).get("stored", 0))
        sent = fleet.traffic.telemetry_samples
        if not wait_for_mqtt or stored >= sent or time.monotonic() > deadline:
            return status
        time.sleep(0.25)


def observed_outage(api: Api, scenario: Scenario) -> dict[str, Any]:
    """What the server saw of the outage: the telemetry it stored from the outage homes'
    devices (GET /devices/{id}/telemetry), summed up by :func:`outage_observed`."""
    ids = [d.device_id for h in scenario.homes if h.in_outage for d in h.devices]
    histories = {
        device_id: api.get(f"/devices/{device_id}/telemetry", limit=TELEMETRY_HISTORY)["history"]
        for device_id in ids
    }
    return outage_observed(histories, scenario.outage.start_s, scenario.outage.end_s)


def final_report(
    monitor: Monitor,
    seeded: Seed,
    scenario: Scenario,
    timing: Mapping[str, float],
    rate: float,
    began_monotonic: float,
    broker: str | None,
    server_pid: int,
    mqtt_undelivered: int | None = None,
) -> dict[str, Any]:
    """The report of a headless run, from the server's operator API and the devices.
    ``mqtt_undelivered``: telemetry messages the broker had not acknowledged at the end."""
    fleet = monitor.fleet
    with Api(monitor.base_url, monitor.token) as api:
        rollout = api.get(f"/rollouts/{seeded.rollout_id}")
        server_fleet = _fleet_status(api, fleet, wait_for_mqtt=broker is not None)
        confirmed = _confirm_times(api, seeded.rollout_id, len(rollout["groups"]))
        monitor.watch.rollout = rollout
        monitor.halted(_find_halt(api, seeded.rollout_id))
        observed = observed_outage(api, scenario)
    w = monitor.watch
    groups = group_rows(rollout)
    for g in groups:
        t = confirmed.get(g["index"], [])
        g["first_confirmed_at"] = t[0] if t else None
        g["last_confirmed_at"] = t[-1] if t else None
        need = math.ceil(GATES["success_pct"] / 100.0 * g["total"])
        g["passed_at"] = t[need - 1] if g["total"] and len(t) >= need else None
        members = [d for d, i in seeded.groups.items() if i == g["index"]]
        updated = [fleet.updated_at[d] for d in members if d in fleet.updated_at]
        g["devices_updated"] = len(updated)
        g["first_update_at"] = min(updated) if updated else None
        g.pop("counts", None)
        g["counts"] = rollout["groups"][g["index"] - 1]["counts"]
    wall_s = timing["fleet_wall_s"]
    sim_end = min(timing["sim_end_s"], scenario.start_s + scenario.duration_s)
    devices = fleet.summary()
    by_state = server_fleet.get("by_state", {})
    total_devices = int(server_fleet.get("devices", 0))
    stored = server_fleet.get("telemetry", {}).get("stored")
    by_judge = w.halted_at_s is not None and w.halted_by == JUDGE_ACTOR
    return {
        "scenario": {
            "constellation": scenario.constellation,
            "start": iso(scenario.start_s),
            "start_s": scenario.start_s,
            "duration_s": scenario.duration_s,
            "vehicles": len(scenario.vehicles),
            "hw3": sum(1 for v in scenario.vehicles if v.hw == "hw3"),
            "hw4": sum(1 for v in scenario.vehicles if v.hw == "hw4"),
            "early_access": sum(1 for v in scenario.vehicles if "eap" in v.tags),
            "sites": len(scenario.sites),
            "homes": len(scenario.homes),
            "home_devices": sum(len(h.devices) for h in scenario.homes),
        },
        "rate": rate,
        "wall_s": round(wall_s, 2),
        "total_wall_s": round(time.monotonic() - began_monotonic, 2),
        "late_start_s": round(timing["late_start_s"], 1),
        "sim_covered_s": round(timing["sim_covered_s"], 1),
        "effective_rate": round(timing["sim_covered_s"] / wall_s, 1) if wall_s > 0 else 0.0,
        "kept_up": {
            "poll_interval_s": fleet.poll_s,
            "polls_on_time_pct": devices["polls_on_time_pct"],
            "max_lag_s": devices["max_lag_s"],
        },
        "story": {
            "halted_by_judge": by_judge,
            "halted_wave": w.halted_group if by_judge else None,
            "regression_wave": REGRESSION_WAVE,
            "completed": by_judge and w.halted_group == REGRESSION_WAVE,
        },
        "telemetry_via": "mqtt" if broker else "http",
        "telemetry": {
            "samples_sent": devices["telemetry_samples"],
            "samples_stored_by_server": stored,
            "mqtt_undelivered_messages": mqtt_undelivered,
        },
        "server_pid": server_pid,
        "rollout": {
            "id": seeded.rollout_id,
            "release": rollout.get("release", HOLIDAY),
            "status": rollout["status"],
            "reason": rollout.get("reason"),
            "halted_at": w.halted_at_s,
            "halted_by": w.halted_by,
            "halted_group": w.halted_group,
            "regression_wave": REGRESSION_WAVE,
            "faulty_devices": len(seeded.faulty),
            "groups": groups,
        },
        "links": {
            "vehicle_time_pct": link_shares(scenario, scenario.start_s, sim_end),
            "vehicles_now": dict(fleet.links_now(timing["sim_end_s"])),
        },
        "powershare": {**outage_view(scenario, timing["sim_end_s"]), "server_observed": observed},
        "requests": {
            **devices,
            "per_s": round(devices["device_requests"] / wall_s, 1) if wall_s else 0.0,
        },
        "server": {
            "devices": total_devices,
            "seen": total_devices - int(by_state.get("never_seen", 0)),
            "by_state": by_state,
            "by_kind": server_fleet.get("by_kind", {}),
            "by_link": server_fleet.get("by_link", {}),
            "by_version": server_fleet.get("by_version", {}),
            "telemetry": server_fleet.get("telemetry", {}),
        },
    }


def show_report(report: Mapping[str, Any], as_json: bool) -> None:
    """One JSON object on stdout, or rich tables."""
    if as_json:
        print_json(report)
        return
    for part in report_tables(report):
        out.print(part)
