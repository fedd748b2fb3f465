"""referral scoping: api_key.team and referral.team (existing rows: "default"), index on referral.team

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOT NULL with a server default: rows from before this revision belong to the "default" team
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("team", sa.String(length=64), server_default="default", nullable=False))
    with op.batch_alter_table("referral") as batch:
        batch.add_column(sa.Column("team", sa.String(length=64), server_default="default", nullable=False))
        batch.create_index(batch.f("ix_referral_team"), ["team"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("referral") as batch:
        batch.drop_index(batch.f("ix_referral_team"))
        batch.drop_column("team")
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("team")
