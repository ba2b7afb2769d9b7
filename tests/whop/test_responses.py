"""Whop's table: every row, from the REST API and the OAuth endpoints, means one action and raises
one error class."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

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
from bridge.retry import Action
from bridge.whop import responses
from bridge.whop.responses import TABLE, Answer, NotFound

URL = "https://api.whop.test"
REST = Answer("GET /api/v1/memberships/mem_1", key="mem_1", url=URL)
OAUTH_GET = Answer("the userinfo", oauth=True, url=URL)
REFRESH = Answer("the token refresh", oauth=True, idempotent=False, url=URL)


def refused() -> httpx.ConnectError:
    error = httpx.ConnectError("All connection attempts failed")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


def gone(asked: Answer, exc: BaseException, *, first: bool = False) -> Answer:
    return responses.from_network(replace(asked, first_contact=first), exc, type(exc).__name__)


def said(asked: Answer, status: int, body: object = None, *, retry_after: float | None = None) -> Answer:
    response = httpx.Response(status, json=body) if body is not None else httpx.Response(status)
    return responses.from_response(asked, response, retry_after=retry_after)


NOT_JSON = replace(REST, status=200, json=False)

# (answer, row, action, error class raised, retries it allows: None for the policy's)
CASES: list[tuple[Answer, str, Action, type[BridgeError], int | None]] = [
    (gone(REST, refused(), first=True), "never answered: connection refused", Action.RETRY, Unreachable, 2),
    (gone(OAUTH_GET, refused(), first=True), "never answered: connection refused", Action.RETRY, Unreachable, 2),
    (gone(REFRESH, refused(), first=True), "never answered: connection refused", Action.RETRY, Unreachable, 0),
    (
        gone(REST, httpx.ConnectTimeout("slow"), first=True),
        "never answered: no connection",
        Action.RETRY,
        Unreachable,
        0,
    ),
    (gone(REST, refused()), "no answer", Action.RETRY, RetryableError, None),
    (gone(REST, httpx.ReadTimeout("slow")), "no answer", Action.RETRY, RetryableError, None),
    (gone(OAUTH_GET, httpx.RemoteProtocolError("cut")), "no answer", Action.RETRY, RetryableError, None),
    # A refresh that may have reached Whop is never sent twice: the answer lost may have rotated it.
    (gone(REFRESH, httpx.ReadTimeout("slow")), "no answer", Action.RETRY, RetryableError, 0),
    (
        said(REST, 429, {"message": "You are being rate limited"}, retry_after=3.0),
        "throttled",
        Action.THROTTLE,
        RateLimited,
        None,
    ),
    # A throttled request was not processed: a refresh is retried too.
    (said(REFRESH, 429, {"error": "rate_limit_exceeded"}), "throttled", Action.THROTTLE, RateLimited, None),
    (said(REFRESH, 400, {"error": "rate_limit_exceeded"}), "throttled", Action.THROTTLE, RateLimited, None),
    (
        said(REFRESH, 400, {"error": "invalid_grant", "error_description": "expired"}),
        "OAuth invalid_grant",
        Action.AUTH,
        NeedsReconnect,
        None,
    ),
    (said(REST, 401, {"error": {"message": "revoked"}}), "HTTP 401", Action.AUTH, AuthError, None),
    (said(REFRESH, 401, {"error": "invalid_client"}), "HTTP 401", Action.AUTH, AuthError, None),
    (said(REST, 403, {"error": {"message": "needs member:email:read"}}), "HTTP 403", Action.AUTH, AuthError, None),
    (said(OAUTH_GET, 403, {"error": "insufficient_scope"}), "HTTP 403", Action.AUTH, AuthError, None),
    (said(REST, 503, retry_after=30.0), "HTTP 408 or 5xx", Action.RETRY, RetryableError, None),
    (said(REST, 408), "HTTP 408 or 5xx", Action.RETRY, RetryableError, None),
    (said(REST, 520), "HTTP 408 or 5xx", Action.RETRY, RetryableError, None),
    (said(OAUTH_GET, 502), "HTTP 408 or 5xx", Action.RETRY, RetryableError, None),
    (said(REFRESH, 503), "HTTP 408 or 5xx", Action.RETRY, RetryableError, 0),
    (NOT_JSON, "a 2xx whose body is not JSON", Action.RETRY, RetryableError, None),
    (replace(REFRESH, status=200, json=False), "a 2xx whose body is not JSON", Action.RETRY, RetryableError, 0),
    (said(REFRESH, 400, {"error": "invalid_request"}), "any other 4xx from the OAuth", Action.AUTH, AuthError, None),
    (said(OAUTH_GET, 404), "any other 4xx from the OAuth", Action.AUTH, AuthError, None),
    (said(REST, 404), "HTTP 404", Action.SKIP, NotFound, None),
    (
        said(REST, 400, {"error": {"type": "invalid_request", "message": "Unknown api version"}}),
        "any other answer",
        Action.FATAL,
        FatalError,
        None,
    ),
    (
        said(REST, 409, {"error": "conflict", "error_description": "in flight"}),
        "any other answer",
        Action.FATAL,
        FatalError,
        None,
    ),
    (said(REST, 422, {"message": "first must be <= 100"}), "any other answer", Action.FATAL, FatalError, None),
]


@pytest.mark.parametrize(
    ("answer", "row", "action", "raises", "retries"), CASES, ids=lambda v: getattr(v, "value", None)
)
def test_each_answer_has_one_action_and_one_error_class(
    answer: Answer, row: str, action: Action, raises: type[BridgeError], retries: int | None
) -> None:
    failure = responses.classify(answer)
    assert failure.row.startswith(row)
    assert failure.action is action
    assert type(failure.error) is raises
    assert failure.retries == retries
    group = {
        Action.RETRY: RetryableError,
        Action.THROTTLE: RateLimited,
        Action.SKIP: SkippableError,
        Action.AUTH: AuthError,
        Action.FATAL: FatalError,
    }[action]
    assert isinstance(failure.error, group)
    if raises is not Unreachable:
        assert answer.what in str(failure.error)


def test_every_row_of_the_table_is_tested() -> None:
    tested = {responses.classify(answer).row for answer, *_ in CASES}
    assert tested == {row.name for row in TABLE}


def test_retry_after_is_kept_for_what_is_retried_only() -> None:
    assert responses.classify(said(REST, 429, retry_after=3.0)).retry_after == 3.0
    assert responses.classify(said(REST, 503, retry_after=30.0)).retry_after == 30.0
    assert responses.classify(said(REST, 400, retry_after=30.0)).retry_after is None
    throttled = responses.classify(said(REST, 429, retry_after=3600.0)).error
    assert isinstance(throttled, RateLimited) and throttled.retry_after == 3600.0


def test_a_not_found_names_the_object_it_skips() -> None:
    skipped = responses.classify(said(REST, 404)).error
    assert isinstance(skipped, NotFound) and skipped.key == "mem_1"


def test_a_forbidden_read_names_the_permission_the_connection_lacks() -> None:
    refused = responses.classify(said(REST, 403, {"error": {"message": "You need the member:email:read permission"}}))
    assert "lacks the permission member:email:read" in str(refused.error)


def test_whops_words_are_scrubbed_of_the_token_before_they_are_kept() -> None:
    response = httpx.Response(400, json={"error": {"message": "bad token apik_secret"}})
    answer = responses.from_response(REST, response, retry_after=None, scrub=lambda t: t.replace("apik_secret", "***"))
    assert "apik_secret" not in str(responses.classify(answer).error)


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (
            httpx.Response(400, json={"error": {"type": "invalid_request", "message": "Unknown"}}),
            ("invalid_request", "Unknown"),
        ),
        (
            httpx.Response(400, json={"error": "invalid_grant", "error_description": "spent"}),
            ("invalid_grant", "invalid_grant: spent"),
        ),
        (httpx.Response(400, json={"error": "invalid_client"}), ("invalid_client", "invalid_client")),
        (httpx.Response(422, json={"message": "first must be <= 100"}), ("http_422", "first must be <= 100")),
        (httpx.Response(502, text="bad gateway"), ("http_502", "bad gateway")),
        (httpx.Response(502), ("http_502", "Bad Gateway")),
    ],
)
def test_whops_error_bodies_are_read_in_each_shape(response: httpx.Response, words: tuple[str, str]) -> None:
    assert responses.error_words(response) == words
