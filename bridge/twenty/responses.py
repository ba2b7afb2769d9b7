"""What each Twenty answer means: one table for the data API (`/graphql`) and the metadata API
(`/metadata`) alike, so a response is retried, skipped or fatal the same way in every client.

Twenty answers most failures as HTTP 200 with `errors[].extensions.code`, so a GraphQL error is
read first and the HTTP status only when there is none. Facts the rows rest on
(shared/research/twenty-observed.md, twenty-api.md §4):

* a throttle is HTTP 429 on REST and `BAD_USER_INPUT` "Limit reached (…)" on GraphQL, with no
  `Retry-After`: the wait starts at one request's refill (60 s / the limit);
* a 500 "Metadata cache version not found" right after Twenty's cache is flushed passes (#16);
* `null` in a 1.x TEXT column ("violates not-null constraint", 1.19) and a unique index that
  outlives its field (1.x, #15) are refused every time: retrying cannot help;
* 2.x refuses more than 200 records a call with `TOO_MANY_RECORDS_TO_UPDATE` "… is 200" (2.3).

`BAD_USER_INPUT` and its kin mean the same everywhere: this request's input is refused and will
be refused again (SKIP). A record write raises `SkippableError` and the writer isolates the
record; a metadata change raises `MetadataError` (a `SkippableError` carrying Twenty's code) and
the provisioner stops there, since what follows builds on it.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bridge import reach
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
from bridge.reach import Network
from bridge.retry import Action, Failure, Row, first_row

# Sub-codes inside METADATA_VALIDATION_FAILED meaning "someone created it first".
ALREADY_EXISTS_CODES = frozenset({"OBJECT_ALREADY_EXISTS", "NOT_AVAILABLE", "FIELD_ALREADY_EXISTS"})
ALREADY_EXISTS_IN = frozenset({"METADATA_VALIDATION_FAILED", "BAD_USER_INPUT", "CONFLICT"})
REFUSED_INPUT_CODES = frozenset(
    {"BAD_USER_INPUT", "METADATA_VALIDATION_FAILED", "CONFLICT", "GRAPHQL_VALIDATION_FAILED", "NOT_FOUND"}
)
FAILED_CODES = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", ""})


class MetadataError(SkippableError):
    """Twenty refused a metadata change; `code` is its `extensions.code`. The same request is
    refused again, so it is never retried."""

    def __init__(self, message: str, code: str | None = None, sub_codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.sub_codes = sub_codes


class AlreadyExists(MetadataError):
    """The object or field name is taken; list again and compare before deciding anything."""


class Api(enum.StrEnum):
    DATA = "data"
    METADATA = "metadata"


@dataclass(frozen=True)
class Answer:
    """One attempt's outcome, as far as the table reads it."""

    api: Api
    operation: str
    status: int | None = None  # None: no HTTP answer at all
    code: str | None = None  # the first GraphQL error's extensions.code ("" when it has none); None: no error
    message: str = ""
    sub_codes: tuple[str, ...] = ()
    details: str = ""  # the sub-errors' messages (a metadata validation report)
    extensions: str = ""  # the extensions as text, for codes Twenty nests
    graphql: bool = True  # the body was a GraphQL result (data or errors)
    network: Network | None = None
    first_contact: bool = False  # Twenty has not answered this client yet
    url: str = ""  # TWENTY_URL, for an Unreachable's words
    cause: BaseException | None = None

    @property
    def lowered(self) -> str:
        return f"{self.message} {self.details}".lower()


def _graphql(answer: Answer) -> bool:
    return answer.code is not None


def _http(answer: Answer) -> bool:
    return answer.code is None and answer.status is not None


def _forbidden(a: Answer) -> str:
    if a.api is Api.METADATA:
        return (
            f"{a.operation}: the Twenty API key's role lacks the data-model permission ({a.message or 'HTTP 403'}); "
            "give the key a role with 'Data model' settings access (e.g. Admin)"
        )
    return f"the Twenty API key may not {a.operation}: {a.message or 'HTTP 403'}"


def _leftover_index(a: Answer) -> bool:
    return a.code == "INTERNAL_SERVER_ERROR" and "already exists" in a.message.lower()


# First match wins. The table tests give every row an example.
TABLE: tuple[Row[Answer], ...] = (
    Row(
        "never answered: connection refused or host not found",
        lambda a: a.network is Network.REFUSED and a.first_contact,
        Action.RETRY,
        Unreachable,
        lambda a: "",
        retries=lambda a: reach.FIRST_CONTACT_RETRIES,
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
        "no answer (a timeout, a dropped connection) from a Twenty that answered before",
        lambda a: a.network is not None,
        Action.RETRY,
        RetryableError,
        lambda a: f"Twenty did not answer {a.operation} ({reach.why(a.cause) if a.cause else 'no answer'})",
    ),
    Row(
        "throttled: HTTP 429, or a GraphQL error 'Limit reached'",
        lambda a: a.status == 429 or "limit reached" in a.message.lower(),
        Action.THROTTLE,
        RateLimited,
        lambda a: f"Twenty throttled {a.operation}" + (" (HTTP 429)" if a.status == 429 else ""),
    ),
    Row(
        "UNAUTHENTICATED, or HTTP 401",
        lambda a: a.code == "UNAUTHENTICATED" or (_http(a) and a.status == 401),
        Action.AUTH,
        AuthError,
        lambda a: f"Twenty rejected TWENTY_API_KEY during {a.operation}; create a new API key in Twenty's settings",
    ),
    Row(
        "FORBIDDEN, or HTTP 403",
        lambda a: a.code == "FORBIDDEN" or (_http(a) and a.status == 403),
        Action.AUTH,
        AuthError,
        _forbidden,
    ),
    Row(
        "too many records in one call (TOO_MANY_RECORDS…, 'maximum number of records')",
        lambda a: _graphql(a) and ("TOO_MANY_RECORDS" in a.extensions or "maximum number of records" in a.lowered),
        Action.RESIZE,
        BatchTooLarge,
        lambda a: f"{a.operation}: {a.message}",
    ),
    Row(
        "a refusal every retry repeats: a not-null constraint (1.x TEXT), an index outliving its field (1.x)",
        lambda a: _graphql(a) and ("violates not-null constraint" in a.lowered or _leftover_index(a)),
        Action.FATAL,
        FatalError,
        lambda a: (
            f"{a.operation}: {a.message} (a leftover unique index in Twenty blocks this field; "
            "remove it in the workspace and run provisioning again)"
            if _leftover_index(a)
            else f"{a.operation}: {a.message}"
        ),
    ),
    Row(
        "the record matches several (UPSERT_MULTIPLE_MATCHING_RECORDS_CONFLICT, 'multiple records found')",
        lambda a: (
            _graphql(a)
            and ("UPSERT_MULTIPLE_MATCHING_RECORDS_CONFLICT" in a.extensions or "multiple records found" in a.lowered)
        ),
        Action.SKIP,
        RecordConflict,
        lambda a: f"{a.operation}: {a.message}",
    ),
    Row(
        "the name is taken (…_ALREADY_EXISTS, NOT_AVAILABLE, 'already exists')",
        lambda a: (
            a.code in ALREADY_EXISTS_IN
            and (any(c in ALREADY_EXISTS_CODES for c in a.sub_codes) or "already exists" in a.lowered)
        ),
        Action.SKIP,
        AlreadyExists,
        lambda a: f"{a.operation}: {a.details or a.message}",
    ),
    Row(
        "refused input: BAD_USER_INPUT, METADATA_VALIDATION_FAILED, CONFLICT, GRAPHQL_VALIDATION_FAILED, NOT_FOUND",
        lambda a: a.code in REFUSED_INPUT_CODES,
        Action.SKIP,
        SkippableError,
        lambda a: (
            f"{a.operation}: Twenty refused it: {a.details or a.message}"
            if a.api is Api.METADATA
            else f"{a.operation}: {a.message}"
        ),
    ),
    Row(
        "Twenty failed: INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE, no code, a cache message",
        lambda a: _graphql(a) and (a.code in FAILED_CODES or "cache" in a.message.lower()),
        Action.RETRY,
        RetryableError,
        lambda a: f"{a.operation}: Twenty failed ({a.message})",
    ),
    Row(
        "any other GraphQL error code",
        _graphql,
        Action.FATAL,
        FatalError,
        lambda a: f"{a.operation}: {a.message} ({a.code})",
    ),
    Row(
        "HTTP 5xx",
        lambda a: _http(a) and a.status is not None and a.status >= 500,
        Action.RETRY,
        RetryableError,
        lambda a: f"Twenty answered HTTP {a.status} to {a.operation}",
    ),
    Row(
        "any other HTTP error (4xx)",
        lambda a: _http(a) and a.status is not None and a.status >= 400,
        Action.FATAL,
        FatalError,
        lambda a: f"Twenty answered HTTP {a.status} to {a.operation}",
    ),
    Row(
        "an answer that is not GraphQL (not JSON, or neither data nor errors)",
        lambda a: True,
        Action.FATAL,
        FatalError,
        lambda a: f"Twenty's answer to {a.operation} was not GraphQL; is TWENTY_URL right?",
    ),
)


def row_for(answer: Answer) -> Row[Answer]:
    return first_row(TABLE, answer)


def classify(answer: Answer, *, throttle_floor: float = 0.0) -> Failure:
    """The action for `answer` and the error to raise if it is not retried. Messages name the
    operation and Twenty's words, never the key."""
    row = row_for(answer)
    return Failure(
        row.action,
        _error(row, answer),
        row=row.name,
        floor=throttle_floor if row.action is Action.THROTTLE else 0.0,
        retries=row.retries(answer),
    )


def _error(row: Row[Answer], answer: Answer) -> BridgeError:
    if row.raises is Unreachable:
        assert answer.cause is not None
        return reach.unreachable("Twenty", answer.url, "TWENTY_URL", answer.cause)
    message = row.says(answer)
    if row.raises is BatchTooLarge:
        found = re.search(r"(\d+)", answer.message)
        return BatchTooLarge(message, int(found.group(1)) if found else None)
    if row.raises is RateLimited:
        return RateLimited(message)  # Twenty sends no Retry-After
    if issubclass(row.raises, SkippableError) and answer.api is Api.METADATA:
        cls = row.raises if issubclass(row.raises, MetadataError) else MetadataError
        return cls(message, answer.code, answer.sub_codes)
    if row.raises is AlreadyExists:  # on the data API it is one refused record like any other
        return SkippableError(message)
    return row.raises(message)


# Reading answers ---------------------------------------------------------------------------------


def from_network(api: Api, operation: str, exc: BaseException, *, first_contact: bool, url: str) -> Answer:
    return Answer(api, operation, network=reach.network_kind(exc), first_contact=first_contact, url=url, cause=exc)


def from_errors(api: Api, operation: str, errors: list[dict[str, Any]], status: int | None = None) -> Answer:
    """The answer of a GraphQL result whose `errors` is not empty: the first error decides."""
    first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
    ext = first.get("extensions") or {}
    if not isinstance(ext, dict):
        ext = {}
    return Answer(
        api,
        operation,
        status=status,
        code=str(ext.get("code") or ""),
        message=str(first.get("message") or "error"),
        sub_codes=tuple(_sub_codes(ext)),
        details="; ".join(_sub_messages(ext)),
        extensions=json.dumps(ext, default=str),
    )


def read(api: Api, operation: str, response: httpx.Response) -> dict[str, Any] | Answer:
    """A `/graphql` answer: its `data`, or the `Answer` the table reads."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return from_errors(api, operation, errors, response.status_code)
        data = body.get("data")
        if response.is_success and isinstance(data, dict):
            return data
    return Answer(api, operation, status=response.status_code, graphql=False)


def _sub_codes(ext: dict[str, Any]) -> list[str]:
    # 2.x nests them under extensions.errors[…].code; 1.x puts one in extensions.subCode.
    found: list[str] = [str(ext["subCode"])] if ext.get("subCode") else []
    _walk(ext.get("errors"), lambda d: found.append(str(d["code"])) if "code" in d else None)
    return found


def _sub_messages(ext: dict[str, Any]) -> list[str]:
    found: list[str] = []
    _walk(ext.get("errors"), lambda d: found.append(str(d["message"])) if "message" in d else None)
    return found


def _walk(node: Any, visit: Callable[[dict[str, Any]], object]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for item in node:
            _walk(item, visit)
