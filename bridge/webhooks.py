"""Receiving Whop webhooks: verify the signature, store the delivery, acknowledge.

Whop signs deliveries the Standard Webhooks way, with one twist: the HMAC key is the raw UTF-8
bytes of the `ws_…` secret (a generic Standard Webhooks library would base64-decode its key).
The endpoint does nothing but verify and write one row to the inbox, so it answers in
milliseconds; Whop retries a failed delivery only for about a minute, and the worker applies
the event later from the durable inbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge import metrics
from bridge.errors import AuthError
from bridge.store import inbox
from bridge.store.rejections import RejectionLog

__all__ = ["DEFAULT_TOLERANCE", "MAX_BODY", "WebhookReceiver", "WebhookVerificationError", "verify"]

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 300  # seconds, both directions (Standard Webhooks)
# Whop's deliveries are a few KiB; the server (`bridge/server.py`) applies the same limit,
# BRIDGE_MAX_BODY_BYTES, before the app runs.
MAX_BODY = 262_144
# Bodies being read, all requests together, are held to this (or 4 × max_body if more): many
# slow senders then cannot add up to more memory than one ordinary burst.
BUFFERED_BODIES_MAX = 4 * 1_048_576

# Column widths of `webhook_inbox`; longer values would make PostgreSQL refuse the row (and a
# refused row means a 503 that Whop retries for nothing).
_ID_MAX = 128
_TYPE_MAX = 96
_COMPANY_MAX = 64

_TIMESTAMP = re.compile(r"[0-9]{1,15}")  # int() would also take " 12", "+12" and "1_2"


class WebhookVerificationError(AuthError):
    """The delivery is not provably from Whop. `reason` is safe to log (no secret in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers is case-insensitive, a plain dict is not.
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def _secret_list(secrets: Sequence[str]) -> list[str]:
    if isinstance(secrets, str):  # a lone secret is a Sequence[str] too; don't iterate its letters
        secrets = [secrets]
    return [s for s in secrets if s and s.strip()]


def _sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Raise `WebhookVerificationError` unless `body` carries a valid, fresh Whop signature.

    `body` must be the raw request bytes: re-serialized JSON would not match. Any of `secrets`
    may have signed (several are configured while one is rotated).
    """
    keys = _secret_list(secrets)
    if not keys:
        # Fail closed: an unset secret must never mean "accept everything".
        raise WebhookVerificationError("no webhook secret configured")
    msg_id, timestamp, signature = _signed_headers(headers)
    # Freshness first: it is cheap, and it bounds how long a captured delivery can be replayed.
    _check_fresh(timestamp, time.time() if now is None else now, tolerance)
    candidates = _v1_signatures(signature)
    if not _any_signature_matches(keys, msg_id, timestamp, body, candidates):
        raise WebhookVerificationError("signature mismatch")


def _signed_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """The webhook-id, -timestamp and -signature headers, present and well-formed."""
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    if not msg_id:
        raise WebhookVerificationError("missing webhook-id header")
    if not timestamp:
        raise WebhookVerificationError("missing webhook-timestamp header")
    if not signature:
        raise WebhookVerificationError("missing webhook-signature header")
    # The id becomes the inbox key: printable ASCII without spaces, and no longer than the column.
    if len(msg_id) > _ID_MAX or not (msg_id.isascii() and msg_id.isprintable()) or " " in msg_id:
        raise WebhookVerificationError("malformed webhook-id header")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookVerificationError("malformed webhook-timestamp header")
    return msg_id, timestamp, signature


def _check_fresh(timestamp: str, current: float, tolerance: int) -> None:
    skew = current - int(timestamp)
    if skew > tolerance:
        raise WebhookVerificationError("webhook-timestamp too old")
    if skew < -tolerance:
        raise WebhookVerificationError("webhook-timestamp in the future")


def _v1_signatures(signature: str) -> list[bytes]:
    """The decoded `v1,<base64>` entries of the webhook-signature header (at least one)."""
    candidates: list[bytes] = []
    for entry in signature.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # other schemes (e.g. v1a, asymmetric) are not Whop's
        try:
            candidates.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue  # one garbled entry must not hide a valid one beside it
    if not candidates:
        raise WebhookVerificationError("no v1 signature in webhook-signature header")
    return candidates


def _any_signature_matches(
    keys: Sequence[str], msg_id: str, timestamp: str, body: bytes, candidates: Sequence[bytes]
) -> bool:
    matched = False
    for key in keys:
        expected = _sign(key, msg_id, timestamp, body)
        for candidate in candidates:
            # Constant time, and no early exit, so timing says nothing about which entry was close.
            matched |= hmac.compare_digest(expected, candidate)
    return matched


# Parsing ---------------------------------------------------------------------------------------


def _short_text(value: Any, limit: int) -> str | None:
    # Only values that fit their column and carry no control characters (a JSON "\u0000" escape
    # would be refused by PostgreSQL); anything else is not a real type or company id anyway.
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    return None


def _company_of(obj: Mapping[str, Any]) -> str | None:
    for key in ("account_id", "company_id"):
        found = _short_text(obj.get(key), _COMPANY_MAX)
        if found:
            return found
    for key in ("account", "company"):
        nested = obj.get(key)
        if isinstance(nested, Mapping):
            found = _short_text(nested.get("id"), _COMPANY_MAX)
            if found:
                return found
    return None


def parse_envelope(body: bytes) -> tuple[str | None, str | None, str]:
    """`(event_type, company_id, text)` for a verified body; never raises.

    The envelope names the company as `account_id` (pinned API), `company_id` (legacy v1) or
    `company.id` (old app webhooks); failing those, the object in `data` may. A body that is not
    a JSON object gets event_type None: it is kept for inspection and the worker ignores it.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # Kept only for a person to look at, so a lossy copy is fine; the column is text.
        return None, None, body.decode("utf-8", "replace").replace("\x00", "\ufffd")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None, None, text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    if not isinstance(obj, dict):
        return None, None, text
    event_type = _short_text(obj.get("type"), _TYPE_MAX)
    company = _company_of(obj)
    data = obj.get("data")
    if company is None and isinstance(data, dict):
        company = _company_of(data)
    return event_type, company, text


# The endpoint ----------------------------------------------------------------------------------


def _json(status: int, payload: dict[str, str], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


class _TooLarge(Exception):
    pass


class _SecretsUnavailable(Exception):
    """The companies' webhook secrets could not be read (the store failed)."""


class _Busy(Exception):
    """Other requests' bodies already fill the memory set aside for reading bodies."""


class InboxWriter:
    """Group commit: deliveries arriving together are stored in one transaction.

    Each request queues its row and waits for the commit that holds it, so nothing is
    acknowledged before it is durable. One writer task takes everything queued while the
    previous commit ran, so concurrent requests never contend for the database's write lock,
    and a lone delivery costs exactly one INSERT.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    async def store(self, row: dict[str, Any]) -> bool:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="inbox-writer")
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((row, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    new = await inbox.store_many(self.engine, [row for row, _ in batch])
                except Exception as exc:  # every waiting request answers 503; Whop delivers again
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                claimed: set[str] = set()
                for row, future in batch:
                    webhook_id = row["webhook_id"]
                    first = webhook_id in new and webhook_id not in claimed
                    claimed.add(webhook_id)
                    if not future.done():
                        future.set_result(first)


class CompanySecrets(Protocol):
    async def get(self, company_id: str | None, *, fresh: bool = False) -> list[str]: ...


class WebhookReceiver:
    """The `POST /webhooks/whop` endpoint: verify, store once per `webhook-id`, acknowledge.

    Answers: 200 `accepted` (new row) or `duplicate` (id already stored, nothing changed);
    401 bad or stale signature; 413 body over `max_body`; 503 the store is unavailable, so Whop
    retries. No Whop or Twenty call happens here.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        secrets: Callable[[], Sequence[str]] | Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
        max_body: int = MAX_BODY,
        on_stored: Callable[[], None] | None = None,
        tolerance: int = DEFAULT_TOLERANCE,
        company_secrets: CompanySecrets | None = None,
    ) -> None:
        self.engine = engine
        # The secret of the webhook the bridge registered for the company the envelope names
        # (`Runtime.webhook_secrets`); only that company's own secret may sign its deliveries.
        self.company_secrets = company_secrets
        self.writer = InboxWriter(engine)
        self.rejections = RejectionLog(engine)  # shown on the admin page: a wrong secret shows nowhere else
        self._secrets = secrets
        self.clock = clock
        self.max_body = max_body
        self.max_buffered = max(BUFFERED_BODIES_MAX, 4 * max_body)
        self.buffered = 0  # bytes of bodies being read right now (one event loop: no lock)
        self.on_stored = on_stored
        self.tolerance = tolerance

    def secrets(self) -> Sequence[str]:
        # A callable lets a rotated secret take effect without a restart.
        return self._secrets() if callable(self._secrets) else self._secrets

    def route(self, path: str = "/webhooks/whop") -> Route:
        return Route(path, self.handle, methods=["POST"], name="whop_webhook")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Mountable as a bare ASGI app too."""
        if scope["type"] != "http":
            raise RuntimeError("WebhookReceiver only serves HTTP")
        request = Request(scope, receive)
        if request.method != "POST":
            response: Response = _json(405, {"error": "method not allowed"}, {"Allow": "POST"})
        else:
            response = await self.handle(request)
        await response(scope, receive, send)

    async def _read_body(self, request: Request) -> bytes:
        """The raw body, read only while it stays within `max_body`, and while all bodies being
        read stay within `max_buffered` (a signature can only be checked on the whole body)."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ValueError("bad content-length")
            if int(declared) > self.max_body:
                raise _TooLarge  # refused before a single byte is read
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                if size + len(chunk) > self.max_body:
                    raise _TooLarge  # chunked bodies have no Content-Length to check up front
                if self.buffered + len(chunk) > self.max_buffered:
                    raise _Busy
                size += len(chunk)
                self.buffered += len(chunk)
                chunks.append(chunk)
        finally:
            self.buffered -= size
        return b"".join(chunks)

    async def _company_secrets(self, company_id: str | None, *, fresh: bool = False) -> list[str]:
        assert self.company_secrets is not None
        try:
            return await self.company_secrets.get(company_id, fresh=fresh)
        except Exception as exc:  # the store is down: not the sender's fault, so no 401
            raise _SecretsUnavailable from exc

    async def _verify(self, request: Request, body: bytes, company_id: str | None, now: float) -> None:
        if self.company_secrets is None:
            verify(request.headers, body, self.secrets(), now=now, tolerance=self.tolerance)
            return
        keys = [*self.secrets(), *await self._company_secrets(company_id)]
        try:
            verify(request.headers, body, keys, now=now, tolerance=self.tolerance)
        except WebhookVerificationError as exc:
            if exc.reason not in ("signature mismatch", "no webhook secret configured") or company_id is None:
                raise
            # Another replica may have registered (or re-made) the company's webhook just now.
            fresh = [*self.secrets(), *await self._company_secrets(company_id, fresh=True)]
            if fresh == keys:
                raise
            verify(request.headers, body, fresh, now=now, tolerance=self.tolerance)

    async def handle(self, request: Request) -> Response:
        metrics.WEBHOOKS.labels("received").inc()
        try:
            body = await self._read_body(request)
        except _TooLarge:
            metrics.WEBHOOKS.labels("rejected").inc()
            log.warning("webhook rejected: body larger than %d bytes", self.max_body)
            # Closed after the answer: the rest of the body is not read, even to be dropped.
            return _json(413, {"error": "payload too large"}, {"Connection": "close"})
        except _Busy:
            metrics.WEBHOOKS.labels("rejected").inc()
            log.warning("webhook refused for now: %d bytes of bodies already being read", self.buffered)
            return _json(503, {"error": "busy"}, {"Retry-After": "5", "Connection": "close"})
        except (ValueError, ClientDisconnect):
            metrics.WEBHOOKS.labels("rejected").inc()
            return _json(400, {"error": "bad request"})

        now = self.clock()
        # The envelope is read before it is trusted only to choose which secrets may sign it.
        event_type, company_id, text = parse_envelope(body)
        try:
            await self._verify(request, body, company_id, now)
        except _SecretsUnavailable:
            metrics.WEBHOOKS.labels("store_error").inc()
            log.exception("the company webhook secrets could not be read; Whop will deliver again")
            return _json(503, {"error": "store unavailable"}, {"Retry-After": "5"})
        except WebhookVerificationError as exc:
            metrics.WEBHOOKS.labels("rejected").inc()
            # Untrusted header: repr() and a length cap keep the log line honest.
            log_fn = log.error if exc.reason == "no webhook secret configured" else log.warning
            log_fn(
                "webhook rejected: %s (webhook-id %r)",
                exc.reason,
                (request.headers.get("webhook-id") or "")[:_ID_MAX],
            )
            claimed = request.headers.get("webhook-id")
            await self.rejections.note(exc.reason, webhook_id=claimed, company_id=parse_envelope(body)[1])
            return _json(401, {"error": "invalid signature"})

        msg_id = request.headers["webhook-id"]  # verify() checked it is present and sane
        try:
            is_new = await self.writer.store(
                {
                    "webhook_id": msg_id,
                    "event_type": event_type,
                    "company_id": company_id,
                    "body": text,
                    "received_at": datetime.fromtimestamp(now, UTC),
                }
            )
        except Exception:  # any store failure: answer 5xx so Whop delivers again
            metrics.WEBHOOKS.labels("store_error").inc()
            log.exception("webhook %s could not be stored", msg_id)
            return _json(503, {"error": "store unavailable"}, {"Retry-After": "5"})

        if not is_new:
            metrics.WEBHOOKS.labels("duplicate").inc()
            log.info("webhook %s is a duplicate; already stored", msg_id)
            return _json(200, {"status": "duplicate"})

        metrics.WEBHOOKS.labels("accepted").inc()
        log.info("webhook %s stored (%s, company %s)", msg_id, event_type, company_id)
        if self.on_stored is not None:
            try:
                self.on_stored()
            except Exception:  # the row is safe; a broken wake-up only delays the worker
                log.exception("on_stored callback failed for webhook %s", msg_id)
        return _json(200, {"status": "accepted"})
