"""Twenty's table: every row, from both APIs, means one action and raises one error class."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from bridge.errors import (
    AuthError,
    BatchTooLarge,
    BridgeError,
    FatalError,
    RateLimited,
    RecordConflict,
    RetryableError,
    SkippableError,
    Unreachable,
)
from bridge.retry import Action
from bridge.twenty import responses
from bridge.twenty.responses import TABLE, AlreadyExists, Answer, Api, MetadataError

DATA, META = Api.DATA, Api.METADATA
URL = "http://twenty.test"


def refused() -> httpx.ConnectError:
    error = httpx.ConnectError("All connection attempts failed")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


def network(api: Api, exc: BaseException, *, first: bool) -> Answer:
    return responses.from_network(api, "read people", exc, first_contact=first, url=URL)


def error(api: Api, code: str | None, message: str, **ext: Any) -> Answer:
    extensions = {"code": code, **ext} if code is not None else ext
    return responses.from_errors(api, "create field whopUserId", [{"message": message, "extensions": extensions}])


def http(api: Api, status: int, *, graphql: bool = False) -> Answer:
    return Answer(api, "read people", status=status, graphql=graphql)


LIMIT = "Limit reached (100 tokens per 60000 ms)"
VALIDATION = {"errors": {"fieldMetadata": [{"errors": [{"code": "FIELD_ALREADY_EXISTS", "message": "taken"}]}]}}

# (answer, row, action, error class raised). Every row of TABLE appears at least once, from
# both APIs wherever Twenty can answer it on both.
CASES: list[tuple[Answer, str, Action, type[BridgeError]]] = [
    (network(DATA, refused(), first=True), "never answered: connection refused", Action.RETRY, Unreachable),
    (
        network(META, socket.gaierror(-2, "unknown"), first=True),
        "never answered: connection refused",
        Action.RETRY,
        Unreachable,
    ),
    (
        network(DATA, httpx.ConnectTimeout("slow"), first=True),
        "never answered: no connection",
        Action.RETRY,
        Unreachable,
    ),
    (
        network(META, httpx.ConnectTimeout("slow"), first=True),
        "never answered: no connection",
        Action.RETRY,
        Unreachable,
    ),
    (network(DATA, refused(), first=False), "no answer", Action.RETRY, RetryableError),
    (network(META, httpx.ReadTimeout("slow"), first=False), "no answer", Action.RETRY, RetryableError),
    (network(DATA, httpx.RemoteProtocolError("cut"), first=True), "no answer", Action.RETRY, RetryableError),
    (http(DATA, 429), "throttled", Action.THROTTLE, RateLimited),
    (http(META, 429), "throttled", Action.THROTTLE, RateLimited),
    (
        error(DATA, "BAD_USER_INPUT", LIMIT, userFriendlyMessage="Rate limit reached."),
        "throttled",
        Action.THROTTLE,
        RateLimited,
    ),
    (error(META, "BAD_USER_INPUT", LIMIT), "throttled", Action.THROTTLE, RateLimited),
    (error(DATA, "UNAUTHENTICATED", "Token invalid."), "UNAUTHENTICATED", Action.AUTH, AuthError),
    (error(META, "UNAUTHENTICATED", "Token invalid."), "UNAUTHENTICATED", Action.AUTH, AuthError),
    (http(DATA, 401), "UNAUTHENTICATED", Action.AUTH, AuthError),
    (http(META, 401), "UNAUTHENTICATED", Action.AUTH, AuthError),
    (error(DATA, "FORBIDDEN", "no permission"), "FORBIDDEN", Action.AUTH, AuthError),
    (error(META, "FORBIDDEN", "no permission"), "FORBIDDEN", Action.AUTH, AuthError),
    (http(META, 403), "FORBIDDEN", Action.AUTH, AuthError),
    (
        error(
            DATA, "BAD_USER_INPUT", "Maximum number of records to upsert is 200.", subCode="TOO_MANY_RECORDS_TO_UPDATE"
        ),
        "too many records",
        Action.RESIZE,
        BatchTooLarge,
    ),
    (
        error(DATA, "INTERNAL_SERVER_ERROR", 'null value in column "whopUsername" violates not-null constraint'),
        "a refusal every retry repeats",
        Action.FATAL,
        FatalError,
    ),
    (
        error(META, "INTERNAL_SERVER_ERROR", "Index IDX_1 on object metadata person already exists"),
        "a refusal every retry repeats",
        Action.FATAL,
        FatalError,
    ),
    (
        error(DATA, "BAD_USER_INPUT", "Multiple records found", subCode="UPSERT_MULTIPLE_MATCHING_RECORDS_CONFLICT"),
        "the record matches several",
        Action.SKIP,
        RecordConflict,
    ),
    (
        error(META, "METADATA_VALIDATION_FAILED", "Validation failed", **VALIDATION),
        "the name is taken",
        Action.SKIP,
        AlreadyExists,
    ),
    (
        error(META, "BAD_USER_INPUT", "Object already exists", subCode="OBJECT_ALREADY_EXISTS"),
        "the name is taken",
        Action.SKIP,
        AlreadyExists,
    ),
    (error(DATA, "CONFLICT", "Record already exists"), "the name is taken", Action.SKIP, SkippableError),
    # The same code means the same in both APIs: this input is refused, and would be again.
    (error(DATA, "BAD_USER_INPUT", "Duplicate Whop User ID"), "refused input", Action.SKIP, SkippableError),
    (error(META, "BAD_USER_INPUT", "Invalid name"), "refused input", Action.SKIP, MetadataError),
    (error(DATA, "GRAPHQL_VALIDATION_FAILED", "Unknown field"), "refused input", Action.SKIP, SkippableError),
    (error(META, "NOT_FOUND", "Field not found"), "refused input", Action.SKIP, MetadataError),
    (error(DATA, "CONFLICT", "Conflict"), "refused input", Action.SKIP, SkippableError),
    (error(META, "METADATA_VALIDATION_FAILED", "Name is reserved"), "refused input", Action.SKIP, MetadataError),
    (
        error(DATA, "INTERNAL_SERVER_ERROR", "Metadata cache version not found"),
        "Twenty failed",
        Action.RETRY,
        RetryableError,
    ),
    (error(META, "INTERNAL_SERVER_ERROR", "Internal server error"), "Twenty failed", Action.RETRY, RetryableError),
    (error(META, "SERVICE_UNAVAILABLE", "Restarting"), "Twenty failed", Action.RETRY, RetryableError),
    (error(DATA, None, "Something broke"), "Twenty failed", Action.RETRY, RetryableError),
    (error(DATA, "WORKSPACE_CACHE_STALE", "cache out of date"), "Twenty failed", Action.RETRY, RetryableError),
    (error(DATA, "PERMISSION_DENIED_SOMEHOW", "nope"), "any other GraphQL error code", Action.FATAL, FatalError),
    (error(META, "BAD_REQUEST", "Invalid JSON body"), "any other GraphQL error code", Action.FATAL, FatalError),
    (http(DATA, 503), "HTTP 5xx", Action.RETRY, RetryableError),
    (http(META, 502), "HTTP 5xx", Action.RETRY, RetryableError),
    (http(DATA, 404), "any other HTTP error", Action.FATAL, FatalError),
    (http(META, 400), "any other HTTP error", Action.FATAL, FatalError),
    (http(DATA, 200), "an answer that is not GraphQL", Action.FATAL, FatalError),
    (Answer(META, "list objects", graphql=False), "an answer that is not GraphQL", Action.FATAL, FatalError),
]


@pytest.mark.parametrize(("answer", "row", "action", "raises"), CASES, ids=lambda v: getattr(v, "value", None))
def test_each_answer_has_one_action_and_one_error_class(
    answer: Answer, row: str, action: Action, raises: type[BridgeError]
) -> None:
    failure = responses.classify(answer)
    assert failure.row.startswith(row)
    assert failure.action is action
    assert type(failure.error) is raises
    # The groups of bridge/errors.py line up with the actions.
    group = {
        Action.RETRY: RetryableError,
        Action.THROTTLE: RateLimited,
        Action.RESIZE: BatchTooLarge,
        Action.SKIP: SkippableError,
        Action.AUTH: AuthError,
        Action.FATAL: FatalError,
    }[action]
    assert isinstance(failure.error, group)
    if raises is not Unreachable:
        assert answer.operation in str(failure.error)


def test_every_row_of_the_table_is_tested() -> None:
    tested = {responses.classify(answer).row for answer, *_ in CASES}
    assert tested == {row.name for row in TABLE}


def test_a_first_contact_gets_two_quick_retries_and_a_connect_timeout_none() -> None:
    assert responses.classify(network(DATA, refused(), first=True)).retries == 2
    assert responses.classify(network(DATA, httpx.ConnectTimeout("slow"), first=True)).retries == 0
    assert responses.classify(network(DATA, refused(), first=False)).retries is None
    unreachable = responses.classify(network(META, refused(), first=True)).error
    assert str(unreachable) == f"cannot reach Twenty at {URL} (connection refused); check TWENTY_URL and the network"


def test_a_throttle_waits_at_least_one_requests_refill_and_nothing_else_does() -> None:
    assert responses.classify(http(DATA, 429), throttle_floor=0.6).floor == 0.6
    assert responses.classify(http(DATA, 503), throttle_floor=0.6).floor == 0.0


def test_a_batch_refusal_names_the_size_twenty_takes() -> None:
    answer = error(DATA, "BAD_USER_INPUT", "Maximum number of records to upsert is 200.")
    refusal = responses.classify(answer).error
    assert isinstance(refusal, BatchTooLarge) and refusal.limit == 200


def test_a_metadata_refusal_keeps_twentys_code_and_sub_codes() -> None:
    refusal = responses.classify(error(META, "METADATA_VALIDATION_FAILED", "Validation failed", **VALIDATION)).error
    assert isinstance(refusal, AlreadyExists)
    assert (refusal.code, refusal.sub_codes) == ("METADATA_VALIDATION_FAILED", ("FIELD_ALREADY_EXISTS",))
    assert "taken" in str(refusal)


def test_the_metadata_permission_error_says_what_to_give_the_key() -> None:
    refusal = responses.classify(error(META, "FORBIDDEN", "Forbidden")).error
    assert "data-model permission" in str(refusal) and "Data model" in str(refusal)


@pytest.mark.parametrize(
    ("response", "row"),
    [
        (httpx.Response(200, json={"data": {"people": []}}), None),
        (
            httpx.Response(200, json={"errors": [{"message": LIMIT, "extensions": {"code": "BAD_USER_INPUT"}}]}),
            "throttled",
        ),
        (httpx.Response(429, json={"statusCode": 429, "messages": [LIMIT]}), "throttled"),
        # A GraphQL error is read before the status: this 500 is refused every time.
        (
            httpx.Response(
                500,
                json={
                    "errors": [
                        {"message": "violates not-null constraint", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
                    ]
                },
            ),
            "a refusal every retry repeats",
        ),
        (httpx.Response(503, text="Service Unavailable"), "HTTP 5xx"),
        (httpx.Response(200, text="<html>Twenty</html>"), "an answer that is not GraphQL"),
        (httpx.Response(200, json={"data": None}), "an answer that is not GraphQL"),
        (httpx.Response(404, text="Not Found"), "any other HTTP error"),
    ],
)
def test_reading_a_graphql_answer(response: httpx.Response, row: str | None) -> None:
    read = responses.read(DATA, "read people", response)
    if row is None:
        assert read == {"people": []}
    else:
        assert isinstance(read, Answer) and responses.classify(read).row.startswith(row)
