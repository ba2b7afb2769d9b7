"""A Whop or Twenty that cannot be reached: a refused connection or an unknown host before the
service ever answered is given two quick retries, then one error naming the setting to check;
once the service has answered, connection failures are retried as before."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from bridge import retry
from bridge.errors import Unreachable
from bridge.twenty.data import TwentyDataClient
from bridge.whop.auth import StaticToken
from bridge.whop.client import WhopClient

WHOP = "http://whop.test"
TWENTY = "http://twenty.test"


def refused(request: httpx.Request) -> httpx.ConnectError:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as cause:
        error = httpx.ConnectError("All connection attempts failed", request=request)
        error.__cause__ = cause
        return error


def unknown_host(request: httpx.Request) -> httpx.ConnectError:
    try:
        raise socket.gaierror(-2, "Name or service not known")
    except socket.gaierror as cause:
        error = httpx.ConnectError("[Errno -2] Name or service not known", request=request)
        error.__cause__ = cause
        return error


class Script:
    """A transport that plays a list of answers in order: a Response, or a function making an error."""

    def __init__(self, *steps: httpx.Response | Callable[[httpx.Request], Exception]) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, httpx.Response):
            return step
        raise step(request)


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(sleeps: Sleeps) -> retry.RetryPolicy:
    return retry.DEFAULT.replace(sleep=sleeps, random=lambda: 0.999)  # the longest backoff


def whop_client(script: Script, sleeps: Sleeps) -> WhopClient:
    transport = httpx.MockTransport(script)
    return WhopClient(
        WHOP, StaticToken("k"), "biz_1", transport=transport, retry_policy=policy(sleeps), requests_per_second=1e6
    )


def twenty_client(script: Script, sleeps: Sleeps) -> TwentyDataClient:
    transport = httpx.MockTransport(script)
    return TwentyDataClient(
        TWENTY, "k", transport=transport, retry_policy=policy(sleeps), requests_per_minute=1_000_000
    )


@pytest.mark.parametrize(("failure", "why"), [(refused, "connection refused"), (unknown_host, "host not found")])
async def test_whop_never_reached_gives_up_after_two_quick_retries_naming_whop_api_url(
    failure: Callable[[httpx.Request], Exception], why: str
) -> None:
    script, sleeps = Script(failure), Sleeps()
    async with whop_client(script, sleeps) as whop:
        with pytest.raises(Unreachable) as caught:
            await whop.get_plan("plan_1")
    assert str(caught.value) == f"cannot reach Whop at {WHOP} ({why}); check WHOP_API_URL and the network"
    assert script.calls == 3 and sum(sleeps) <= 3


async def test_whop_that_answered_once_is_retried_through_a_refused_connection_as_before() -> None:
    script = Script(httpx.Response(200, json={"id": "plan_1"}), refused, refused, refused, refused)
    script.steps.append(httpx.Response(200, json={"id": "plan_2"}))
    sleeps = Sleeps()
    async with whop_client(script, sleeps) as whop:
        await whop.get_plan("plan_1")
        assert (await whop.get_plan("plan_2")).id == "plan_2"
    assert len(sleeps) == 4  # more than the first-contact two: a blip mid-run is waited out


async def test_whop_connect_timeout_at_first_contact_is_not_retried() -> None:
    script, sleeps = Script(lambda request: httpx.ConnectTimeout("timed out", request=request)), Sleeps()
    async with whop_client(script, sleeps) as whop:
        with pytest.raises(Unreachable, match=r"\(no answer\); check WHOP_API_URL"):
            await whop.get_plan("plan_1")
    assert script.calls == 1 and sleeps == []


async def test_twenty_never_reached_gives_up_after_two_quick_retries_naming_twenty_url() -> None:
    script, sleeps = Script(refused), Sleeps()
    async with twenty_client(script, sleeps) as twenty:
        with pytest.raises(Unreachable) as caught:
            await twenty.graphql("query { people { edges { node { id } } } }", {}, operation="read people", write=False)
    assert (
        str(caught.value) == f"cannot reach Twenty at {TWENTY} (connection refused); check TWENTY_URL and the network"
    )
    assert script.calls == 3 and sum(sleeps) <= 3


async def test_twenty_that_answered_once_retries_a_dropped_connection() -> None:
    answer = httpx.Response(200, json={"data": {"people": []}})
    script, sleeps = Script(answer, refused, lambda r: httpx.ReadTimeout("slow", request=r), answer), Sleeps()
    async with twenty_client(script, sleeps) as twenty:
        for _ in range(2):
            assert await twenty.graphql("query { x }", {}, operation="read people", write=False) == {"people": []}
    assert script.calls == 4 and len(sleeps) == 2


def test_a_password_in_the_url_is_not_repeated() -> None:
    from bridge import reach

    request = httpx.Request("GET", "http://u:secret@twenty.test/")
    error = reach.unreachable("Twenty", "http://u:secret@twenty.test", "TWENTY_URL", refused(request))
    assert "secret" not in str(error) and "http://twenty.test" in str(error)
