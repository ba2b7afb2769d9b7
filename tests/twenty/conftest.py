from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.config import Settings, load_settings
from fakes.twenty import FakeTwenty

TWENTY_KEY = "twenty-test-key"


@pytest.fixture(params=["2.x", "1.x"])
def fake_twenty(request: pytest.FixtureRequest) -> FakeTwenty:
    return FakeTwenty(dialect=request.param, api_key=TWENTY_KEY)


@pytest.fixture
def twenty_transport(fake_twenty: FakeTwenty) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=fake_twenty)


@pytest.fixture
def settings(tmp_path: object) -> Settings:
    return load_settings(
        TWENTY_URL="http://twenty.test",
        TWENTY_API_KEY=TWENTY_KEY,
        DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
        BRIDGE_PUBLIC_URL="http://bridge.test",
    )


@pytest.fixture
async def meta(twenty_transport: httpx.AsyncBaseTransport) -> AsyncIterator[object]:
    from bridge.twenty.metadata import MetadataClient

    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=twenty_transport) as client:
        yield client


@pytest.fixture
async def views(twenty_transport: httpx.AsyncBaseTransport) -> AsyncIterator[object]:
    """The workspace's view records (data API): the views 1.x's screens show."""
    from bridge.twenty.data import TwentyDataClient
    from bridge.twenty.view_records import ViewRecordsApi

    async with TwentyDataClient("http://twenty.test", TWENTY_KEY, transport=twenty_transport) as data:
        yield ViewRecordsApi(data)
