"""Consultation views and timeline, with reporting's inbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consultations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("applicant_kind", sa.Text(), nullable=True),
        sa.Column("organization", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("product_kind", sa.Text(), nullable=True),
        sa.Column("development_stage", sa.Text(), nullable=True),
        sa.Column("topics", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("contact_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("match_candidates", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("match_proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
        schema="reporting",
    )
    op.create_index(op.f("ix_reporting_consultations_hub"), "consultations", ["hub"], unique=False, schema="reporting")
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="reporting",
    )
    op.create_table(
        "timeline",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("correlation_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_timeline")),
        schema="reporting",
    )
    op.create_index(
        op.f("ix_reporting_timeline_consultation_id"), "timeline", ["consultation_id"], unique=False, schema="reporting"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reporting_timeline_consultation_id"), table_name="timeline", schema="reporting")
    op.drop_table("timeline", schema="reporting")
    op.drop_table("inbox", schema="reporting")
    op.drop_index(op.f("ix_reporting_consultations_hub"), table_name="consultations", schema="reporting")
    op.drop_table("consultations", schema="reporting")
