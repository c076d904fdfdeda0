"""likely duplicates

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "consultations", sa.Column("possible_duplicates", sa.ARRAY(sa.Uuid()), nullable=True), schema="intake"
    )
    op.create_index(
        "ix_consultations_corporate_number",
        "consultations",
        ["hub", "corporate_number", "submitted_at"],
        unique=False,
        schema="intake",
    )
    op.create_index(
        "ix_consultations_email",
        "consultations",
        ["hub", sa.literal_column("lower(email)"), "submitted_at"],
        unique=False,
        schema="intake",
    )


def downgrade() -> None:
    op.drop_index("ix_consultations_email", table_name="consultations", schema="intake")
    op.drop_index("ix_consultations_corporate_number", table_name="consultations", schema="intake")
    op.drop_column("consultations", "possible_duplicates", schema="intake")
