"""The Connect Whop flow, apart from HTTP: authorization requests, callback checks, storing.

`begin` records a state (bound to the admin's session, 10 minutes, single use) with the PKCE
verifier encrypted and the nonce, and returns Whop's authorize URL. `claim_state` checks and
consumes it at the callback; `redeem` exchanges the code and learns who connected and which
companies they control; `store_connection` writes the connection with encrypted tokens.
Every failure is a `ConnectError` whose text is safe to show (no token, code or verifier).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.crypto import TokenBox, UndecryptableToken
from bridge.errors import AuthError, BridgeError, NeedsReconnect, RetryableError
from bridge.store import connections, oauth_states
from bridge.store.db import utcnow
from bridge.whop.oauth import (
    TokenSet,
    WhopOAuth,
    code_challenge,
    id_token_claims,
    new_code_verifier,
    new_nonce,
    new_state,
)

log = logging.getLogger(__name__)

STATE_TTL = timedelta(minutes=10)
PICK_TTL = 600  # seconds a "which company?" choice may wait


class ConnectError(Exception):
    """A callback that cannot complete. `title`/`message` are shown to the admin as they are."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(f"{title}: {message}")
        self.title = title
        self.message = message
        self.status = status


# Authorization request --------------------------------------------------------------------------


async def begin(engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth, session_key: str) -> str:
    """Record a fresh state for this session and return the URL to send the admin to."""
    verifier, state, nonce = new_code_verifier(), new_state(), new_nonce()
    await oauth_states.add(
        engine,
        state=state,
        session_id=session_key,
        code_verifier_enc=box.encrypt(verifier),
        nonce=nonce,
        now=utcnow(),
        ttl=STATE_TTL,
    )
    return oauth.authorize_url(state=state, nonce=nonce, code_challenge=code_challenge(verifier))


@dataclass(frozen=True)
class ClaimedState:
    verifier: str = field(repr=False)
    nonce: str | None


async def claim_state(engine: AsyncEngine, box: TokenBox, state: str | None, session_key: str | None) -> ClaimedState:
    """Check the callback's state and use it up; the checks say exactly what was wrong."""
    retry = "Nothing was stored. Start again with Connect Whop."
    if not state or len(state) > 128:
        raise ConnectError("Invalid sign-in response", f"The response from Whop carries no valid state. {retry}")
    row = await oauth_states.get(engine, state)
    if row is None:
        raise ConnectError("Unknown sign-in request", f"This response does not match any Connect Whop request. {retry}")
    if session_key is None or row.session_id != session_key:
        raise ConnectError(
            "Sign-in request from another session",
            f"This Connect Whop request was started in another browser session. {retry}",
        )
    if row.used_at is not None:
        raise ConnectError("Sign-in request already used", f"This Connect Whop response was already handled. {retry}")
    now = utcnow()
    if row.expires_at <= now:
        raise ConnectError("Sign-in request expired", f"More than 10 minutes passed since Connect Whop. {retry}")
    # Consume atomically: of two concurrent callbacks with one state, only one gets past here.
    if not await oauth_states.use(engine, state, now):
        raise ConnectError("Sign-in request already used", f"This Connect Whop response was already handled. {retry}")
    try:
        verifier = box.decrypt(row.code_verifier_enc)
    except UndecryptableToken:
        raise ConnectError(
            "Sign-in request unreadable", f"BRIDGE_SECRET_KEY changed since Connect Whop was clicked. {retry}"
        ) from None
    return ClaimedState(verifier=verifier, nonce=row.nonce)


# Code exchange ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a successful exchange produced: tokens, the Whop user, the companies they control."""

    tokens: TokenSet
    user_id: str
    accounts: list[tuple[str, str]]  # (company id, title)
    user_name: str | None = None  # shown as the approver (Whop's consent page shows the same)


async def redeem(oauth: WhopOAuth, claimed: ClaimedState, code: str) -> Grant:
    nothing = "Nothing was stored. Start again with Connect Whop."
    try:
        tokens = await oauth.exchange_code(code, claimed.verifier)
    except NeedsReconnect:
        raise ConnectError(
            "Authorization code refused",
            f"Whop refused the authorization code: it expired or was already used. {nothing}",
        ) from None
    except RetryableError:
        raise ConnectError("Whop is unavailable", f"Whop did not answer the code exchange. {nothing}", 502) from None
    except AuthError as exc:
        log.warning("code exchange failed: %s", exc)
        raise ConnectError("Code exchange failed", f"Whop refused the code exchange. {nothing}", 502) from None
    try:
        subject = _check_id_token(oauth, tokens, claimed.nonce)
        info = await oauth.userinfo(tokens.access_token)
        user_id = str(info["sub"])
        if subject is not None and subject != user_id:
            raise ConnectError("Sign-in mismatch", f"Whop's id_token and userinfo name different users. {nothing}")
        found = await oauth.accounts(tokens.access_token)
    except ConnectError:
        await _revoke_quietly(oauth, tokens)
        raise
    except BridgeError as exc:
        log.warning("reading the Whop user after the code exchange failed: %s", exc)
        await _revoke_quietly(oauth, tokens)
        raise ConnectError(
            "Could not read your Whop account", f"Whop did not say who connected. {nothing}", 502
        ) from None
    accounts = [(str(a["id"]), str(a.get("title") or a["id"])) for a in found]
    if not accounts:
        await _revoke_quietly(oauth, tokens)
        raise ConnectError(
            "No Whop company",
            f"The Whop user who approved does not manage any company. Approve with a company owner or admin. {nothing}",
        )
    return Grant(tokens=tokens, user_id=user_id, accounts=accounts, user_name=_display_name(info))


def _display_name(info: dict[str, Any]) -> str | None:
    """The user's name, else their username, from userinfo (needs the `profile` scope)."""
    for claim in ("name", "preferred_username"):
        value = info.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:255]
    return None


def _check_id_token(oauth: WhopOAuth, tokens: TokenSet, nonce: str | None) -> str | None:
    """Nonce and audience of the id_token (when `openid` was granted); returns its subject."""
    if tokens.id_token is None:
        return None
    try:
        claims = id_token_claims(tokens.id_token)
    except AuthError:
        raise ConnectError("Invalid id_token", "Whop's id_token could not be read. Nothing was stored.") from None
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if oauth.client_id not in audiences:
        raise ConnectError("Invalid id_token", "Whop's id_token was issued to another app. Nothing was stored.")
    if nonce is not None and claims.get("nonce") != nonce:
        raise ConnectError(
            "Invalid id_token", "Whop's id_token does not carry this request's nonce. Nothing was stored."
        )
    sub = claims.get("sub")
    return str(sub) if sub else None


async def _revoke_quietly(oauth: WhopOAuth, tokens: TokenSet) -> None:
    """Best effort: a grant we will not store should not stay alive at Whop."""
    try:
        await oauth.revoke(tokens.refresh_token or tokens.access_token)
    except BridgeError as exc:
        log.warning("revoking an unused Whop grant failed: %s", exc)


# Storing ------------------------------------------------------------------------------------------


async def store_connection(
    engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth, grant: Grant, company_id: str
) -> connections.Connection:
    """Save the connection (replacing tokens on reconnect). Other companies stay connected:
    each company is its own connection."""
    titles = dict(grant.accounts)
    if company_id not in titles:
        await _revoke_quietly(oauth, grant.tokens)
        raise ConnectError("Unknown company", "That company is not one the Whop user manages. Nothing was stored.")
    return await connections.upsert_connection(
        engine,
        box,
        company_id=company_id,
        company_title=titles[company_id],
        mode="oauth",
        access_token=grant.tokens.access_token,
        refresh_token=grant.tokens.refresh_token,
        expires_at=grant.tokens.expires_at,
        scopes=grant.tokens.scope,
        whop_user_id=grant.user_id,
        whop_user_name=grant.user_name,
    )


# A pending "which company?" choice ---------------------------------------------------------------
# Only the tokens travel, encrypted with BRIDGE_SECRET_KEY, in the signed session cookie (so any
# replica can finish the choice); the company list is fetched again when the admin picks, which
# also proves the chosen company is one the token may read.


def pack_choice(fernet: MultiFernet, grant: Grant) -> str:
    payload = {
        "a": grant.tokens.access_token,
        "r": grant.tokens.refresh_token,
        "e": grant.tokens.expires_at.isoformat() if grant.tokens.expires_at else None,
        "s": grant.tokens.scope,
        "u": grant.user_id,
        "n": grant.user_name,
    }
    return fernet.encrypt(json.dumps(payload).encode("utf-8")).decode("ascii")


async def unpack_choice(fernet: MultiFernet, oauth: WhopOAuth, blob: str) -> Grant:
    try:
        data: Any = json.loads(fernet.decrypt(blob.encode("ascii"), ttl=PICK_TTL))
        tokens = TokenSet(
            access_token=str(data["a"]),
            refresh_token=data["r"],
            expires_at=datetime.fromisoformat(data["e"]) if data["e"] else None,
            scope=data["s"],
        )
        user_id = str(data["u"])
        user_name = data["n"] if isinstance(data.get("n"), str) else None
    except (InvalidToken, ValueError, UnicodeError, KeyError, TypeError):
        raise ConnectError(
            "Choice expired", "The company choice is older than 10 minutes. Nothing was stored. Start again."
        ) from None
    try:
        found = await oauth.accounts(tokens.access_token)
    except BridgeError as exc:
        log.warning("reading the Whop companies for the choice failed: %s", exc)
        await _revoke_quietly(oauth, tokens)
        raise ConnectError("Could not read your Whop companies", "Nothing was stored. Start again.", 502) from None
    accounts = [(str(a["id"]), str(a.get("title") or a["id"])) for a in found]
    return Grant(tokens=tokens, user_id=user_id, accounts=accounts, user_name=user_name)
