"""The base poll's hot path: polls read together in batches, answered before the framework's
routing, with the same answers and errors as the route."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psycopg
import pytest
from starlette.routing import Route
from tests.server._fleet import Car, register_cars, release, rollout

from conftest import ADMIN, LiveServer, _reset_pg
from skyfleet import store
from skyfleet.errors import DeviceError, StoreError
from skyfleet.server import ServerConfig, create_app
from skyfleet.server._poll_path import BasePollShortPath
from skyfleet.server._polls import PollBatcher

# --- the batcher, over a real store ----------------------------------------------------------------


class _Counting(store.PollViewReader):
    """A real reader that remembers the batches it was asked for (and can fail the first)."""

    def __init__(self, reader: store.PollViewReader, *, fail_first: bool = False) -> None:
        self.reader = reader
        self.batches: list[list[str]] = []
        self.fail_first = fail_first

    async def read(self, device_ids: Sequence[str]) -> dict[str, store.PollView]:
        self.batches.append(list(device_ids))
        if self.fail_first and len(self.batches) == 1:
            raise StoreError("the database is busy or unreachable; retry shortly")
        return await self.reader.read(device_ids)

    async def close(self) -> None:
        await self.reader.close()


def _fleet(db: store.Store, n: int) -> list[str]:
    ids = [f"car-{i:03d}" for i in range(n)]
    with db.begin() as conn:
        store.register_devices(
            conn,
            1.0e9,
            [store.NewDevice(d, hw="hw3" if i % 2 else "hw4") for i, d in enumerate(ids)],
            actor="test",
        )
    return ids


def test_polls_waiting_together_are_read_in_one_batch_with_each_devices_own_view(
    db: store.Store,
) -> None:
    ids = _fleet(db, 40)
    asked = [*ids, *ids[:5], "nobody", "nobody-else"]  # repeats and unknown devices
    random.Random(7).shuffle(asked)
    with db.read() as conn:
        expected = store.poll_views(conn, ids)

    async def run(max_batch: int) -> tuple[list[store.PollView | None], list[list[str]]]:
        reader = _Counting(await store.open_poll_reader(db))
        try:
            batcher = PollBatcher(reader, max_batch=max_batch, parallel=1)
            views = await asyncio.gather(*(batcher.view(d) for d in asked))
        finally:
            await reader.close()
        return list(views), reader.batches

    for max_batch, reads in ((256, 1), (8, 6)):  # 42 distinct devices: 1 read, or 6 of <= 8
        views, batches = asyncio.run(run(max_batch))
        assert views == [expected.get(d) for d in asked]
        assert expected["car-001"].hw == "hw3" and views[asked.index("nobody")] is None
        assert len(batches) == reads
        assert all(len(b) <= max_batch and len(set(b)) == len(b) for b in batches)


def test_a_failed_read_fails_each_of_its_polls_and_the_next_poll_is_read_again(
    db: store.Store,
) -> None:
    ids = _fleet(db, 10)

    async def run() -> tuple[list[object], store.PollView | None]:
        reader = _Counting(await store.open_poll_reader(db), fail_first=True)
        try:
            batcher = PollBatcher(reader, parallel=1)
            first = await asyncio.gather(*(batcher.view(d) for d in ids), return_exceptions=True)
            again = await asyncio.wait_for(batcher.view(ids[3]), timeout=10)
        finally:
            await reader.close()
        return first, again

    first, again = asyncio.run(run())
    assert all(isinstance(r, StoreError) for r in first)
    assert again is not None and again.hw == "hw3"


def test_the_batcher_refuses_a_batch_size_or_parallelism_below_one(db: store.Store) -> None:
    async def make(**kw: int) -> None:
        reader = await store.open_poll_reader(db)
        try:
            PollBatcher(reader, **kw)
        finally:
            await reader.close()

    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(make(max_batch=0))
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(make(parallel=0))


# --- over HTTP ------------------------------------------------------------------------------------


def test_many_concurrent_polls_each_get_their_own_answer(
    server: LiveServer, api: httpx.Client
) -> None:
    early = register_cars(api, *({"id": f"eap-{i:02d}", "tags": ["eap"]} for i in range(12)))
    rest = register_cars(api, *({"id": f"car-{i:02d}"} for i in range(24)))
    release(api, "2025.44.25.5", ["hw3"])
    rollout_id = rollout(api, "2025.44.25.5", ["tag:eap"])
    actions = api.get(f"/api/v1/rollouts/{rollout_id}/actions").json()["actions"]
    action_of = {a["device_id"]: a["id"] for a in actions}
    assert set(action_of) == set(early)
    cars = [*early.values(), *rest.values()] * 4
    impostors = [Car(c.id, "not-its-token") for c in list(rest.values())[:6]]
    strangers = [Car(f"stranger-{i}", "any") for i in range(6)]
    asked = cars + impostors + strangers
    random.Random(3).shuffle(asked)

    async def poll_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(client.get(c.base, headers=c.auth) for c in asked))

    answers = asyncio.run(poll_all())
    for car, answer in zip(asked, answers, strict=True):
        if car in impostors or car in strangers:
            assert answer.status_code == 401, answer.text
            assert answer.headers["WWW-Authenticate"] == "TargetToken"
            assert "token" in answer.json()["error"]
            continue
        assert answer.status_code == 200, answer.text
        links = answer.json()["_links"]
        if car.id in action_of:
            href = links["deploymentBase"]["href"]
            assert href.startswith(f"{server.url}{car.base}/deploymentBase/{action_of[car.id]}?")
        else:
            assert "deploymentBase" not in links
    assert not any(api.get(f"/api/v1/devices/{c.id}").status_code == 200 for c in strangers), (
        "a poll with a wrong token registered a device"
    )


def test_a_poll_the_short_path_does_not_take_gets_the_routes_validation(
    api: httpx.Client,
) -> None:
    car = register_cars(api, {"id": "ok-car"})["ok-car"]
    too_long = api.get(f"/DEFAULT/controller/v1/{'x' * 129}", headers=car.auth)
    assert too_long.status_code == 422
    assert "controller_id" in too_long.json()["error"]
    assert api.get(car.base, headers=car.auth).status_code == 200


def test_polls_get_503_while_the_database_is_gone_and_200_once_it_is_back(
    pg_database: str, tmp_path: Path
) -> None:
    _reset_pg(pg_database)  # a store of its own: roots left by another test name other keys
    db = store.open_store(pg_database, artifacts_dir=tmp_path / "artifacts")
    try:
        with db.begin() as conn:
            store.register_devices(
                conn, 1.0e9, [store.NewDevice("car", token="car-token")], actor="test"
            )
        app = create_app(ServerConfig(sweep_interval_s=0.05), db=db)
        headers = {"Authorization": "TargetToken car-token"}
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            assert client.get("/DEFAULT/controller/v1/car", headers=headers).status_code == 200
            name = db.engine.url.database
            with psycopg.connect(pg_database.replace("+psycopg", ""), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
            codes = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                answer = client.get("/DEFAULT/controller/v1/car", headers=headers)
                codes.append(answer.status_code)
                if answer.status_code == 200:
                    break
                assert answer.status_code == 503, answer.text
                assert answer.json() == {
                    "error": "the database is busy or unreachable; retry shortly"
                }
                assert answer.headers["Retry-After"] == "1"
            assert codes[-1] == 200, codes
            assert 503 in codes, "the poll after the database went away should have failed"
    finally:
        db.close()


def test_an_id_with_a_nul_byte_names_no_device_and_does_not_fail_its_batch(
    db: store.Store,
) -> None:
    ids = _fleet(db, 6)
    asked = [*ids, "car-000\x00", "\x00"]

    async def run() -> list[store.PollView | None]:
        reader = await store.open_poll_reader(db)
        try:
            return list(await asyncio.gather(*(PollBatcher(reader).view(d) for d in asked)))
        finally:
            await reader.close()

    views = asyncio.run(run())
    assert all(v is not None for v in views[:6]) and views[6:] == [None, None]
    with pytest.raises(DeviceError, match="control characters"):
        store.NewDevice("car\x00").check()


def test_the_short_path_answers_polls_as_the_route_does(db: store.Store) -> None:
    """Same status, body and content type with and without the short path; and the short
    path answers even with the route gone (so it is the one answering)."""
    config = ServerConfig(gateway_token="gw-token", poll_jitter=0.0, sweep_interval_s=0.05)
    short = create_app(config, db=db)
    routed = create_app(config, db=db)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not BasePollShortPath]
    with LiveServer(short) as a, httpx.Client(base_url=a.url, timeout=30, headers=ADMIN) as api:
        cars = register_cars(api, {"id": "eap-1", "tags": ["eap"]}, {"id": "plain-1"})
        release(api, "2025.44.25.5", ["hw3"])
        rollout(api, "2025.44.25.5", ["tag:eap"])
        requests = [
            ("/DEFAULT/controller/v1/eap-1", cars["eap-1"].auth),
            ("/DEFAULT/controller/v1/plain-1", cars["plain-1"].auth),
            ("/default/controller/v1/plain-1", cars["plain-1"].auth),
            ("/DEFAULT/controller/v1/plain-1", {"Authorization": "TargetToken wrong"}),
            ("/DEFAULT/controller/v1/plain-1", {}),
            ("/OTHER/controller/v1/plain-1", cars["plain-1"].auth),
            ("/DEFAULT/controller/v1/nobody", {"Authorization": "TargetToken x"}),
        ]
        with LiveServer(routed) as b, httpx.Client(base_url=b.url, timeout=30) as other:
            for path, headers in requests:
                one, two = api.get(path, headers=headers), other.get(path, headers=headers)
                assert one.status_code == two.status_code, path
                assert one.headers["content-type"] == two.headers["content-type"]
                assert one.headers.get("www-authenticate") == two.headers.get("www-authenticate")
                assert one.text.replace(a.url, "URL") == two.text.replace(b.url, "URL"), path
        assert "deploymentBase" in api.get(requests[0][0], headers=requests[0][1]).json()["_links"]
        # With every API route gone, only the short path can still answer a poll.
        short.router.routes[:] = [r for r in short.router.routes if isinstance(r, Route)]
        assert api.get("/api/v1/health").status_code == 404
        assert api.get(requests[1][0], headers=requests[1][1]).status_code == 200
