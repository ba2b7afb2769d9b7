"""Adding and removing Whop companies: any number, each its own connection, isolated.

A company comes in by OAuth (the admin page) or by a company API key (`connect`). Either way
the bridge then registers the company's webhook (`registration.register`). Removing one revokes
its OAuth grant, deletes its webhook at Whop and forgets its secrets; the records it wrote to
Twenty stay, and no other company's connection, webhook or records are touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge import registration
from bridge.crypto import TokenBox, UndecryptableToken
from bridge.errors import BridgeError, ConfigError
from bridge.runtime import Runtime
from bridge.store import connections
from bridge.whop.auth import StaticToken
from bridge.whop.oauth import WhopOAuth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connected:
    connection: connections.Connection
    webhook: registration.WebhookState


def check_api_key(key: str) -> str:
    key = key.strip()
    if not key or any(c.isspace() for c in key) or len(key) > 512:
        raise ConfigError("WHOP_API_KEY", "is not a Whop API key (one line, no spaces)")
    return key


async def connect_api_key(runtime: Runtime, api_key: str) -> Connected:
    """Add (or re-add) the company a company API key belongs to, keeping the key encrypted."""
    key = check_api_key(api_key)
    box = TokenBox(runtime.settings.fernet)  # the key is stored: BRIDGE_SECRET_KEY is required
    async with runtime.whop_client(StaticToken(key), "biz_pending") as probe:
        account = await probe.get_account_me()
    company_id = str(account.get("id") or "")
    if not company_id.startswith("biz_"):
        raise BridgeError("Whop did not say which company this API key belongs to (GET /accounts/me)")
    existing = await connections.get_connection(runtime.store, company_id)
    if existing is not None and existing.mode == "oauth" and existing.status == connections.STATUS_CONNECTED:
        raise BridgeError(
            f"{existing.company_title or company_id} is already connected by OAuth; disconnect it first "
            "to use an API key instead"
        )
    title = account.get("title")
    row = await connections.save_api_key(runtime.store, box, company_id, str(title) if title else None, key)
    log.info("connected a Whop company by API key", extra={"company_id": company_id})
    return Connected(row, await after_connect(runtime, company_id))


async def after_connect(runtime: Runtime, company_id: str) -> registration.WebhookState:
    """Register the company's webhook (when BRIDGE_PUBLIC_URL is set); never fails the connect."""
    try:
        state = await registration.register(runtime, company_id)
    except BridgeError as exc:
        log.warning("webhook of %s not registered: %s", company_id, exc)
        await connections.save_webhook_error(runtime.store, company_id, f"webhook not registered: {exc}")
        row = await connections.get_connection(runtime.store, company_id)
        assert row is not None
        state = registration.WebhookState.of(row)
    runtime.webhook_secrets.forget()
    return state


async def disconnect(runtime: Runtime, company_id: str) -> connections.Connection:
    """Remove one company: its webhook at Whop, its OAuth grant, its stored secrets."""
    store = runtime.store
    row = await connections.get_connection(store, company_id)
    if row is None or row.status == connections.STATUS_DISCONNECTED:
        raise connections.ConnectionNotFound(company_id)
    # The webhook goes first, while the credentials that may delete it still exist.
    try:
        await registration.unregister(runtime, company_id)
    except BridgeError as exc:
        log.warning("could not delete the webhook of %s at Whop: %s", company_id, exc)
    if row.mode == "oauth" and row.has_tokens and runtime.settings.whop_client_id:
        await revoke(runtime, row)
    await connections.disconnect(store, company_id)
    runtime.webhook_secrets.forget()
    log.info("disconnected a Whop company", extra={"company_id": company_id})
    return row


async def revoke(runtime: Runtime, row: connections.Connection) -> None:
    """Revoke the OAuth grant at Whop (best effort, logged): forgetting the tokens follows anyway."""
    oauth = WhopOAuth.from_settings(runtime.settings, transport=runtime.transports.whop)
    try:
        token = row.refresh_token(runtime.box()) or row.access_token(runtime.box())
        if token:
            await oauth.revoke(token)
    except (BridgeError, UndecryptableToken) as exc:
        log.warning("revoking the Whop grant failed; forgetting the tokens anyway: %s", exc)
