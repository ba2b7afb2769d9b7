"""One retry policy for every HTTP call the bridge makes (Twenty data and metadata, Whop REST and OAuth).

A client sends one attempt and reads the answer through its service's table
(`bridge/twenty/responses.py`, `bridge/whop/responses.py`), which says what the answer means: an
`Action` and the error to raise when it is not retried. `call` is the one loop around the
attempts: it waits as `RetryPolicy` says, pauses the shared budget on a throttle, and raises the
table's error once the action is not to retry or the tries are spent. What a client does
between its attempts and its callers (send fewer records, skip one, stop) stays with the caller.

The wait before retry n:

* the server's `Retry-After`, as it says, up to `longest_wait`; a longer one is not slept through
  inside a call: the call fails with the table's error (`RateLimited.retry_after` says when), and
  the job is rescheduled instead;
* otherwise full jitter: uniform in [0, min(cap, base * 2^(n-1))], so clients that failed
  together do not come back together; after a `floor` the service needs first (Twenty refills
  one request every 60/limit s and says no Retry-After).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import enum
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from bridge.errors import BridgeError, Unreachable

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
Sleep = Callable[[float], Awaitable[object]]


class Action(enum.StrEnum):
    """What one answer means, for every client of a service alike."""

    RETRY = "retry"  # a transient failure: back off and send the same call again
    THROTTLE = "throttle"  # the service said slow down: pause the shared budget, then retry
    RESIZE = "resize"  # too many records in one call: the caller sends fewer
    SKIP = "skip"  # this record (this request) is refused; the same one is refused again
    AUTH = "auth"  # the credentials are wrong or lack a permission
    FATAL = "fatal"  # stop: the configuration or the remote side needs a person


RETRIED = frozenset({Action.RETRY, Action.THROTTLE})


@dataclass(frozen=True)
class Failure:
    """One attempt's answer as a service's table reads it."""

    action: Action
    error: BridgeError  # raised when the call is not (or no longer) retried
    row: str = ""  # the table row that matched: for logs and the table tests
    retry_after: float | None = None  # what the server asked for, in seconds
    floor: float = 0.0  # the least wait that can help, before the jitter
    retries: int | None = None  # at most this many retries for this answer (a first contact)


@dataclass(frozen=True)
class Row(Generic[A]):
    """One line of a service's table: which answers it takes, what they mean, and the error to
    raise, in words made from the answer. The first row that matches wins."""

    name: str
    matches: Callable[[A], bool]
    action: Action
    raises: type[BridgeError]
    says: Callable[[A], str]
    retries: Callable[[A], int | None] = lambda a: None  # fewer retries than the policy's


def first_row(table: tuple[Row[A], ...], answer: A) -> Row[A]:
    return next(row for row in table if row.matches(answer))


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries a call gets and how long it waits between them. One per client; the
    defaults serve every client (a client that must answer a person quickly passes fewer
    attempts or a shorter `longest_wait`)."""

    attempts: int = 8  # tries in all, the first included
    base: float = 1.0  # the first retry waits up to this
    cap: float = 60.0  # no backoff waits longer
    longest_wait: float = 300.0  # a Retry-After beyond this goes back to the caller
    sleep: Sleep = asyncio.sleep
    random: Callable[[], float] = random.random  # in [0, 1): the jitter
    now: Callable[[], datetime] = _utc_now  # the clock a Retry-After date is read against

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a call gets at least one attempt")
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")

    def replace(self, **changes: Any) -> RetryPolicy:
        return dataclasses.replace(self, **changes)

    def backoff(self, retry: int) -> float:
        """Full jitter before retry `retry` (1 for the first)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(retry - 1, 0), 62))
        return ceiling * self.random()

    def delay(self, retry: int, failure: Failure) -> float | None:
        """Seconds to wait before retry `retry`, or None when the server asks for longer than a
        call should wait."""
        if failure.retry_after is not None:
            return failure.retry_after if failure.retry_after <= self.longest_wait else None
        return failure.floor + self.backoff(retry)

    def retries_for(self, failure: Failure) -> int:
        allowed = self.attempts - 1
        return allowed if failure.retries is None else min(allowed, failure.retries)

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        return parse_retry_after(headers, self.now())


DEFAULT = RetryPolicy()


async def call(
    attempt: Callable[[], Awaitable[T | Failure]],
    policy: RetryPolicy,
    *,
    what: str,
    pause: Callable[[float], Awaitable[object]] | None = None,
    on_retry: Callable[[Failure], object] | None = None,
) -> T:
    """Run `attempt` until it returns a value, retrying what the table says to retry.

    `pause` holds back everyone on the caller's budget: a throttled call waits there (in its next
    token) instead of sleeping, and the pause stands even when this call gives up now."""
    retry = 0
    while True:
        outcome = await attempt()
        if not isinstance(outcome, Failure):
            return outcome
        if outcome.action not in RETRIED:
            raise outcome.error
        wait = policy.delay(retry + 1, outcome)
        if wait is None:
            raise outcome.error
        paused = outcome.action is Action.THROTTLE and pause is not None
        if paused:
            assert pause is not None
            await pause(wait)
        allowed = policy.retries_for(outcome)
        if retry >= allowed:  # the caller reports the error: no log line of its own here
            raise outcome.error
        retry += 1
        if on_retry is not None:
            on_retry(outcome)
        # The quick retries of a first contact end in one clear error: no warning for each.
        level = logging.INFO if isinstance(outcome.error, Unreachable) else logging.WARNING
        log.log(level, "%s: %s; retry %d of %d in %.1f s", what, outcome.error, retry, allowed, wait)
        if not paused:
            await policy.sleep(wait)


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
