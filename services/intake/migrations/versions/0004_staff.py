"""staff commands, notes, staff accounts, Open Hours slots

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("roles", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("hub", "email", name="uq_staff_accounts_hub_email"),
        schema="intake",
    )
    op.create_table(
        "notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("noted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"], ["intake.consultations.id"], name=op.f("fk_notes_consultation_id_consultations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_notes_consultation_id"), "notes", ["consultation_id"], unique=False, schema="intake"
    )
    op.add_column(
        "consultations", sa.Column("open_hours_slot", sa.DateTime(timezone=True), nullable=True), schema="intake"
    )
    op.add_column("consultations", sa.Column("screened_at", sa.DateTime(timezone=True), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("screening_decision", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("out_of_scope_reason", sa.Text(), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True), schema="intake")
    op.add_column("consultations", sa.Column("outcome", sa.Text(), nullable=True), schema="intake")
    op.create_unique_constraint(
        "uq_consultations_open_hours_slot", "consultations", ["hub", "open_hours_slot"], schema="intake"
    )


def downgrade() -> None:
    op.drop_constraint("uq_consultations_open_hours_slot", "consultations", schema="intake", type_="unique")
    op.drop_column("consultations", "outcome", schema="intake")
    op.drop_column("consultations", "closed_at", schema="intake")
    op.drop_column("consultations", "out_of_scope_reason", schema="intake")
    op.drop_column("consultations", "screening_decision", schema="intake")
    op.drop_column("consultations", "screened_at", schema="intake")
    op.drop_column("consultations", "open_hours_slot", schema="intake")
    op.drop_index(op.f("ix_intake_notes_consultation_id"), table_name="notes", schema="intake")
    op.drop_table("notes", schema="intake")
    op.drop_table("staff_accounts", schema="intake")
