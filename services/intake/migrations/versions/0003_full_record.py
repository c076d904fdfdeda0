"""the full consultation record, attachments, applicant links, secrets

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secrets")),
        schema="intake",
    )
    op.create_table(
        "applicant_links",
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["intake.consultations.id"],
            name=op.f("fk_applicant_links_consultation_id_consultations"),
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_applicant_links")),
        schema="intake",
    )
    op.create_index(
        "ix_applicant_links_consultation", "applicant_links", ["consultation_id"], unique=False, schema="intake"
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"], ["intake.consultations.id"], name=op.f("fk_attachments_consultation_id_consultations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_attachments_consultation_id"), "attachments", ["consultation_id"], unique=False, schema="intake"
    )
    op.add_column("consultations", sa.Column("reference", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("corporate_number", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("prefecture", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("product_name", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("meeting_format", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("contact_by_email", sa.Boolean(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("share_with", sa.ARRAY(sa.Text()), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("family_name", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("given_name", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("family_name_kana", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("given_name_kana", sa.Text(), nullable=True), schema="intake")
    op.add_column(
        "consultations",
        sa.Column("co_researchers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="intake",
    )
    op.add_column("consultations", sa.Column("entered_by", sa.Text(), nullable=True), schema="intake")
    op.create_unique_constraint("uq_consultations_reference", "consultations", ["reference"], schema="intake")


def downgrade() -> None:
    op.drop_constraint("uq_consultations_reference", "consultations", schema="intake", type_="unique")
    op.drop_column("consultations", "entered_by", schema="intake")
    op.drop_column("consultations", "co_researchers", schema="intake")
    op.drop_column("consultations", "given_name_kana", schema="intake")
    op.drop_column("consultations", "family_name_kana", schema="intake")
    op.drop_column("consultations", "given_name", schema="intake")
    op.drop_column("consultations", "family_name", schema="intake")
    op.drop_column("consultations", "share_with", schema="intake")
    op.drop_column("consultations", "contact_by_email", schema="intake")
    op.drop_column("consultations", "meeting_format", schema="intake")
    op.drop_column("consultations", "product_name", schema="intake")
    op.drop_column("consultations", "prefecture", schema="intake")
    op.drop_column("consultations", "corporate_number", schema="intake")
    op.drop_column("consultations", "reference", schema="intake")
    op.drop_index(op.f("ix_intake_attachments_consultation_id"), table_name="attachments", schema="intake")
    op.drop_table("attachments", schema="intake")
    op.drop_index("ix_applicant_links_consultation", table_name="applicant_links", schema="intake")
    op.drop_table("applicant_links", schema="intake")
    op.drop_table("secrets", schema="intake")
