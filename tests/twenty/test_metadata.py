"""The metadata client under a server that throttles it, fails for a moment, or refuses a change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from bridge import retry
from bridge.errors import RetryableError, SkippableError
from bridge.twenty.metadata import MetadataClient, MetadataError
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from fakes.twenty import FakeTwenty
from tests.twenty.conftest import TWENTY_KEY


class Throttling:
    """The fake Twenty, answering 429 to the metadata calls numbered in `refuse` (1-based)."""

    def __init__(self, app: FakeTwenty, refuse: set[int]) -> None:
        self.app, self.refuse, self.calls = app, refuse, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metadata":
            self.calls += 1
            if self.calls in self.refuse:
                await send({"type": "http.response.start", "status": 429, "headers": []})
                await send({"type": "http.response.body", "body": b'{"messages":["Limit reached"]}'})
                return
        await self.app(scope, receive, send)


async def test_a_429_during_provisioning_is_waited_out_and_provisioning_finishes(fake_twenty: FakeTwenty) -> None:
    app = Throttling(fake_twenty, refuse={3, 4})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    transport = httpx.ASGITransport(app=app)
    policy = retry.DEFAULT.replace(sleep=sleep, random=lambda: 0.5)
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, retry_policy=policy) as meta:
        result = await provision(meta, load_data_model(), "http://bridge.test")
    assert not result.plan.conflicts and result.mutations > 0
    # No Retry-After from Twenty: one request's refill (60 s / 100) and then the backoff, which
    # doubles (its jitter fixed at half here).
    assert waits == pytest.approx([0.6 + 0.5, 0.6 + 1.0])
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, retry_policy=policy) as meta:
        assert (await provision(meta, load_data_model(), "http://bridge.test")).mutations == 0


async def test_a_server_that_keeps_answering_429_ends_in_a_retryable_error(fake_twenty: FakeTwenty) -> None:
    app = Throttling(fake_twenty, refuse=set(range(2, 100)))

    async def sleep(_: float) -> Any:
        return None

    transport = httpx.ASGITransport(app=app)
    with pytest.raises(RetryableError, match="429"):
        async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, sleep=sleep) as meta:
            await meta.list_objects()
    assert app.calls == 1 + retry.DEFAULT.attempts


class Failing:
    """The fake Twenty, failing the metadata calls numbered in `fail` (1-based) with `how`."""

    def __init__(self, app: FakeTwenty, fail: set[int], how: str) -> None:
        self.app, self.fail, self.how, self.calls = app, fail, how, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metadata":
            self.calls += 1
            if self.calls in self.fail:
                if self.how == "drop":
                    raise httpx.ReadError("connection reset by peer")
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"Service Unavailable"})
                return
        await self.app(scope, receive, send)


@pytest.mark.parametrize("how", ["503", "drop"])
async def test_a_twenty_blip_during_provisioning_is_retried_and_provisioning_finishes(
    fake_twenty: FakeTwenty, how: str
) -> None:
    """Before: a 5xx or a dropped connection from /metadata stopped provisioning at once."""
    app = Failing(fake_twenty, fail={3, 7, 8}, how=how)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = retry.DEFAULT.replace(sleep=sleep, random=lambda: 0.5)
    transport = httpx.ASGITransport(app=app)
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, retry_policy=policy) as meta:
        result = await provision(meta, load_data_model(), "http://bridge.test")
    assert not result.plan.conflicts and result.mutations > 0
    assert waits == [0.5, 0.5, 1.0]  # the backoff of each call's own retries
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, retry_policy=policy) as meta:
        assert (await provision(meta, load_data_model(), "http://bridge.test")).mutations == 0


async def test_a_refused_metadata_change_is_never_retried(fake_twenty: FakeTwenty) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    transport = httpx.ASGITransport(app=fake_twenty)
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, sleep=sleep) as meta:
        person = (await meta.list_objects())["person"]
        spec = {"objectMetadataId": person.id, "type": "TEXT", "name": "whopNote", "label": "Whop Note"}
        await meta.create_field(spec)
        with pytest.raises(MetadataError) as refused:
            await meta.create_field(spec)
    assert isinstance(refused.value, SkippableError), "a refused input, the same in both Twenty APIs"
    assert waits == []
