"""Rejected webhook deliveries shown on the admin page (issue 14), and the name of the Whop user
who approved a connection.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(128), nullable=True),
        sa.Column("company_id", sa.String(64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_rejections"),
    )
    op.create_index("ix_webhook_rejections_received", "webhook_rejections", ["received_at"])
    # batch mode keeps SQLite and PostgreSQL on one code path.
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("whop_user_name", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("whop_user_name")
    op.drop_index("ix_webhook_rejections_received", table_name="webhook_rejections")
    op.drop_table("webhook_rejections")
