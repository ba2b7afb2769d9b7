"""Webhook deliveries are applied exactly once in effect, whatever their order or duplication."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge import worker as worker_module
from bridge.services import run_sync
from bridge.store import inbox, tables
from bridge.store.db import create_engine, utcnow
from bridge.sync import objects
from bridge.sync.objects import SyncedObject
from bridge.twenty.data import TASK, TwentyDataClient
from bridge.webhooks import WebhookReceiver
from bridge.worker import Worker
from fakes.whop import signer
from tests.sync.conftest import COMPANY, TWENTY_KEY, World, make_world

SECRET = "ws_worker_test_secret_0123456789"


async def _no_sleep(_: float) -> None:
    return None


@dataclass
class Bridge:
    world: World
    store: AsyncEngine
    http: httpx.AsyncClient  # talks to the webhook endpoint

    def worker(self, **kw: Any) -> Worker:
        twenty = TwentyDataClient(
            "http://twenty.test",
            TWENTY_KEY,
            requests_per_minute=100_000,
            transport=self.world.transports.twenty,
            max_attempts=2,
            sleep=_no_sleep,
        )
        return Worker(self.world.runtime, twenty=twenty, **kw)

    async def deliver(self, event_type: str, data: Any, *, webhook_id: str | None = None) -> httpx.Response:
        return await self.world.whop.deliver(
            "http://bridge.test/webhooks/whop",
            event_type,
            data,
            SECRET,
            webhook_id=webhook_id,
            client=self.http,
            company_id=COMPANY,
        )

    async def post(self, envelope: dict[str, Any]) -> httpx.Response:
        """A signed delivery of exactly `envelope`, hostile fields and all."""
        body, headers = signer.delivery(SECRET, envelope, timestamp=int(time.time()))
        return await self.http.post("/webhooks/whop", content=body, headers=headers)

    def opportunity(self, membership_id: str) -> dict[str, Any]:
        matches = [o for o in self.world.opportunities() if o.get("whopMembershipId") == membership_id]
        assert len(matches) == 1, f"{len(matches)} opportunities for {membership_id}"
        return matches[0]


async def _bridge(
    tmp_path: Any,
    database_url: str | None = None,
    *,
    dialect: str = "2.x",
    members: int = 12,
    memberships: int = 15,
) -> AsyncIterator[Bridge]:
    """A synced world with the webhook endpoint in front of its store."""
    extra = {"DATABASE_URL": database_url} if database_url else {}
    world = await make_world(
        tmp_path, dialect, members=members, memberships=memberships, WHOP_WEBHOOK_SECRET=SECRET, **extra
    )
    store = world.runtime.store
    await run_sync(world.runtime, kind="full")
    receiver = WebhookReceiver(store, [SECRET])
    app = Starlette(routes=[receiver.route()])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge.test") as http:
        yield Bridge(world, store, http)
    await world.runtime.aclose()


@pytest.fixture
async def bridge(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path):
        yield b


async def _memberships(b: Bridge) -> list[Any]:
    return (await b.world.whop_lists())["memberships"]


async def test_duplicate_deliveries_have_one_effect(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[0]
    bridge.world.whop.update_membership(ms.id, status="canceled", cancel_at_period_end=True)
    first = await bridge.deliver("membership.deactivated", ms.id, webhook_id="msg_dup_1")
    again = await bridge.deliver("membership.deactivated", ms.id, webhook_id="msg_dup_1")  # Whop's retry
    other = await bridge.deliver("membership.updated", ms.id, webhook_id="msg_dup_2")  # same change, new id
    assert [first.status_code, again.status_code, other.status_code] == [200, 200, 200]
    bridge.world.twenty.reset_stats()

    handled = await bridge.worker().run_once()

    assert handled == 2, "the repeated webhook-id was stored once"
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "CANCELED"
    ops = bridge.world.twenty.stats.operations
    assert ops["createOpportunities"] == 1, "both events for one record cost one upsert"
    # The buyer's active memberships and churn moved with it: one more upsert, of the Person;
    # and one for the "Canceled" line on their timelines.
    assert ops["createPeople"] == 1 and ops["createTimelineActivities"] == 1
    assert bridge.world.twenty.stats["data_writes"] == 3
    counts = await inbox.counts(bridge.store)
    assert counts["applied"] == 2 and counts["failed"] == 0


async def test_an_event_of_a_kind_the_worker_has_no_step_for_fails_and_is_never_acknowledged(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new Whop object declared with its webhook events (`course.*`), its worker step forgotten.
    courses = SyncedObject[Any](kind="course", twenty=TASK, id_prefix="crs_", events=("course",))
    monkeypatch.setitem(objects.BY_KIND, "course", courses)
    monkeypatch.setitem(objects.EVENT_KINDS, "course", "course")
    monkeypatch.setitem(worker_module.ID_PREFIXES, "course", "crs_")
    await bridge.deliver("course.updated", {"id": "crs_1a2b3c4d5e6f"}, webhook_id="msg_no_step")
    bridge.world.twenty.reset_stats()

    await bridge.worker().run_once()

    event = await inbox.get_event(bridge.store, "msg_no_step")
    assert event is not None
    # Failed for good (no retry can add the step), and shown with the reason on the admin page.
    assert (event.status, event.last_error) == ("dead", "course events have no step in the worker")
    assert bridge.world.twenty.stats["data_writes"] == 0


async def test_events_in_any_order_end_in_whops_newest_state_and_never_go_back(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[1]
    whop = bridge.world.whop
    events = []
    order = ["PAST_DUE", "ACTIVE", "CANCELED"]
    for i, status in enumerate(order):
        whop.update_membership(ms.id, status=status.lower())
        # Each delivery carries the membership as it was at that moment (with its updated_at).
        events.append(whop.event("membership.updated", ms.id, COMPANY, webhook_id=f"msg_order_{i}"))
    worker = bridge.worker()
    newest_seen = -1
    for envelope in random.Random(3).sample(events, k=len(events)):
        await bridge.deliver(envelope["type"], envelope["data"], webhook_id=envelope["id"])
        await worker.run_once()
        shown = order.index(bridge.opportunity(ms.id)["whopMembershipStatus"])
        assert shown >= newest_seen, "an older state was applied after a newer one"
        newest_seen = shown
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "CANCELED"


async def test_a_delivery_carrying_the_record_costs_no_whop_call(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[6]
    bridge.world.whop.update_membership(ms.id, status="past_due")
    envelope = bridge.world.whop.event("membership.updated", ms.id, COMPANY, webhook_id="msg_hint")
    await bridge.deliver(envelope["type"], envelope["data"], webhook_id=envelope["id"])
    before = bridge.world.whop.stats.api_calls
    await bridge.worker().run_once()
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "PAST_DUE"
    assert bridge.world.whop.stats.api_calls == before, "the payload was enough; Whop was not asked"


async def test_an_older_state_never_overwrites_a_newer_one_written_by_the_sync(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[2]
    stale = bridge.world.whop.render(ms.id)  # Whop's JSON of the membership before the change
    bridge.world.whop.update_membership(ms.id, status="expired")
    await run_sync(bridge.world.runtime, kind="reconcile")
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "EXPIRED"
    # Late deliveries: the state before the change (older updated_at), and a payload claiming the
    # current version's updated_at with other content. Neither may replace what Twenty shows.
    before = bridge.world.whop.event("membership.activated", {**stale, "status": "active"}, COMPANY)
    same_version = {**bridge.world.whop.render(ms.id), "status": "active"}
    await bridge.deliver("membership.activated", before["data"], webhook_id="msg_stale_old")
    await bridge.deliver("membership.activated", same_version, webhook_id="msg_stale_same")
    await bridge.worker().run_once()
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "EXPIRED"


async def test_while_twenty_is_down_events_wait_and_apply_when_it_is_back(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[3]
    bridge.world.whop.update_membership(ms.id, status="past_due")
    await bridge.deliver("membership.updated", ms.id, webhook_id="msg_down")
    bridge.world.twenty.down = True
    worker = bridge.worker()
    await worker.run_once()
    event = await inbox.get_event(bridge.store, "msg_down")
    assert event is not None and event.status == "pending"
    assert event.attempts == 0, "waiting for Twenty is not an attempt"
    assert "503" in (event.last_error or "")

    bridge.world.twenty.down = False
    worker.clock = lambda: time.monotonic() + 3600  # time passes: the next probe of Twenty is due
    await worker.run_once()

    assert (await inbox.get_event(bridge.store, "msg_down")).status == "applied"  # type: ignore[union-attr]
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "PAST_DUE"


async def test_events_left_by_a_killed_bridge_are_applied_after_restart(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[4]
    bridge.world.whop.update_membership(ms.id, status="completed")
    await bridge.deliver("membership.updated", ms.id, webhook_id="msg_killed")
    # A worker claims the event and dies before finishing it.
    claimed = await inbox.claim(bridge.store, "dead-worker", limit=10)
    assert [e.webhook_id for e in claimed] == ["msg_killed"]
    restarted = bridge.worker()
    assert await restarted.run_once() == 0, "the dead worker's lease has not expired yet"
    async with bridge.store.begin() as conn:  # its lease runs out
        await conn.execute(sa.update(tables.webhook_inbox).values(claimed_until=utcnow()))
    assert await restarted.run_once() == 1
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "COMPLETED"


async def test_unknown_event_types_and_companies_are_recorded_as_ignored(bridge: Bridge) -> None:
    await bridge.deliver("card_transaction.created", {"id": "ctx_1"}, webhook_id="msg_card")
    await bridge.world.whop.deliver(
        "http://bridge.test/webhooks/whop",
        "membership.updated",
        {"id": "mem_x"},
        SECRET,
        webhook_id="msg_stranger",
        client=bridge.http,
        company_id="biz_not_connected",
    )
    await bridge.deliver("membership.updated", None, webhook_id="msg_null")  # a test delivery
    await bridge.worker().run_once()
    events = {e.webhook_id: e for e in await inbox.list_events(bridge.store)}
    assert {events[k].status for k in ("msg_card", "msg_stranger", "msg_null")} == {"ignored"}
    assert "not synced" in (events["msg_card"].last_error or "")
    assert "not connected" in (events["msg_stranger"].last_error or "")


async def test_a_failed_payment_updates_the_opportunity_and_opens_one_task(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[5]
    payment = bridge.world.whop.add_payment(
        ms.id,
        status="open",
        substatus="failed",
        total="49.00",
        failure_message="card declined",
        paid_at=None,
        created_at=utcnow(),
        last_payment_attempt_at=utcnow(),
    )
    await bridge.deliver(
        "payment.failed", payment["id"] if isinstance(payment, dict) else payment.id, webhook_id="msg_pay_1"
    )
    await bridge.deliver(
        "payment.failed", payment["id"] if isinstance(payment, dict) else payment.id, webhook_id="msg_pay_2"
    )  # a second event about the same payment
    worker = bridge.worker()
    await worker.run_once()
    await worker.run_once()

    opp = bridge.opportunity(ms.id)
    assert opp["whopLastPaymentStatus"] == "FAILED"
    tasks = [t for t in bridge.world.twenty.records("tasks") if "Failed Whop payment" in (t.get("title") or "")]
    assert len(tasks) == 1, "one task per failed payment"
    targets = [t for t in bridge.world.twenty.records("taskTargets") if t.get("taskId") == tasks[0]["id"]]
    assert {bool(t.get("personId")) for t in targets} == {True, False}, "linked to the person and the opportunity"
    assert any(t.get("opportunityId") == opp["id"] for t in targets)


@pytest.mark.postgres
async def test_two_bridge_processes_on_one_postgresql_apply_each_event_once(tmp_path: Any, postgres_url: str) -> None:
    async for b in _bridge(tmp_path, postgres_url):
        memberships = await _memberships(b)
        for i, ms in enumerate(memberships):
            b.world.whop.update_membership(ms.id, status="canceled")
            await b.deliver("membership.updated", ms.id, webhook_id=f"msg_pg_{i}")
        # A second process: its own connection pool to the same database.
        other_store = create_engine(postgres_url)
        one, two = b.worker(batch=3), b.worker(batch=3)
        two.store = other_store

        async def drain(w: Worker) -> None:
            while await w.run_once():
                await asyncio.sleep(0)

        await asyncio.gather(drain(one), drain(two))
        await other_store.dispose()
        assert one.applied + two.applied == len(memberships), "every event applied exactly once"
        assert one.applied > 0 and two.applied > 0, "both processes took a share"
        assert {b.opportunity(ms.id)["whopMembershipStatus"] for ms in memberships} == {"CANCELED"}


async def test_a_status_change_costs_one_upsert_without_a_read_and_keeps_a_persons_edits(bridge: Bridge) -> None:
    # Active → past due: the stage stays CUSTOMER, so no curated value changes at Whop.
    ms = next(m for m in await _memberships(bridge) if m.status == "active")
    opp = bridge.opportunity(ms.id)
    async with httpx.AsyncClient(transport=bridge.world.transports.twenty, base_url="http://twenty.test") as http:
        edited = await http.patch(
            f"/rest/opportunities/{opp['id']}",
            json={"name": "Renewal call booked"},
            headers={"Authorization": f"Bearer {TWENTY_KEY}"},
        )
        assert edited.status_code == 200
    new_status = "past_due"
    bridge.world.whop.update_membership(ms.id, status=new_status)
    envelope = bridge.world.whop.event("membership.updated", ms.id, COMPANY, webhook_id="msg_no_read")
    await bridge.deliver(envelope["type"], envelope["data"], webhook_id=envelope["id"])
    bridge.world.twenty.reset_stats()

    await bridge.worker().run_once()

    after = bridge.opportunity(ms.id)
    assert after["whopMembershipStatus"] == new_status.upper()
    assert after["name"] == "Renewal call booked", "the person's edit stands"
    stats = bridge.world.twenty.stats
    assert stats["data_reads"] == 0, "the bridge knew the id and had no curated news"
    # One upsert of the Opportunity, and one of the "Past due" line on its timeline.
    assert stats.operations["createOpportunities"] == 1 and stats.operations["createTimelineActivities"] == 1
    assert stats["data_writes"] == 2


async def test_a_whop_status_twenty_does_not_list_is_added_as_an_option_by_the_worker(bridge: Bridge) -> None:
    ms = (await _memberships(bridge))[0]
    bridge.world.whop.update_membership(ms.id, status="paused_for_vacation")
    await bridge.deliver("membership.updated", ms.id, webhook_id="msg_new_status")

    await bridge.worker().run_once()

    event = await inbox.get_event(bridge.store, "msg_new_status")
    assert event is not None and event.status == "applied", event
    assert bridge.opportunity(ms.id)["whopMembershipStatus"] == "PAUSED_FOR_VACATION"
    status = next(
        f
        for f in bridge.world.twenty.object_by_name("opportunity")["fieldsList"]
        if f["name"] == "whopMembershipStatus"
    )
    assert "PAUSED_FOR_VACATION" in {o["value"] for o in status["options"]}
