"""Each company's webhook at Whop: registered, watched and replayed by the bridge itself.

Facts (research/whop-api.md §4.4): `POST /webhooks` needs `developer:manage_webhook` and returns
`webhook_secret` once (later reads give null); a webhook reports `enabled`, `disabled_reason`,
`failing_since`, `consecutive_failures`; `POST /webhooks/{id}/replay {sent_after}` sends again
what Whop delivered since then (30-day retention, enabled webhooks only), keeping each
`webhook-id`, so the inbox's deduplication makes a replay safe to ask for twice.

So: on connect the bridge creates (or reuses) one webhook per company pointing at
`BRIDGE_PUBLIC_URL/webhooks/whop` and keeps its secret encrypted with the connection; each
reconciliation reads its health; when the bridge comes back after being down, or the webhook
was failing, it asks Whop to replay from the last delivery it stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import metrics
from bridge.config import WHOP_API_VERSION_DATE, Settings
from bridge.crypto import TokenBox
from bridge.errors import AuthError, BridgeError
from bridge.runtime import Runtime
from bridge.store import connections, inbox
from bridge.store.db import as_utc_or_none, utcnow
from bridge.store.leases import LeaseBusy
from bridge.whop.client import NotFound, WhopClient

log = logging.getLogger(__name__)

# The events the bridge applies (bridge/worker.py routes them by prefix); nothing else is asked for.
EVENTS: tuple[str, ...] = (
    "membership.activated",
    "membership.deactivated",
    "membership.updated",
    "membership.trial_ending_soon",
    "membership.cancel_at_period_end_changed",
    "member.created",
    "member.updated",
    "payment.created",
    "payment.succeeded",
    "payment.failed",
    "payment.pending",
    "refund.created",
    "refund.updated",
    "dispute.created",
    "dispute.updated",
    "dispute_alert.created",
    "product.created",
    "product.updated",
    "product.deleted",
    # Moments a sales team acts on (bridge/sync/moments.py).
    "invoice.past_due",
    "invoice.paid",
    "invoice.voided",
    "entry.created",
    "entry.approved",
    "entry.denied",
    "entry.deleted",
)

PERMISSION = "developer:manage_webhook"
RETENTION = timedelta(days=30)  # Whop keeps deliveries this long for replay
# Clocks differ and a delivery may be stored a moment after Whop sent it: replay a little more;
# duplicates cost nothing (the inbox keeps one row per webhook-id).
REPLAY_MARGIN = timedelta(minutes=2)
# A replica starting while another asks for the same company's replay waits this long for it
# (then finds the replay asked for, and skips its own).
REPLAY_WAIT = 30.0
HEALTH_FIELDS = (
    "enabled",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "consecutive_failures",
    "last_failure_at",
)


def webhook_url(settings: Settings) -> str | None:
    """Where Whop should deliver, or None when BRIDGE_PUBLIC_URL was not set (its default is a
    loopback address Whop cannot reach, so nothing is registered for it)."""
    if "bridge_public_url" not in settings.model_fields_set:
        return None
    return settings.bridge_public_url.rstrip("/") + "/webhooks/whop"


def manual_steps(settings: Settings, reason: str) -> str:
    """What the admin does by hand when the bridge cannot register the webhook itself."""
    url = webhook_url(settings) or "<BRIDGE_PUBLIC_URL>/webhooks/whop"
    return (
        f"{reason}. Add the webhook by hand: in Whop's dashboard, Developer → Webhooks → Create, "
        f"URL {url}, API version {WHOP_API_VERSION_DATE}, events {', '.join(EVENTS)}; then set "
        "WHOP_WEBHOOK_SECRET to the secret Whop shows (or reconnect with the "
        f"{PERMISSION} permission granted)."
    )


def health_of(hook: dict[str, Any]) -> dict[str, Any]:
    return {name: hook.get(name) for name in HEALTH_FIELDS}


@dataclass(frozen=True)
class WebhookState:
    """What the page, `status`, `doctor` and `/metrics` show for one company's webhook."""

    company_id: str
    webhook_id: str | None
    url: str | None
    enabled: bool | None
    disabled_reason: str | None
    failing_since: str | None
    consecutive_failures: int
    checked_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, row: connections.Connection) -> WebhookState:
        health = row.webhook_health or {}
        failures = health.get("consecutive_failures")
        return cls(
            company_id=row.company_id,
            webhook_id=row.webhook_id,
            url=row.webhook_url,
            enabled=health.get("enabled") if row.webhook_id else None,
            disabled_reason=health.get("disabled_reason"),
            failing_since=health.get("failing_since"),
            consecutive_failures=failures if isinstance(failures, int) else 0,
            checked_at=row.webhook_checked_at,
            error=row.webhook_error,
        )

    @property
    def summary(self) -> str:
        """One line for people: healthy, failing, disabled, not registered (and why)."""
        if self.error:
            return self.error
        if self.webhook_id is None:
            return "not registered by the bridge (WHOP_WEBHOOK_SECRET verifies deliveries)"
        if self.enabled is False:
            why = f" ({self.disabled_reason})" if self.disabled_reason else ""
            return f"disabled at Whop{why}: re-enable it from the admin page"
        if self.failing_since or self.consecutive_failures:
            since = f" since {self.failing_since}" if self.failing_since else ""
            return f"failing at Whop{since} ({self.consecutive_failures} consecutive failures)"
        return "healthy"

    @property
    def ok(self) -> bool:
        return self.summary == "healthy"


async def _client(runtime: Runtime, company_id: str) -> WhopClient:
    found = await runtime.credentials(company_id)
    return runtime.whop_client(found.tokens, found.company_id)


async def register(runtime: Runtime, company_id: str) -> WebhookState:
    """Create the company's webhook at Whop, or reuse the one the bridge made before.

    Whop shows a secret only on create, so a webhook at our URL whose secret the bridge does not
    hold is deleted and made again: reconnecting leaves exactly one. Without the permission, the
    reason and the manual steps are stored for the page and `doctor`; nothing is raised, since
    WHOP_WEBHOOK_SECRET keeps working.
    """
    settings = runtime.settings
    url = webhook_url(settings)
    store = runtime.store
    if url is None:
        row = await _row(store, company_id)
        return WebhookState.of(row)
    async with await _client(runtime, company_id) as whop:
        try:
            await _register(runtime, whop, company_id, url)
        except AuthError as exc:
            reason = f"the Whop connection may not manage webhooks ({PERMISSION} missing)"
            log.warning("webhook for %s not registered: %s", company_id, exc)
            await connections.save_webhook_error(store, company_id, manual_steps(settings, reason))
    state = WebhookState.of(await _row(store, company_id))
    return state


async def _register(runtime: Runtime, whop: WhopClient, company_id: str, url: str) -> None:
    row = await _row(runtime.store, company_id)
    # Ours: at the bridge's URL, or the one it registered (BRIDGE_PUBLIC_URL may have changed).
    ours = [h for h in await whop.list_webhooks() if h.get("url") == url or h.get("id") == row.webhook_id]
    keep = next((h for h in ours if row.webhook_secret_enc and h.get("id") == row.webhook_id), None)
    for hook in ours:
        if hook is not keep:  # its secret is unknown (or it is a duplicate): it cannot be verified
            await whop.delete_webhook(str(hook["id"]))
            log.info("deleted webhook %s of %s at Whop (secret unknown)", hook.get("id"), company_id)
    if keep is not None:
        await _reuse(runtime, whop, company_id, url, keep)
    else:
        await _create(runtime, whop, company_id, url)


def _needs_update(hook: dict[str, Any], url: str) -> bool:
    """Whether a kept webhook differs from what the bridge asks for (URL, events, version, enabled)."""
    return (
        hook.get("url") != url
        or set(hook.get("events") or ()) != set(EVENTS)
        or hook.get("api_version_date") != WHOP_API_VERSION_DATE
        or hook.get("enabled") is not True
    )


async def _reuse(runtime: Runtime, whop: WhopClient, company_id: str, url: str, keep: dict[str, Any]) -> None:
    """Keep the webhook whose secret the bridge holds, brought up to date first when it differs."""
    if _needs_update(keep, url):
        keep = await whop.update_webhook(
            str(keep["id"]), url=url, events=list(EVENTS), api_version_date=WHOP_API_VERSION_DATE, enabled=True
        )
    await _save(runtime, runtime.box(), company_id, keep, url, secret=None)
    log.info("reusing webhook %s of %s", keep["id"], company_id)


async def _create(runtime: Runtime, whop: WhopClient, company_id: str, url: str) -> None:
    created = await whop.create_webhook(url, EVENTS, api_version_date=WHOP_API_VERSION_DATE)
    secret = created.get("webhook_secret")
    if not isinstance(secret, str) or not secret:
        raise BridgeError("Whop created the webhook but returned no secret; the bridge cannot verify it")
    await _save(runtime, _strict_box(runtime), company_id, created, url, secret=secret)
    log.info("registered webhook %s for %s", created["id"], company_id)


async def _save(
    runtime: Runtime, box: TokenBox, company_id: str, hook: dict[str, Any], url: str, *, secret: str | None
) -> None:
    """Store the webhook Whop answered with (its id and health) on the company's connection."""
    await connections.save_webhook(
        runtime.store, box, company_id, webhook_id=str(hook["id"]), url=url, secret=secret, health=health_of(hook)
    )


def _strict_box(runtime: Runtime) -> TokenBox:
    # A secret stored under a throwaway key would be unreadable after a restart.
    return TokenBox(runtime.settings.fernet)


async def unregister(runtime: Runtime, company_id: str) -> bool:
    """Delete the company's webhook at Whop (best effort: a disconnect must not fail on it)."""
    row = await _row(runtime.store, company_id)
    if row.webhook_id is None:
        return False
    try:
        async with await _client(runtime, company_id) as whop:
            await whop.delete_webhook(row.webhook_id)
    except NotFound:
        pass
    except BridgeError as exc:
        log.warning("could not delete webhook %s of %s at Whop: %s", row.webhook_id, company_id, exc)
        return False
    await connections.forget_webhook(runtime.store, company_id)
    return True


async def refresh(runtime: Runtime, company_id: str) -> WebhookState:
    """Read the webhook's health at Whop (each reconciliation); one deleted there is re-made."""
    store = runtime.store
    row = await _row(store, company_id)
    if row.webhook_id is None:
        return WebhookState.of(row)
    async with await _client(runtime, company_id) as whop:
        try:
            hook = await whop.get_webhook(row.webhook_id)
        except NotFound:
            log.warning("webhook %s of %s is gone at Whop; registering it again", row.webhook_id, company_id)
            await connections.forget_webhook(store, company_id)
            return await register(runtime, company_id)
    await connections.save_webhook_health(store, company_id, health_of(hook))
    state = WebhookState.of(await _row(store, company_id))
    return state


async def enable(runtime: Runtime, company_id: str) -> WebhookState:
    """Re-enable a webhook Whop disabled, then replay what it did not deliver meanwhile."""
    row = await _row(runtime.store, company_id)
    if row.webhook_id is None:
        raise BridgeError(f"the bridge has no webhook registered for {company_id}")
    async with await _client(runtime, company_id) as whop:
        hook = await whop.update_webhook(row.webhook_id, enabled=True)
    await connections.save_webhook_health(runtime.store, company_id, health_of(hook))
    await recover(runtime, company_id, force=True)
    state = WebhookState.of(await _row(runtime.store, company_id))
    return state


async def recover(
    runtime: Runtime, company_id: str, *, since: datetime | None = None, force: bool = False
) -> datetime | None:
    """Ask Whop to replay every delivery sent after `since` (default: the last one stored, less a
    margin; never older than Whop's 30 days). Returns the time asked for, or None when there is
    no webhook to replay, or (unless `force`) a replay already covers what this process may have
    missed (`covered`)."""
    store = runtime.store
    row = await _row(store, company_id)
    if row.webhook_id is None:
        return None
    now = utcnow()
    if since is None:
        stored = await inbox.last_received(store, company_id)
        since = (stored or row.connected_at) - REPLAY_MARGIN
    since = max(since, now - RETENTION + timedelta(minutes=1))
    if not force and covered(row, since, up_since=runtime.started_at):
        log.info("a replay of %s asked for since this process started covers it", company_id)
        return None
    async with await _client(runtime, company_id) as whop:
        await whop.replay_webhook(row.webhook_id, sent_after=since)
    await connections.mark_replay_requested(store, company_id, now, since)
    metrics.WEBHOOK_REPLAYS.labels(company_id).inc()
    log.info("asked Whop to replay the deliveries of %s sent after %s", company_id, since.isoformat())
    return since


def covered(row: connections.Connection, since: datetime, *, up_since: datetime) -> bool:
    """Whether the last replay asked for covers a process that has been up since `up_since`
    and would ask for the deliveries sent after `since`.

    A replay asked for at R brings back what was sent from its `sent_after` until R; after R,
    this process was up to receive. So it covers when R is not older than this process and it
    asked for as much (replicas starting together ask once). A process that restarts started
    after every earlier ask, however recent, so it always asks for what it missed meanwhile.
    """
    asked_at, asked_after = row.replay_requested_at, row.replay_sent_after
    return asked_at is not None and asked_after is not None and asked_at >= up_since and asked_after <= since


async def watch(runtime: Runtime, company_id: str) -> WebhookState | None:
    """A reconciliation's look at the webhook: refresh its health and, when it has failed since
    the last replay, ask for one (a disabled webhook waits for the admin to re-enable it)."""
    try:
        state = await refresh(runtime, company_id)
    except BridgeError as exc:
        log.warning("could not read the webhook health of %s: %s", company_id, exc)
        return None
    row = await _row(runtime.store, company_id)
    health = row.webhook_health or {}
    failed_at = as_time(health.get("last_failure_at")) or as_time(health.get("failing_since"))
    asked = row.replay_requested_at
    if state.enabled and failed_at is not None and (asked is None or failed_at > asked):
        try:
            await recover(runtime, company_id, since=failed_at - REPLAY_MARGIN, force=True)
        except BridgeError as exc:
            log.warning("could not ask Whop to replay the deliveries of %s: %s", company_id, exc)
    return state


async def recover_all(runtime: Runtime) -> dict[str, datetime | None]:
    """At start: each company's missed deliveries are asked for, once by replicas starting together
    (one asks under the lease `replay:<co>`; the others wait for it and find it covers them)."""
    asked: dict[str, datetime | None] = {}
    url = webhook_url(runtime.settings)
    for company_id in await runtime.companies():
        try:
            async with runtime.leases.hold(f"replay:{company_id}", ttl=120, wait=REPLAY_WAIT):
                row = await connections.get_connection(runtime.store, company_id)
                if row is None:  # WHOP_COMPANY_ID before its first sync: no webhook of the bridge's
                    continue
                if url is not None and row.webhook_id is not None and row.webhook_url != url:
                    await register(runtime, company_id)  # BRIDGE_PUBLIC_URL moved: point the webhook there
                asked[company_id] = await recover(runtime, company_id)
        except LeaseBusy:
            asked[company_id] = None
        except BridgeError as exc:
            log.warning("could not ask Whop to replay the deliveries of %s: %s", company_id, exc)
            asked[company_id] = None
    return asked


def as_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc_or_none(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


async def _row(engine: AsyncEngine, company_id: str) -> connections.Connection:
    row = await connections.get_connection(engine, company_id)
    if row is None:
        raise connections.ConnectionNotFound(company_id)
    return row


async def states(engine: AsyncEngine) -> list[WebhookState]:
    return [
        WebhookState.of(c)
        for c in await connections.list_connections(engine)
        if c.status != connections.STATUS_DISCONNECTED
    ]
