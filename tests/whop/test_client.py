"""WhopClient against respx: headers, scoping, paging, retries, errors. No real sleeping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from bridge import retry
from bridge.config import WHOP_API_VERSION_DATE
from bridge.errors import AuthError, FatalError, RateLimited, RetryableError, SkippableError
from bridge.limiter import TokenBucket
from bridge.whop.auth import StaticToken, TokenProvider
from bridge.whop.client import BadId, NotFound, WhopClient, WhopResponseError, parse_retry_after
from bridge.whop.models import Member, Membership, Page, Payment, Plan, Product
from tests.whop import (
    MEMBER_NATIVE_JSON,
    MEMBERSHIP_NATIVE_JSON,
    PAYMENT_NATIVE_JSON,
    PLAN_PY26_JSON,
    PRODUCT_NATIVE_JSON,
    load,
    page,
)

BASE = "https://api.whop.test"
COMPANY = "biz_Hq2LmVx9TcR4sA"
KEY = "apik_super_secret_value_123"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RotatingTokens:
    """An OAuth-like provider: each invalidate() hands out the next token."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens)
        self.invalidated: list[str] = []

    async def token(self) -> str:
        return self._tokens[0]

    async def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if len(self._tokens) > 1:
            self._tokens.pop(0)


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(time: FakeTime) -> AsyncIterator[WhopClient]:
    async with make_client(time) as whop:
        yield whop


def make_client(
    time: FakeTime,
    tokens: TokenProvider | None = None,
    *,
    max_retries: int | None = None,
    now: datetime | None = None,
    **kwargs: Any,
) -> WhopClient:
    limiter = kwargs.pop("limiter", None) or TokenBucket(1000, 1000, clock=time.clock, sleep=time.sleep)
    policy = retry.DEFAULT.replace(sleep=time.sleep, random=lambda: 0.5)  # jitter fixed at half the ceiling
    if max_retries is not None:
        policy = policy.replace(attempts=1 + max_retries)
    if now is not None:
        policy = policy.replace(now=lambda: now)
    return WhopClient(BASE, tokens or StaticToken(KEY), COMPANY, limiter=limiter, retry_policy=policy, **kwargs)


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


async def collect(pages: AsyncIterator[Page[Any]]) -> list[Page[Any]]:
    return [p async for p in pages]


# Headers and scoping ----------------------------------------------------------------------------------


async def test_every_request_sends_auth_version_and_user_agent(router: respx.MockRouter, client: WhopClient) -> None:
    route = router.get("/api/v1/memberships").mock(return_value=ok(page([], None, False)))
    await collect(client.list_memberships())
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Api-Version-Date"] == WHOP_API_VERSION_DATE == "2026-10-15-1"
    assert request.headers["User-Agent"].startswith("whop-twenty-bridge/")
    assert request.url.params["account_id"] == COMPANY
    assert request.url.params["first"] == "100"
    assert "after" not in request.url.params


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("list_products", "/api/v1/products"),
        ("list_members", "/api/v1/members"),
        ("list_memberships", "/api/v1/memberships"),
        ("list_payments", "/api/v1/payments"),
        ("list_plans", "/api/v1/plans"),
    ],
)
async def test_account_id_is_always_sent(router: respx.MockRouter, client: WhopClient, method: str, path: str) -> None:
    # Even when a caller passes account_id=None: without it /products searches the marketplace.
    route = router.get(path).mock(return_value=ok(page([], None, False)))
    await collect(getattr(client, method)(account_id=None, page_size=25))
    params = route.calls.last.request.url.params
    assert params["account_id"] == COMPANY
    assert params["first"] == "25"


async def test_query_arrays_repeat_the_key(router: respx.MockRouter, client: WhopClient) -> None:
    route = router.get("/api/v1/memberships").mock(return_value=ok(page([], None, False)))
    since = datetime(2026, 10, 1, 12, tzinfo=UTC)
    await collect(
        client.list_memberships(
            statuses=["active", "trialing"], product_ids=("prod_a",), created_after=since, include_free=True
        )
    )
    params = route.calls.last.request.url.params
    assert params.get_list("statuses") == ["active", "trialing"]
    assert params.get_list("product_ids") == ["prod_a"]
    assert params["created_after"] == "2026-10-01T12:00:00Z"
    assert params["include_free"] == "true"
    assert "statuses[]" not in params


async def test_base_url_with_api_prefix_is_accepted(router: respx.MockRouter, time: FakeTime) -> None:
    route = router.get("/api/v1/products/prod_1").mock(return_value=ok({"id": "prod_1"}))
    async with WhopClient(f"{BASE}/api/v1/", StaticToken(KEY), COMPANY, sleep=time.sleep) as whop:
        assert (await whop.get_product("prod_1")).id == "prod_1"
    assert route.called


# Paging -----------------------------------------------------------------------------------------------


def membership(i: int) -> dict[str, Any]:
    return load(MEMBERSHIP_NATIVE_JSON) | {"id": f"mem_{i}"}


async def test_pages_are_followed_to_the_end(router: respx.MockRouter, client: WhopClient) -> None:
    route = router.get("/api/v1/memberships").mock(
        side_effect=[
            ok(page([membership(1), membership(2)], "c1", True)),
            ok(page([membership(3)], "c2", True)),
            ok(page([membership(4)], "c3", False)),
        ]
    )
    pages = await collect(client.list_memberships(page_size=2))
    assert [[m.id for m in p.data] for p in pages] == [["mem_1", "mem_2"], ["mem_3"], ["mem_4"]]
    assert [p.end_cursor for p in pages] == ["c1", "c2", "c3"]  # checkpoints for the caller
    assert all(isinstance(m, Membership) for p in pages for m in p.data)
    sent = [call.request.url.params.get("after") for call in route.calls]
    assert sent == [None, "c1", "c2"]
    assert client.stats == {"requests": 3, "retries": 0, "rate_limited": 0}


async def test_paging_resumes_from_a_checkpoint(router: respx.MockRouter, client: WhopClient) -> None:
    route = router.get("/api/v1/members").mock(return_value=ok(page([load(MEMBER_NATIVE_JSON)], "c9", False)))
    pages = await collect(client.list_members(after="c8"))
    assert route.calls.last.request.url.params["after"] == "c8"
    assert isinstance(pages[0].data[0], Member)


async def test_paging_stops_on_an_empty_cursor(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/products").mock(return_value=ok(page([load(PRODUCT_NATIVE_JSON)], "", True)))
    assert len(await collect(client.list_products())) == 1


async def test_a_repeated_cursor_is_an_error_not_a_loop(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/plans").mock(return_value=ok(page([], "same", True)))
    with pytest.raises(WhopResponseError, match="same cursor"):
        await collect(client.list_plans(after="same"))


async def test_iter_pages_generic(router: respx.MockRouter, client: WhopClient) -> None:
    route = router.get("/api/v1/payments").mock(return_value=ok(page([load(PAYMENT_NATIVE_JSON)], None, False)))
    pages = await collect(client.iter_pages("payments", Payment, mode="account_sales"))
    assert pages[0].data[0].total is not None
    assert route.calls.last.request.url.params["mode"] == "account_sales"


async def test_an_unreadable_item_is_reported_by_its_id_and_the_rest_of_the_page_kept(
    router: respx.MockRouter, client: WhopClient
) -> None:
    bad = membership(1) | {"created_at": "not a time"}
    router.get("/api/v1/memberships").mock(return_value=ok(page([bad, membership(2)], None, False)))
    (only,) = await collect(client.list_memberships())
    assert [m.id for m in only.data] == ["mem_2"]
    assert [key for key, _ in only.unreadable] == ["mem_1"]
    assert "Membership mem_1" in only.unreadable[0][1] and "created_at" in only.unreadable[0][1]


async def test_an_unreadable_item_without_a_whop_id_fails_the_page(
    router: respx.MockRouter, client: WhopClient
) -> None:
    bad = membership(1) | {"id": "../x", "created_at": "not a time"}
    router.get("/api/v1/memberships").mock(return_value=ok(page([bad], None, False)))
    with pytest.raises(WhopResponseError, match="created_at"):
        await collect(client.list_memberships())


# Single objects --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "object_id", "path", "body", "model"),
    [
        ("get_product", "prod_1", "/api/v1/products/prod_1", PRODUCT_NATIVE_JSON, Product),
        ("get_member", "mber_1", "/api/v1/members/mber_1", MEMBER_NATIVE_JSON, Member),
        ("get_membership", "mem_1", "/api/v1/memberships/mem_1", MEMBERSHIP_NATIVE_JSON, Membership),
        ("get_payment", "pay_1", "/api/v1/payments/pay_1", PAYMENT_NATIVE_JSON, Payment),
        ("get_plan", "plan_1", "/api/v1/variants/plan_1", PLAN_PY26_JSON, Plan),
    ],
)
async def test_get_one(
    router: respx.MockRouter,
    client: WhopClient,
    method: str,
    object_id: str,
    path: str,
    body: str,
    model: type[Any],
) -> None:
    route = router.get(path).mock(return_value=ok(load(body)))
    result = await getattr(client, method)(object_id)
    assert isinstance(result, model)
    assert "account_id" not in route.calls.last.request.url.params


@pytest.mark.parametrize(
    ("method", "object_id"),
    [
        ("get_membership", "mem_1/../../users/me?x=1"),
        ("get_product", "."),
        ("get_product", ".."),
        ("get_product", "prod_1/.."),
        ("get_member", "mber_%2e%2e"),
        ("get_payment", "mem_1"),  # another type's id
        ("get_plan", "plan_" + "x" * 70_000),
        ("get_membership", ""),
    ],
)
async def test_ids_not_shaped_like_whops_are_never_sent(
    router: respx.MockRouter, client: WhopClient, method: str, object_id: str
) -> None:
    route = router.route().mock(return_value=ok({"id": "x"}))
    with pytest.raises(BadId, match="is not a Whop") as refused:
        await getattr(client, method)(object_id)
    assert not route.called
    assert len(str(refused.value)) < 100, "the error does not quote a long id"


async def test_accounts_are_raw_dicts(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/accounts/me").mock(return_value=ok({"id": COMPANY, "title": "Pickaxe"}))
    router.get("/api/v1/accounts").mock(return_value=ok(page([{"id": COMPANY}], None, False)))
    assert (await client.get_account_me())["id"] == COMPANY
    assert (await client.list_accounts())["data"] == [{"id": COMPANY}]


async def test_close_closes_only_an_owned_http_client(time: FakeTime) -> None:
    owned = WhopClient(BASE, StaticToken(KEY), COMPANY)
    await owned.close()
    assert owned._http.is_closed
    shared = httpx.AsyncClient()
    borrowed = WhopClient(BASE, StaticToken(KEY), COMPANY, http=shared)
    await borrowed.close()
    assert not shared.is_closed
    await shared.aclose()


# Retries ---------------------------------------------------------------------------------------------


async def test_retry_after_seconds_is_honoured(router: respx.MockRouter, client: WhopClient, time: FakeTime) -> None:
    router.get("/api/v1/products/prod_1").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), ok({"id": "prod_1"})]
    )
    assert (await client.get_product("prod_1")).id == "prod_1"
    assert time.sleeps == pytest.approx([7.0])
    assert client.stats == {"requests": 2, "retries": 1, "rate_limited": 1}


async def test_retry_after_http_date_is_honoured(router: respx.MockRouter, time: FakeTime) -> None:
    now = datetime(2026, 10, 20, 12, tzinfo=UTC)
    client = make_client(time, now=now)
    when = format_datetime(now + timedelta(seconds=30), usegmt=True)
    router.get("/api/v1/products/prod_1").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": when}), ok({"id": "prod_1"})]
    )
    await client.get_product("prod_1")
    assert time.sleeps == pytest.approx([30.0])


async def test_a_429_pauses_other_callers_on_the_same_limiter(router: respx.MockRouter, time: FakeTime) -> None:
    shared = TokenBucket(1000, 1000, clock=time.clock, sleep=time.sleep)
    first = make_client(time, limiter=shared, max_retries=0)
    second = make_client(time, limiter=shared)
    router.get("/api/v1/products/prod_1").mock(return_value=httpx.Response(429, headers={"Retry-After": "5"}))
    router.get("/api/v1/products/prod_2").mock(return_value=ok({"id": "prod_2"}))
    with pytest.raises(RateLimited):
        await first.get_product("prod_1")  # gives up at once, but the pause stays
    assert time.sleeps == []
    await second.get_product("prod_2")
    assert time.sleeps == pytest.approx([5.0])


async def test_5xx_is_retried_with_exponential_backoff(
    router: respx.MockRouter, client: WhopClient, time: FakeTime
) -> None:
    router.get("/api/v1/members/mber_1").mock(
        side_effect=[
            httpx.Response(500),
            httpx.Response(502),
            httpx.Response(504, json={"error": {"message": "upstream"}}),
            ok(load(MEMBER_NATIVE_JSON)),
        ]
    )
    member = await client.get_member("mber_1")
    assert member.id == "mber_Zx81QwLk5Tn0B"
    assert time.sleeps == pytest.approx([0.5, 1.0, 2.0])  # up to 1, 2, 4 s: full jitter, fixed at half
    assert client.stats["retries"] == 3


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_network_errors_are_retried(
    router: respx.MockRouter, client: WhopClient, time: FakeTime, error: Exception
) -> None:
    router.get("/api/v1/variants/plan_1").mock(side_effect=[error, ok({"id": "plan_1"})])
    assert (await client.get_plan("plan_1")).id == "plan_1"
    assert time.sleeps == pytest.approx([0.5])


async def test_408_is_retried(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/variants/plan_1").mock(side_effect=[httpx.Response(408), ok({"id": "plan_1"})])
    assert (await client.get_plan("plan_1")).id == "plan_1"


async def test_retries_run_out_as_retryable_error(router: respx.MockRouter, time: FakeTime) -> None:
    whop = make_client(time, max_retries=2)
    router.get("/api/v1/variants/plan_1").mock(return_value=httpx.Response(503))
    with pytest.raises(RetryableError) as caught:
        await whop.get_plan("plan_1")
    assert not isinstance(caught.value, RateLimited)
    assert whop.stats == {"requests": 3, "retries": 2, "rate_limited": 0}
    assert "503" in str(caught.value)


async def test_rate_limit_runs_out_as_rate_limited(router: respx.MockRouter, time: FakeTime) -> None:
    whop = make_client(time, max_retries=1)
    router.get("/api/v1/variants/plan_1").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "You are being rate limited"})
    )
    with pytest.raises(RateLimited) as caught:
        await whop.get_plan("plan_1")
    assert caught.value.retry_after == 3.0
    assert whop.stats["rate_limited"] == 2


async def test_a_very_long_retry_after_is_handed_to_the_caller(
    router: respx.MockRouter, client: WhopClient, time: FakeTime
) -> None:
    router.get("/api/v1/variants/plan_1").mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as caught:
        await client.get_plan("plan_1")
    assert caught.value.retry_after == 3600.0
    assert time.sleeps == []  # not slept through inside the request


async def test_a_2xx_that_is_not_json_is_retried_in_place(
    router: respx.MockRouter, client: WhopClient, time: FakeTime
) -> None:
    """Before: raised at once. A proxy's maintenance page passes like a 503."""
    router.get("/api/v1/products/prod_1").mock(
        side_effect=[httpx.Response(200, text="<html>maintenance</html>"), ok({"id": "prod_1"})]
    )
    assert (await client.get_product("prod_1")).id == "prod_1"
    assert time.sleeps == pytest.approx([0.5])


async def test_every_5xx_is_retried_not_only_500_to_504(
    router: respx.MockRouter, client: WhopClient, time: FakeTime
) -> None:
    """Before: a 520 (a CDN's 'origin error') was fatal."""
    router.get("/api/v1/products/prod_1").mock(side_effect=[httpx.Response(520), ok({"id": "prod_1"})])
    assert (await client.get_product("prod_1")).id == "prod_1"
    assert client.stats["retries"] == 1


async def test_a_5xx_asking_for_a_very_long_wait_is_handed_to_the_caller(
    router: respx.MockRouter, client: WhopClient, time: FakeTime
) -> None:
    """Before: slept 300 s inside the call. Now the job is rescheduled, as for a 429."""
    route = router.get("/api/v1/products/prod_1").mock(
        return_value=httpx.Response(503, headers={"Retry-After": "3600"})
    )
    with pytest.raises(RetryableError, match="503"):
        await client.get_product("prod_1")
    assert route.call_count == 1 and time.sleeps == []


async def test_by_default_a_call_gets_the_policys_eight_tries(router: respx.MockRouter, time: FakeTime) -> None:
    whop = WhopClient(
        BASE, StaticToken(KEY), COMPANY, sleep=time.sleep, limiter=TokenBucket(1000, 1000, clock=time.clock)
    )
    route = router.get("/api/v1/products/prod_1").mock(return_value=httpx.Response(502))
    with pytest.raises(RetryableError):
        await whop.get_product("prod_1")
    assert route.call_count == 8 and len(time.sleeps) == 7 and max(time.sleeps) <= 60


async def test_the_limiter_paces_requests(router: respx.MockRouter, time: FakeTime) -> None:
    whop = make_client(time, limiter=TokenBucket(2, 1, clock=time.clock, sleep=time.sleep))
    router.get("/api/v1/variants/plan_1").mock(return_value=ok({"id": "plan_1"}))
    for _ in range(3):
        await whop.get_plan("plan_1")
    assert time.sleeps == pytest.approx([0.5, 0.5])


async def test_each_whop_operation_has_its_own_pace_so_two_walks_go_side_by_side(
    router: respx.MockRouter, time: FakeTime
) -> None:
    # Whop limits each operation per credential: at 1 request a second each, a product read
    # does not wait behind plan reads, while a second plan read waits its second.
    whop = WhopClient(BASE, StaticToken(KEY), COMPANY, requests_per_second=1, sleep=time.sleep, clock=time.clock)
    router.get("/api/v1/variants/plan_1").mock(return_value=ok({"id": "plan_1"}))
    router.get("/api/v1/products/prod_1").mock(return_value=ok({"id": "prod_1"}))
    await whop.get_plan("plan_1")
    await whop.get_product("prod_1")
    assert time.sleeps == []
    await whop.get_plan("plan_1")
    assert time.sleeps == pytest.approx([1.0])
    assert whop.limiter_for("GET", "/memberships") is whop.limiter_for("GET", "/memberships/mem_1")
    assert whop.limiter_for("GET", "/memberships") is not whop.limiter_for("GET", "/payments")


async def test_a_429_slows_every_operation_of_the_client(router: respx.MockRouter, time: FakeTime) -> None:
    whop = WhopClient(
        BASE, StaticToken(KEY), COMPANY, requests_per_second=100, sleep=time.sleep, clock=time.clock, max_retries=0
    )
    router.get("/api/v1/products/prod_1").mock(return_value=ok({"id": "prod_1"}))
    throttled = httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "You are being rate limited"})
    router.get("/api/v1/variants/plan_1").mock(return_value=throttled)
    await whop.get_product("prod_1")  # this operation's bucket exists before the 429
    with pytest.raises(RateLimited):
        await whop.get_plan("plan_1")
    await whop.get_product("prod_1")
    assert time.sleeps == pytest.approx([3.0]), "the product read waited out the 429 too"


# Authentication and errors ---------------------------------------------------------------------------


async def test_401_invalidates_and_retries_with_the_new_token(router: respx.MockRouter, time: FakeTime) -> None:
    tokens = RotatingTokens("old_token_abc", "new_token_def")
    whop = make_client(time, tokens)
    route = router.get("/api/v1/products/prod_1").mock(side_effect=[httpx.Response(401), ok({"id": "prod_1"})])
    await whop.get_product("prod_1")
    assert tokens.invalidated == ["old_token_abc"]
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer old_token_abc",
        "Bearer new_token_def",
    ]
    assert time.sleeps == []


async def test_401_after_a_refresh_is_an_auth_error(router: respx.MockRouter, time: FakeTime) -> None:
    tokens = RotatingTokens("old_token_abc", "new_token_def")
    whop = make_client(time, tokens)
    router.get("/api/v1/products/prod_1").mock(return_value=httpx.Response(401, json={"error": {"message": "nope"}}))
    with pytest.raises(AuthError) as caught:
        await whop.get_product("prod_1")
    assert tokens.invalidated == ["old_token_abc"]  # refreshed once, not in a loop
    assert "new_token_def" not in str(caught.value)


async def test_401_with_a_static_key_says_so(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/products/prod_1").mock(return_value=httpx.Response(401))
    with pytest.raises(AuthError, match="Whop rejected the API key"):
        await client.get_product("prod_1")


async def test_403_names_the_missing_permission(router: respx.MockRouter, client: WhopClient) -> None:
    body = {"error": {"type": "forbidden", "message": "You need the member:email:read permission to do this"}}
    router.get("/api/v1/members").mock(return_value=httpx.Response(403, json=body))
    with pytest.raises(AuthError, match="member:email:read"):
        await collect(client.list_members())


async def test_404_is_not_found_with_the_key(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/memberships/mem_gone").mock(return_value=httpx.Response(404))
    with pytest.raises(NotFound) as caught:
        await client.get_membership("mem_gone")
    assert isinstance(caught.value, SkippableError)
    assert caught.value.key == "mem_gone"


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        pytest.param(
            400,
            {"error": {"type": "invalid_request", "message": "Unknown api version"}},
            "Unknown api version",
            id="whop-error-envelope",
        ),
        pytest.param(422, {"message": "first must be <= 100"}, "first must be <= 100", id="plain-message"),
        pytest.param(
            409,
            {"error": "conflict", "error_description": "in flight"},
            "conflict: in flight",
            id="oauth-style",
        ),
        pytest.param(400, "plain text failure", "plain text failure", id="text-body"),
    ],
)
async def test_other_4xx_are_fatal_with_whops_message(
    router: respx.MockRouter, client: WhopClient, status: int, body: Any, text: str
) -> None:
    response = httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    router.get("/api/v1/products/prod_1").mock(return_value=response)
    with pytest.raises(FatalError) as caught:
        await client.get_product("prod_1")
    assert text in str(caught.value)
    assert client.stats["retries"] == 0


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(400, json={"error": {"message": f"bad token {KEY}"}}),
        httpx.Response(401, json={"error": {"message": f"token {KEY} revoked"}}),
        httpx.Response(403, json={"error": {"message": f"{KEY} lacks member:basic:read"}}),
        httpx.Response(404, text=KEY),
        httpx.Response(503, text=f"echo {KEY}"),
        httpx.ConnectError(f"failed for {KEY}"),
    ],
    ids=["400", "401", "403", "404", "503", "network"],
)
async def test_the_token_never_appears_in_errors(router: respx.MockRouter, time: FakeTime, response: Any) -> None:
    whop = make_client(time, max_retries=1)
    router.get("/api/v1/products/prod_1").mock(side_effect=[response, response])
    with pytest.raises(Exception) as caught:
        await whop.get_product("prod_1")
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)
    assert KEY not in repr(StaticToken(KEY))


async def test_a_2xx_that_is_not_json_is_retryable(router: respx.MockRouter, client: WhopClient) -> None:
    router.get("/api/v1/products/prod_1").mock(return_value=httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(RetryableError):
        await client.get_product("prod_1")


def test_static_token_rejects_an_empty_key() -> None:
    with pytest.raises(FatalError, match="WHOP_API_KEY"):
        StaticToken("  ")


# Retry-After parsing ---------------------------------------------------------------------------------

NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, None, id="absent"),
        pytest.param({"retry-after": "12"}, 12.0, id="seconds"),
        pytest.param({"retry-after": "1.5"}, 1.5, id="fractional"),
        pytest.param({"retry-after": "-3"}, 0.0, id="negative"),
        pytest.param({"retry-after": "Tue, 20 Oct 2026 12:01:00 GMT"}, 60.0, id="http-date"),
        pytest.param({"retry-after": "Tue, 20 Oct 2026 11:00:00 GMT"}, 0.0, id="past-date"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-first"),
        pytest.param({"retry-after-ms": "x", "retry-after": "9"}, 9.0, id="bad-ms-falls-back"),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers), NOW) == expected


def test_fixture_bodies_are_json() -> None:
    # Guards the shared fixtures this module serves through respx.
    for text in (MEMBERSHIP_NATIVE_JSON, PRODUCT_NATIVE_JSON, PAYMENT_NATIVE_JSON):
        assert json.loads(text)["id"]


async def test_plans_are_read_as_variants_and_from_plans_where_variants_are_not_served(
    router: respx.MockRouter, client: WhopClient
) -> None:
    router.get("/api/v1/variants/plan_1").mock(return_value=httpx.Response(404, json={"error": {"message": "nope"}}))
    plans = router.get("/api/v1/plans/plan_1").mock(return_value=ok({"id": "plan_1", "title": "Pro"}))
    router.get("/api/v1/plans/plan_2").mock(return_value=ok({"id": "plan_2"}))
    assert (await client.get_plan("plan_1")).title == "Pro"
    assert plans.called
    # Once /plans answered where /variants did not, the deprecated endpoint is used alone.
    assert (await client.get_plan("plan_2")).id == "plan_2"
    assert [c.request.url.path for c in router.calls] == [
        "/api/v1/variants/plan_1",
        "/api/v1/plans/plan_1",
        "/api/v1/plans/plan_2",
    ]
