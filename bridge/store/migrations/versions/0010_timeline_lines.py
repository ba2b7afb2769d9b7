"""The lines written on Twenty's timelines, one per Whop event (issue 22).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "timeline_lines",
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("line_key", sa.String(191), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("happened_at", TS, nullable=True),
        sa.Column("observed_at", TS, nullable=True),
        sa.Column("activity_id", sa.String(64), nullable=True),
        sa.Column("written_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("company_id", "line_key", name="pk_timeline_lines"),
    )
    op.create_index("ix_timeline_lines_subject", "timeline_lines", ["company_id", "subject"])


def downgrade() -> None:
    op.drop_index("ix_timeline_lines_subject", "timeline_lines")
    op.drop_table("timeline_lines")
