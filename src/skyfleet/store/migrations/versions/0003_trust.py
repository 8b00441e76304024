"""Trust: operator tokens (hashed, with roles) and signed TUF metadata.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_tokens",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("revoked_at", sa.Float()),
        sa.PrimaryKeyConstraint("name", name="pk_operator_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_operator_tokens_token_hash"),
    )
    op.create_table(
        "tuf_metadata",
        sa.Column("repo", sa.String(160), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("repo", "role", "version", name="pk_tuf_metadata"),
    )


def downgrade() -> None:
    op.drop_table("tuf_metadata")
    op.drop_table("operator_tokens")
