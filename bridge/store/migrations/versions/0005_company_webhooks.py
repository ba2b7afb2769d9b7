"""Webhooks the bridge registers per company (issue 10), and each company's member facts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

_CONNECTION_COLUMNS = (
    ("webhook_id", sa.String(64)),
    ("webhook_url", sa.String(512)),
    ("webhook_secret_enc", sa.Text()),
    ("webhook_health_json", sa.Text()),
    ("webhook_checked_at", TS),
    ("webhook_error", sa.Text()),
    ("replay_requested_at", TS),
)


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER most things in place (adding nullable columns it can,
    # but batch keeps both databases on one code path).
    with op.batch_alter_table("connections") as batch:
        for name, type_ in _CONNECTION_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "member_facts",
        sa.Column("whop_user_id", sa.String(64), nullable=False),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("total_spent", sa.String(40), nullable=True),
        sa.Column("joined_at", TS, nullable=True),
        sa.Column("status", sa.String(24), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("whop_user_id", "company_id", name="pk_member_facts"),
    )


def downgrade() -> None:
    op.drop_table("member_facts")
    with op.batch_alter_table("connections") as batch:
        for name, _ in reversed(_CONNECTION_COLUMNS):
            batch.drop_column(name)
