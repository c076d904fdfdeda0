"""Since when a consultation waits on its applicant

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
    op.add_column(
        "consultations",
        sa.Column("awaiting_applicant_since", sa.DateTime(timezone=True), nullable=True),
        schema="reporting",
    )


def downgrade() -> None:
    op.drop_column("consultations", "awaiting_applicant_since", schema="reporting")
