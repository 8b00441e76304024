"""A simulated device that speaks hawkBit DDI over HTTP, exactly as a real client would.

Each :meth:`DdiDevice.step` is one poll cycle: poll, then act on what the server offers (fetch
the deployment, download and check the artifacts, install, "reboot", confirm), or answer a cancel.
Feedback that could not be delivered (server down, connection cut) is kept and re-sent first on
the next step, so a device never loses what it reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from skyfleet.rollout import ActionState, feedback_target

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
    ``installed_version`` changes only after a successful install and reboot.
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

    async def step(self, client: httpx.AsyncClient) -> str:
        """One poll cycle; returns what happened (idle, updated, failed, cancelled, error...)."""
        if self.silent:
            return "silent"
        try:
            await self._flush(client)
            return await self._cycle(client)
        except (httpx.TransportError, httpx.HTTPStatusError):
            self.errors += 1
            return "error"

    async def _cycle(self, client: httpx.AsyncClient) -> str:
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
        return await self._install(client, deployment.json())

    async def _install(self, client: httpx.AsyncClient, dep: dict[str, Any]) -> str:
        action_id = int(dep["id"])
        chunk = dep["deployment"]["chunks"][0]
        version = str(chunk["version"])
        fault = self.fault_for(version)
        await self._feedback(client, action_id, "download", details="downloading")
        if fault and fault.silent_at == "download":
            self.silent = True
            return "silent"
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
