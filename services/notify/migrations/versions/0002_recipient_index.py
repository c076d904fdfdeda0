"""recent deliveries per recipient

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_recipient_created", "deliveries", ["recipient", "created_at"], unique=False, schema="notify"
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_recipient_created", table_name="deliveries", schema="notify")
