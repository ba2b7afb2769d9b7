"""A Whop company and a provisioned Twenty workspace (a copy of one provisioned per session),
both in-process, for sync tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bridge.config import Settings, load_settings
from bridge.runtime import Runtime, Transports
from bridge.whop.auth import StaticToken
from bridge.whop.client import WhopClient
from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.provisioned import provisioned_twenty

TWENTY_KEY = "twenty-test-key"
WHOP_KEY = "whop-test-key"
COMPANY = "biz_synctest"
SHARED_EMAIL = "ann.shared@example.com"


@dataclass
class World:
    twenty: FakeTwenty
    whop: FakeWhop
    settings: Settings
    transports: Transports
    runtime: Runtime  # the bridge process under test, over the in-process fakes

    def people(self) -> list[dict[str, Any]]:
        return [r for r in self.twenty.records("people") if not r.get("deletedAt")]

    def opportunities(self) -> list[dict[str, Any]]:
        return [r for r in self.twenty.records("opportunities") if not r.get("deletedAt")]

    def products(self) -> list[dict[str, Any]]:
        return [r for r in self.twenty.records("whopProducts") if not r.get("deletedAt")]

    async def whop_lists(self) -> dict[str, list[Any]]:
        """What Whop says, read through the bridge's own client (the expected state)."""
        http = httpx.AsyncClient(transport=self.transports.whop)
        async with WhopClient("http://whop.test", StaticToken(WHOP_KEY), COMPANY, http=http) as client:
            out: dict[str, list[Any]] = {"products": [], "members": [], "memberships": []}
            for name, lister in (
                ("products", client.list_products),
                ("members", client.list_members),
                ("memberships", client.list_memberships),
            ):
                async for page in lister():
                    out[name].extend(page.data)
        await http.aclose()
        return out


def micros(amount: Decimal) -> int:
    return int(amount * 1_000_000)


async def make_world(
    tmp_path: Any, dialect: str = "2.x", members: int = 40, memberships: int = 55, **settings: Any
) -> World:
    twenty = await provisioned_twenty(dialect, TWENTY_KEY)
    whop = FakeWhop(api_key=WHOP_KEY)
    seed_company(
        whop,
        company_id=COMPANY,
        title="Sync Test Co",
        members=members,
        memberships=memberships,
        products=3,
        seed=7,
        shared_emails=[SHARED_EMAIL],
    )
    seed_company(whop, company_id="biz_othercompany", title="Other Co", members=5, memberships=5, products=1, seed=8)
    transports = Transports(twenty=httpx.ASGITransport(app=twenty), whop=httpx.ASGITransport(app=whop))
    values = {
        "TWENTY_URL": "http://twenty.test",
        "TWENTY_API_KEY": TWENTY_KEY,
        "WHOP_API_URL": "http://whop.test",
        "WHOP_API_KEY": WHOP_KEY,
        "WHOP_COMPANY_ID": COMPANY,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
        "TWENTY_REQUESTS_PER_MINUTE": 100_000,
        "WHOP_REQUESTS_PER_SECOND": 10_000,
        **settings,
    }
    twenty.reset_stats()
    settings = load_settings(**values)
    runtime = await Runtime.open(settings, transports=transports)
    OPENED.append(runtime)
    return World(twenty, whop, settings, transports, runtime)


# The runtimes `make_world` opened, closed after each test (`tests/conftest.py`): a runtime left
# open kept its pooled SQLite connections, whose threads, collected after the test's event loop
# had closed, ended in "Event loop is closed" warnings during some later test.
OPENED: list[Runtime] = []


async def close_worlds() -> None:
    """Close every runtime `make_world` opened, on the running loop (a runtime whose store a test
    opened on a loop of its own is closed by that test: here it has nothing left to close)."""
    while OPENED:
        await OPENED.pop().aclose()


@pytest.fixture(params=["2.x", "1.x"])
async def world(request: pytest.FixtureRequest, tmp_path: Any) -> World:
    return await make_world(tmp_path, request.param)
