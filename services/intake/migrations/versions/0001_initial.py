"""Consultations as submitted, with intake's outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "consultations",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("hub", sa.Text, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("applicant_kind", sa.Text, nullable=False),
        sa.Column("organization", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("product_kind", sa.Text, nullable=False),
        sa.Column("development_stage", sa.Text, nullable=False),
        sa.Column("topics", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("consent_to_share", sa.Boolean, nullable=False),
        sa.Column("contact_name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("phone", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consultations"),
        sa.UniqueConstraint("hub", "idempotency_key", name="uq_consultations_idempotency"),
        schema=SCHEMA,
    )
    op.create_index("ix_consultations_hub", "consultations", ["hub"], schema=SCHEMA)
    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("consultations", schema=SCHEMA)
