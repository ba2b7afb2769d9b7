"""The admin page's recent webhook deliveries: what the inbox holds and what the endpoint refused,
newest first, with a filter per outcome, and the banner that says deliveries are being refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import inbox, rejections
from bridge.store.db import utcnow

# Filter name → inbox statuses it covers (rejected deliveries never reach the inbox).
GROUPS: dict[str, tuple[str, ...]] = {
    "received": ("pending", "processing"),
    "applied": ("applied", "ignored"),
    "failed": ("failed", "dead"),
    "rejected": (),
}
FILTERS = ("all", *GROUPS)
SHOWN = 50

# Inbox status → (what the page says, tone).
WORDS = {
    "pending": ("Received", "muted"),
    "processing": ("Received", "muted"),
    "applied": ("Applied", "ok"),
    "ignored": ("Ignored", "muted"),
    "failed": ("Failed, will retry", "warn"),
    "dead": ("Failed", "bad"),
}

# Why the endpoint refused a delivery → what to check. The reasons are `webhooks.verify`'s.
ADVICE = {
    "signature mismatch": "check the webhook secret (WHOP_WEBHOOK_SECRET must be the ws_… secret Whop shows "
    "for this webhook)",
    "no webhook secret configured": "set WHOP_WEBHOOK_SECRET to the ws_… secret of your Whop webhook",
    "webhook-timestamp too old": "check this server's clock, or a proxy that holds requests back",
    "webhook-timestamp in the future": "check this server's clock",
}
OTHER_ADVICE = "the sender is not signing like Whop: check the webhook URL is only given to Whop"


@dataclass(frozen=True)
class Delivery:
    at: datetime
    outcome: str  # what the page says
    tone: str
    group: str  # one of GROUPS
    webhook_id: str | None
    event_type: str | None
    company_id: str | None
    detail: str  # the last error, or why it was refused
    replayable: bool


@dataclass(frozen=True)
class Banner:
    reason: str
    advice: str
    count: int  # refusals in the window
    last_at: datetime


def advice_for(reason: str) -> str:
    return ADVICE.get(reason, OTHER_ADVICE)


def _from_event(e: inbox.InboxEvent) -> Delivery:
    word, tone = WORDS.get(e.status, (e.status.capitalize(), "muted"))
    group = next((g for g, statuses in GROUPS.items() if e.status in statuses), "received")
    detail = (e.last_error or "")[:200]
    if e.status == "failed":
        detail = f"attempt {e.attempts}: {detail}" if detail else f"attempt {e.attempts}"
    return Delivery(
        at=e.received_at,
        outcome=word,
        tone=tone,
        group=group,
        webhook_id=e.webhook_id,
        event_type=e.event_type,
        company_id=e.company_id,
        detail=detail,
        replayable=e.status in ("failed", "dead", "ignored", "applied"),
    )


def _from_rejection(r: rejections.Rejection) -> Delivery:
    more = f" (and {r.repeats} more like it)" if r.repeats else ""
    return Delivery(
        at=r.received_at,
        outcome="Rejected",
        tone="bad",
        group="rejected",
        webhook_id=r.webhook_id,
        event_type=None,
        company_id=r.company_id,
        detail=f"{r.reason}: {advice_for(r.reason)}{more}",
        replayable=False,
    )


async def recent(engine: AsyncEngine, show: str = "all") -> list[Delivery]:
    """The newest `SHOWN` deliveries of the `show` filter ("all" or one of GROUPS)."""
    found: list[Delivery] = []
    statuses = [s for g, group in GROUPS.items() if show in ("all", g) for s in group]
    for status in statuses:
        found += [_from_event(e) for e in await inbox.list_events(engine, status=status, limit=SHOWN)]
    if show in ("all", "rejected"):
        found += [_from_rejection(r) for r in await rejections.recent(engine, limit=SHOWN)]
    found.sort(key=lambda d: d.at, reverse=True)
    return found[:SHOWN]


async def counts(engine: AsyncEngine, inbox_counts: dict[str, int]) -> dict[str, int]:
    """How many deliveries each filter holds (refusals: within `rejections.WINDOW`)."""
    out = {g: sum(inbox_counts.get(s, 0) for s in statuses) for g, statuses in GROUPS.items()}
    refused = await rejections.summary(engine, since=utcnow() - rejections.WINDOW)
    out["rejected"] = sum(refused.values())
    out["all"] = sum(out.values())
    return out


async def banner(engine: AsyncEngine) -> Banner | None:
    """Deliveries are being refused: the newest refusal is recent, and no delivery was accepted
    after it (once the secret is fixed, the next accepted delivery clears the banner)."""
    last = await rejections.latest(engine)
    if last is None or last.received_at < utcnow() - rejections.WINDOW:
        return None
    newest = await inbox.list_events(engine, limit=1)
    if newest and newest[0].received_at > last.received_at:
        return None
    refused = await rejections.summary(engine, since=utcnow() - rejections.WINDOW)
    return Banner(
        reason=last.reason,
        advice=advice_for(last.reason),
        count=sum(refused.values()),
        last_at=last.received_at,
    )
