"""Poll views read from async code: the device API's hot path, one read per batch of devices.

On PostgreSQL the read runs on the event loop over psycopg's async connections (a small pool of
its own, autocommit): one prepared statement serves every batch size, and no thread hand-off or
ORM layer sits between the poll and the database. On SQLite the read runs in a worker thread
through the store's engine.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import anyio.to_thread
import psycopg
from psycopg.sql import Literal
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from skyfleet.errors import StoreError
from skyfleet.store._device_api import PollView, poll_statement, poll_views, poll_views_from_rows
from skyfleet.store._engine import Store
from skyfleet.store._schema import devices

__all__ = ["PollViewReader", "open_poll_reader"]

log = logging.getLogger("skyfleet.store")


class PollViewReader(ABC):
    """Reads the poll views of a batch of devices (see :func:`skyfleet.store.poll_views`)."""

    @abstractmethod
    async def read(self, device_ids: Sequence[str]) -> dict[str, PollView]:
        """The poll view of each known device of ``device_ids``, keyed by device id."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the reader holds."""


class _ThreadReader(PollViewReader):
    def __init__(self, db: Store) -> None:
        self._db = db

    def _read(self, device_ids: Sequence[str]) -> dict[str, PollView]:
        with self._db.read() as conn:
            return poll_views(conn, device_ids)

    async def read(self, device_ids: Sequence[str]) -> dict[str, PollView]:
        return await anyio.to_thread.run_sync(self._read, device_ids)

    async def close(self) -> None:
        pass  # the store's engine is the store's to close


class _PsycopgReader(PollViewReader):
    def __init__(self, db: Store, connections: int) -> None:
        statement = poll_statement(
            devices.c.id == any_(bindparam("device_ids", type_=ARRAY(String)))
        )
        dialect = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]  # %(name)s style
        compiled = statement.compile(dialect=dialect)
        expanded = compiled.construct_expanded_state({"device_ids": []})
        # The constants (state names, limits) go into the text once, so that each read sends
        # and converts only the batch's ids.
        sql = expanded.statement
        for name, value in expanded.parameters.items():
            if name != "device_ids":
                literal = Literal(value).as_string().replace("%", "%%")
                sql = sql.replace(f"%({name})s", literal)
        if sql.count("%(") != 1:
            raise AssertionError(f"unexpected parameters left in the poll statement: {sql}")
        self._sql = sql
        url = db.engine.url.set(drivername="postgresql")
        self._pool = AsyncConnectionPool(
            url.render_as_string(hide_password=False),
            min_size=connections,
            max_size=connections,
            kwargs={"autocommit": True},
            timeout=2.0,  # an outage answers 503 soon instead of queueing polls
            open=False,
            name="skyfleet-polls",
        )

    async def open(self) -> None:
        await self._pool.open()

    async def read(self, device_ids: Sequence[str]) -> dict[str, PollView]:
        # PostgreSQL text cannot hold NUL: such an id names no device (and must not fail the
        # batch it came in).
        params = {"device_ids": [d for d in device_ids if "\x00" not in d]}
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(self._sql, params, prepare=True)
                rows = await cursor.fetchall()
        except psycopg.OperationalError as exc:  # also the pool's timeout: a 503, logged
            log.warning("database busy or unreachable on a poll read: %s", exc)
            raise StoreError("the database is busy or unreachable; retry shortly") from exc
        return poll_views_from_rows(rows)

    async def close(self) -> None:
        await self._pool.close()


async def open_poll_reader(db: Store, *, connections: int = 2) -> PollViewReader:
    """A reader of ``db``'s poll views for async code; on PostgreSQL up to ``connections`` reads
    run at once (a spare one stands by when reads come one at a time). Close it when done."""
    if db.dialect != "postgresql":
        return _ThreadReader(db)
    reader = _PsycopgReader(db, connections)
    await reader.open()
    return reader
