"""The whole store as of revision 0010 (the development revisions 0001-0009 squashed into it).

Revision ID: 0010
Revises:
Create Date: 2026-12-07

Its upgrade creates what the database lacks: every table on a new database; on one made by the
squashed revisions, whose ids `bridge.store.migrate` forgets first (`RETIRED`), the tables,
columns and indexes they had not added yet, rows untouched (those revisions only ever added).
A database already at 0010 is at this revision. The tables are written out here rather than
imported from `bridge.store.tables`, so that later edits there cannot change what 0010 is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
schema = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _key(name: str, length: int = 64) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), primary_key=True)


def _text(name: str, length: int | None = None, *, null: bool = True, default: str | None = None) -> sa.Column[str]:
    return sa.Column(name, sa.String(length) if length else sa.Text, nullable=null, server_default=default)


def _int(name: str, *, null: bool = False, default: str | None = "0") -> sa.Column[int]:
    return sa.Column(name, sa.Integer, nullable=null, server_default=default)


def _time(name: str, *, null: bool = True) -> sa.Column[object]:
    return sa.Column(name, TS, nullable=null)


def _seconds(name: str, default: str | None = None) -> sa.Column[float]:
    return sa.Column(name, sa.Float, nullable=False, server_default=default)


def _flag(name: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false())


def _serial() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


sa.Table(
    "connections",
    schema,
    _serial(),
    sa.Column("company_id", sa.String(64), nullable=False, unique=True),
    _text("company_title", 255),
    _text("mode", 16, null=False),
    _text("status", 24, null=False, default="connected"),
    _text("access_token_enc"),
    _text("refresh_token_enc"),
    _time("token_expires_at"),
    _text("scopes"),
    _text("whop_user_id", 64),
    _text("whop_user_name", 255),
    _time("connected_at", null=False),
    _time("updated_at", null=False),
    _text("last_error"),
    _text("webhook_id", 64),
    _text("webhook_url", 512),
    _text("webhook_secret_enc"),
    _text("webhook_health_json"),
    _time("webhook_checked_at"),
    _text("webhook_error"),
    _time("replay_requested_at"),
    _time("replay_sent_after"),
)
sa.Table(
    "oauth_states",
    schema,
    _key("state", 128),
    _text("session_id", 128, null=False),
    _text("code_verifier_enc", null=False),
    _text("nonce", 128),
    _time("created_at", null=False),
    _time("expires_at", null=False),
    _time("used_at"),
)
sa.Table(
    "provisioning_runs",
    schema,
    _serial(),
    _text("twenty_url", 512, null=False),
    _text("dialect", 8),
    _flag("dry_run"),
    _text("status", 16, null=False),
    _text("plan_json"),
    _int("mutations"),
    _text("error"),
    _time("started_at", null=False),
    _time("finished_at"),
)
sa.Table(
    "sync_runs",
    schema,
    _serial(),
    sa.Column("connection_id", sa.Integer, sa.ForeignKey("connections.id", ondelete="SET NULL"), nullable=True),
    _text("company_id", 64, null=False),
    _text("kind", 16, null=False),
    _text("trigger", 16, null=False, default="cli"),
    _flag("dry_run"),
    _text("status", 16, null=False),
    _text("counts_json", null=False, default="{}"),
    _text("errors_json", null=False, default="[]"),
    _text("checkpoint_json"),
    _text("reason"),
    _time("started_at", null=False),
    _time("heartbeat_at"),
    _time("finished_at"),
    sa.Index("ix_sync_runs_company_started", "company_id", "started_at"),
)
sa.Table(
    "record_shadows",
    schema,
    _key("company_id"),
    _key("object", 32),
    _key("whop_id"),
    _text("twenty_id", 64),
    _text("hash", 64, null=False),
    _time("whop_updated_at"),
    _text("written_json"),
    _time("written_at", null=False),
    _int("seen_run_id", null=True, default=None),
    _time("gone_at"),
)
sa.Table(
    "webhook_inbox",
    schema,
    _key("webhook_id", 128),
    _text("event_type", 96),
    _text("company_id", 64),
    _text("body", null=False),
    _text("status", 16, null=False, default="pending"),
    _int("attempts"),
    _int("lost_claims"),
    _time("next_attempt_at", null=False),
    _text("last_error"),
    _text("claimed_by", 64),
    _time("claimed_until"),
    _time("received_at", null=False),
    _time("processed_at"),
    sa.Index("ix_webhook_inbox_due", "status", "next_attempt_at"),
)
sa.Table("leases", schema, _key("name", 191), _text("owner", 64, null=False), _time("expires_at", null=False))
sa.Table(
    "rate_budgets",
    schema,
    _key("name", 191),
    _seconds("tokens"),
    _seconds("updated_at"),
    _seconds("paused_until", "0"),
)
sa.Table(
    "webhook_rejections",
    schema,
    _serial(),
    _text("reason", 64, null=False),
    _text("webhook_id", 128),
    _text("company_id", 64),
    _time("received_at", null=False),
    _int("repeats"),
    sa.Index("ix_webhook_rejections_received", "received_at"),
)
sa.Table(
    "member_facts",
    schema,
    _key("whop_user_id"),
    _key("company_id"),
    _text("member_id", 64, null=False),
    _text("total_spent", 40),
    _time("joined_at"),
    _text("status", 24),
    _time("updated_at", null=False),
)
sa.Table(
    "admin_sessions",
    schema,
    _key("id_hash"),
    _text("password_fp", 64, null=False),
    _time("created_at", null=False),
    _time("last_seen_at", null=False),
    _time("expires_at", null=False),
)
sa.Table(
    "login_throttle",
    schema,
    _key("key", 191),
    _int("attempts"),
    _seconds("blocked_until", "0"),
    _seconds("updated_at"),
)
sa.Table(
    "twenty_deleted",
    schema,
    _key("object", 32),
    _key("whop_key", 128),
    _text("twenty_id", 64, null=False),
    _time("seen_at", null=False),
    _time("reported_at"),
)
sa.Table(
    "payment_facts",
    schema,
    _key("company_id"),
    _key("payment_id"),
    _text("person_key", 64, null=False),
    _text("net", 40),
    _text("currency", 8),
    _time("paid_at"),
    sa.Index("ix_payment_facts_person", "person_key"),
)
sa.Table(
    "membership_facts",
    schema,
    _key("company_id"),
    _key("membership_id"),
    _text("person_key", 64, null=False),
    sa.Column("active", sa.Boolean, nullable=False),
    _time("ended_at"),
    sa.Index("ix_membership_facts_person", "person_key"),
)
sa.Table(
    "timeline_lines",
    schema,
    _key("company_id"),
    _key("line_key", 191),
    _text("subject", 64, null=False),
    _text("kind", 32, null=False),
    _time("happened_at"),
    _time("observed_at"),
    _text("activity_id", 64),
    _time("written_at", null=False),
    sa.Index("ix_timeline_lines_subject", "company_id", "subject"),
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    present = set(inspector.get_table_names())
    for table in schema.sorted_tables:
        if table.name not in present:
            table.create(bind)
            continue
        # A table a squashed revision made: add what the later ones would have (nullable or
        # defaulted columns, indexes), leaving its rows as they are.
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                clause = column.server_default
                arg = clause.arg if isinstance(clause, sa.DefaultClause) else None
                default = arg if isinstance(arg, str | sa.ColumnElement) else None
                op.add_column(
                    table.name,
                    sa.Column(column.name, column.type, nullable=column.nullable, server_default=default),
                )
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)


def downgrade() -> None:
    schema.drop_all(op.get_bind())
