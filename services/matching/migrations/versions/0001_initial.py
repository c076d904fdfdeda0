"""Supporter roster and match proposals, with matching's outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "matching"


def upgrade() -> None:
    op.create_table(
        "supporters",
        sa.Column("hub", sa.Text, nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("fields", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("languages", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("hub", "id", name="pk_supporters"),
        schema=SCHEMA,
    )
    op.create_table(
        "proposals",
        sa.Column("consultation_id", sa.Uuid, nullable=False),
        sa.Column("hub", sa.Text, nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("candidates", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", name="pk_proposals"),
        schema=SCHEMA,
    )
    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    for table in ("inbox", "outbox", "proposals", "supporters"):
        op.drop_table(table, schema=SCHEMA)
