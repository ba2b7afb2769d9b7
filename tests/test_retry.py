"""The one retry policy: how long a call waits between tries and when it stops. A fake clock and a
fake sleep throughout: nothing here waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bridge import retry
from bridge.errors import AuthError, BridgeError, RateLimited, RetryableError, Unreachable
from bridge.retry import Action, Failure, RetryPolicy

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(sleeps: Sleeps | None = None, *, jitter: float = 1.0, **changes: object) -> RetryPolicy:
    return retry.DEFAULT.replace(
        sleep=Sleeps() if sleeps is None else sleeps, random=lambda: jitter, now=lambda: NOW, **changes
    )


def failing(action: Action = Action.RETRY, error: BridgeError | None = None, **kw: object) -> Failure:
    return Failure(action, error or RetryableError("Twenty answered HTTP 503"), **kw)  # type: ignore[arg-type]


class Script:
    """An attempt that plays its outcomes in order, the last one for ever."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> object:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        return outcome


# The waits ---------------------------------------------------------------------------------------


def test_the_backoff_ceiling_doubles_from_one_second_up_to_a_minute() -> None:
    ceilings = [policy(jitter=1.0).backoff(n) for n in range(1, 10)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy(jitter=1.0).backoff(10_000) == 60  # no overflow far out


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999])
def test_the_jitter_is_full_anywhere_from_nothing_to_the_ceiling(jitter: float) -> None:
    assert policy(jitter=jitter).backoff(3) == pytest.approx(4 * jitter)


def test_a_retry_after_is_waited_as_the_server_says_and_no_jitter_is_added() -> None:
    assert policy(jitter=0.5).delay(1, failing(retry_after=7.0)) == 7.0
    assert policy(jitter=0.5).delay(6, failing(retry_after=0.0)) == 0.0


def test_a_retry_after_beyond_the_longest_wait_goes_back_to_the_caller() -> None:
    assert policy().delay(1, failing(retry_after=300.0)) == 300.0
    assert policy().delay(1, failing(retry_after=301.0)) is None
    assert policy(longest_wait=10.0).delay(1, failing(retry_after=11.0)) is None


def test_a_floor_comes_before_the_jitter() -> None:
    # Twenty says no Retry-After: one request's refill first (0.6 s at 100 a minute).
    assert policy(jitter=0.5).delay(2, failing(Action.THROTTLE, floor=0.6)) == pytest.approx(0.6 + 1.0)


def test_a_retry_after_date_is_read_against_the_injected_clock() -> None:
    later = format_datetime(NOW + timedelta(seconds=45), usegmt=True)
    assert policy().retry_after(httpx.Headers({"Retry-After": later})) == 45.0
    assert policy().retry_after(httpx.Headers({"Retry-After": "12"})) == 12.0
    assert policy().retry_after(httpx.Headers({})) is None


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base=2.0, cap=1.0)


# The loop ----------------------------------------------------------------------------------------


async def test_a_call_that_succeeds_at_once_never_sleeps() -> None:
    sleeps = Sleeps()
    assert await retry.call(Script({"ok": 1}), policy(sleeps), what="read") == {"ok": 1}
    assert sleeps == []


async def test_retries_wait_by_the_backoff_and_the_answer_comes_back() -> None:
    sleeps, attempt = Sleeps(), Script(failing(), failing(), failing(), "done")
    seen: list[Failure] = []
    assert await retry.call(attempt, policy(sleeps, jitter=0.5), what="read", on_retry=seen.append) == "done"
    assert sleeps == [0.5, 1.0, 2.0]
    assert attempt.calls == 4 and len(seen) == 3


async def test_the_tries_run_out_with_the_tables_error() -> None:
    sleeps, attempt = Sleeps(), Script(failing())
    with pytest.raises(RetryableError, match="503"):
        await retry.call(attempt, policy(sleeps, attempts=3), what="read")
    assert attempt.calls == 3 and len(sleeps) == 2


@pytest.mark.parametrize("action", [Action.RESIZE, Action.SKIP, Action.AUTH, Action.FATAL])
async def test_what_is_not_to_be_retried_is_raised_at_once(action: Action) -> None:
    sleeps, attempt = Sleeps(), Script(failing(action, AuthError("refused")))
    with pytest.raises(AuthError):
        await retry.call(attempt, policy(sleeps), what="read")
    assert attempt.calls == 1 and sleeps == []


async def test_an_answer_may_allow_fewer_retries_than_the_policy() -> None:
    # A first contact: two quick retries, then the error that names the setting to check.
    sleeps, attempt = Sleeps(), Script(failing(error=Unreachable("cannot reach Twenty"), retries=2))
    with pytest.raises(Unreachable):
        await retry.call(attempt, policy(sleeps), what="read")
    assert attempt.calls == 3 and sleeps == [1.0, 2.0]
    never = Script(failing(error=Unreachable("cannot reach Twenty"), retries=0))
    with pytest.raises(Unreachable):
        await retry.call(never, policy(sleeps), what="read")
    assert never.calls == 1 and sleeps == [1.0, 2.0]


async def test_a_throttle_pauses_the_budget_instead_of_sleeping_even_when_it_gives_up() -> None:
    sleeps, pauses = Sleeps(), Sleeps()
    throttled = failing(Action.THROTTLE, RateLimited("slow down", retry_after=5.0), retry_after=5.0)
    with pytest.raises(RateLimited) as caught:
        await retry.call(Script(throttled), policy(sleeps, attempts=2), what="read", pause=pauses)
    assert pauses == [5.0, 5.0], "everyone on the budget waits, the last refusal too"
    assert sleeps == [], "the caller waits in its next token, not here"
    assert caught.value.retry_after == 5.0


async def test_a_throttle_without_a_budget_sleeps() -> None:
    sleeps = Sleeps()
    attempt = Script(failing(Action.THROTTLE, RateLimited("slow down"), floor=0.6), "done")
    assert await retry.call(attempt, policy(sleeps, jitter=0.5), what="metadata") == "done"
    assert sleeps == pytest.approx([1.1])


async def test_a_wait_longer_than_a_call_should_take_is_handed_to_the_caller_untaken() -> None:
    sleeps, pauses = Sleeps(), Sleeps()
    long = failing(Action.THROTTLE, RateLimited("wait an hour", retry_after=3600.0), retry_after=3600.0)
    with pytest.raises(RateLimited) as caught:
        await retry.call(Script(long), policy(sleeps), what="read", pause=pauses)
    assert caught.value.retry_after == 3600.0
    assert sleeps == [] and pauses == []
