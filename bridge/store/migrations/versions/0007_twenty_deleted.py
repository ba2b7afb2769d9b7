"""Records deleted in Twenty by a person, left deleted by the bridge (issue 11).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "twenty_deleted",
        sa.Column("object", sa.String(32), nullable=False),
        sa.Column("whop_key", sa.String(128), nullable=False),
        sa.Column("twenty_id", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("object", "whop_key", name="pk_twenty_deleted"),
    )


def downgrade() -> None:
    op.drop_table("twenty_deleted")
