"""Edge relay: idempotency keys on the central server; the relay's cache and queue tables.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "relay_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_relay_state"),
    )
    op.create_table(
        "relay_tokens",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("accepted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_relay_tokens"),
    )
    op.create_table(
        "relay_responses",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(255)),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("fetched_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "path", name="pk_relay_responses"),
    )
    op.create_table(
        "relay_blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_relay_blobs"),
    )
    op.create_table(
        "relay_blob_refs",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger()),
        sa.Column("filename", sa.String(255)),
        sa.PrimaryKeyConstraint("device_id", "path", name="pk_relay_blob_refs"),
    )
    op.create_table(
        "relay_queue",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("content_type", sa.String(255)),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("authorization", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("seq", name="pk_relay_queue"),
        sqlite_autoincrement=True,  # never reuse a seq: it keys the report upstream
    )
    op.create_index("ix_relay_queue_device_id", "relay_queue", ["device_id"])
    op.create_table(
        "relay_dead",
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("dead_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_relay_dead"),
    )
    op.create_table(
        "relay_reported",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("link", sa.String(64), nullable=False),
        sa.Column("seq", BIG_ID, nullable=False),
        sa.Column("acked_at", sa.Float()),
        sa.PrimaryKeyConstraint("device_id", "link", name="pk_relay_reported"),
    )
    op.create_index("ix_relay_reported_seq", "relay_reported", ["seq"])


def downgrade() -> None:
    for table in (
        "relay_reported",
        "relay_dead",
        "relay_queue",
        "relay_blob_refs",
        "relay_blobs",
        "relay_responses",
        "relay_tokens",
        "relay_state",
        "idempotency_keys",
    ):
        op.drop_table(table)
