"""The bridge's own state, as SQLAlchemy Core tables (SQLite and PostgreSQL alike).

Migrations under `bridge/store/migrations/` create these; a test checks that the migrated
database and this module agree.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Timestamps are timezone-aware UTC everywhere.
TS = sa.DateTime(timezone=True)

# A Whop company connected to this bridge: OAuth tokens (encrypted with MultiFernet) or API-key mode.
connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("company_id", sa.String(64), nullable=False, unique=True),
    sa.Column("company_title", sa.String(255), nullable=True),
    sa.Column("mode", sa.String(16), nullable=False),  # "oauth" | "api_key"
    # "connected" | "needs_reconnect" | "disconnected"
    sa.Column("status", sa.String(24), nullable=False, server_default="connected"),
    sa.Column("access_token_enc", sa.Text, nullable=True),
    sa.Column("refresh_token_enc", sa.Text, nullable=True),
    sa.Column("token_expires_at", TS, nullable=True),
    sa.Column("scopes", sa.Text, nullable=True),
    sa.Column("whop_user_id", sa.String(64), nullable=True),
    sa.Column("whop_user_name", sa.String(255), nullable=True),  # who approved Connect Whop, as Whop names them
    sa.Column("connected_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    # The webhook the bridge registered at Whop for this company (issue 10): its id, URL and
    # secret (encrypted like the tokens; Whop shows it once, on create), the health Whop last
    # reported for it, and why registration is not possible (e.g. a missing permission).
    sa.Column("webhook_id", sa.String(64), nullable=True),
    sa.Column("webhook_url", sa.String(512), nullable=True),
    sa.Column("webhook_secret_enc", sa.Text, nullable=True),
    sa.Column("webhook_health_json", sa.Text, nullable=True),
    sa.Column("webhook_checked_at", TS, nullable=True),
    sa.Column("webhook_error", sa.Text, nullable=True),
    # The last replay asked of Whop: when, and for the deliveries sent after what time.
    sa.Column("replay_requested_at", TS, nullable=True),
    sa.Column("replay_sent_after", TS, nullable=True),
)

# Short-lived OAuth authorization requests: state bound to the admin session, PKCE verifier kept here.
oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("state", sa.String(128), primary_key=True),
    sa.Column("session_id", sa.String(128), nullable=False),
    sa.Column("code_verifier_enc", sa.Text, nullable=False),
    sa.Column("nonce", sa.String(128), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("used_at", TS, nullable=True),
)

# One row per provisioning run: the plan that was computed and what was applied.
provisioning_runs = sa.Table(
    "provisioning_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("twenty_url", sa.String(512), nullable=False),
    sa.Column("dialect", sa.String(8), nullable=True),  # "1.x" | "2.x"
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | conflict | failed
    sa.Column("plan_json", sa.Text, nullable=True),
    sa.Column("mutations", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
)

# One row per sync run (full, reconcile, deep). `checkpoint_json` makes a stopped run resumable.
sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.Integer, sa.ForeignKey("connections.id", ondelete="SET NULL"), nullable=True),
    sa.Column("company_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # full | reconcile | deep
    sa.Column("trigger", sa.String(16), nullable=False, server_default="cli"),  # cli | admin | schedule | connect
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    # running | succeeded | failed | interrupted | skipped
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("counts_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("errors_json", sa.Text, nullable=False, server_default="[]"),
    sa.Column("checkpoint_json", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("heartbeat_at", TS, nullable=True),
    sa.Column("finished_at", TS, nullable=True),
    sa.Index("ix_sync_runs_company_started", "company_id", "started_at"),
)

# What the bridge last wrote to Twenty for each Whop record: the Twenty id, a hash of the values
# written (unchanged records are not written again), the Whop updated_at (stale events lose), and
# the written values themselves (to tell a person's edit from the bridge's own value).
record_shadows = sa.Table(
    "record_shadows",
    metadata,
    sa.Column("company_id", sa.String(64), primary_key=True),
    sa.Column("object", sa.String(32), primary_key=True),  # whopProduct | person | opportunity | task
    sa.Column("whop_id", sa.String(64), primary_key=True),
    sa.Column("twenty_id", sa.String(64), nullable=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("whop_updated_at", TS, nullable=True),
    sa.Column("written_json", sa.Text, nullable=True),
    sa.Column("written_at", TS, nullable=False),
    sa.Column("seen_run_id", sa.Integer, nullable=True),  # last reconcile that saw it at Whop
    sa.Column("gone_at", TS, nullable=True),  # disappeared from Whop
)

# Verified webhook deliveries, keyed by `webhook-id`, applied by the worker.
webhook_inbox = sa.Table(
    "webhook_inbox",
    metadata,
    sa.Column("webhook_id", sa.String(128), primary_key=True),
    sa.Column("event_type", sa.String(96), nullable=True),
    sa.Column("company_id", sa.String(64), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    # pending | processing | applied | ignored | failed (will retry) | dead
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Claims that ran out because their worker stopped (not attempts; see store/inbox.py).
    sa.Column("lost_claims", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", TS, nullable=True),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("processed_at", TS, nullable=True),
    sa.Index("ix_webhook_inbox_due", "status", "next_attempt_at"),
)

# Named leases: "only one holder at a time" across processes sharing the database
# (hourly reconcile per connection, per-record serialization). Works on SQLite and PostgreSQL.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(191), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", TS, nullable=False),
)

# Request budgets shared by every process on this database (Twenty's per-workspace rate limit):
# a token bucket as one row. Times are Unix seconds (floats) so the refill is plain arithmetic in
# one UPDATE on both databases; `paused_until` holds back everyone after a 429.
rate_budgets = sa.Table(
    "rate_budgets",
    metadata,
    sa.Column("name", sa.String(191), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("paused_until", sa.Float, nullable=False, server_default="0"),
)

# Webhook deliveries the endpoint refused (bad signature, stale timestamp, too large), so the admin
# page can say that something is posting and failing. Nothing in a row is verified: the id and the
# company are what the request claimed. `repeats` counts refusals not stored one by one (a flood).
webhook_rejections = sa.Table(
    "webhook_rejections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("webhook_id", sa.String(128), nullable=True),
    sa.Column("company_id", sa.String(64), nullable=True),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_webhook_rejections_received", "received_at"),
)

# What each company's Whop member says about one person (issue 10): a Person is one per Whop user
# across companies, so its totals (spent, joined, status) are folded from every company's row.
member_facts = sa.Table(
    "member_facts",
    metadata,
    sa.Column("whop_user_id", sa.String(64), primary_key=True),
    sa.Column("company_id", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), nullable=False),
    sa.Column("total_spent", sa.String(40), nullable=True),  # a decimal, as text: exact on both databases
    sa.Column("joined_at", TS, nullable=True),
    sa.Column("status", sa.String(24), nullable=True),
    sa.Column("updated_at", TS, nullable=False),
)

# Admin sessions (issue 13): the cookie carries a random id, this table only its SHA-256. A row
# ends with logout, "log out all sessions", the idle or absolute timeout, or a changed admin
# password (`password_fp`, an HMAC of the password under BRIDGE_SECRET_KEY, no longer matches).
admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("password_fp", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),  # the absolute limit, fixed at login
)

# Login backoff shared by every replica (issue 13): one row per key ("account", "client:<address>",
# "device:<hash>"). `attempts` counts password checks since the last success; `blocked_until` is
# when the next may run. Unix seconds (floats), as in rate_budgets, so the rule is plain SQL.
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(191), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("blocked_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Records a person deleted (soft-deleted) in Twenty, by object and bridge key (issue 11): a sync,
# a webhook or a reconciliation leaves them deleted (2.x upserts would restore them) unless
# BRIDGE_RESTORE_DELETED is set. Read from Twenty at each sync and every few minutes by the worker;
# `reported_at` makes each one reported once, not every hour.
twenty_deleted = sa.Table(
    "twenty_deleted",
    metadata,
    sa.Column("object", sa.String(32), primary_key=True),
    sa.Column("whop_key", sa.String(128), primary_key=True),
    sa.Column("twenty_id", sa.String(64), nullable=False),
    sa.Column("seen_at", TS, nullable=False),
    sa.Column("reported_at", TS, nullable=True),
)

# Revenue facts per person (issue 11): each company's payments and memberships, by the bridge's
# person key, so a Person's lifetime value, purchases, active memberships and churn span every
# membership and connected company. Amounts are decimals as text (exact on both databases).
payment_facts = sa.Table(
    "payment_facts",
    metadata,
    sa.Column("company_id", sa.String(64), primary_key=True),
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("person_key", sa.String(64), nullable=False),
    sa.Column("net", sa.String(40), nullable=True),
    sa.Column("currency", sa.String(8), nullable=True),
    sa.Column("paid_at", TS, nullable=True),
    sa.Index("ix_payment_facts_person", "person_key"),
)
membership_facts = sa.Table(
    "membership_facts",
    metadata,
    sa.Column("company_id", sa.String(64), primary_key=True),
    sa.Column("membership_id", sa.String(64), primary_key=True),
    sa.Column("person_key", sa.String(64), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("ended_at", TS, nullable=True),
    sa.Index("ix_membership_facts_person", "person_key"),
)

# The lines the bridge wrote on Twenty's timelines (issue 22): one per Whop event, keyed by what
# the event is ("mem_…:canceled:<when>", "pay_…:refund:<amount>"), so a re-sync, a replayed or
# a duplicated delivery finds its line here and writes nothing. `subject` is the membership or
# payment it is about (what a membership's later lines are judged against: a withdrawn cancel,
# a return); `observed_at` is Whop's `updated_at` of the state that told it. The line's Twenty
# id is derived from the company and the key, so a row lost here still rewrites the same one.
timeline_lines = sa.Table(
    "timeline_lines",
    metadata,
    sa.Column("company_id", sa.String(64), primary_key=True),
    sa.Column("line_key", sa.String(191), primary_key=True),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("happened_at", TS, nullable=True),
    sa.Column("observed_at", TS, nullable=True),
    sa.Column("activity_id", sa.String(64), nullable=True),
    sa.Column("written_at", TS, nullable=False),
    sa.Index("ix_timeline_lines_subject", "company_id", "subject"),
)
