"""Telemetry: each device's latest sample, a bounded history, and ingest counters.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _sample_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("lat_deg", sa.Float()),
        sa.Column("lon_deg", sa.Float()),
        sa.Column("link", sa.String(16)),
        sa.Column("rtt_ms", sa.Float()),
        sa.Column("soc_pct", sa.Float()),
        sa.Column("version", sa.String(128)),
        sa.Column("state", sa.String(64)),
    ]


def upgrade() -> None:
    op.create_table(
        "device_state",
        sa.Column("device_id", sa.String(128), nullable=False),
        *_sample_columns(),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_device_state_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_state"),
    )
    op.create_table(
        "telemetry",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        *_sample_columns(),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_telemetry_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry"),
        sa.UniqueConstraint("device_id", "ts", name="uq_telemetry_device_id_ts"),
    )
    op.create_table(
        "telemetry_counters",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_telemetry_counters"),
    )


def downgrade() -> None:
    op.drop_table("telemetry_counters")
    op.drop_table("telemetry")
    op.drop_table("device_state")
