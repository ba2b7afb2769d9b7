"""What each Whop answer means: one table for the REST API (`/api/v1`) and the OAuth endpoints
alike, so a response is retried, skipped or fatal the same way in both clients.

Facts the rows rest on (shared/research/whop-api.md §1, §3): a 429 comes with `Retry-After`
(seconds or an HTTP date; the OAuth endpoints also say `rate_limit_exceeded`), `invalid_grant`
means a spent, expired or revoked code or refresh token, and a refresh token rotates on use.

Two things about the request, not the answer, change a row's retries:

* `idempotent`: a request that may have been done once (a token refresh that reached Whop) is
  not sent again after a 5xx or a dropped connection: the answer that was lost may have rotated
  the token, and repeating it with the spent one would turn a blip into "connect again". A 429 is
  retried anyway: a throttled request was not processed. The REST calls the bridge makes are all
  safe to repeat (a webhook made twice is found and removed by registration; a replay asked twice
  sends the same `webhook-id`s, which the inbox keeps once).
* `oauth`: a 4xx from the OAuth endpoints (or a call made with a fresh grant's token) is the
  grant's problem (`AuthError`), where the same status from the REST API is the request's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx

from bridge import reach
from bridge.errors import (
    AuthError,
    BridgeError,
    FatalError,
    NeedsReconnect,
    RateLimited,
    RetryableError,
    SkippableError,
    Unreachable,
)
from bridge.reach import Network
from bridge.retry import Action, Failure, Row, first_row


class NotFound(SkippableError):
    """Whop answered 404: the object is gone (or never belonged to this account)."""


@dataclass(frozen=True)
class Answer:
    """One attempt's outcome, as far as the table reads it."""

    what: str  # "GET /api/v1/memberships/mem_1", or "token refresh"
    status: int | None = None  # None: no HTTP answer at all
    error: str = ""  # the OAuth `error` code (or the REST error's type)
    message: str = ""  # Whop's own words, already scrubbed of the token
    json: bool = True  # a 2xx body that was JSON (or empty)
    network: Network | None = None
    first_contact: bool = False  # Whop has not answered this client yet
    oauth: bool = False
    idempotent: bool = True
    retry_after: float | None = None
    key: str | None = None  # the object a NotFound names
    url: str = ""  # WHOP_API_URL, for an Unreachable's words
    cause: BaseException | None = None


def _once_unless_idempotent(answer: Answer) -> int | None:
    return None if answer.idempotent else 0


def _status(answer: Answer, test: Callable[[int], bool]) -> bool:
    return answer.status is not None and test(answer.status)


_PERMISSION_RE = re.compile(r"\b[a-z_]+(?::[a-z_]+){1,3}\b")


def _forbidden(a: Answer) -> str:
    if a.oauth:
        return f"Whop refused {a.what} (HTTP 403, {a.message or a.error})"
    match = _PERMISSION_RE.search(a.message)
    if match:
        return f"Whop refused {a.what} (403): the connection lacks the permission {match.group(0)} ({a.message})"
    return f"Whop refused {a.what} (403): {a.message}"


# First match wins. The table tests give every row an example.
TABLE: tuple[Row[Answer], ...] = (
    Row(
        "never answered: connection refused or host not found",
        lambda a: a.network is Network.REFUSED and a.first_contact,
        Action.RETRY,
        Unreachable,
        lambda a: "",
        retries=lambda a: reach.FIRST_CONTACT_RETRIES if a.idempotent else 0,
    ),
    Row(
        "never answered: no connection within the connect timeout",
        lambda a: a.network is Network.CONNECT_TIMEOUT and a.first_contact,
        Action.RETRY,
        Unreachable,
        lambda a: "",
        retries=lambda a: 0,  # it already waited CONNECT_TIMEOUT
    ),
    Row(
        "no answer (a timeout, a dropped connection)",
        lambda a: a.network is not None,
        Action.RETRY,
        RetryableError,
        lambda a: f"Whop did not answer {a.what} ({a.message})",
        retries=_once_unless_idempotent,
    ),
    Row(
        "throttled: HTTP 429, or OAuth rate_limit_exceeded",
        lambda a: a.status == 429 or a.error == "rate_limit_exceeded",
        Action.THROTTLE,
        RateLimited,
        lambda a: f"Whop rate-limited {a.what} (HTTP {a.status})",
    ),
    Row(
        "OAuth invalid_grant: the code or refresh token is spent, expired or revoked",
        lambda a: a.error == "invalid_grant",
        Action.AUTH,
        NeedsReconnect,
        lambda a: f"Whop refused {a.what} ({a.message or a.error}); connect Whop again",
    ),
    Row(
        "HTTP 401 (the REST client refreshes the token once first)",
        lambda a: a.status == 401,
        Action.AUTH,
        AuthError,
        lambda a: f"Whop rejected the credentials (401) on {a.what}: {a.message}",
    ),
    Row(
        "HTTP 403: a permission the connection lacks",
        lambda a: a.status == 403,
        Action.AUTH,
        AuthError,
        _forbidden,
    ),
    Row(
        "HTTP 408 or 5xx",
        lambda a: _status(a, lambda s: s == 408 or s >= 500),
        Action.RETRY,
        RetryableError,
        lambda a: f"Whop answered {a.what} with HTTP {a.status}: {a.message}",
        retries=_once_unless_idempotent,
    ),
    Row(
        "a 2xx whose body is not JSON (a proxy's or a maintenance page)",
        lambda a: _status(a, lambda s: 200 <= s < 300) and not a.json,
        Action.RETRY,
        RetryableError,
        lambda a: f"Whop answered {a.what} with a body that is not JSON",
        retries=_once_unless_idempotent,
    ),
    Row(
        "any other 4xx from the OAuth endpoints: the grant or the app is refused",
        lambda a: a.oauth and _status(a, lambda s: s >= 400),
        Action.AUTH,
        AuthError,
        lambda a: f"Whop refused {a.what} (HTTP {a.status}, {a.message or a.error})",
    ),
    Row(
        "HTTP 404: the object is gone",
        lambda a: a.status == 404,
        Action.SKIP,
        NotFound,
        lambda a: f"Whop has no such object (404) on {a.what}",
    ),
    Row(
        "any other answer (400, 409, 422 …): the request is wrong",
        lambda a: True,
        Action.FATAL,
        FatalError,
        lambda a: f"Whop refused {a.what} ({a.status}): {a.message}",
    ),
)


def row_for(answer: Answer) -> Row[Answer]:
    return first_row(TABLE, answer)


def classify(answer: Answer) -> Failure:
    """The action for `answer` and the error to raise if it is not retried. Messages never
    carry a token: the caller scrubs Whop's words first."""
    row = row_for(answer)
    return Failure(
        row.action,
        _error(row, answer),
        row=row.name,
        retry_after=answer.retry_after if row.action in (Action.RETRY, Action.THROTTLE) else None,
        retries=row.retries(answer),
    )


def _error(row: Row[Answer], answer: Answer) -> BridgeError:
    if row.raises is Unreachable:
        assert answer.cause is not None
        return reach.unreachable("Whop", answer.url, "WHOP_API_URL", answer.cause)
    message = row.says(answer)
    if row.raises is RateLimited:
        return RateLimited(message, retry_after=answer.retry_after)
    if row.raises is NotFound:
        return NotFound(message, key=answer.key)
    return row.raises(message)


def from_network(answer: Answer, exc: BaseException, message: str) -> Answer:
    """`answer` (what, oauth, idempotent, first_contact, url) for a call that got no HTTP answer."""
    return replace(answer, network=reach.network_kind(exc), message=message, cause=exc)


def from_response(
    answer: Answer,
    response: httpx.Response,
    *,
    retry_after: float | None,
    json: bool = True,
    scrub: Callable[[str], str] = lambda text: text,
) -> Answer:
    """`answer` (what, oauth, idempotent, key) for a call Whop answered with `response`; `scrub`
    takes the token out of Whop's words (an error body may echo it)."""
    error, message = error_words(response) if not response.is_success else ("", "")
    return replace(
        answer,
        status=response.status_code,
        error=scrub(error),
        message=scrub(message),
        json=json,
        retry_after=retry_after,
    )


def error_words(response: httpx.Response) -> tuple[str, str]:
    """`(error, message)` from a Whop error body, bounded: the OAuth `{"error", "error_description"}`,
    the REST `{"error": {"type", "message"}}`, a plain `{"message"}`, or the text itself."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f"http_{response.status_code}", (text[:300] if text else response.reason_phrase)
    if not isinstance(body, dict):
        return f"http_{response.status_code}", str(body)[:300]
    error = body.get("error")
    if isinstance(error, dict):
        kind = str(error.get("type") or f"http_{response.status_code}")[:64]
        return kind, str(error.get("message") or error.get("type") or body)[:300]
    description = body.get("error_description") or body.get("message") or ""
    if isinstance(error, str) and error:
        message = f"{error}: {description}" if description else error
        return error[:64], str(message)[:300]
    return f"http_{response.status_code}", str(description or body)[:300]
