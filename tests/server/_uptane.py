"""Helpers for the signed-update tests: a server with a clock the test moves, devices that run
python-tuf's real client, and an attacker on the network between them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.server._fleet import Car, register_cars, release, rollout

from conftest import ADMIN, GATEWAY_TOKEN, LiveServer
from skyfleet import store
from skyfleet.rollout import Lifetimes, RepoHead, parse, refresh
from skyfleet.server import ServerConfig, create_app
from skyfleet.sim import TokenFetcher, UptaneDevice

V1 = "2025.44.25.5"
V2 = "2025.50.1"


class Clock:
    """The server's clock: real time plus an offset the test sets (seconds)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


Answer = Callable[[str], Iterator[bytes]]


class Attacker(TokenFetcher):
    """The network between a device and skyfleet: it passes requests on, or answers those whose
    URL matches one of its ``rules`` (a regular expression) itself, and counts what it sent."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.rules: dict[str, Answer] = {}
        self.sent_bytes = 0
        self.urls: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.urls.append(url)
        for pattern, answer in self.rules.items():
            if re.search(pattern, url):
                return self._counted(answer(url))
        return super()._fetch(url)

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.sent_bytes += len(chunk)
            yield chunk

    def real(self, url: str) -> bytes:
        """What the server itself answers to ``url``."""
        return b"".join(super()._fetch(url))


def replay(body: bytes) -> Answer:
    """An answer that is always ``body``."""
    return lambda _url: iter([body])


def endless(_url: str) -> Iterator[bytes]:
    """An answer that never ends."""
    chunk = b" " * 65536
    while True:
        yield chunk


@dataclass
class Site:
    """A live skyfleet server with its store, clock, key folders and operator client."""

    server: LiveServer
    db: store.Store
    clock: Clock
    keys_dir: Path
    root_keys_dir: Path
    api: httpx.Client
    workdir: Path
    cars: dict[str, Car] = field(default_factory=dict)
    hardware: dict[str, str] = field(default_factory=dict)
    opened: list[UptaneDevice | Attacker] = field(default_factory=list)

    def root(self, repo: str) -> bytes:
        answer = self.api.get(f"/api/v1/trust/{repo}/root")
        assert answer.status_code == 200, answer.text
        return answer.content

    def device(self, car_id: str, attacker: Attacker | None = None) -> UptaneDevice:
        """The car's Uptane client, built with the roots the server has now."""
        car = self.cars[car_id]
        device = UptaneDevice(
            car_id,
            f"{self.server.url}{car.base}",
            car.token,
            hardware=self.hardware.get(car_id, "hw3"),
            director_root=self.root("director"),
            image_root=self.root("image"),
            workdir=self.workdir / car_id,
            fetcher=attacker,
        )
        self.opened.append(device)
        return device

    def forget(self, car_id: str, repo: str, role: str) -> None:
        """Drop the car's cached copy of a metadata file, so that it downloads it again."""
        self.workdir.joinpath(car_id, repo, f"{role}.json").unlink()

    def attacker(self, car_id: str) -> Attacker:
        attacker = Attacker(self.cars[car_id].token)
        self.opened.append(attacker)
        return attacker

    def director_head(self, car_id: str) -> RepoHead:
        with self.db.read() as conn:
            return store.repo_head(conn, store.director_repo(car_id))

    def stolen_keys(self, repo: str) -> dict[str, list[object]]:
        """The online signers an attacker who copied the server's key folder holds, by role."""
        held = store.load_keys(self.keys_dir, repo)
        with self.db.read() as conn:
            current = parse(store.root(conn, repo) or b"").signed
        return {
            role: [held[k] for k in current.roles[role].keyids if k in held]
            for role in ("targets", "snapshot", "timestamp")
        }


def start_site(
    db: store.Store,
    tmp_path: Path,
    *,
    thresholds: dict[str, int] | None = None,
    lifetimes: Lifetimes | None = None,
    clock_offset_s: float = 0.0,
) -> tuple[Site, Callable[[], None]]:
    """A server over ``db`` with two hw3 cars (car-1 in early access, car-2 not), release V1
    for hw3 and hw4, and a started rollout of V1 to early access. Returns it and its closer."""
    clock = Clock()
    clock.offset_s = clock_offset_s
    keys_dir, root_keys_dir = tmp_path / "keys", tmp_path / "root-keys"
    defaults = ServerConfig()
    lifetimes = lifetimes or defaults.lifetimes()
    store.init_trust(
        db,
        clock(),
        keys_dir=keys_dir,
        root_keys_dir=root_keys_dir,
        thresholds=thresholds,
        lifetimes=lifetimes,
    )
    config = ServerConfig(
        gateway_token=GATEWAY_TOKEN,
        sweep_interval_s=0.05,
        touch_flush_s=0.05,
        keys_dir=keys_dir,
        targets_expiry_s=lifetimes.targets_s,
        snapshot_expiry_s=lifetimes.snapshot_s,
        timestamp_expiry_s=lifetimes.timestamp_s,
        trust_refresh_s=0.05,
    )
    live = LiveServer(create_app(config, db=db, clock=clock)).__enter__()
    api = httpx.Client(base_url=live.url, timeout=30.0, headers=ADMIN)
    site = Site(live, db, clock, keys_dir, root_keys_dir, api, tmp_path / "devices")
    site.cars = register_cars(api, {"id": "car-1", "tags": ["eap"]}, {"id": "car-2"})
    release(api, V1, ["hw3", "hw4"])
    rollout(api, V1, ["tag:eap"])

    def close() -> None:
        for opened in site.opened:
            opened.close()
        api.close()
        live.__exit__(None, None, None)

    return site, close


def forge_director(
    site: Site,
    car_id: str,
    targets: dict[str, object],
    signers: dict[str, list[object]],
) -> dict[str, bytes]:
    """Director metadata for ``car_id`` listing ``targets``, signed with ``signers`` (what an
    attacker holding those keys can make): URL pattern -> bytes, for :class:`Attacker` rules."""
    published = refresh(
        site.director_head(car_id),
        targets,  # type: ignore[arg-type]
        signers,  # type: ignore[arg-type]
        now_s=time.time(),
        lifetimes=Lifetimes(),
    )
    rules = {}
    for p in published:
        name = "timestamp.json" if p.role == "timestamp" else f"{p.version}.{p.role}.json"
        rules[f"/tuf/director/{re.escape(name)}$"] = p.body
    return rules
