"""The tables. Times are UNIX seconds (float); JSON columns hold small dicts and lists."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "actions",
    "artifacts",
    "audit",
    "device_state",
    "devices",
    "idempotency_keys",
    "metadata",
    "operator_tokens",
    "release_artifacts",
    "releases",
    "rollout_groups",
    "rollouts",
    "telemetry",
    "telemetry_counters",
    "tuf_metadata",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("hw", String(32), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("installed_version", String(128)),
    Column("token_hash", String(64)),
    Column("registered_at", Float, nullable=False),
    Column("last_seen", Float),
    Index(None, "hw"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("filename", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("sha1", String(40), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
)

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(128), nullable=False, unique=True),
    Column("notes", Text, nullable=False),
    Column("generations", JSON, nullable=False),
    Column("min_installed_version", String(128)),
    Column("created_at", Float, nullable=False),
)

release_artifacts = Table(
    "release_artifacts",
    metadata,
    Column("release_id", ForeignKey("releases.id"), primary_key=True),
    Column("hw", String(32), primary_key=True),
    Column("artifact_id", ForeignKey("artifacts.id"), primary_key=True),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("release_id", ForeignKey("releases.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("seed", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("rollback_of", Integer),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

rollout_groups = Table(
    "rollout_groups",
    metadata,
    Column("rollout_id", ForeignKey("rollouts.id"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("filter", Text, nullable=False),
    Column("percent", Float, nullable=False),
    Column("success_pct", Float, nullable=False),
    Column("auto_advance", Boolean, nullable=False),
    Column("error_pct", Float),
    Column("error_count", Integer),
    Column("min_finished", Integer, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("started_at", Float),
    Column("failures_before", Integer, nullable=False),
    Column("finished_before", Integer, nullable=False),
)

#: 64-bit ids where a fleet makes millions of rows (SQLite's rowid is 64-bit already).
BigId = BigInteger().with_variant(Integer(), "sqlite")

actions = Table(
    "actions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("rollout_id", ForeignKey("rollouts.id"), nullable=False),
    Column("device_id", ForeignKey("devices.id"), nullable=False),
    Column("group_idx", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("from_version", String(128)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("rollout_id", "device_id"),
    Index(None, "device_id", "state"),
    Index(None, "rollout_id", "group_idx", "state"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(160), nullable=False),
    Column("event", String(32), nullable=False),
    Column("rollout_id", Integer),
    Column("action_id", BigId),
    Column("device_id", String(128)),
    Column("from_state", String(16)),
    Column("to_state", String(16)),
    Column("detail", Text, nullable=False),
    Index(None, "rollout_id", "id"),
    Index(None, "device_id", "id"),
)

operator_tokens = Table(
    "operator_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160), nullable=False),
    Column("revoked_at", Float),
)

#: Signed TUF metadata as served, every version kept until pruned. ``repo`` is ``image``, or
#: ``director`` (its root), or ``director/DEVICE-ID`` (a device's targets, snapshot, timestamp).
tuf_metadata = Table(
    "tuf_metadata",
    metadata,
    Column("repo", String(160), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("expires", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("body", LargeBinary, nullable=False),
)

#: Requests applied at most once: the ``Idempotency-Key`` a device's request carried (a relay's
#: ``RELAY-ID:SEQ``), per device, recorded in the transaction that applied it; pruned by age.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
    Index(None, "created_at"),
)

#: Telemetry (see :mod:`skyfleet.telemetry`): each device's latest sample by the device's time
#: (``ts``, UNIX s); ``received_at`` is when the server stored it. A sample older than the one
#: kept goes to the history only.
device_state = Table(
    "device_state",
    metadata,
    Column("device_id", ForeignKey("devices.id"), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("ts", Float, nullable=False),
    Column("lat_deg", Float),
    Column("lon_deg", Float),
    Column("link", String(16)),
    Column("rtt_ms", Float),
    Column("soc_pct", Float),
    Column("version", String(128)),
    Column("state", String(64)),
    Column("freq_hz", Float),
    Column("power_w", Float),
)

#: Telemetry history: the newest samples of each device (``ServerConfig.telemetry_history``),
#: one row per device and device time, so a message delivered twice is stored once.
telemetry = Table(
    "telemetry",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("device_id", ForeignKey("devices.id"), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("ts", Float, nullable=False),
    Column("lat_deg", Float),
    Column("lon_deg", Float),
    Column("link", String(16)),
    Column("rtt_ms", Float),
    Column("soc_pct", Float),
    Column("version", String(128)),
    Column("state", String(64)),
    Column("freq_hz", Float),
    Column("power_w", Float),
    UniqueConstraint("device_id", "ts"),
)

#: What telemetry ingest counted, every server process together: ``received`` (samples),
#: ``stored``, ``invalid`` (messages), ``unknown_device``, ``stale`` (older than the latest kept).
telemetry_counters = Table(
    "telemetry_counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
