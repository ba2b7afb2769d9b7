"""The metadata client under a server that throttles it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from bridge.errors import RetryableError
from bridge.twenty.metadata import MAX_429_RETRIES, MetadataClient
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from tests.fakes.twenty import FakeTwenty
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
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, sleep=sleep) as meta:
        result = await provision(meta, load_data_model(), "http://bridge.test")
    assert not result.plan.conflicts and result.mutations > 0
    assert waits == [20.0, 40.0]  # no Retry-After from Twenty: a growing share of its minute
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, sleep=sleep) as meta:
        assert (await provision(meta, load_data_model(), "http://bridge.test")).mutations == 0


async def test_a_server_that_keeps_answering_429_ends_in_a_retryable_error(fake_twenty: FakeTwenty) -> None:
    app = Throttling(fake_twenty, refuse=set(range(2, 100)))

    async def sleep(_: float) -> Any:
        return None

    transport = httpx.ASGITransport(app=app)
    with pytest.raises(RetryableError, match="429"):
        async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport, sleep=sleep) as meta:
            await meta.list_objects()
    assert app.calls == 1 + MAX_429_RETRIES + 1
