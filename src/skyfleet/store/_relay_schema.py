"""The tables of an edge relay (``skyfleet serve --upstream``): its cache and its queue.

They live in the relay's own database (the central server's has them too, empty: one schema,
one migration chain). Times are UNIX seconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, String, Table, Text

from skyfleet.store._schema import BigId, metadata

__all__ = [
    "relay_blob_refs",
    "relay_blobs",
    "relay_dead",
    "relay_queue",
    "relay_reported",
    "relay_responses",
    "relay_state",
    "relay_tokens",
]

#: Small facts about the relay itself (its id).
relay_state = Table(
    "relay_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: For each device, the SHA-256 of the ``Authorization`` header the upstream last accepted from
#: it: how the relay authenticates the device while the uplink is down.
relay_tokens = Table(
    "relay_tokens",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("accepted_at", Float, nullable=False),
)

#: The upstream's last answer to a device's GET, as it came (status, type, bytes), by path.
relay_responses = Table(
    "relay_responses",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("content_type", String(255)),
    Column("body", LargeBinary, nullable=False),
    Column("fetched_at", Float, nullable=False),
)

#: Artifact and target bytes kept in the relay's artifacts folder, by SHA-256 (checked).
relay_blobs = Table(
    "relay_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("fetched_at", Float, nullable=False),
)

#: Which bytes a device's download path names: learnt from its deploymentBase (hashes) or from
#: a TUF target's hash-prefixed name, so that one copy serves every device of the site.
relay_blob_refs = Table(
    "relay_blob_refs",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger),
    Column("filename", String(255)),
)

#: Device reports (feedback, configData, telemetry) waiting to be forwarded, oldest first.
#: ``seq`` is never reused (SQLite AUTOINCREMENT; a PostgreSQL sequence): it is half of the
#: ``Idempotency-Key`` the upstream records, so a reused number would drop a new report.
#: ``authorization`` is the device's own header, sent upstream with the report.
relay_queue = Table(
    "relay_queue",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("device_id", String(128), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(2048), nullable=False),
    Column("content_type", String(255)),
    Column("body", LargeBinary, nullable=False),
    Column("authorization", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Index(None, "device_id"),
    sqlite_autoincrement=True,
)

#: Reports the upstream refused for good (a 4xx other than 408/429), with its reason.
relay_dead = Table(
    "relay_dead",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("device_id", String(128), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(2048), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", Integer),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("dead_at", Float, nullable=False),
)

#: What a device reported through the relay that changes its base poll (an action finished, a
#: cancel confirmed, its configData): ``link`` is the poll link it answers
#: (``deploymentBase/ACTION``, ``cancelAction/ACTION``, ``configData``); ``acked_at`` is when the
#: upstream took it (None while queued). Answers older than that omit the link.
relay_reported = Table(
    "relay_reported",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("seq", BigId, nullable=False),
    Column("acked_at", Float),
    Index(None, "seq"),
)
