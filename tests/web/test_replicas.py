"""Two bridge processes on one database (SQLite and PostgreSQL): a company disconnected by one is
refused by the other within seconds, a process restarted soon after it started asks Whop to
replay what it missed, and replicas starting together still ask once.

Each `Runtime` here is one process's worth of state (its own pool, leases and secret cache)
over the same store, with the bridge app in front of it; the fake Whop plays Whop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette

from bridge import companies, registration
from bridge.config import Settings, load_settings
from bridge.runtime import Runtime, Transports
from bridge.store import inbox
from bridge.store.connections import SecretCache
from bridge.store.db import utcnow
from bridge.web.app import create_app
from fakes.whop import FakeWhop, seed_company
from tests.web.conftest import (
    BRIDGE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    TWENTY_KEY,
    TWENTY_URL,
    WHOP_URL,
)

SECOND = "biz_replica"
HOOK_URL = f"{BRIDGE_URL}/webhooks/whop"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: object) -> Settings:
    is_sqlite = request.param == "sqlite"
    url = f"sqlite:///{tmp_path}/bridge.db" if is_sqlite else request.getfixturevalue("postgres_url")
    return load_settings(
        TWENTY_URL=TWENTY_URL,
        TWENTY_API_KEY=TWENTY_KEY,
        DATABASE_URL=url,
        BRIDGE_PUBLIC_URL=BRIDGE_URL,
        BRIDGE_ADMIN_PASSWORD=PASSWORD,
        BRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
        WHOP_CLIENT_ID=CLIENT_ID,
        WHOP_CLIENT_SECRET=CLIENT_SECRET,
        WHOP_API_URL=WHOP_URL,
        TWENTY_REQUESTS_PER_MINUTE=100_000,
        WHOP_REQUESTS_PER_SECOND=10_000,
    )


@pytest.fixture
def first(app: Starlette) -> Runtime:
    """The process the `app` fixture runs (the other fixtures' store and transports)."""
    return app.state.ctx.runtime  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def process(settings: Settings, transports: Transports) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """Another bridge process on the same database: its own runtime and app."""
    runtime = Runtime(settings, transports=transports)
    await runtime.prepare()
    app = create_app(runtime, background=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as client:
            yield runtime, client
    finally:
        await runtime.aclose()


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Down(httpx.AsyncBaseTransport):
    """The bridge while it is stopped: every delivery is refused."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


async def connect_second(fake: FakeWhop, runtime: Runtime) -> str:
    """Connect a company by its API key (the bridge registers its webhook); one membership id."""
    seed_company(fake, company_id=SECOND, title="Replica Shop", members=3, products=1, neighbor=False)
    added = await companies.connect_api_key(runtime, fake.api_key_for(SECOND))
    assert added.webhook.ok, added.webhook.summary
    return next(ms.id for ms in fake.memberships.values() if ms.company_id == SECOND)


def replay_asks(fake: FakeWhop) -> int:
    """How many times the bridge asked Whop to replay a webhook's deliveries."""
    return sum(1 for r in fake.stats.requests if r.method == "POST" and r.path.endswith("/replay"))


async def test_a_company_disconnected_by_one_process_is_refused_by_another_within_the_cache_age(
    settings: Settings, transports: Transports, first: Runtime, client: httpx.AsyncClient, fake_whop: FakeWhop
) -> None:
    membership = await connect_second(fake_whop, first)
    (hook,) = fake_whop.webhooks_of(SECOND)
    old_secret = hook.secret
    async with process(settings, transports) as (other, other_client):
        clock = Ticks()
        other.webhook_secrets.clock = clock
        fake_whop.webhook_client = other_client
        (sent,) = await fake_whop.emit(SECOND, "membership.updated", membership)
        assert sent.response_code == 200  # the other process knows the company's secret

        await companies.disconnect(first, SECOND)
        assert fake_whop.webhooks_of(SECOND) == []

        async def signed_with_the_old_secret(to: httpx.AsyncClient) -> int:
            answer = await fake_whop.deliver(
                HOOK_URL, "membership.updated", membership, old_secret, company_id=SECOND, client=to
            )
            return answer.status_code

        assert await signed_with_the_old_secret(client) == 401  # the process that disconnected
        clock.advance(SecretCache.MAX_AGE)
        assert await signed_with_the_old_secret(other_client) == 401  # every other one, this much later
        assert await signed_with_the_old_secret(other_client) == 401
        fake_whop.webhook_client = None
    stored = await inbox.list_events(first.store, limit=10)
    assert [e.webhook_id for e in stored] == [sent.message_id]


async def test_a_process_restarted_soon_after_it_started_asks_whop_to_replay_what_it_missed(
    settings: Settings, transports: Transports, first: Runtime, client: httpx.AsyncClient, fake_whop: FakeWhop
) -> None:
    membership = await connect_second(fake_whop, first)
    fake_whop.hooks.retry_delays = ()  # Whop's own retries would reach the restarted process too
    fake_whop.webhook_client = client
    (before,) = await fake_whop.emit(SECOND, "membership.updated", membership)
    assert before.response_code == 200
    asked = await registration.recover_all(first)  # the first process's start-up step
    assert asked[SECOND] is not None and replay_asks(fake_whop) == 1

    # It stops for a minute; Whop's delivery meanwhile fails.
    async with httpx.AsyncClient(transport=Down()) as down:
        fake_whop.webhook_client = down
        (missed,) = await fake_whop.emit(SECOND, "membership.updated", membership)
        assert not missed.success

    async with process(settings, transports) as (restarted, restarted_client):
        fake_whop.webhook_client = restarted_client
        asked = await registration.recover_all(restarted)
        fake_whop.webhook_client = None
        assert asked[SECOND] is not None and replay_asks(fake_whop) == 2
        stored = {e.webhook_id for e in await inbox.list_events(restarted.store, limit=10)}
        assert stored == {before.message_id, missed.message_id}


async def test_replicas_starting_together_ask_whop_to_replay_once(
    settings: Settings, transports: Transports, first: Runtime, fake_whop: FakeWhop
) -> None:
    await connect_second(fake_whop, first)
    async with process(settings, transports) as (a, _), process(settings, transports) as (b, _):
        asked = await asyncio.gather(registration.recover_all(a), registration.recover_all(b))
        assert sorted(x[SECOND] is not None for x in asked) == [False, True]
        assert replay_asks(fake_whop) == 1


async def test_a_replica_started_before_another_asked_skips_its_own_ask(
    settings: Settings, transports: Transports, first: Runtime, fake_whop: FakeWhop
) -> None:
    await connect_second(fake_whop, first)
    async with process(settings, transports) as (a, _), process(settings, transports) as (b, _):
        assert (await registration.recover_all(a))[SECOND] is not None
        assert (await registration.recover_all(b))[SECOND] is None  # a asked after b started
        assert replay_asks(fake_whop) == 1


async def test_a_narrower_replay_asked_after_a_start_does_not_stand_in_for_the_start_up_one(
    settings: Settings, transports: Transports, first: Runtime, fake_whop: FakeWhop
) -> None:
    await connect_second(fake_whop, first)
    async with process(settings, transports) as (starting, _):
        # Another process asks for the last minute only (a reconciliation saw a recent failure).
        await registration.recover(first, SECOND, since=utcnow() - timedelta(minutes=1), force=True)
        since = (await registration.recover_all(starting))[SECOND]
        assert since is not None and since < utcnow() - timedelta(minutes=1)
        assert replay_asks(fake_whop) == 2
