"""The inbox's claim bookkeeping (issue 13): claims lost to a stopped worker are counted apart.

A claim that runs out (its worker died) is no longer an attempt; `lost_claims` counts those, so an
event that keeps stopping its worker is still dead-lettered in the end.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_inbox", sa.Column("lost_claims", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("webhook_inbox") as batch:
        batch.drop_column("lost_claims")
