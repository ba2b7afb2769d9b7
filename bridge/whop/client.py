"""A thin async client for the Whop REST API (`/api/v1`), pinned to one `Api-Version-Date`.

What it does, and why:

* pins `Api-Version-Date` so the shapes match the fixtures (research/whop-api.md §0.1), and
  always sends `account_id` on list calls (without it `/products` searches the public
  marketplace and a user token lists every business the user can see);
* pages with `first`/`after`, yielding whole pages so a sync can checkpoint `end_cursor`;
* throttles itself with a `TokenBucket` and retries 408/429/5xx/network errors with backoff,
  honouring `Retry-After`; a 429 pauses every caller sharing the bucket;
* turns the rest into the bridge's error classes (`bridge.errors`), never quoting the token.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from bridge import metrics, reach
from bridge.config import WHOP_API_VERSION_DATE
from bridge.errors import AuthError, FatalError, RateLimited, RetryableError, SkippableError, Unreachable
from bridge.limiter import TokenBucket
from bridge.whop.auth import TokenProvider
from bridge.whop.models import Member, Membership, Page, PageInfo, Payment, Plan, Product

__all__ = ["BadId", "NotFound", "WhopClient", "WhopResponseError", "is_whop_id", "parse_retry_after"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0
# A Retry-After longer than this is not slept through inside a request: the caller gets
# RateLimited(retry_after=...) and can reschedule the whole job instead.
MAX_RETRY_AFTER = 300.0
DEFAULT_PAGE_SIZE = 100

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class _Failure:
    """One attempt that failed in a way a retry may fix."""

    problem: str  # for the log and the final error; never holds the token
    status: int | None = None  # None: no answer at all (timeout, network error)
    retry_after: float | None = None  # what the server asked for, in seconds
    unreachable: Unreachable | None = None  # no connection before Whop ever answered this client


class NotFound(SkippableError):
    """Whop answered 404: the object is gone (or never belonged to this account)."""


class BadId(SkippableError):
    """An id not shaped like a Whop id; it is never sent (`.` or `..` would name another endpoint)."""


# A Whop id: a lower-case type prefix (`mem_`, `mber_`, `user_`, `prod_`, `plan_`, `pay_`, `biz_`,
# `hook_`, …), then letters and digits; no `.`, `/` or `%` can make it a path of its own.
_ID_RE = re.compile(r"[a-z]{2,12}_[A-Za-z0-9_-]{1,64}")


def is_whop_id(value: object, prefix: str | None = None) -> bool:
    """`value` is shaped like a Whop id, of the type `prefix` names when given (`"mem_"`)."""
    return (
        isinstance(value, str) and _ID_RE.fullmatch(value) is not None and (prefix is None or value.startswith(prefix))
    )


class WhopResponseError(FatalError):
    """Whop answered 2xx with a body the bridge cannot read (a shape change to look at)."""


def _version() -> str:
    try:
        return metadata.version("whop-twenty-bridge")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "0"


USER_AGENT = f"whop-twenty-bridge/{_version()} httpx/{httpx.__version__}"


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or `retry-after-ms`."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value / 1000)
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _encode_params(params: Mapping[str, Any]) -> httpx.QueryParams:
    """Query pairs as Whop reads them: arrays repeat the key, booleans are lower-case."""
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        values: Iterable[Any]
        if value is None:
            continue
        if isinstance(value, set | frozenset):
            values = sorted(value, key=str)
        elif isinstance(value, list | tuple):
            values = value
        else:
            values = (value,)
        for item in values:
            if item is None:
                continue
            pairs.append((key, _param_text(item)))
    return httpx.QueryParams(pairs)


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


_PERMISSION_RE = re.compile(r"\b[a-z_]+(?::[a-z_]+){1,3}\b")


class WhopClient:
    """Async Whop REST client for one company (`biz_…`)."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        company_id: str,
        *,
        http: httpx.AsyncClient | None = None,
        requests_per_second: float = 8.0,
        max_retries: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        limiter: TokenBucket | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not company_id:
            raise ValueError("company_id is required: every list call is scoped to it")
        base = base_url.rstrip("/")
        # Accept a base URL written with the API prefix too (`…/api/v1`).
        self._base_url = base.removesuffix(API_PREFIX)
        self._tokens = tokens
        self.company_id = company_id
        self._owns_http = http is None
        self._timeout = reach.timeout(timeout)
        self._answered = False  # until Whop first answers, a refused connection is not retried for long
        # A client made here (optionally over an injected transport) is closed by `close()`.
        self._http = http if http is not None else httpx.AsyncClient(timeout=self._timeout, transport=transport)
        self._max_retries = max(0, max_retries)
        self._sleep = sleep
        # Whop limits requests per operation and credential (docs/research: 600 a minute each),
        # so by default each operation (method and resource) has its own bucket of
        # `requests_per_second`, with a burst of one second's worth: a sync's walks of payments
        # and of memberships go side by side instead of queueing behind each other. Clients
        # given one `limiter` share it for every operation.
        self._shared_limiter = limiter
        self._limiters: dict[str, TokenBucket] = {}
        self._requests_per_second = requests_per_second
        self._clock = clock
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0}
        # Seams for tests: jitter source and wall clock (for Retry-After HTTP dates).
        self._random: Callable[[], float] = random.random
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._variants = True  # plans are read as variants until the server shows it has none

    def limiter_for(self, method: str, path: str) -> TokenBucket:
        """The bucket of one operation: GET /memberships and GET /memberships/{id} share one."""
        if self._shared_limiter is not None:
            return self._shared_limiter
        operation = f"{method.upper()} {path.strip('/').split('/', 1)[0]}"
        bucket = self._limiters.get(operation)
        if bucket is None:
            rate = self._requests_per_second
            bucket = self._limiters[operation] = TokenBucket(rate, max(1.0, rate), clock=self._clock, sleep=self._sleep)
        return bucket

    # Lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Core request loop --------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        """1 s, 2 s, 4 s … capped at 60 s, minus up to 20 % jitter so clients spread out."""
        return min(MAX_BACKOFF, 2.0**attempt) * (1.0 - 0.2 * self._random())

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one API call with retries; return the decoded JSON body.

        `path` starts after the API prefix (`/memberships`). `key` names the object in a
        `NotFound`, so the caller can report which record was skipped.
        """
        url = f"{self._base_url}{API_PREFIX}{path}"
        what = f"{method} {API_PREFIX}{path}"
        query = _encode_params(params or {})
        attempt = 0
        refreshed = False
        limiter = self.limiter_for(method, path)
        while True:
            await limiter.acquire()
            token = await self._tokens.token()
            answer = await self._send(method, url, query, token, json)
            if isinstance(answer, _Failure):
                failure = answer
            elif 200 <= answer.status_code < 300:
                return _decode(answer, what)
            elif answer.status_code == 401 and not refreshed:
                # One refresh per call: an OAuth provider swaps the token; a static key raises
                # AuthError itself.
                refreshed = True
                await self._tokens.invalidate(token)
                continue
            else:
                failure = self._refusal(answer, what, key, token)
            await self._wait_to_retry(failure, attempt, what)
            attempt += 1

    async def _send(
        self, method: str, url: str, query: httpx.QueryParams, token: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response | _Failure:
        """One HTTP call; a timeout or network error comes back as a `_Failure` to retry."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Api-Version-Date": WHOP_API_VERSION_DATE,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self.stats["requests"] += 1
        try:
            with metrics.API_SECONDS.labels("whop").time():
                response = await self._http.request(
                    method, url, params=query, headers=headers, json=body, timeout=self._timeout
                )
            metrics.API_CALLS.labels("whop", method.lower()).inc()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            failure = _Failure(_scrub(f"{type(exc).__name__}: {exc}", token))
            if not self._answered and isinstance(exc, reach.CONNECT_FAILURES):
                unreachable = reach.unreachable("Whop", self._base_url, "WHOP_API_URL", exc)
                if isinstance(exc, httpx.ConnectTimeout):  # it already waited the connect timeout
                    raise unreachable from None
                return _Failure(failure.problem, unreachable=unreachable)
            return failure
        self._answered = True
        return response

    def _refusal(self, response: httpx.Response, what: str, key: str | None, token: str) -> _Failure:
        """Raise for a non-2xx answer a retry cannot fix; describe one it may (408/429/5xx)."""
        status = response.status_code
        message = _scrub(_whop_message(response), token)
        if status == 401:
            raise AuthError(f"Whop rejected the credentials (401) on {what}: {message}")
        if status == 403:
            raise AuthError(_forbidden_text(what, message))
        if status == 404:
            raise NotFound(f"Whop has no such object (404) on {what}", key=key)
        if status not in RETRY_STATUSES:
            raise FatalError(f"Whop refused {what} ({status}): {message}")
        retry_after = parse_retry_after(response.headers, self._now())
        if status == 429:
            self.stats["rate_limited"] += 1
            metrics.API_THROTTLED.labels("whop").inc()
            if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                raise RateLimited(f"Whop asked to wait {retry_after:.0f} s on {what}", retry_after=retry_after)
        return _Failure(f"HTTP {status}: {message}", status=status, retry_after=retry_after)

    async def _wait_to_retry(self, failure: _Failure, attempt: int, what: str) -> None:
        """Back off before retry `attempt + 1`, or raise once the retries are spent."""
        wait = failure.retry_after if failure.retry_after is not None else self._backoff(attempt)
        wait = min(wait, MAX_RETRY_AFTER)
        throttled = failure.status == 429
        if throttled:
            # Everyone sharing the bucket pauses, even if this call gives up now; this caller
            # waits in its next acquire().
            for limiter in [self._shared_limiter] if self._shared_limiter else list(self._limiters.values()):
                limiter.penalize(wait)
        if failure.unreachable is not None and attempt >= min(self._max_retries, reach.FIRST_CONTACT_RETRIES):
            raise failure.unreachable
        if attempt >= self._max_retries:
            text = f"Whop {what} still failing after {attempt} retries: {failure.problem}"
            if throttled:
                raise RateLimited(text, retry_after=failure.retry_after)
            raise RetryableError(text)
        self.stats["retries"] += 1
        # Retries of a first contact are quick and end in one clear error: no warning for each.
        log.log(
            logging.INFO if failure.unreachable else logging.WARNING,
            "Whop %s: %s; retry %d in %.1f s",
            what,
            failure.problem,
            attempt + 1,
            wait,
        )
        if not throttled:
            await self._sleep(wait)

    async def _get_object(self, path: str, model: type[M], key: str) -> M:
        body = await self.request("GET", path, key=key)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise WhopResponseError(_validation_text(model, key, exc)) from None

    # Lists --------------------------------------------------------------------------------

    async def iter_pages(self, resource: str, model: type[M], **params: Any) -> AsyncIterator[Page[M]]:
        """Yield every page of `/resource`, following `after=end_cursor` while there is more.

        Pass `after=<cursor>` to resume from a checkpoint and `first=` for the page size.
        `account_id` is always the client's company unless given.
        """
        path = "/" + resource.strip("/")
        query: dict[str, Any] = dict(params)
        if not query.get("account_id"):
            query["account_id"] = self.company_id
        query.setdefault("first", DEFAULT_PAGE_SIZE)
        while True:
            body = await self.request("GET", path, query)
            page = _parse_page(body, model, path)
            yield page
            if not page.has_next_page:
                return
            if page.end_cursor == query.get("after"):
                # A server that hands back the cursor it was given would loop forever.
                raise WhopResponseError(f"Whop returned the same cursor twice on GET {API_PREFIX}{path}")
            query["after"] = page.end_cursor

    def list_products(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Product]]:
        return self.iter_pages("products", Product, after=after, first=page_size, **filters)

    def list_members(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Member]]:
        return self.iter_pages("members", Member, after=after, first=page_size, **filters)

    def list_memberships(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Membership]]:
        return self.iter_pages("memberships", Membership, after=after, first=page_size, **filters)

    def list_payments(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Payment]]:
        return self.iter_pages("payments", Payment, after=after, first=page_size, **filters)

    def list_plans(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Plan]]:
        return self.iter_pages("plans", Plan, after=after, first=page_size, **filters)

    # Single objects -----------------------------------------------------------------------

    async def get_product(self, product_id: str) -> Product:
        return await self._get_object("/products/" + _segment(product_id, "prod_"), Product, product_id)

    async def get_member(self, member_id: str) -> Member:
        return await self._get_object("/members/" + _segment(member_id, "mber_"), Member, member_id)

    async def get_membership(self, membership_id: str) -> Membership:
        return await self._get_object("/memberships/" + _segment(membership_id, "mem_"), Membership, membership_id)

    async def get_payment(self, payment_id: str) -> Payment:
        return await self._get_object("/payments/" + _segment(payment_id, "pay_"), Payment, payment_id)

    async def get_plan(self, plan_id: str) -> Plan:
        """A plan, from `/variants` (current) or `/plans` (its deprecated alias, still served by
        older deployments); once `/plans` answers where `/variants` did not, it is used alone."""
        segment = _segment(plan_id, "plan_")
        if self._variants:
            try:
                return await self._get_object("/variants/" + segment, Plan, plan_id)
            except NotFound:
                plan = await self._get_object("/plans/" + segment, Plan, plan_id)
                self._variants = False
                return plan
        return await self._get_object("/plans/" + segment, Plan, plan_id)

    async def get_account_me(self) -> dict[str, Any]:
        """The account the credential belongs to (`GET /accounts/me`), raw."""
        return _as_dict(await self.request("GET", "/accounts/me"), "GET /accounts/me")

    async def list_accounts(self) -> dict[str, Any]:
        """The business accounts a user token can manage (`GET /accounts`), raw (one page)."""
        return _as_dict(await self.request("GET", "/accounts"), "GET /accounts")

    # Webhooks (research/whop-api.md §4.4): raw dicts, read by `bridge/registration.py` -------

    async def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook of this company (all pages; `webhook_secret` is null on reads)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"account_id": self.company_id, "first": DEFAULT_PAGE_SIZE}
            if after:
                params["after"] = after
            body = _as_dict(await self.request("GET", "/webhooks", params), "GET /webhooks")
            found += [w for w in body.get("data") or [] if isinstance(w, dict)]
            info = body.get("page_info") or {}
            after = info.get("end_cursor") if isinstance(info, dict) and info.get("has_next_page") else None
            if not after:
                return found

    async def create_webhook(self, url: str, events: Iterable[str], *, api_version_date: str) -> dict[str, Any]:
        """`POST /webhooks` on this company; the answer holds `webhook_secret`, shown only now."""
        body = {
            "url": url,
            "events": list(events),
            "api_version_date": api_version_date,
            "enabled": True,
            "resource_id": self.company_id,
        }
        return _as_dict(await self.request("POST", "/webhooks", json=body), "POST /webhooks")

    async def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        path = f"/webhooks/{_segment(webhook_id)}"
        return _as_dict(await self.request("GET", path, key=webhook_id), f"GET {path}")

    async def update_webhook(self, webhook_id: str, **changes: Any) -> dict[str, Any]:
        path = f"/webhooks/{_segment(webhook_id)}"
        return _as_dict(await self.request("PATCH", path, key=webhook_id, json=changes), f"PATCH {path}")

    async def delete_webhook(self, webhook_id: str) -> None:
        await self.request("DELETE", f"/webhooks/{_segment(webhook_id)}", key=webhook_id)

    async def replay_webhook(self, webhook_id: str, *, sent_after: datetime) -> dict[str, Any]:
        """Ask Whop to send again every delivery made after `sent_after` (same `webhook-id`s)."""
        path = f"/webhooks/{_segment(webhook_id)}/replay"
        body = {"sent_after": sent_after.astimezone(UTC).isoformat().replace("+00:00", "Z")}
        return _as_dict(await self.request("POST", path, key=webhook_id, json=body), f"POST {path}")


# Response helpers ---------------------------------------------------------------------------


def _segment(object_id: str, prefix: str | None = None) -> str:
    """An id as one path segment, once it is shaped like a Whop id (of `prefix`'s type)."""
    if not is_whop_id(object_id, prefix):
        shown = repr(object_id) if len(repr(object_id)) <= 40 else repr(object_id)[:40] + "…"
        raise BadId(f"{shown} is not a Whop {prefix or ''}id", key=str(object_id)[:64])
    return quote(object_id, safe="")


def _scrub(text: str, token: str) -> str:
    """Drop the token from any text that may end up in an error or a log line."""
    return text.replace(token, "***") if token else text


def _decode(response: httpx.Response, what: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        # A 2xx that is not JSON is usually a proxy or a maintenance page: worth a later retry.
        raise RetryableError(f"Whop answered {what} with a body that is not JSON") from None


def _whop_message(response: httpx.Response) -> str:
    """Whop's own words from an error body (`{"error":{"type","message"}}` and variants)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text else response.reason_phrase
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("type")
        elif isinstance(error, str):
            description = body.get("error_description")
            message = f"{error}: {description}" if description else error
        message = message or body.get("message")
    text = str(message) if message else str(body)
    return text[:300]


def _forbidden_text(what: str, message: str) -> str:
    match = _PERMISSION_RE.search(message)
    if match:
        return f"Whop refused {what} (403): the connection lacks the permission {match.group(0)} ({message})"
    return f"Whop refused {what} (403): {message}"


def _as_dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise WhopResponseError(f"Whop answered {what} with {type(body).__name__}, not an object")
    return body


def _validation_text(model: type[BaseModel], key: str | None, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(root)"
    subject = f"{model.__name__} {key}" if key else model.__name__
    return f"Whop sent a {subject} the bridge cannot read: {where}: {first['msg']}"


def _parse_page(body: Any, model: type[M], path: str) -> Page[M]:
    what = f"GET {API_PREFIX}{path}"
    body = _as_dict(body, what)
    raw_items = body.get("data")
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        raise WhopResponseError(f"Whop answered {what} without a data list")
    items: list[M] = []
    for raw in raw_items:
        try:
            items.append(model.model_validate(raw))
        except ValidationError as exc:
            key = raw.get("id") if isinstance(raw, dict) else None
            raise WhopResponseError(_validation_text(model, key, exc)) from None
    try:
        info = PageInfo.model_validate(body.get("page_info") or {})
    except ValidationError as exc:
        raise WhopResponseError(_validation_text(PageInfo, None, exc)) from None
    return Page(data=items, page_info=info)
