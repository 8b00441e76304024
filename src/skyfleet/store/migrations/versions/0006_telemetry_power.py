"""Telemetry: bus frequency (Hz) and device power (W) of home devices, in the latest state and
the history; null in the rows already there (not reported).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLES = ("device_state", "telemetry")
_COLUMNS = ("freq_hz", "power_w")


def upgrade() -> None:
    for table in _TABLES:
        # a nullable column without a default: no table rewrite on either database
        for column in _COLUMNS:
            op.add_column(table, sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:  # SQLite: the table is copied without them
            for column in reversed(_COLUMNS):
                batch.drop_column(column)
