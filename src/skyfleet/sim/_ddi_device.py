"""A simulated device that speaks hawkBit DDI over HTTP, exactly as a real client would.

Each :meth:`DdiDevice.step` is one poll cycle: poll, then act on what the server offers (fetch
the deployment, download and check the artifacts, install, "reboot", confirm), or answer a cancel.
Feedback that could not be delivered (server down, connection cut) is kept and re-sent first on
the next step, so a device never loses what it reported.

With a :class:`~skyfleet.sim.LinkSchedule` and a simulated time at each step, the device reaches
the server only while it has a link, and its download takes as long as its links' rates allow
(the bytes themselves are fetched, and checked, when the simulated transfer completes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from skyfleet.errors import InputError
from skyfleet.rollout import ActionState, feedback_target
from skyfleet.sim._links import LinkSchedule

__all__ = ["DdiDevice", "Fault"]


@dataclass(frozen=True, slots=True)
class Fault:
    """How an update goes wrong on a device: fail at install, or go silent at a stage."""

    fail_install: bool = False
    silent_at: str | None = None  # "download" or "install": stop talking from there on


@dataclass
class DdiDevice:
    """One simulated device.

    ``fault_for(version)`` says what goes wrong when installing ``version`` (None: nothing).
    ``installed_version`` changes only after a successful install and reboot. ``link``: when
    the device can reach the server and how fast it downloads (None: always, instantly).
    """

    device_id: str
    token: str
    hw: str = "hw3"
    installed_version: str | None = None
    tenant: str = "DEFAULT"
    fault_for: Callable[[str], Fault | None] = field(default=lambda _version: None)
    reported: dict[int, str] = field(default_factory=dict)
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    silent: bool = False
    polls: int = 0
    errors: int = 0
    link: LinkSchedule | None = None
    offline_steps: int = 0
    downloading: tuple[dict[str, Any], float, float] | None = None  # deployment, bits, since

    @property
    def _base(self) -> str:
        return f"/{self.tenant}/controller/v1/{self.device_id}"

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.token}"}

    async def _send(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
        self.pending.append((url, body))
        await self._flush(client)

    async def _flush(self, client: httpx.AsyncClient) -> None:
        while self.pending:
            url, body = self.pending[0]
            response = await client.post(url, json=body, headers=self._headers)
            if response.status_code >= 500:
                raise httpx.HTTPStatusError(
                    "server error", request=response.request, response=response
                )
            self.pending.pop(0)  # delivered (a 4xx will not get better by re-sending)

    async def _feedback(
        self,
        client: httpx.AsyncClient,
        action_id: int,
        execution: str,
        finished: str = "none",
        details: str = "",
        *,
        cancel: bool = False,
    ) -> None:
        kind = "cancelAction" if cancel else "deploymentBase"
        url = f"{self._base}/{kind}/{action_id}/feedback"
        body = {
            "id": str(action_id),
            "status": {
                "execution": execution,
                "result": {"finished": finished},
                "details": [details] if details else [],
            },
        }
        target = (
            ActionState.CANCELLED if cancel else feedback_target(execution, finished, [details])
        )
        if target is not None:  # what the device reports, delivered now or re-sent later
            self.reported[action_id] = target.value
        await self._send(client, url, body)

    async def step(self, client: httpx.AsyncClient, now_s: float | None = None) -> str:
        """One poll cycle at simulated time ``now_s`` (UNIX s; needed with a ``link``); returns
        what happened: idle, updated, failed, cancelled, silent, error, no-link (out of reach,
        nothing sent) or downloading (the transfer is still under way)."""
        if self.silent:
            return "silent"
        if self.link is not None:
            if now_s is None:
                raise InputError(
                    f"device {self.device_id!r} has a link schedule: step it at a time (now_s)"
                )
            if not self.link.connected(now_s):
                self.offline_steps += 1
                return "no-link"
        try:
            await self._flush(client)
            if self.downloading is not None and now_s is not None:
                return await self._continue_download(client, now_s)
            return await self._cycle(client, now_s)
        except (httpx.TransportError, httpx.HTTPStatusError):
            self.errors += 1
            return "error"

    async def _continue_download(self, client: httpx.AsyncClient, now_s: float) -> str:
        assert self.downloading is not None and self.link is not None
        dep, bits, since = self.downloading
        if self.link.bits_between(since, now_s) < bits:
            # The transfer goes on: the server sees the device fetch its bytes (one here).
            first = dep["deployment"]["chunks"][0]["artifacts"][0]
            got = await client.get(
                first["_links"]["download-http"]["href"],
                headers={**self._headers, "Range": "bytes=0-0"},
            )
            got.raise_for_status()
            return "downloading"
        self.downloading = None
        return await self._finish(client, dep)

    async def _cycle(self, client: httpx.AsyncClient, now_s: float | None = None) -> str:
        self.polls += 1
        response = await client.get(self._base, headers=self._headers)
        response.raise_for_status()
        links = response.json().get("_links", {})
        if "configData" in links:
            data = {
                "hw": self.hw,
                **({"version": self.installed_version} if self.installed_version else {}),
            }
            put = await client.put(
                f"{self._base}/configData",
                json={"mode": "merge", "data": data},
                headers=self._headers,
            )
            put.raise_for_status()
        if "cancelAction" in links:
            cancel = (await client.get(links["cancelAction"]["href"], headers=self._headers)).json()
            action_id = int(cancel["cancelAction"]["stopId"])
            await self._feedback(client, action_id, "closed", "success", "cancelled", cancel=True)
            return "cancelled"
        if "deploymentBase" not in links:
            return "idle"
        deployment = await client.get(links["deploymentBase"]["href"], headers=self._headers)
        deployment.raise_for_status()
        return await self._install(client, deployment.json(), now_s)

    async def _install(
        self, client: httpx.AsyncClient, dep: dict[str, Any], now_s: float | None = None
    ) -> str:
        action_id = int(dep["id"])
        chunk = dep["deployment"]["chunks"][0]
        fault = self.fault_for(str(chunk["version"]))
        await self._feedback(client, action_id, "download", details="downloading")
        if fault and fault.silent_at == "download":
            self.silent = True
            return "silent"
        if self.link is not None and now_s is not None:
            bits = 8.0 * sum(float(a["size"]) for a in chunk["artifacts"])
            self.downloading = (dep, bits, now_s)
            return await self._continue_download(client, now_s)
        return await self._finish(client, dep)

    async def _finish(self, client: httpx.AsyncClient, dep: dict[str, Any]) -> str:
        """Fetch and check the artifacts, install, reboot and confirm."""
        action_id = int(dep["id"])
        chunk = dep["deployment"]["chunks"][0]
        version = str(chunk["version"])
        fault = self.fault_for(version)
        for artifact in chunk["artifacts"]:
            got = await client.get(
                artifact["_links"]["download-http"]["href"], headers=self._headers
            )
            got.raise_for_status()
            if hashlib.sha256(got.content).hexdigest() != artifact["hashes"]["sha256"]:
                await self._feedback(client, action_id, "closed", "failure", "sha256 mismatch")
                return "failed"
        await self._feedback(client, action_id, "downloaded", details="downloaded")
        await self._feedback(client, action_id, "proceeding", details="installing")
        if fault and fault.silent_at == "install":
            self.silent = True
            return "silent"
        if fault and fault.fail_install:
            await self._feedback(client, action_id, "closed", "failure", "install failed")
            return "failed"
        await self._feedback(
            client, action_id, "proceeding", details="rebooting into the new image"
        )
        self.installed_version = version
        await self._feedback(client, action_id, "closed", "success", f"running {version}")
        return "updated"
