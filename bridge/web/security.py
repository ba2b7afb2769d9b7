"""Admin access for the web app: password login, server-side sessions, CSRF, the login throttle.

The session cookie (Starlette's SessionMiddleware) is signed, not encrypted: it holds a random
session id, the CSRF token, the login flag and flash messages, nothing secret. Being logged in
also needs the session's row in the store (`bridge/store/sessions.py`, which keeps only a hash of
the id), so logout, "log out all sessions", a changed admin password and the idle and absolute
timeouts end a session for every copy of its cookie.

Logins are slowed per client address and per account (`bridge/store/throttle.py`, shared by every
replica). The client address is the TCP peer, or, only when the peer is one of
BRIDGE_TRUSTED_PROXIES, the address those proxies put in X-Forwarded-For. The account's limit,
which holds back guessing spread over many addresses, has two lanes: one for clients still within
their free checks and one for clients past them, so a guesser that has spent its own can never
hold back the admin at a new address. A browser that logged in before carries a signed device
cookie and is slowed on its own key instead, so guessing from elsewhere, or from behind the same
proxy, never holds the admin back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.config import IPNetwork, Settings
from bridge.store import sessions as session_store
from bridge.store import throttle as throttle_store
from bridge.store.throttle import Backoff, Lanes

SESSION_COOKIE = "bridge_session"
DEVICE_COOKIE = "bridge_device"
DEVICE_MAX_AGE = 180 * 24 * 60 * 60  # a browser stays known for half a year after its last login
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Each client address and each known browser: ten checks in a row, then waits doubling from 1 s
# to at most a minute. A client keeps its backoff when the admin's login clears the account's.
CLIENT_BACKOFF = Backoff(free=10, first=1.0, longest=60.0, forget=3600.0)
DEVICE_BACKOFF = CLIENT_BACKOFF
# The one admin account, on the same terms, in two lanes: checks by clients past their ten free
# ones, and checks by clients within them (the admin at a new address). A guesser, from however
# many addresses that have each spent their ten, gets about one check a minute in the first lane
# and never touches the second; the two together allow about two a minute, and at that pace a
# 12-character password is out of reach.
ACCOUNT_BACKOFF = CLIENT_BACKOFF
ACCOUNT_KEY = "account"
NEW_CLIENTS_KEY = "account:new-clients"
# A wait is cut to between three quarters and all of its length, so rival guessers cannot all
# line up on the moment it ends.
JITTER = (0.75, 1.0)

Clock = Callable[[], float]


def _first_key(settings: Settings) -> bytes | None:
    if settings.bridge_secret_key is None:
        return None
    first = settings.bridge_secret_key.get_secret_value().split(",")[0].strip()
    return base64.urlsafe_b64decode(first.encode("ascii"))


def _derive(material: bytes, salt: bytes | None, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"whop-twenty-bridge/" + purpose)
    return hkdf.derive(material)


def _password(settings: Settings) -> str:
    return settings.bridge_admin_password.get_secret_value() if settings.bridge_admin_password else ""


def session_secret(settings: Settings) -> str:
    """The cookie-signing key. Without BRIDGE_SECRET_KEY, a random one (sessions die on restart)."""
    material = _first_key(settings)
    if material is None:
        return secrets.token_hex(32)
    salt = hashlib.sha256(_password(settings).encode("utf-8")).digest()
    return _derive(material, salt, b"session-cookie/v1").hex()


def password_fingerprint(settings: Settings) -> str:
    """What a session row is bound to: an HMAC of the admin password under a key derived from
    BRIDGE_SECRET_KEY, so a changed password ends old sessions and the database alone is no
    help in guessing the password. Without both, a random value no row will ever match."""
    material = _first_key(settings)
    password = _password(settings)
    if material is None or not password:
        return secrets.token_hex(32)
    key = _derive(material, None, b"session-password/v1")
    return hmac.new(key, password.encode("utf-8"), hashlib.sha256).hexdigest()


def password_matches(settings: Settings, candidate: str) -> bool:
    """Constant-time check; comparing digests also hides the password's length."""
    if settings.bridge_admin_password is None:
        return False
    expected = settings.bridge_admin_password.get_secret_value()
    if not expected:
        return False
    return hmac.compare_digest(
        hashlib.sha256(candidate.encode("utf-8")).digest(), hashlib.sha256(expected.encode("utf-8")).digest()
    )


def setup_problems(settings: Settings) -> list[str]:
    """What must be configured before anyone can log in (shown on the login page)."""
    problems = []
    if settings.bridge_admin_password is None or not settings.bridge_admin_password.get_secret_value():
        problems.append("BRIDGE_ADMIN_PASSWORD")
    if settings.bridge_secret_key is None:
        problems.append("BRIDGE_SECRET_KEY")
    return problems


# Sessions -----------------------------------------------------------------------------------------


def hash_session_id(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


def is_admin(request: Request) -> bool:
    """Set for each request by `SessionCheck` from the session's row in the store."""
    return bool(request.scope.get("state", {}).get("admin"))


def _set_admin(scope: Scope, value: bool) -> None:
    scope.setdefault("state", {})["admin"] = value


def session_key(request: Request) -> str | None:
    """What an OAuth state is bound to: the session's stored hash (the id itself stays in the cookie)."""
    sid = request.session.get("sid")
    if not isinstance(sid, str) or not sid:
        return None
    return hash_session_id(sid)


class AdminSessions:
    """Starts, checks and ends admin sessions in the store, under the settings' timeouts."""

    def __init__(self, store: Callable[[], AsyncEngine], settings: Settings, clock: Clock = time.time) -> None:
        self._store = store
        self.clock = clock
        self.fingerprint = password_fingerprint(settings)
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.lifetime = timedelta(hours=settings.session_max_hours)
        # A row's last use is written at most this often; the idle timeout is that much coarse.
        self.touch_after = min(timedelta(minutes=1), self.idle / 4)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def alive(self, session: dict[str, Any]) -> bool:
        """Whether the cookie's session is logged in; a dead one loses its id and login flag."""
        sid = session.get("sid")
        if not session.get("admin") or not isinstance(sid, str) or not sid:
            return False
        engine = self._store()
        ok = await session_store.check(
            engine, hash_session_id(sid), self.fingerprint, self._now(), self.idle, self.touch_after
        )
        if not ok:
            for name in ("sid", "admin", "auth_at", "pick"):
                session.pop(name, None)
        return ok

    async def start(self, request: Request) -> None:
        """A fresh id and CSRF token at login, so a session planted before login is worth nothing."""
        await self.end(request)
        engine = self._store()
        now = self._now()
        await session_store.prune(engine, self.fingerprint, now, self.idle)
        sid = secrets.token_urlsafe(32)
        await session_store.start(engine, hash_session_id(sid), self.fingerprint, now, self.lifetime)
        request.session.clear()
        request.session.update(
            {"sid": sid, "csrf": secrets.token_urlsafe(32), "admin": True, "auth_at": int(now.timestamp())}
        )
        _set_admin(request.scope, True)

    async def end(self, request: Request) -> None:
        key = session_key(request)
        if key is not None:
            await session_store.end(self._store(), key)
        request.session.clear()
        _set_admin(request.scope, False)

    async def end_all(self, request: Request) -> int:
        """Log out every session, this one included."""
        ended = await session_store.end_all(self._store())
        request.session.clear()
        _set_admin(request.scope, False)
        return ended


class SessionCheck:
    """Marks each request logged in or not from the store; sits inside SessionMiddleware.

    Only a request whose cookie claims a login costs a lookup: anonymous visitors and Whop's
    webhooks carry no session id.
    """

    def __init__(self, app: ASGIApp, sessions: AdminSessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            session = scope.get("session")
            _set_admin(scope, isinstance(session, dict) and await self.sessions.alive(session))
        await self.app(scope, receive, send)


# CSRF and flash messages (in the signed cookie) ------------------------------------------------


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def flash(request: Request, text: str, kind: str = "info") -> None:
    messages = list(request.session.get("flash") or [])
    messages.append([kind, text])
    request.session["flash"] = messages[-5:]


def pop_flashes(request: Request) -> list[tuple[str, str]]:
    messages = request.session.pop("flash", None) or []
    return [(str(k), str(t)) for k, t in messages]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def csrf_ok(request: Request, form: Any, settings: Settings) -> bool:
    """The form field (or header) matches the session's token, and the Origin, if sent, is ours."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not expected:
        return False
    sent = form.get(CSRF_FIELD) if form is not None else None
    if not sent:
        sent = request.headers.get(CSRF_HEADER)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        allowed = {origin_of(settings.bridge_public_url), origin_of(str(request.base_url))}
        if origin.lower() not in allowed:
            return False
    return True


def safe_next(target: str | None) -> str:
    """Only local paths: a login form must not become an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# The client's address ---------------------------------------------------------------------------


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(peer: str | None, forwarded_for: list[str], trusted: list[IPNetwork]) -> str | None:
    """The client as the trusted proxies saw it: from the peer, walk X-Forwarded-For right to
    left while each hop is a trusted proxy; the first address that is not one is the client.
    Entries left of it were written by the client itself and are never read."""
    here = _ip(peer) if peer else None
    if here is None or not any(here in net for net in trusted):
        return peer
    hops = [part for header in forwarded_for for part in header.split(",") if part.strip()]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break  # not an address: stop at the last hop a trusted proxy vouched for
        here = address
        if not any(here in net for net in trusted):
            break
    return str(here)


class ForwardedFor:
    """Sets the request's client (and scheme) from X-Forwarded-* when, and only when, the peer
    is a trusted proxy. `serve` turns uvicorn's own handling off, which believed loopback."""

    def __init__(self, app: ASGIApp, trusted: list[IPNetwork]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.trusted and scope.get("client"):
            peer, port = scope["client"]
            forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            client = client_address(peer, forwarded, self.trusted)
            if client != peer:
                scope = dict(scope, client=(client, port))
                protos = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-proto"]
                proto = protos[-1].split(",")[-1].strip().lower() if protos else ""
                if proto in ("http", "https"):
                    scope["scheme"] = proto
        await self.app(scope, receive, send)


def client_key(request: Request) -> str:
    """The throttle's key for the client: its address, an IPv6 client by its /64 (one host's
    usual share), so a client cannot step through addresses it owns."""
    host = request.client.host if request.client else ""
    address = _ip(host)
    if address is None:
        return "client:" + (host[:64] or "unknown")
    if isinstance(address, ipaddress.IPv6Address):
        return "client:" + str(ipaddress.ip_network(f"{address}/64", strict=False))
    return f"client:{address}"


# Known browsers ---------------------------------------------------------------------------------


def _device_mac(settings: Settings, device: str) -> str | None:
    material = _first_key(settings)
    if material is None:
        return None
    key = _derive(material, None, b"device-cookie/v1")
    return hmac.new(key, device.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def known_device(request: Request, settings: Settings) -> str | None:
    """The id of a browser that logged in before, from its signed cookie; None otherwise."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    device, _, mac = value.partition(".")
    if not device or len(value) > 128 or not device.isascii():
        return None
    expected = _device_mac(settings, device)
    if expected is None or not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode()):
        return None
    return device


def remember_device(response: Response, request: Request, settings: Settings) -> None:
    """Mark the browser as known after a login (its id kept, so its backoff follows it)."""
    device = known_device(request, settings) or secrets.token_urlsafe(16)
    mac = _device_mac(settings, device)
    if mac is None:
        return
    response.set_cookie(
        DEVICE_COOKIE,
        f"{device}.{mac}",
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=settings.bridge_public_url.startswith("https://"),
    )


# The login throttle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What one login attempt is counted against: its own key, and the account's lanes."""

    keys: list[tuple[str, Backoff]]
    lanes: Lanes | None = None


class LoginThrottle:
    """Who may try the password now, decided in the store for every replica."""

    def __init__(
        self, store: Callable[[], AsyncEngine], clock: Clock = time.time, rand: Callable[[], float] = random.random
    ) -> None:
        self._store = store
        self.clock = clock
        self.rand = rand

    def claim(self, request: Request, settings: Settings) -> Claim:
        """A known browser answers for itself; anyone else for their address and the account."""
        device = known_device(request, settings)
        if device is not None:
            return Claim([("device:" + hashlib.sha256(device.encode()).hexdigest()[:32], DEVICE_BACKOFF)])
        client = client_key(request)
        lanes = Lanes(
            by=client,
            within=CLIENT_BACKOFF.free,
            new=(NEW_CLIENTS_KEY, ACCOUNT_BACKOFF),
            held=(ACCOUNT_KEY, ACCOUNT_BACKOFF),
        )
        return Claim([(client, CLIENT_BACKOFF)], lanes)

    async def wait(self, claim: Claim) -> int:
        """0 when this attempt may check the password (it is counted), else whole seconds to wait."""
        low, high = JITTER
        jitter = low + (high - low) * self.rand()
        seconds = await throttle_store.take_turn(self._store(), claim.keys, self.clock(), jitter, claim.lanes)
        return math.ceil(seconds) if seconds > 0 else 0

    async def succeeded(self, claim: Claim) -> None:
        """The right password: this client, this browser and the account start afresh."""
        engine = self._store()
        await throttle_store.clear(engine, [ACCOUNT_KEY, NEW_CLIENTS_KEY, *(key for key, _ in claim.keys)])
        await throttle_store.prune(engine, self.clock(), ACCOUNT_BACKOFF.forget)
