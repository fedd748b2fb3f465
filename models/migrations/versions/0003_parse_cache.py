"""parse_cache: parsed criterion texts by (text sha256, pipeline fingerprint); criterion.parser_version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
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
        "parse_cache",
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("parsed", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("text_hash", "fingerprint", name=op.f("pk_parse_cache")),
    )
    with op.batch_alter_table("criterion") as batch:
        batch.add_column(sa.Column("parser_version", sa.String(length=64), nullable=True))
    # criteria parsed before this revision were parsed by the version the corpus meta names
    # (an unparsed criterion is SQL NULL or the JSON null)
    op.execute("UPDATE criterion SET parser_version = (SELECT value FROM corpus_meta WHERE key = 'parser_version') "
               "WHERE parsed IS NOT NULL AND CAST(parsed AS TEXT) <> 'null'")


def downgrade() -> None:
    with op.batch_alter_table("criterion") as batch:
        batch.drop_column("parser_version")
    op.drop_table("parse_cache")
