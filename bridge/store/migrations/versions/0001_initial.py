"""Initial schema: connections, OAuth states, provisioning and sync runs, shadows, inbox, leases.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from `bridge.store.tables`, so that later edits to
the tables cannot change what this revision did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("company_title", sa.String(255), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), server_default="connected", nullable=False),
        sa.Column("access_token_enc", sa.Text(), nullable=True),
        sa.Column("refresh_token_enc", sa.Text(), nullable=True),
        sa.Column("token_expires_at", TS, nullable=True),
        sa.Column("scopes", sa.Text(), nullable=True),
        sa.Column("whop_user_id", sa.String(64), nullable=True),
        sa.Column("connected_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        sa.UniqueConstraint("company_id", name="uq_connections_company_id"),
    )
    op.create_table(
        "oauth_states",
        sa.Column("state", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("code_verifier_enc", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("state", name="pk_oauth_states"),
    )
    op.create_table(
        "provisioning_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("twenty_url", sa.String(512), nullable=False),
        sa.Column("dialect", sa.String(8), nullable=True),
        sa.Column("dry_run", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=True),
        sa.Column("mutations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_provisioning_runs"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), server_default="cli", nullable=False),
        sa.Column("dry_run", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts_json", sa.Text(), server_default="{}", nullable=False),
        sa.Column("errors_json", sa.Text(), server_default="[]", nullable=False),
        sa.Column("checkpoint_json", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
    )
    op.create_index("ix_sync_runs_company_started", "sync_runs", ["company_id", "started_at"])
    op.create_table(
        "record_shadows",
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("object", sa.String(32), nullable=False),
        sa.Column("whop_id", sa.String(64), nullable=False),
        sa.Column("twenty_id", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("whop_updated_at", TS, nullable=True),
        sa.Column("written_json", sa.Text(), nullable=True),
        sa.Column("written_at", TS, nullable=False),
        sa.Column("seen_run_id", sa.Integer(), nullable=True),
        sa.Column("gone_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("company_id", "object", "whop_id", name="pk_record_shadows"),
    )
    op.create_table(
        "webhook_inbox",
        sa.Column("webhook_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(96), nullable=True),
        sa.Column("company_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("processed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("webhook_id", name="pk_webhook_inbox"),
    )
    op.create_index("ix_webhook_inbox_due", "webhook_inbox", ["status", "next_attempt_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(191), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_webhook_inbox_due", table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
    op.drop_table("record_shadows")
    op.drop_index("ix_sync_runs_company_started", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("provisioning_runs")
    op.drop_table("oauth_states")
    op.drop_table("connections")
