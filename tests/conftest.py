"""Shared fixtures."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from skyfleet.orbits import WalkerConstellation, preset
from skyfleet.server import ServerConfig, create_app
from skyfleet.store import Store, create_operator_token, open_store

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="session")
def s1() -> WalkerConstellation:
    """Starlink shell 1 (72 x 22 at 550 km, 53 deg)."""
    return preset("starlink-s1")


# --- databases and a live server -----------------------------------------------------------------

PG_ADMIN = os.environ.get("SKYFLEET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SKYFLEET_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    import psycopg

    name = f"skyfleet_test_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = (
            f"PostgreSQL at {PG_ADMIN} is not reachable ({str(exc).strip().splitlines()[0]}): "
            "the PostgreSQL store tests were NOT run"
        )
        if REQUIRE_PG:
            pytest.fail(message)
        pytest.skip(message)
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or the session's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'skyfleet.db'}"
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    return url


#: The admin token every test store has (named ``admin``), and the header that carries it.
ADMIN_TOKEN = "sfo_admin-token-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def add_admin(db: Store) -> None:
    """Give a store the tests' admin token."""
    with db.begin() as conn:
        create_operator_token(
            conn, START, name="admin", role="admin", actor="tests", token=ADMIN_TOKEN
        )


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Store]:
    """An opened, migrated store with its artifacts under tmp_path and the admin token."""
    opened = open_store(database_url, artifacts_dir=tmp_path / "artifacts")
    add_admin(opened)
    yield opened
    opened.close()


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


GATEWAY_TOKEN = "gateway-token-for-tests-0123456789"


@pytest.fixture
def server(db: Store) -> Iterator[LiveServer]:
    """skyfleet's server on loopback over the test store (judged every 50 ms)."""
    config = ServerConfig(gateway_token=GATEWAY_TOKEN, sweep_interval_s=0.05, touch_flush_s=0.05)
    with LiveServer(create_app(config, db=db)) as live:
        yield live


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client for the live server's operator API, as the admin."""
    with httpx.Client(base_url=server.url, timeout=30.0, headers=ADMIN) as client:
        yield client
