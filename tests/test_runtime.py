"""One runtime per process: what the whole process shares holds across its event loops, and a
sync keeps its lease however long it runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bridge import services
from bridge.background import Background
from bridge.runtime import Runtime
from bridge.services import SyncBusy, run_sync
from bridge.store import inbox
from bridge.store import leases as leases_module
from bridge.store import runs as run_store
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from bridge.webhooks import WebhookReceiver
from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.loopback import serve
from tests.store.test_leases import LeaseClock, Renewals
from tests.sync.conftest import COMPANY, TWENTY_KEY, WHOP_KEY, make_world

SECRET = "ws_runtime_test_secret_0123456789"


@contextlib.contextmanager
def fakes_on_loopback() -> Iterator[tuple[FakeTwenty, FakeWhop, str, str]]:
    """The stand-ins on uvicorn in threads: safe to call from any event loop of this process."""
    twenty = FakeTwenty(dialect="2.x", api_key=TWENTY_KEY)
    whop = FakeWhop(api_key=WHOP_KEY)
    seed_company(whop, company_id=COMPANY, title="Runtime Co", members=30, memberships=40, products=2, seed=3)
    with serve(twenty) as twenty_url, serve(whop) as whop_url:
        yield twenty, whop, twenty_url, whop_url


async def test_an_admin_sync_during_a_webhook_burst_for_the_same_records_loses_nothing(tmp_path: Any) -> None:
    """`serve`: the worker applies a burst on its thread's loop while "Sync now" runs on the web loop.

    Both write the same Opportunities under one per-object lease: before the runtime, that lock
    was an asyncio.Lock shared by both loops, and one side raised or waited forever.
    """
    from bridge.config import load_settings

    with fakes_on_loopback() as (twenty, whop, twenty_url, whop_url):
        settings = load_settings(
            TWENTY_URL=twenty_url,
            TWENTY_API_KEY=TWENTY_KEY,
            WHOP_API_URL=whop_url,
            WHOP_API_KEY=WHOP_KEY,
            WHOP_COMPANY_ID=COMPANY,
            WHOP_WEBHOOK_SECRET=SECRET,
            DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
            TWENTY_REQUESTS_PER_MINUTE=100_000,
            WHOP_REQUESTS_PER_SECOND=10_000,
            TWENTY_BATCH_SIZE=5,  # many small batches: the two writers interleave
        )
        async with MetadataClient(twenty_url, TWENTY_KEY) as meta:
            await provision(meta, load_data_model(), "http://bridge.test")
        runtime = await Runtime.open(settings)
        await run_sync(runtime, kind="full")
        memberships = [m for m in whop.memberships.values() if m.company_id == COMPANY]

        background = Background(runtime, poll_interval=0.05)
        await background.start()
        receiver = WebhookReceiver(runtime.store, [SECRET], on_stored=background.wake)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=Starlette(routes=[receiver.route()])), base_url="http://bridge.test"
            ) as http:
                statuses = ["past_due", "canceled", "active", "expired"]
                for i, ms in enumerate(memberships):
                    whop.update_membership(ms.id, status=statuses[i % len(statuses)])
                admin_sync = asyncio.create_task(run_sync(runtime, kind="full", trigger="admin"))
                for i, ms in enumerate(memberships):
                    response = await whop.deliver(
                        "http://bridge.test/webhooks/whop",
                        "membership.updated",
                        ms.id,
                        SECRET,
                        webhook_id=f"msg_burst_{i}",
                        client=http,
                        company_id=COMPANY,
                    )
                    assert response.status_code == 200
                result = await asyncio.wait_for(admin_sync, 60)
                for _ in range(300):
                    counts = await inbox.counts(runtime.store)
                    if counts.get("applied", 0) + counts.get("ignored", 0) == len(memberships):
                        break
                    await asyncio.sleep(0.1)
        finally:
            await background.stop()
        counts = await inbox.counts(runtime.store)
        await runtime.aclose()

    assert result.status == "succeeded"
    # Each delivery is applied, or dropped because the sync had already written that state.
    assert counts.get("applied", 0) + counts.get("ignored", 0) == len(memberships)
    assert not counts.get("failed") and not counts.get("dead") and not counts.get("pending")
    opps = [o for o in twenty.records("opportunities") if o.get("whopMembershipId")]
    assert len(opps) == len({o["whopMembershipId"] for o in opps}) == len(memberships), "no duplicate, none lost"
    by_id = {o["whopMembershipId"]: o for o in opps}
    for ms in memberships:
        assert by_id[ms.id]["whopMembershipStatus"] == ms.status.upper(), f"{ms.id} shows Whop's state"


async def test_a_sync_longer_than_its_lease_ttl_keeps_the_lease_and_no_second_run_starts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judged on the clock leases are stamped by, which the test moves, while Twenty holds the
    run's calls: however slow the machine, the run lasts as many TTLs as the test says."""
    monkeypatch.setattr(services, "SYNC_LOCK_TTL", 0.6)
    clock, renewals = LeaseClock(), Renewals(monkeypatch)
    monkeypatch.setattr(leases_module, "utcnow", clock)
    world = await make_world(tmp_path, "2.x", members=30, memberships=40, TWENTY_BATCH_SIZE=5)
    twenty = world.transports.twenty
    assert isinstance(twenty, httpx.ASGITransport)
    answering, fake_twenty = asyncio.Event(), twenty.app

    async def held_twenty(scope: Any, receive: Any, send: Any) -> None:
        await answering.wait()
        await fake_twenty(scope, receive, send)

    twenty.app = held_twenty
    first = asyncio.create_task(run_sync(world.runtime, kind="full"))
    await renewals.next()  # the run holds its lease, and its keeper renewed it
    for _ in range(5):  # two TTLs and more pass, the keeper renewing as it goes
        clock.advance(0.25)
        renewals.once()
        await renewals.next()
    assert not first.done(), "the run should still be going"

    other_process = Runtime(world.settings, transports=world.transports)
    with pytest.raises(SyncBusy, match="already running"):
        await run_sync(other_process, kind="full")
    answering.set()
    result = await first

    assert result.status == "succeeded"
    runs = await run_store.recent_runs(world.runtime.store, COMPANY)
    assert [(r.kind, r.status) for r in runs] == [("full", "succeeded")], "never marked interrupted, never resumed"
    await other_process.aclose()
