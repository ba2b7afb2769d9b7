"""What the admin page shows, gathered from the store and the job runner (no HTTP here)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import registration
from bridge.config import Settings
from bridge.store import connections, inbox, provisioning_runs
from bridge.store import runs as run_store
from bridge.store.db import utcnow
from bridge.web import deliveries
from bridge.web.jobs import SYNC_STEPS, JobRunner, count_line

log = logging.getLogger(__name__)

# Plan item statuses that need a person's attention, in the words the page uses.
ATTENTION = {"conflict": "Conflict", "manual": "By hand", "blocked": "Blocked"}
PLAN_WORDS = {
    "present": "already there",
    "create": "to create",
    "add_options": "options to add",
    "conflict": "conflicts",
    "blocked": "blocked",
    "manual": "to do by hand",
    "unsupported": "not available on this Twenty version",
}


@dataclass(frozen=True)
class Health:
    word: str  # what the page says; never only a colour
    tone: str  # ok | warn | bad | muted (CSS class)
    detail: str


@dataclass(frozen=True)
class ConnectionView:
    mode: str  # oauth | api_key
    company_id: str | None
    company_title: str | None
    status: str
    since: datetime | None
    whop_user_id: str | None
    health: Health
    last_error: str | None
    expires_in: int | None  # seconds, OAuth only
    whop_user_name: str | None = None

    @property
    def label(self) -> str:
        return self.company_title or self.company_id or "your Whop company"

    @property
    def approver(self) -> str | None:
        """Who approved Connect Whop: their name as Whop showed it, else their Whop user id."""
        if self.whop_user_name:
            return self.whop_user_name
        return f"Whop user {self.whop_user_id}" if self.whop_user_id else None


def token_health(conn: connections.Connection, now: datetime) -> tuple[Health, int | None]:
    if conn.status == connections.STATUS_NEEDS_RECONNECT:
        return Health("Needs reconnect", "bad", "Whop refused the stored grant. Sync is paused; nothing is lost."), None
    if conn.token_expires_at is None:
        return Health("Healthy", "ok", "The access token has no known expiry."), None
    left = int((conn.token_expires_at - now).total_seconds())
    if left > 300:
        detail = f"Access token valid for {left // 60} more minutes; refreshed automatically."
        return Health("Healthy", "ok", detail), left
    if left > 0:
        return Health("Refreshing soon", "ok", "The access token is refreshed before its next use."), left
    return Health("Idle", "muted", "The access token expired; it is refreshed on the next sync."), left


async def connection_view(settings: Settings, engine: AsyncEngine) -> tuple[ConnectionView | None, str | None]:
    """The connection the sync uses (OAuth first, then API-key mode), and the last disconnected title."""
    now = utcnow()
    rows = await connections.list_connections(engine)
    oauth = [c for c in rows if c.mode == "oauth" and c.status != connections.STATUS_DISCONNECTED]
    gone = [c for c in rows if c.mode == "oauth" and c.status == connections.STATUS_DISCONNECTED]
    last_gone = max(gone, key=lambda c: c.updated_at).company_title if gone else None
    if oauth:
        return _oauth_view(max(oauth, key=lambda c: (c.connected_at, c.id)), now), last_gone
    if settings.whop_api_key is not None:
        return _api_key_view(settings, rows), last_gone
    return None, last_gone


def _oauth_view(conn: connections.Connection, now: datetime) -> ConnectionView:
    health, left = token_health(conn, now)
    return ConnectionView(
        mode="oauth",
        company_id=conn.company_id,
        company_title=conn.company_title,
        status=conn.status,
        since=conn.connected_at,
        whop_user_id=conn.whop_user_id,
        whop_user_name=conn.whop_user_name,
        health=health,
        last_error=conn.last_error if conn.status == connections.STATUS_NEEDS_RECONNECT else None,
        expires_in=left,
    )


def _api_key_view(settings: Settings, rows: list[connections.Connection]) -> ConnectionView:
    """WHOP_API_KEY's connection: the stored row of WHOP_COMPANY_ID (else the newest API-key row) names it."""
    keyed = [c for c in rows if c.mode == "api_key"]
    match = [c for c in keyed if c.company_id == settings.whop_company_id] or keyed
    conn_row = max(match, key=lambda c: c.updated_at) if match else None
    return ConnectionView(
        mode="api_key",
        company_id=conn_row.company_id if conn_row else settings.whop_company_id,
        company_title=conn_row.company_title if conn_row else None,
        status=connections.STATUS_CONNECTED,
        since=conn_row.connected_at if conn_row else None,
        whop_user_id=None,
        health=Health("API key mode", "ok", "WHOP_API_KEY is used; nothing to refresh."),
        last_error=None,
        expires_in=None,
    )


def plan_summary(prov: dict[str, Any] | None) -> dict[str, Any] | None:
    if prov is None:
        return None
    items = ((prov.get("plan") or {}).get("items")) or []
    by_status = Counter(str(i.get("status")) for i in items)
    return {
        # Applied without conflicts: the recorded plan is what was done, not what is left to do.
        "complete": prov.get("status") == "succeeded" and not prov.get("dry_run"),
        "created": by_status.get("create", 0) + by_status.get("add_options", 0),
        "status": prov.get("status"),
        "dialect": prov.get("dialect"),
        "dry_run": bool(prov.get("dry_run")),
        "mutations": prov.get("mutations") or 0,
        "error": prov.get("error"),
        "started_at": prov.get("started_at"),
        "finished_at": prov.get("finished_at"),
        "counts": [(PLAN_WORDS.get(s, s), n) for s, n in sorted(by_status.items())],
        "attention": [
            {"word": ATTENTION[str(i.get("status"))], "name": i.get("name"), "detail": i.get("detail")}
            for i in items
            if str(i.get("status")) in ATTENTION
        ],
        "total": len(items),
    }


def run_view(run: run_store.SyncRun) -> dict[str, Any]:
    failed = [e for e in run.errors if isinstance(e, dict) and e.get("kind") == "failed"]
    return {
        "id": run.id,
        "kind": run.kind,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "lines": [count_line(label, run.counts[obj]) for obj, label in SYNC_STEPS if run.counts.get(obj)],
        "reason": run.reason,
        "problems": [_problem(e) for e in run.errors[:10]],
        "problem_count": len(run.errors),
        "failed_count": len(failed),
    }


def _problem(entry: Any) -> dict[str, str]:
    if isinstance(entry, dict):
        return {k: str(entry.get(k, "")) for k in ("object", "key", "kind", "reason")}
    return {"object": "", "key": "", "kind": "", "reason": str(entry)}


def next_step(conn: ConnectionView | None, provisioning: dict[str, Any] | None, twenty_configured: bool) -> str:
    """The one action the page makes primary: what a person should do now."""
    if conn is None:
        return "connect"
    if conn.status == connections.STATUS_NEEDS_RECONNECT:
        return "reconnect"
    if not twenty_configured:
        return "configure"
    if provisioning is None or not provisioning["complete"]:
        return "provision"
    return "sync"


async def admin_state(settings: Settings, engine: AsyncEngine, jobs: JobRunner, show: str = "all") -> dict[str, Any]:
    conn, last_gone = await connection_view(settings, engine)
    company_id = conn.company_id if conn else None
    runs = await run_store.recent_runs(engine, company_id, limit=10) if company_id else []
    inbox_counts = await inbox.counts(engine)
    twenty_configured = bool(settings.twenty_url and settings.twenty_api_key)
    provisioning = plan_summary(await provisioning_runs.last(engine))
    show = show if show in deliveries.FILTERS else "all"
    job = jobs.latest()
    return {
        "conn": conn,
        "last_disconnected": last_gone,
        "oauth_configured": bool(settings.whop_client_id),
        "twenty_configured": twenty_configured,
        "twenty_url": settings.twenty_url,
        "provisioning": provisioning,
        "next_step": next_step(conn, provisioning, twenty_configured),
        "runs": [run_view(r) for r in runs],
        "job": job,
        "job_active": job is not None and not job.finished,
        "inbox": inbox_counts,
        "deliveries": await deliveries.recent(engine, show),
        "delivery_counts": await deliveries.counts(engine, inbox_counts),
        "delivery_filter": show,
        "delivery_filters": deliveries.FILTERS,
        "banner": await deliveries.banner(engine),
        "companies": await company_views(engine),
    }


def status_json(conn: ConnectionView | None, jobs: JobRunner) -> dict[str, Any]:
    job = jobs.latest()
    return {
        "job": job.snapshot() if job else None,
        "connection": None
        if conn is None
        else {
            "mode": conn.mode,
            "status": conn.status,
            "company_id": conn.company_id,
            "company_title": conn.company_title,
            "health": conn.health.word,
            "token_expires_in": conn.expires_in,
        },
    }


async def company_views(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Each company not disconnected: status, last sync and its webhook's health at Whop."""
    out = []
    for c in await connections.list_connections(engine):
        if c.status == connections.STATUS_DISCONNECTED:
            continue
        hook = registration.WebhookState.of(c)
        runs = await run_store.recent_runs(engine, c.company_id, limit=1)
        word, tone = (
            ("healthy", "ok")
            if hook.ok
            else ("manual", "warn")
            if hook.error or hook.webhook_id is None
            else ("disabled", "bad")
            if hook.enabled is False
            else ("failing", "warn")
        )
        out.append(
            {
                "company_id": c.company_id,
                "title": c.company_title or c.company_id,
                "mode": c.mode,
                "status": c.status,
                "last_run": runs[0] if runs else None,
                "webhook": hook,
                "webhook_word": word,
                "webhook_tone": tone,
            }
        )
    return out
