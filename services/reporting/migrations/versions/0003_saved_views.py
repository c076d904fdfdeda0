"""saved views

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_views",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        schema="reporting",
    )
    op.create_index("ix_saved_views_owner", "saved_views", ["hub", "owner", "name"], unique=True, schema="reporting")


def downgrade() -> None:
    op.drop_index("ix_saved_views_owner", table_name="saved_views", schema="reporting")
    op.drop_table("saved_views", schema="reporting")
