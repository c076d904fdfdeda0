"""Bind an Idempotency-Key to the request it first came with: the request's SHA-256.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "intake"


def upgrade() -> None:
    # Nullable: consultations submitted before this revision keep answering their key as before.
    op.add_column("consultations", sa.Column("request_sha256", sa.Text(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("consultations", "request_sha256", schema=SCHEMA)
