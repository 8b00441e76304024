"""Run many simulated devices against a server: rounds of polls with bounded concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import httpx

from skyfleet.sim._ddi_device import DdiDevice

__all__ = ["run_round", "run_rounds"]


async def run_round(
    client: httpx.AsyncClient,
    devices: Sequence[DdiDevice],
    *,
    concurrency: int = 32,
    now_s: float | None = None,
) -> Counter[str]:
    """Every device does one poll cycle (at simulated time ``now_s``, for devices with a link
    schedule); returns how many ended each way."""
    gate = asyncio.Semaphore(concurrency)

    async def one(device: DdiDevice) -> str:
        async with gate:
            return await device.step(client, now_s)

    return Counter(await asyncio.gather(*(one(d) for d in devices)))


async def run_rounds(
    base_url: str,
    devices: Sequence[DdiDevice],
    rounds: int,
    *,
    concurrency: int = 32,
    pause_s: float = 0.0,
    clock: Callable[[], float] | None = None,
) -> list[Counter[str]]:
    """``rounds`` rounds against the server at ``base_url``; one Counter per round. Devices
    with a link schedule step at ``clock()`` (UNIX s, simulated or real)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        for _ in range(rounds):
            now_s = clock() if clock is not None else None
            results.append(await run_round(client, devices, concurrency=concurrency, now_s=now_s))
            if pause_s:
                await asyncio.sleep(pause_s)
    return results
