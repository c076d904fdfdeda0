"""full record, screening, closure, fiscal year and search

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("consultations", sa.Column("reference", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("corporate_number", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("prefecture", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("product_name", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("meeting_format", sa.Text(), nullable=True), schema="reporting")
    op.add_column(
        "consultations", sa.Column("open_hours_slot", sa.DateTime(timezone=True), nullable=True), schema="reporting"
    )
    op.add_column("consultations", sa.Column("family_name", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("given_name", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("family_name_kana", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("given_name_kana", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("phone", sa.Text(), nullable=True), schema="reporting")
    op.add_column(
        "consultations",
        sa.Column("co_researchers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="reporting",
    )
    op.add_column(
        "consultations",
        sa.Column("consents", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="reporting",
    )
    op.add_column(
        "consultations",
        sa.Column("attachments", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="reporting",
    )
    op.add_column("consultations", sa.Column("entered_by", sa.Text(), nullable=True), schema="reporting")
    op.add_column(
        "consultations", sa.Column("possible_duplicates", sa.ARRAY(sa.Text()), nullable=True), schema="reporting"
    )
    op.add_column(
        "consultations", sa.Column("screened_at", sa.DateTime(timezone=True), nullable=True), schema="reporting"
    )
    op.add_column("consultations", sa.Column("screening_decision", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("out_of_scope_reason", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("screened_by", sa.Text(), nullable=True), schema="reporting")
    op.add_column(
        "consultations", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True), schema="reporting"
    )
    op.add_column("consultations", sa.Column("outcome", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("closed_by", sa.Text(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("fiscal_year", sa.Integer(), nullable=True), schema="reporting")
    op.add_column("consultations", sa.Column("search", postgresql.TSVECTOR(), nullable=True), schema="reporting")
    op.create_index(
        "ix_consultations_hub_fiscal_year", "consultations", ["hub", "fiscal_year"], unique=False, schema="reporting"
    )
    op.create_index(
        "ix_consultations_hub_submitted",
        "consultations",
        ["hub", "submitted_at", "id"],
        unique=False,
        schema="reporting",
    )
    op.create_index(
        "ix_consultations_search", "consultations", ["search"], unique=False, schema="reporting", postgresql_using="gin"
    )
    op.add_column("timeline", sa.Column("actor", sa.Text(), nullable=True), schema="reporting")
    op.add_column(
        "timeline", sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema="reporting"
    )


def downgrade() -> None:
    op.drop_column("timeline", "detail", schema="reporting")
    op.drop_column("timeline", "actor", schema="reporting")
    op.drop_index("ix_consultations_search", table_name="consultations", schema="reporting", postgresql_using="gin")
    op.drop_index("ix_consultations_hub_submitted", table_name="consultations", schema="reporting")
    op.drop_index("ix_consultations_hub_fiscal_year", table_name="consultations", schema="reporting")
    op.drop_column("consultations", "search", schema="reporting")
    op.drop_column("consultations", "fiscal_year", schema="reporting")
    op.drop_column("consultations", "closed_by", schema="reporting")
    op.drop_column("consultations", "outcome", schema="reporting")
    op.drop_column("consultations", "closed_at", schema="reporting")
    op.drop_column("consultations", "screened_by", schema="reporting")
    op.drop_column("consultations", "out_of_scope_reason", schema="reporting")
    op.drop_column("consultations", "screening_decision", schema="reporting")
    op.drop_column("consultations", "screened_at", schema="reporting")
    op.drop_column("consultations", "possible_duplicates", schema="reporting")
    op.drop_column("consultations", "entered_by", schema="reporting")
    op.drop_column("consultations", "attachments", schema="reporting")
    op.drop_column("consultations", "consents", schema="reporting")
    op.drop_column("consultations", "co_researchers", schema="reporting")
    op.drop_column("consultations", "phone", schema="reporting")
    op.drop_column("consultations", "given_name_kana", schema="reporting")
    op.drop_column("consultations", "family_name_kana", schema="reporting")
    op.drop_column("consultations", "given_name", schema="reporting")
    op.drop_column("consultations", "family_name", schema="reporting")
    op.drop_column("consultations", "open_hours_slot", schema="reporting")
    op.drop_column("consultations", "meeting_format", schema="reporting")
    op.drop_column("consultations", "product_name", schema="reporting")
    op.drop_column("consultations", "prefecture", schema="reporting")
    op.drop_column("consultations", "corporate_number", schema="reporting")
    op.drop_column("consultations", "reference", schema="reporting")
