"""Consultation view and timeline, with reporting's outbox and inbox.

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

SCHEMA = "reporting"


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "consultations",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("hub", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("submitted_at", ts),
        *(
            sa.Column(name, sa.Text)
            for name in (
                "language",
                "channel",
                "applicant_kind",
                "organization",
                "title",
                "product_kind",
                "development_stage",
            )
        ),
        sa.Column("topics", sa.ARRAY(sa.Text)),
        *(sa.Column(name, sa.Text) for name in ("contact_name", "email", "body")),
        sa.Column("match_candidates", JSONB),
        sa.Column("match_proposed_at", ts),
        sa.Column("acknowledged_at", ts),
        sa.Column("withdrawn_at", ts),
        sa.Column("updated_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consultations"),
        schema=SCHEMA,
    )
    op.create_index("ix_consultations_hub", "consultations", ["hub"], schema=SCHEMA)
    op.create_table(
        "timeline",
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("consultation_id", sa.Uuid, nullable=False),
        sa.Column("hub", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("occurred_at", ts, nullable=False),
        sa.Column("correlation_id", sa.Uuid, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_timeline"),
        schema=SCHEMA,
    )
    op.create_index("ix_timeline_consultation_id", "timeline", ["consultation_id"], schema=SCHEMA)
    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    for table in ("inbox", "outbox", "timeline", "consultations"):
        op.drop_table(table, schema=SCHEMA)
