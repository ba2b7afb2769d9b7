"""A thin async client for the Whop REST API (`/api/v1`), pinned to one `Api-Version-Date`.

What it does, and why:

* pins `Api-Version-Date` so the shapes match the fixtures (research/whop-api.md §0.1), and
  always sends `account_id` on list calls (without it `/products` searches the public
  marketplace and a user token lists every business the user can see);
* pages with `first`/`after`, yielding whole pages so a sync can checkpoint `end_cursor`;
* throttles itself with a `TokenBucket`; what an answer means (retry, throttle, skip, fail) is
  `whop/responses.py`'s table, and the retries are `bridge/retry.py`'s: `Retry-After` is honoured
  and a 429 pauses every caller sharing the bucket;
* never quotes the token in an error.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from bridge import metrics, reach, retry
from bridge.config import WHOP_API_VERSION_DATE
from bridge.errors import FatalError, SkippableError
from bridge.limiter import TokenBucket
from bridge.retry import Action, Failure, RetryPolicy, parse_retry_after
from bridge.whop import responses
from bridge.whop.auth import TokenProvider
from bridge.whop.models import (
    Invoice,
    Member,
    Membership,
    Page,
    PageInfo,
    Payment,
    Plan,
    Product,
    PromoCode,
    Review,
    WaitlistEntry,
    WhopPerson,
    WhopUser,
)
from bridge.whop.responses import NotFound

__all__ = ["BadId", "NotFound", "WhopClient", "WhopResponseError", "is_whop_id", "parse_retry_after"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_PAGE_SIZE = 100
# Failures with no HTTP answer that a retry may fix (the rest of httpx's are a wrong URL).
NETWORK_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

M = TypeVar("M", bound=BaseModel)


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
        max_retries: int | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        limiter: TokenBucket | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
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
        attempts = retry.DEFAULT.attempts if max_retries is None else 1 + max(0, max_retries)
        self.retry = retry_policy or retry.DEFAULT.replace(attempts=attempts, sleep=sleep)
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
        asked = responses.Answer(what, key=key, url=self._base_url)
        refreshed = False  # one token refresh per call, not per attempt
        limiter = self.limiter_for(method, path)

        async def attempt() -> Any:
            nonlocal refreshed
            while True:
                await limiter.acquire()
                token = await self._tokens.token()
                try:
                    response = await self._send(method, url, query, token, json)
                except NETWORK_ERRORS as exc:
                    words = _scrub(f"{type(exc).__name__}: {exc}", token)
                    gone = replace(asked, first_contact=not self._answered)
                    return self._classify(responses.from_network(gone, exc, words))
                self._answered = True
                if response.status_code == 401 and not refreshed:
                    # An OAuth provider swaps the token; a static key raises AuthError itself.
                    refreshed = True
                    await self._tokens.invalidate(token)
                    continue
                if response.is_success:
                    try:
                        return _decode(response)
                    except ValueError:
                        pass
                retry_after = None if response.is_success else self.retry.retry_after(response.headers)
                answer = responses.from_response(
                    asked,
                    response,
                    retry_after=retry_after,
                    json=not response.is_success,
                    scrub=functools.partial(_scrub, token=token),
                )
                return self._classify(answer)

        return await retry.call(attempt, self.retry, what=f"Whop {what}", pause=self._pause, on_retry=self._count_retry)

    async def _pause(self, seconds: float) -> None:
        """Whop said "slow down": every operation's bucket holds back, not only the one refused."""
        buckets = [self._shared_limiter] if self._shared_limiter is not None else list(self._limiters.values())
        for bucket in buckets:
            await bucket.pause(seconds)

    def _classify(self, answer: responses.Answer) -> Failure:
        failure = responses.classify(answer)
        if failure.action is Action.THROTTLE:
            self.stats["rate_limited"] += 1
            metrics.API_THROTTLED.labels("whop").inc()
        return failure

    def _count_retry(self, _: Failure) -> None:
        self.stats["retries"] += 1

    async def _send(
        self, method: str, url: str, query: httpx.QueryParams, token: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """One HTTP call."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Api-Version-Date": WHOP_API_VERSION_DATE,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self.stats["requests"] += 1
        with metrics.API_SECONDS.labels("whop").time():
            response = await self._http.request(
                method, url, params=query, headers=headers, json=body, timeout=self._timeout
            )
        metrics.API_CALLS.labels("whop", method.lower()).inc()
        return response

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

    def list_invoices(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Invoice]]:
        """Invoices (list items are a subset: no member, product or payment; retrieve for those)."""
        return self.iter_pages("invoices", Invoice, after=after, first=page_size, **filters)

    def list_waitlist_entries(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[WaitlistEntry]]:
        """Waitlist signups (newest first; withdrawn ones only with `status="canceled"`)."""
        return self.iter_pages("waitlist_entries", WaitlistEntry, after=after, first=page_size, **filters)

    def list_reviews(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[Review]]:
        """Published reviews (ask per `product_id`: list items do not name their product)."""
        return self.iter_pages("reviews", Review, after=after, first=page_size, **filters)

    def list_people(
        self, after: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Page[WhopPerson]]:
        """The company's people (visitors and buyers): Whop's figures and where each came from."""
        return self.iter_pages("people", WhopPerson, after=after, first=page_size, **filters)

    # Single objects -----------------------------------------------------------------------

    async def get_product(self, product_id: str) -> Product:
        return await self._get_object("/products/" + _segment(product_id, "prod_"), Product, product_id)

    async def get_member(self, member_id: str) -> Member:
        return await self._get_object("/members/" + _segment(member_id, "mber_"), Member, member_id)

    async def get_membership(self, membership_id: str) -> Membership:
        return await self._get_object("/memberships/" + _segment(membership_id, "mem_"), Membership, membership_id)

    async def get_payment(self, payment_id: str) -> Payment:
        return await self._get_object("/payments/" + _segment(payment_id, "pay_"), Payment, payment_id)

    async def get_invoice(self, invoice_id: str) -> Invoice:
        return await self._get_object("/invoices/" + _segment(invoice_id, "inv_"), Invoice, invoice_id)

    async def get_waitlist_entry(self, entry_id: str) -> WaitlistEntry:
        path = "/waitlist_entries/" + _segment(entry_id, "entry_")
        return await self._get_object(path, WaitlistEntry, entry_id)

    async def get_review(self, review_id: str) -> Review:
        return await self._get_object("/reviews/" + _segment(review_id, "rev_"), Review, review_id)

    async def get_promo_code(self, promo_code_id: str) -> PromoCode:
        path = "/promo_codes/" + _segment(promo_code_id, "promo_")
        return await self._get_object(path, PromoCode, promo_code_id)

    async def get_user(self, user_id: str) -> WhopUser:
        """A user's public profile (name, username; never the e-mail)."""
        return await self._get_object("/users/" + _segment(user_id, "user_"), WhopUser, user_id)

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


def _decode(response: httpx.Response) -> Any:
    """A 2xx body: None when empty; ValueError when it is not JSON (the table decides)."""
    if not response.content:
        return None
    return response.json()


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
    unreadable: list[tuple[str, str]] = []
    for raw in raw_items:
        try:
            items.append(model.model_validate(raw))
        except ValidationError as exc:
            key = raw.get("id") if isinstance(raw, dict) else None
            if not is_whop_id(key):
                # No id to report it by: the page's shape is what changed.
                raise WhopResponseError(_validation_text(model, None, exc)) from None
            # One record the bridge cannot read (an amount Twenty cannot hold…) is reported by
            # the caller; the rest of the page goes on.
            unreadable.append((str(key), _validation_text(model, str(key), exc)))
    try:
        info = PageInfo.model_validate(body.get("page_info") or {})
    except ValidationError as exc:
        raise WhopResponseError(_validation_text(PageInfo, None, exc)) from None
    return Page(data=items, page_info=info, unreadable=unreadable)
