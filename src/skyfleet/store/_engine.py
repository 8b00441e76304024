"""Open a database, bring its schema up to date, and hand out transactions.

SQLite (the embedded default) runs in WAL mode with ``BEGIN IMMEDIATE`` transactions, so two
writers queue instead of failing half-way; PostgreSQL (``postgresql+psycopg://``) is the scale path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError

from skyfleet.errors import StoreError

__all__ = ["DEFAULT_URL", "Store", "open_store"]

DEFAULT_URL = "sqlite:///skyfleet.db"


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("skyfleet.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def _sqlite_setup(engine: Engine, *, durable: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below take effect
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode may lose the last commits (never corrupt) on a power cut; FULL
        # syncs each commit, for stores whose "saved" is a promise (an edge relay's queue).
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get("skyfleet_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Store:
    """A database and the folder that holds uploaded artifacts.

    ``home`` is where the server's other files go by default (signing keys, the first admin
    token): the SQLite file's folder, or the current directory for a server database.
    """

    def __init__(self, engine: Engine, artifacts_dir: Path, home: Path | None = None) -> None:
        self.engine = engine
        self.artifacts_dir = artifacts_dir
        self.home = home if home is not None else artifacts_dir.parent

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A block that only reads: it never queues behind writers.

        On SQLite a plain (deferred) transaction; on PostgreSQL each statement commits by
        itself, which saves the BEGIN and COMMIT round trips on the device API's hot path.
        """
        with self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execution_options(skyfleet_read_only=True)
            with connection.begin():
                yield connection

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (``head`` = this skyfleet's); data is kept."""
        with self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)

    def revision(self) -> str | None:
        """The schema revision the database is at, or None for an empty database."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head(self) -> str:
        """The newest schema revision this skyfleet knows."""
        with self.engine.connect() as connection:
            head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
        assert head is not None
        return head

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_store(
    url: str = DEFAULT_URL,
    *,
    artifacts_dir: Path | None = None,
    migrate: bool = True,
    pool_size: int = 16,
    durable: bool = False,
) -> Store:
    """Open (and by default create or upgrade) the store at ``url``.

    ``artifacts_dir`` defaults to ``skyfleet-artifacts`` beside an SQLite file, or in the
    current directory for a server database. The store's ``home`` (signing keys, the first
    admin token) is the SQLite file's folder, or for a server database the folder that holds
    ``artifacts_dir`` (the current directory by default). A database whose schema is newer than this
    skyfleet is refused rather than touched. ``durable``: on SQLite, sync every commit to disk
    (``PRAGMA synchronous=FULL``), so that a commit survives a power cut, at some cost in
    write speed; the default (``NORMAL``, WAL) may lose the last commits then.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, pool_size=pool_size, max_overflow=4)
            _sqlite_setup(engine, durable=durable)
            database = engine.url.database or ""
            base = (
                Path(database).resolve().parent if database and database != ":memory:" else Path()
            )
        elif url.startswith("postgresql"):
            engine = create_engine(url, pool_size=pool_size, max_overflow=4, pool_recycle=3600)
            base = Path()
        else:
            raise StoreError(
                f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://..."
            )
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {url!r}: {exc}") from None
    if artifacts_dir is not None and not url.startswith("sqlite"):
        base = artifacts_dir.parent  # a server database: its files go beside the artifacts
    store = Store(engine, artifacts_dir or base / "skyfleet-artifacts", base.resolve())
    try:
        current = store.revision()
        head = store.head()
        if current is not None and current != head:
            with engine.connect() as connection:
                known = ScriptDirectory.from_config(_alembic_config(connection))
                if current not in {rev.revision for rev in known.walk_revisions()}:
                    raise StoreError(
                        f"the database at {engine.url.render_as_string(hide_password=True)} has "
                        f"schema {current}, newer than this skyfleet knows ({head}); upgrade skyfleet"
                    )
        if migrate:
            store.migrate()
    except StoreError:
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(
            f"cannot open the database at {engine.url.render_as_string(hide_password=True)}: {reason}"
        ) from None
    store.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return store
