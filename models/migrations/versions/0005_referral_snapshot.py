"""referral snapshot: trial title, label and a one-line patient summary at creation, the transcript with questions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable: referrals from before this revision have no snapshot (the list shows them without one)
    with op.batch_alter_table("referral") as batch:
        batch.add_column(sa.Column("trial_title", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("label_at_creation", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("patient_summary", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("transcript", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referral") as batch:
        batch.drop_column("transcript")
        batch.drop_column("patient_summary")
        batch.drop_column("label_at_creation")
        batch.drop_column("trial_title")
