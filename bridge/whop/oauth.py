"""Whop OAuth 2.1 client: PKCE (S256), the authorize URL, code exchange, refresh, revoke, userinfo.

Facts from research/whop-api.md §1: endpoints under `<WHOP_API_URL>/oauth/`, JSON bodies,
PKCE S256 only, `nonce` required with `openid`, access tokens live one hour and refresh tokens
rotate on every use. A confidential server sends both the PKCE verifier and its client secret.

What an answer means is `whop/responses.py`'s table, the REST client's too: `invalid_grant` (a
spent, expired or revoked code or refresh token) → `NeedsReconnect`; a 429 or `rate_limit_exceeded`
→ waited out in place when short, else `RateLimited` with the `Retry-After` seconds; 5xx and
network errors → `RetryableError`, retried in place for reads only; any other refusal → `AuthError`.
A person may be waiting on the callback page, so these calls try three times and never wait more
than 10 s inside one.

No message ever carries a token, a code, a verifier or the client secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from bridge import retry
from bridge.config import WHOP_API_VERSION_DATE, Settings
from bridge.errors import AuthError, ConfigError
from bridge.retry import RetryPolicy
from bridge.whop import responses
from bridge.whop.client import NETWORK_ERRORS, USER_AGENT

__all__ = [
    "DEFAULT_SCOPES",
    "TokenSet",
    "WhopOAuth",
    "code_challenge",
    "id_token_claims",
    "new_code_verifier",
    "new_nonce",
    "new_state",
    "redirect_uri",
]

log = logging.getLogger(__name__)

# OIDC scopes (who connected) plus the Whop permissions the sync reads (fact sheet §1.1).
DEFAULT_SCOPES: tuple[str, ...] = (
    "openid",
    "profile",
    "email",
    "member:basic:read",
    "member:email:read",
    "access_pass:basic:read",
    "plan:basic:read",
    "payment:basic:read",
    # Moments and attribution (issue 23): overdue invoices, waitlist signups, promo codes. Reviews
    # and buyer figures are left out: the SDK names no permission for them, and an unknown scope
    # could fail the whole approval; without one their phase reports it and the rest goes on.
    "invoice:basic:read",
    "plan:waitlist:read",
    "promo_code:basic:read",
    # The bridge registers, watches and replays the company's webhook itself (research §4.4).
    # Whop may not grant it to an OAuth app; then the page says how to add the webhook by hand.
    "developer:manage_webhook",
)
CALLBACK_PATH = "/oauth/callback"
# A person may be waiting on the page: three tries, and no wait inside a call longer than this.
RETRY = retry.DEFAULT.replace(attempts=3, longest_wait=10.0)


# PKCE, state, nonce ----------------------------------------------------------------------------


def new_code_verifier() -> str:
    """A PKCE verifier: 64 random bytes → 86 url-safe characters (RFC 7636 allows 43..128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """The S256 challenge: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def redirect_uri(settings: Settings) -> str:
    """The one callback Whop must have on file for this app."""
    return settings.bridge_public_url.rstrip("/") + CALLBACK_PATH


# Token responses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """A token response. The secrets are kept out of repr so a logged TokenSet shows nothing."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scope: str | None = None
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    id_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_response(cls, data: Any, now: datetime) -> TokenSet:
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
            raise AuthError("Whop's token endpoint answered without an access_token")
        expires_in = data.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            expires_at = now + timedelta(seconds=float(expires_in))
        refresh = data.get("refresh_token")
        id_token = data.get("id_token")
        scope = data.get("scope")
        return cls(
            access_token=data["access_token"],
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scope=scope if isinstance(scope, str) else None,
            token_type=str(data.get("token_type") or "Bearer"),
            id_token=id_token if isinstance(id_token, str) and id_token else None,
        )


def id_token_claims(id_token: str) -> dict[str, Any]:
    """The claims of an id_token, without checking its signature.

    Fine here because the token came straight from Whop's token endpoint over TLS, which OIDC
    Core §3.1.3.7 accepts in place of the signature; the caller still checks nonce and audience.
    """
    parts = id_token.split(".")
    if len(parts) != 3:
        raise AuthError("Whop returned an id_token that is not a JWT")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        raise AuthError("Whop returned an unreadable id_token") from None
    if not isinstance(claims, dict):
        raise AuthError("Whop returned an unreadable id_token")
    return claims


# The client ------------------------------------------------------------------------------------


class WhopOAuth:
    """Talks to Whop's OAuth endpoints for one app (client id / secret / redirect URI).

    Each call opens a short-lived HTTP client: OAuth calls are rare (a connect, a refresh an
    hour), and owning no long-lived connection means nobody has to remember to close one.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if not client_id:
            raise ConfigError("WHOP_CLIENT_ID", "is not set")
        self.base_url = base_url.rstrip("/").removesuffix("/api/v1")
        self.client_id = client_id
        self._client_secret = client_secret or None
        self.redirect_uri = redirect_uri
        self._transport = transport
        self._timeout = timeout
        self._clock = clock
        self.retry = retry_policy or RETRY.replace(sleep=sleep, now=clock)

    def __repr__(self) -> str:
        return f"WhopOAuth(base_url={self.base_url!r}, client_id={self.client_id!r}, client_secret=***)"

    @classmethod
    def from_settings(cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> WhopOAuth:
        settings.require("WHOP_CLIENT_ID")
        assert settings.whop_client_id is not None
        secret = settings.whop_client_secret.get_secret_value() if settings.whop_client_secret else None
        return cls(
            settings.whop_api_url,
            settings.whop_client_id,
            secret,
            redirect_uri(settings),
            transport=transport,
        )

    # URLs ----------------------------------------------------------------------------------------

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    def authorize_url(
        self,
        *,
        state: str,
        nonce: str,
        code_challenge: str,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        company_id: str | None = None,
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if company_id:
            params["company_id"] = company_id
        return f"{self.authorize_endpoint}?{urlencode(params)}"

    # Token endpoint --------------------------------------------------------------------------------

    def _client_auth(self) -> dict[str, str]:
        body = {"client_id": self.client_id}
        if self._client_secret:
            body["client_secret"] = self._client_secret
        return body

    async def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        """Redeem an authorization code (single use) with its PKCE verifier."""
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
            **self._client_auth(),
        }
        data = await self._post("/oauth/token", body, what="the code exchange")
        return TokenSet.from_response(data, self._clock())

    async def refresh(self, refresh_token: str, *, company_id: str | None = None) -> TokenSet:
        """Trade a refresh token for a new pair; the old refresh token is spent either way."""
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token, **self._client_auth()}
        if company_id:  # Whop wants it on every refresh when it was sent at authorize time
            body["company_id"] = company_id
        data = await self._post("/oauth/token", body, what="the token refresh")
        return TokenSet.from_response(data, self._clock())

    async def revoke(self, token: str) -> None:
        """Revoke a refresh token (and with it the grant). Unknown tokens are not an error."""
        await self._post("/oauth/revoke", {"token": token, **self._client_auth()}, what="the revoke")

    # Resource calls ----------------------------------------------------------------------------------

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        data = await self._get("/oauth/userinfo", access_token, what="the userinfo")
        if not isinstance(data, dict) or not data.get("sub"):
            raise AuthError("Whop's userinfo answer has no subject")
        return data

    async def accounts(self, access_token: str, *, max_pages: int = 10) -> list[dict[str, Any]]:
        """The business accounts (companies) the token's user controls."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(max_pages):
            params = {"first": "100", **({"after": after} if after else {})}
            data = await self._get("/api/v1/accounts", access_token, what="the accounts read", params=params)
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise AuthError("Whop's accounts answer is not a list")
            found.extend(a for a in data["data"] if isinstance(a, dict) and a.get("id"))
            info = data.get("page_info") or {}
            after = info.get("end_cursor") if isinstance(info, dict) else None
            if not (isinstance(info, dict) and info.get("has_next_page") and after):
                break
        return found

    # HTTP ----------------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    async def _post(self, path: str, body: dict[str, str], *, what: str) -> Any:
        return await self._send("POST", path, what=what, json_body=body, idempotent=False)

    async def _get(self, path: str, access_token: str, *, what: str, params: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {access_token}", "Api-Version-Date": WHOP_API_VERSION_DATE}
        return await self._send("GET", path, what=what, headers=headers, params=params, idempotent=True)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        json_body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        asked = responses.Answer(what, oauth=True, idempotent=idempotent, url=self.base_url)

        async def attempt() -> Any:
            try:
                async with self._http() as http:
                    response = await http.request(method, url, json=json_body, headers=headers, params=params)
            except NETWORK_ERRORS as exc:
                # Only the class: the text of a failed request may quote its body.
                return responses.classify(responses.from_network(asked, exc, type(exc).__name__))
            if response.is_success:
                if not response.content:
                    return {}
                try:
                    return response.json()
                except ValueError:
                    pass
            retry_after = None if response.is_success else self.retry.retry_after(response.headers)
            return responses.classify(
                responses.from_response(asked, response, retry_after=retry_after, json=not response.is_success)
            )

        return await retry.call(attempt, self.retry, what=f"Whop {what}")
