"""Whop's OAuth 2.1 + PKCE (S256) + OIDC endpoints (fact sheet §1.1).

Faithful details worth testing against: exact redirect_uri match, S256 only, `nonce`
required with `openid`, single-use codes that expire, refresh tokens that rotate on every
use (the old one is refused), `company_id` pinned on refresh, and a clock that tests control.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fakes.whop.stats import FakeWhopStats
from fakes.whop.store import OWNER_USER_ID, WhopStore

_PKCE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 verifier alphabet and length
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(sha256) without padding
JWK_KID = "fake-whop-es256"


@dataclass
class OAuthConfig:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    access_token_ttl: float = 3600.0
    refresh_token_ttl: float | None = None  # undocumented on Whop; None = never expires
    code_ttl: float = 300.0  # v3 docs: single use, 5 minutes
    app_name: str = "Whop Twenty Bridge"
    require_client_secret: bool = False  # True: behave like a confidential app


@dataclass
class _Pending:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    company_id: str | None
    user_id: str


@dataclass
class _Code:
    pending: _Pending
    expires_at: int
    used: bool = False
    grant_id: str | None = None


@dataclass
class Grant:
    """One consent: the refresh-token family and every access token it produced."""

    id: str
    user_id: str
    client_id: str
    scope: str
    company_id: str | None
    revoked: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Refresh:
    grant_id: str
    expires_at: int | None
    active: bool = True


@dataclass
class _Access:
    grant_id: str
    expires_at: int
    revoked: bool = False


def s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _with_query(uri: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


class OAuthProvider:
    def __init__(self, store: WhopStore, stats: FakeWhopStats, config: OAuthConfig) -> None:
        self.store = store
        self.stats = stats
        self.config = config
        self.consent_user_id = OWNER_USER_ID  # the person clicking Approve on the fake
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Code] = {}
        self.grants: dict[str, Grant] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _Access] = {}
        self._key: ec.EllipticCurvePrivateKey | None = None

    # ---- token lookups used by the REST API ---------------------------------------------
    def lookup_access_token(self, token: str) -> tuple[Grant | None, str]:
        """(grant, "") for a live access token, else (None, reason)."""
        access = self._access.get(token)
        if access is None:
            return None, "invalid access token"
        grant = self.grants[access.grant_id]
        if access.revoked or grant.revoked:
            return None, "access token has been revoked"
        if self.store.now_ms() >= access.expires_at:
            return None, "access token has expired"
        return grant, ""

    def expire_access_tokens(self) -> None:
        """Test helper: every access token issued so far is now expired."""
        for access in self._access.values():
            access.expires_at = min(access.expires_at, self.store.now_ms())

    # ---- id_token signing (ES256, like Whop) ----------------------------------------------
    @property
    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:  # made on first use: keeps FakeWhop() construction instant
            self._key = ec.generate_private_key(ec.SECP256R1())
        return self._key

    def jwks(self) -> dict[str, Any]:
        numbers = self.signing_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": _b64url(numbers.x.to_bytes(32, "big")),
                    "y": _b64url(numbers.y.to_bytes(32, "big")),
                    "use": "sig",
                    "alg": "ES256",
                    "kid": JWK_KID,
                }
            ]
        }

    def _jwt(self, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "typ": "JWT", "kid": JWK_KID}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.signing_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS wants raw r||s, not DER
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    # ---- pages ----------------------------------------------------------------------------
    def _error_page(self, message: str) -> HTMLResponse:
        body = f'<p id="error">{html.escape(message)}</p><p>Return to the application and try again.</p>'
        return HTMLResponse(_PAGE.format(title="Invalid authorization request", body=body), status_code=400)

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        cfg = self.config
        client_id = q.get("client_id")
        redirect_uri = q.get("redirect_uri")
        scope = " ".join((q.get("scope") or "").split())
        # Nothing here ever redirects: a bad request must not bounce to an unchecked URI.
        if client_id != cfg.client_id:
            return self._error_page("Unknown client_id.")
        if not redirect_uri or redirect_uri not in cfg.redirect_uris:
            return self._error_page("The redirect_uri is not registered for this app.")
        if q.get("response_type") != "code":
            return self._error_page("response_type must be 'code'.")
        challenge = q.get("code_challenge") or ""
        if not challenge:
            return self._error_page("code_challenge is required (PKCE).")
        if q.get("code_challenge_method") != "S256":
            return self._error_page("code_challenge_method must be S256.")
        if not _CHALLENGE_RE.match(challenge):
            return self._error_page("code_challenge is not a base64url SHA-256 digest.")
        if not scope:
            return self._error_page("scope is required.")
        scopes = scope.split()
        if "openid" in scopes and not q.get("nonce"):
            return self._error_page("nonce is required when the scope includes openid.")
        user_id = self.consent_user_id
        company_id = q.get("company_id") or q.get("account_id")
        if company_id and company_id not in self.store.companies_of_user(user_id):
            return self._error_page("You do not manage that company.")
        request_id = secrets.token_urlsafe(16)
        self._pending[request_id] = _Pending(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=q.get("state"),
            nonce=q.get("nonce"),
            code_challenge=challenge,
            company_id=company_id,
            user_id=user_id,
        )
        user = self.store.users[user_id]
        company_line = ""
        if company_id:
            company_line = (
                f'<p>Company: <strong id="company">{html.escape(self.store.companies[company_id].title)}</strong></p>'
            )
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        body = (
            f"<p><strong>{html.escape(cfg.app_name)}</strong> wants to access your Whop account "
            f'(<span id="user">{html.escape(user.name or user.username)}</span>).</p>'
            f'{company_line}<p>It asks for:</p><ul id="scopes">{items}</ul>'
            '<form method="post" action="/oauth/authorize/decision">'
            f'<input type="hidden" name="request_id" value="{request_id}">'
            '<button id="approve" type="submit" name="decision" value="approve">Approve</button>'
            '<button id="deny" type="submit" name="decision" value="deny">Deny</button>'
            "</form>"
        )
        return HTMLResponse(_PAGE.format(title=html.escape(f"Authorize {cfg.app_name}"), body=body))

    async def decision(self, request: Request) -> Response:
        form = await request.form()
        pending = self._pending.pop(str(form.get("request_id") or ""), None)
        if pending is None:
            return self._error_page("This authorization request is unknown or was already answered.")
        if form.get("decision") != "approve":
            target = _with_query(
                pending.redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": "The user denied the authorization request.",
                    "state": pending.state,
                },
            )
            return RedirectResponse(target, status_code=302)
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(pending=pending, expires_at=self.store.now_ms() + round(self.config.code_ttl * 1000))
        self.stats.authorizations += 1
        self.stats.codes_issued += 1
        return RedirectResponse(_with_query(pending.redirect_uri, {"code": code, "state": pending.state}), 302)

    # ---- token endpoint -------------------------------------------------------------------
    @staticmethod
    async def _params(request: Request) -> dict[str, str] | None:
        """JSON (what Whop documents) or form-encoded (what third parties use)."""
        if "application/json" in request.headers.get("content-type", ""):
            try:
                data = await request.json()
            except ValueError:
                return None
            if not isinstance(data, dict):
                return None
            return {str(k): str(v) for k, v in data.items() if v is not None}
        form = await request.form()
        return {k: str(v) for k, v in form.items()}

    def _client_error(self, request: Request, params: dict[str, str]) -> JSONResponse | None:
        client_id, secret = params.get("client_id"), params.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                basic_id, _, basic_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return _oauth_error("invalid_client", "malformed Basic credentials", 401)
            client_id, secret = client_id or basic_id, secret or basic_secret
        if client_id != self.config.client_id:
            return _oauth_error("invalid_client", "unknown client_id", 401)
        if secret is not None and not hmac.compare_digest(secret.encode(), self.config.client_secret.encode()):
            return _oauth_error("invalid_client", "client authentication failed", 401)
        if secret is None and self.config.require_client_secret:
            return _oauth_error("invalid_client", "client_secret is required for this app", 401)
        return None

    async def token(self, request: Request) -> Response:
        params = await self._params(request)
        if params is None:
            return _oauth_error("invalid_request", "the body must be a JSON object or form-encoded")
        grant_type = params.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            return _oauth_error("unsupported_grant_type", f"unsupported grant_type {grant_type!r}")
        client_error = self._client_error(request, params)
        if client_error is not None:
            return client_error
        base = str(request.base_url).rstrip("/")
        if grant_type == "authorization_code":
            return self._exchange_code(params, base)
        return self._refresh_grant(params, base)

    def _exchange_code(self, params: dict[str, str], issuer: str) -> Response:
        for name in ("code", "redirect_uri", "code_verifier"):
            if not params.get(name):
                return _oauth_error("invalid_request", f"{name} is required")
        code = self._codes.get(params["code"])
        if code is None:
            return _oauth_error("invalid_grant", "the authorization code is invalid")
        if code.used:
            # RFC 6749 §4.1.2: a replayed code revokes what it already produced.
            if code.grant_id:
                self.grants[code.grant_id].revoked = True
            return _oauth_error("invalid_grant", "the authorization code has already been used")
        if self.store.now_ms() >= code.expires_at:
            return _oauth_error("invalid_grant", "the authorization code has expired")
        pending = code.pending
        if params.get("client_id", pending.client_id) != pending.client_id:
            return _oauth_error("invalid_grant", "the code was issued to another client")
        if params["redirect_uri"] != pending.redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = params["code_verifier"]
        if not _PKCE_RE.match(verifier) or not hmac.compare_digest(s256(verifier), pending.code_challenge):
            return _oauth_error("invalid_grant", "code_verifier does not match the code_challenge")
        code.used = True
        grant = Grant(
            id=secrets.token_hex(8),
            user_id=pending.user_id,
            client_id=pending.client_id,
            scope=pending.scope,
            company_id=pending.company_id,
            scopes=frozenset(pending.scope.split()),
        )
        self.grants[grant.id] = grant
        code.grant_id = grant.id
        return self._issue(grant, issuer, nonce=pending.nonce)

    def _refresh_grant(self, params: dict[str, str], issuer: str) -> Response:
        token = params.get("refresh_token")
        if not token:
            return _oauth_error("invalid_request", "refresh_token is required")
        refresh = self._refresh.get(token)
        if refresh is None or not refresh.active:
            return _oauth_error("invalid_grant", "the refresh token is invalid or was already used")
        grant = self.grants[refresh.grant_id]
        if grant.revoked:
            return _oauth_error("invalid_grant", "the refresh token has been revoked")
        if refresh.expires_at is not None and self.store.now_ms() >= refresh.expires_at:
            return _oauth_error("invalid_grant", "the refresh token has expired")
        if params.get("client_id") != grant.client_id:
            return _oauth_error("invalid_grant", "the refresh token was issued to another client")
        if grant.company_id and params.get("company_id") != grant.company_id:
            return _oauth_error("invalid_grant", "company_id must be the one sent at authorization")
        refresh.active = False  # rotation: this token is spent whatever happens next
        self.stats.refreshes += 1
        return self._issue(grant, issuer, nonce=None)

    def _issue(self, grant: Grant, issuer: str, *, nonce: str | None) -> JSONResponse:
        now = self.store.now_ms()
        cfg = self.config
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Access(grant_id=grant.id, expires_at=now + round(cfg.access_token_ttl * 1000))
        refresh_expiry = None if cfg.refresh_token_ttl is None else now + round(cfg.refresh_token_ttl * 1000)
        self._refresh[refresh] = _Refresh(grant_id=grant.id, expires_at=refresh_expiry)
        self.stats.tokens_issued += 1
        body: dict[str, Any] = {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(cfg.access_token_ttl),
            "scope": grant.scope,
        }
        if "openid" in grant.scopes:
            claims: dict[str, Any] = {
                "iss": issuer,
                "sub": grant.user_id,
                "aud": grant.client_id,
                "iat": now // 1000,
                "exp": (now // 1000) + int(cfg.access_token_ttl),
            }
            if nonce is not None:
                claims["nonce"] = nonce
            claims.update(self._claims(grant))
            body["id_token"] = self._jwt(claims)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def _claims(self, grant: Grant) -> dict[str, Any]:
        user = self.store.users[grant.user_id]
        claims: dict[str, Any] = {}
        if "profile" in grant.scopes:
            claims.update(name=user.name, preferred_username=user.username, picture=user.profile_picture_url)
        if "email" in grant.scopes:
            claims.update(email=user.email, email_verified=user.email is not None)
        return claims

    # ---- userinfo / revoke / discovery -----------------------------------------------------
    async def userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return _oauth_error("invalid_token", "a Bearer access token is required", 401)
        grant, reason = self.lookup_access_token(auth[7:].strip())
        if grant is None:
            return _oauth_error("invalid_token", reason, 401)
        if "openid" not in grant.scopes:
            return _oauth_error("insufficient_scope", "userinfo needs the openid scope", 403)
        return JSONResponse({"sub": grant.user_id, **self._claims(grant)})

    async def revoke(self, request: Request) -> Response:
        params = await self._params(request)
        if params is None:
            return _oauth_error("invalid_request", "the body must be a JSON object or form-encoded")
        client_error = self._client_error(request, params)
        if client_error is not None:
            return client_error
        token = params.get("token")
        if not token:
            return _oauth_error("invalid_request", "token is required")
        if (refresh := self._refresh.get(token)) is not None:
            refresh.active = False
            self.grants[refresh.grant_id].revoked = True  # the family and its access tokens die
            self.stats.revocations += 1
        elif (access := self._access.get(token)) is not None:
            access.revoked = True
            self.stats.revocations += 1
        # RFC 7009: unknown tokens are not an error.
        return JSONResponse({})

    async def discovery(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/oauth/authorize",
                "token_endpoint": f"{base}/oauth/token",
                "userinfo_endpoint": f"{base}/oauth/userinfo",
                "revocation_endpoint": f"{base}/oauth/revoke",
                "jwks_uri": f"{base}/.well-known/jwks.json",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "profile", "email"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
            }
        )

    async def jwks_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.jwks())
