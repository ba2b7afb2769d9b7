"""Admin access for the web app: password login, signed session, CSRF, login throttling.

The session cookie (Starlette's SessionMiddleware) is signed, not encrypted: it holds only a
random session id, the CSRF token, the login flag and flash messages — nothing secret. Its
signing key is derived with HKDF from BRIDGE_SECRET_KEY (first key) and the admin password,
so changing the password logs every session out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request

from bridge.config import Settings

SESSION_COOKIE = "bridge_session"
SESSION_MAX_AGE = 12 * 60 * 60  # seconds; an admin logs in again after half a day
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Login throttling: this many failures per client within the window lock it out for the window.
MAX_LOGIN_FAILURES = 10
LOGIN_WINDOW = 300.0


def session_secret(settings: Settings) -> str:
    """The cookie-signing key. Without BRIDGE_SECRET_KEY, a random one (sessions die on restart)."""
    if settings.bridge_secret_key is None:
        return secrets.token_hex(32)
    first = settings.bridge_secret_key.get_secret_value().split(",")[0].strip()
    material = base64.urlsafe_b64decode(first.encode("ascii"))
    password = settings.bridge_admin_password.get_secret_value() if settings.bridge_admin_password else ""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=hashlib.sha256(password.encode("utf-8")).digest(),
        info=b"whop-twenty-bridge/session-cookie/v1",
    )
    return hkdf.derive(material).hex()


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


# Session helpers ---------------------------------------------------------------------------------


def is_admin(request: Request) -> bool:
    return bool(request.session.get("admin")) and bool(request.session.get("sid"))


def session_key(request: Request) -> str | None:
    """What an OAuth state is bound to: a hash of the session id (the id itself stays in the cookie)."""
    sid = request.session.get("sid")
    if not isinstance(sid, str) or not sid:
        return None
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def log_in(request: Request) -> None:
    # A fresh id and CSRF token at login, so a session planted before login is worth nothing.
    request.session.clear()
    request.session["sid"] = secrets.token_urlsafe(32)
    request.session["csrf"] = secrets.token_urlsafe(32)
    request.session["admin"] = True
    request.session["auth_at"] = int(time.time())


def log_out(request: Request) -> None:
    request.session.clear()


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


class LoginThrottle:
    """Counts failed logins per client address in memory (per process; enough against guessing)."""

    def __init__(self, max_failures: int = MAX_LOGIN_FAILURES, window: float = LOGIN_WINDOW) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] < now - self.window:
            times.popleft()
        return times

    def blocked(self, client: str, now: float | None = None) -> bool:
        return len(self._recent(client, time.monotonic() if now is None else now)) >= self.max_failures

    def failed(self, client: str, now: float | None = None) -> None:
        self._recent(client, time.monotonic() if now is None else now).append(time.monotonic() if now is None else now)
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
