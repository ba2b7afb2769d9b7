"""Standard Webhooks signing exactly as Whop does it (fact sheet §4.1, §7.4).

The HMAC key is the raw UTF-8 bytes of the whole `ws_…` secret (prefix included), not a
base64-decoded `whsec_` key; that difference is the classic bug this helper lets tests catch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import Iterable
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def new_webhook_id() -> str:
    """A fresh `msg_…` id shaped like Whop's (24 random alphanumerics)."""
    return "msg_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def compact(obj: Any) -> bytes:
    """The delivery body: compact JSON in key insertion order (the §7.4 recipe)."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one secret: `v1,<base64 HMAC-SHA256>`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str,
    body: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    extra_signatures: Iterable[str] = (),
) -> dict[str, str]:
    """Headers of a delivery of `body`.

    `extra_signatures` are whole entries (e.g. `sign(old_secret, …)` during a rotation, or a
    bogus `"v1,AAAA"`); they are placed *before* the real one, so a verifier that only
    checks the first entry fails the test it should.
    """
    webhook_id = webhook_id or new_webhook_id()
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    entries = [*extra_signatures, sign(secret, webhook_id, timestamp, body)]
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(entries),
    }


def delivery(
    secret: str,
    envelope: dict[str, Any],
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    extra_signatures: Iterable[str] = (),
) -> tuple[bytes, dict[str, str]]:
    """Body bytes and headers of a delivery of `envelope`.

    The webhook id defaults to the envelope's own `msg_…` id, as in Whop's deliveries.
    """
    if webhook_id is None and str(envelope.get("id", "")).startswith("msg_"):
        webhook_id = str(envelope["id"])
    body = compact(envelope)
    return body, signed_headers(
        secret, body, webhook_id=webhook_id, timestamp=timestamp, extra_signatures=extra_signatures
    )
