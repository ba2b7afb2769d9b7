"""Whop's story on the Person's and the Opportunity's timeline (issue 22), end to end through the
sync, the webhook endpoint, the inbox and the worker: one line per membership event and payment
outcome, with its amount and product, written once whatever the re-syncs, replays, duplicates
and out-of-order deliveries; on Twenty 1.x, none (its timeline cannot show them)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bridge.services import run_sync
from bridge.store import inbox, tables
from bridge.store.db import utcnow
from bridge.sync import engine
from bridge.sync.timeline import _ended_before
from bridge.twenty.data import TwentyDataClient
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import plan_workspace
from bridge.twenty.schema import load_data_model
from bridge.whop.models import Membership
from bridge.worker import Worker
from tests.sync.conftest import COMPANY, TWENTY_KEY, make_world
from tests.test_worker import Bridge, _bridge, _memberships, _no_sleep


@pytest.fixture
async def b(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, dialect="2.x", members=8, memberships=10):
        yield b


@pytest.fixture
async def b1(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, dialect="1.x", members=8, memberships=10):
        yield b


def lines(b: Bridge) -> list[dict[str, Any]]:
    """The bridge's lines in Twenty (Twenty's own entries are not among them)."""
    return [a for a in b.world.twenty.records("timelineActivities") if str(a.get("name")).startswith("whop")]


def told(b: Bridge, subject: str) -> list[str]:
    """What the timeline says of a membership or a payment, oldest first."""
    kind = "whopMembership" if subject.startswith("mem_") else "whopPayment"
    about = [
        a
        for a in lines(b)
        if subject in ((a["properties"] or {}).get("whop") or {}).values() and a["name"].startswith(kind)
    ]
    return [a["linkedRecordCachedName"] for a in sorted(about, key=lambda a: (a["createdAt"], a["name"]))]


def when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def person_of(b: Bridge, key: str | None) -> dict[str, Any]:
    return next(p for p in b.world.people() if p.get("whopUserId") == key)


async def apply(b: Bridge, *deliveries: tuple[str, Any, str]) -> None:
    for event_type, data, webhook_id in deliveries:
        assert (await b.deliver(event_type, data, webhook_id=webhook_id)).status_code == 200
    worker = b.worker()
    while await worker.run_once():
        pass
    assert (await inbox.counts(b.store))["failed"] == 0


async def live_membership(b: Bridge) -> Any:
    ms = next(m for m in await _memberships(b) if m.status == "active" and not m.cancel_at_period_end)
    b.world.whop.update_membership(ms.id, current_period_end=utcnow() + timedelta(days=21))
    await apply(b, ("membership.updated", ms.id, f"msg_renews_{ms.id}"))
    return ms


def product_title(b: Bridge, ms: Any) -> str:
    return str(b.world.whop.products[ms.product_id].title)


# History, from the sync ----------------------------------------------------------------------


async def test_a_full_sync_tells_each_membership_and_payment_on_both_timelines_in_a_few_calls(b: Bridge) -> None:
    whop, twenty = b.world.whop, b.world.twenty
    written = lines(b)
    assert written, "the sync wrote the history"
    told_of = ("trialing", "active", "past_due", "canceling", "canceled", "expired")  # not drafted, completed…
    ours = {m.id: m for m in whop.memberships.values() if m.company_id == COMPANY and m.status in told_of}
    assert len(ours) >= 6
    object_ids = {o["nameSingular"]: o["id"] for o in twenty.workspace.objects}
    opportunities = {o["whopMembershipId"]: o for o in b.world.opportunities()}
    payments = {p["whopPaymentId"]: p for p in twenty.records("whopPayments")}
    for ms in ours.values():
        started = [
            a
            for a in written
            if a["properties"]["whop"].get("membership") == ms.id
            and a["name"]
            in (
                "whopMembership.started",
                "whopMembership.trial",
            )
        ]
        assert len(started) == 1, ms.id
        line, opportunity = started[0], opportunities[ms.id]
        # On the Opportunity's and the buyer's timeline, linking the Opportunity, dated when it began.
        assert line["targetOpportunityId"] == opportunity["id"]
        assert line["targetPersonId"] == person_of(b, ms.user_id or ms.member_id)["id"]
        assert (line["linkedRecordId"], line["linkedObjectMetadataId"]) == (
            opportunity["id"],
            object_ids["opportunity"],
        )
        assert when(line["createdAt"]) == when(whop.render(ms.id)["created_at"])
        assert product_title(b, ms) in line["linkedRecordCachedName"]
    for a in (a for a in written if a["name"].startswith("whopPayment")):
        pay = whop.payments[a["properties"]["whop"]["payment"]]
        assert a["linkedRecordId"] == payments[pay.id]["id"], "a payment's line opens its WhopPayment"
        assert a["linkedObjectMetadataId"] == object_ids["whopPayment"]
        assert a["targetOpportunityId"] == opportunities[pay.membership_id]["id"]
        assert (
            f"{pay.total:,.2f}" in a["linkedRecordCachedName"] and product_title(b, pay) in a["linkedRecordCachedName"]
        )
    kinds = Counter(a["name"] for a in written)
    assert kinds["whopPayment.renewed"] and kinds["whopPayment.failed"] and kinds["whopPayment.refunded"]
    assert kinds["whopMembership.canceled"] and kinds["whopPayment.disputed"]
    # One activity per line, sent in batches of 200: a backfill adds a call per 200 lines.
    assert len({a["id"] for a in written}) == len(written)
    assert twenty.stats.operations["createTimelineActivities"] == math.ceil(len(written) / 200)


async def test_a_resync_and_a_reconciliation_add_nothing_and_cost_no_call(b: Bridge) -> None:
    before = lines(b)
    b.world.twenty.reset_stats()
    for kind in ("full", "reconcile", "full"):
        result = await run_sync(b.world.runtime, kind=kind)
        assert result.status == "succeeded", result.problems
    assert lines(b) == before
    assert b.world.twenty.stats.operations["createTimelineActivities"] == 0


async def test_a_line_the_bridge_forgot_is_written_onto_itself_never_twice(b: Bridge) -> None:
    before = {a["id"]: a["linkedRecordCachedName"] for a in lines(b)}
    async with b.store.begin() as conn:  # the store lost its rows (a restore from an old backup)
        await conn.execute(sa.delete(tables.timeline_lines))
    b.world.twenty.reset_stats()

    await run_sync(b.world.runtime, kind="full")

    assert {a["id"]: a["linkedRecordCachedName"] for a in lines(b)} == before
    assert b.world.twenty.stats.operations["createTimelineActivities"] >= 1, "upserted by its own id"


# Events, from the worker ---------------------------------------------------------------------


async def test_a_renewal_a_refund_and_a_cancellation_each_add_their_line_once(b: Bridge) -> None:
    whop = b.world.whop
    ms = await live_membership(b)
    title = product_title(b, ms)
    renewal = whop.add_payment(ms.id, created_at=utcnow() - timedelta(minutes=30), billing_reason="subscription_cycle")
    # The delivery, Whop's retry of it (the same webhook-id) and a replay under a new id.
    await apply(
        b,
        ("payment.succeeded", renewal.id, "msg_renewal"),
        ("payment.succeeded", renewal.id, "msg_renewal"),
        ("payment.succeeded", renewal.id, "msg_renewal_replayed"),
    )
    await apply(b, ("payment.succeeded", renewal.id, "msg_renewal_again"))
    assert told(b, renewal.id) == [f"Renewed · ${renewal.total:,.2f} · {title}"]

    whop.update_payment(renewal.id, substatus="refunded", refunded_amount=renewal.total, refunded_at=utcnow())
    refund = {"id": "rfnd_Timeline0001", "payment": {"id": renewal.id}}
    await apply(b, ("refund.created", refund, "msg_refund"), ("refund.created", refund, "msg_refund_2"))
    assert told(b, renewal.id) == [
        f"Renewed · ${renewal.total:,.2f} · {title}",
        f"Refunded · ${renewal.total:,.2f} · {title}",
    ]

    whop.update_membership(ms.id, cancel_at_period_end=True, cancel_option="too_expensive")
    event = "membership.cancel_at_period_end_changed"
    await apply(b, (event, ms.id, "msg_cancel"), (event, ms.id, "msg_cancel"), (event, ms.id, "msg_cancel_again"))
    ends = (utcnow() + timedelta(days=21)).date()
    whop.update_membership(ms.id, status="canceled", canceled_at=utcnow())
    await apply(b, ("membership.deactivated", ms.id, "msg_gone"), ("membership.updated", ms.id, "msg_gone_2"))
    await apply(b, ("membership.deactivated", ms.id, "msg_gone"))

    story = told(b, ms.id)
    assert len(story) == 3 and story[0].startswith("Membership started"), story
    scheduled, canceled = story[1:]
    assert scheduled.startswith(f"Set to cancel on {ends} · ${whop.memberships[ms.id].renewal_price:,.2f}/")
    assert canceled.startswith(f"Canceled · ${whop.memberships[ms.id].renewal_price:,.2f}/")
    for line in (scheduled, canceled):
        assert line.endswith(f" · {title} · reason: too expensive")
    # Each line is on the buyer's timeline and the membership's.
    person = person_of(b, ms.user_id or ms.member_id)
    for a in lines(b):
        if a["properties"]["whop"].get("membership") == ms.id:
            assert (a["targetPersonId"], a["targetOpportunityId"]) == (person["id"], b.opportunity(ms.id)["id"])

    before = lines(b)
    b.world.twenty.reset_stats()
    await run_sync(b.world.runtime, kind="full")
    assert lines(b) == before and b.world.twenty.stats.operations["createTimelineActivities"] == 0


async def test_a_failed_payment_and_a_dispute_tell_how_they_went(b: Bridge) -> None:
    whop = b.world.whop
    ms = await live_membership(b)
    title = product_title(b, ms)
    failed = whop.add_payment(
        ms.id, status="open", substatus="failed", failure_message="Your card was declined.", created_at=utcnow()
    )
    await apply(b, ("payment.failed", failed.id, "msg_failed"), ("payment.failed", failed.id, "msg_failed_2"))
    assert told(b, failed.id) == [f"Payment failed · ${failed.total:,.2f} · {title} · Your card was declined."]

    # Retried a day later, failing again: another attempt, another line.
    whop.update_payment(failed.id, last_payment_attempt_at=utcnow() + timedelta(seconds=5))
    await apply(b, ("payment.failed", failed.id, "msg_failed_3"))
    assert len(told(b, failed.id)) == 2

    paid = whop.add_payment(ms.id, created_at=utcnow())
    whop.update_payment(paid.id, substatus="dispute_needs_response", dispute_alerted_at=utcnow())
    case = {"id": "dspt_Timeline0001", "payment": {"id": paid.id}, "amount": str(paid.total), "currency": "usd"}
    await apply(b, ("dispute.created", case, "msg_dispute"), ("dispute.created", case, "msg_dispute_2"))
    whop.update_payment(paid.id, substatus="dispute_won")
    await apply(b, ("dispute.updated", case, "msg_dispute_won"), ("dispute.updated", case, "msg_dispute_won"))
    amount = f"${paid.total:,.2f}"
    assert sorted(told(b, paid.id)) == sorted(
        [f"Renewed · {amount} · {title}", f"Disputed · {amount} · {title}", f"Dispute won · {amount} · {title}"]
    )


async def test_out_of_order_and_repeated_deliveries_tell_each_event_once(b: Bridge) -> None:
    whop = b.world.whop
    ms = (await _memberships(b))[1]
    events = []
    for i, status in enumerate(["past_due", "active", "canceled"]):
        whop.update_membership(ms.id, status=status, **({"canceled_at": utcnow()} if status == "canceled" else {}))
        events.append(whop.event("membership.updated", ms.id, COMPANY, webhook_id=f"msg_ooo_{i}"))
    # The newest first, then the older ones (each carrying its own state), then all again.
    for envelope in [events[2], events[0], events[1], *events]:
        await apply(b, (envelope["type"], envelope["data"], envelope["id"]))

    story = told(b, ms.id)
    assert len([s for s in story if s.startswith("Canceled")]) == 1
    assert not [s for s in story if s.startswith(("Came back", "Cancellation withdrawn"))], story
    assert len(story) == len(set(story)), "no line twice"

    # Whop brings it back later: a newer state, one return.
    whop.update_membership(ms.id, status="active")
    await apply(b, ("membership.activated", ms.id, "msg_back"), ("membership.activated", ms.id, "msg_back_2"))
    await run_sync(b.world.runtime, kind="reconcile")
    assert len([s for s in told(b, ms.id) if s.startswith("Came back")]) == 1


class TimelineOutage(httpx.AsyncBaseTransport):
    """Twenty, but its timeline writes answer 503 while `failing`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failing = True
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failing and b"createTimelineActivities" in request.content:
            self.refused += 1
            return httpx.Response(503, json={"errors": [{"message": "Service Unavailable"}]})
        return await self.inner.handle_async_request(request)


async def test_a_buyer_whose_membership_ended_and_who_buys_again_came_back(b: Bridge) -> None:
    whop = b.world.whop
    ended = next(m for m in await _memberships(b) if m.status in ("canceled", "expired"))
    again = whop.add_membership(ended.member_id, ended.plan_id, status="active", created_at=utcnow())
    await apply(
        b, ("membership.activated", again.id, "msg_back_buy"), ("membership.activated", again.id, "msg_back_buy")
    )
    story = told(b, again.id)
    assert len(story) == 1 and story[0].startswith("Came back · ") and product_title(b, again) in story[0], story
    line = next(a for a in lines(b) if a["properties"]["whop"].get("membership") == again.id)
    assert line["targetPersonId"] == person_of(b, ended.user_id or ended.member_id)["id"]


async def test_while_twenty_refuses_the_timeline_the_events_retry_and_then_tell_it_once(b: Bridge) -> None:
    whop = b.world.whop
    ms = await live_membership(b)
    renewal = whop.add_payment(ms.id, created_at=utcnow())
    await b.deliver("payment.succeeded", renewal.id, webhook_id="msg_flaky")
    outage = TimelineOutage(b.world.transports.twenty)
    twenty = TwentyDataClient(
        "http://twenty.test", TWENTY_KEY, requests_per_minute=100_000, transport=outage, max_attempts=2, sleep=_no_sleep
    )

    await Worker(b.world.runtime, twenty=twenty).run_once()

    event = await inbox.get_event(b.store, "msg_flaky")
    assert outage.refused and event is not None and (event.status, event.attempts) == ("failed", 1), "to retry"
    assert told(b, renewal.id) == [], "not written, and not remembered as written"
    assert b.opportunity(ms.id)["whopLastPaymentAt"], "the rest of the event applied"

    outage.failing = False
    await inbox.replay(b.store, ["msg_flaky"])  # its retry comes due
    await Worker(b.world.runtime, twenty=twenty).run_once()
    await apply(b, ("payment.succeeded", renewal.id, "msg_flaky_replayed"))
    assert told(b, renewal.id) == [f"Renewed · ${renewal.total:,.2f} · {product_title(b, ms)}"]


# Twenty 1.x ------------------------------------------------------------------------------------


async def test_on_1x_no_line_is_written_no_call_spent_and_the_plan_says_so(b1: Bridge) -> None:
    whop = b1.world.whop
    ms = next(m for m in await _memberships(b1) if m.status == "active")
    renewal = whop.add_payment(ms.id, created_at=utcnow())
    whop.update_membership(ms.id, status="canceled", canceled_at=utcnow())
    b1.world.twenty.reset_stats()
    await apply(
        b1,
        ("payment.succeeded", renewal.id, "msg_1x_renewal"),
        ("membership.deactivated", ms.id, "msg_1x_gone"),
        ("membership.deactivated", ms.id, "msg_1x_gone_replayed"),
    )
    await run_sync(b1.world.runtime, kind="full")

    assert lines(b1) == [] and b1.world.twenty.stats.operations["createTimelineActivities"] == 0
    assert b1.opportunity(ms.id)["whopMembershipStatus"] == "CANCELED", "the rest applies as ever"
    transport = b1.world.transports.twenty
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport) as meta:
        plan = await plan_workspace(meta, load_data_model(), "http://bridge.test")
    item = next(i for i in plan.items if i.kind == "timeline")
    assert item.status == "unsupported" and "1.x" in item.detail


async def test_on_2x_the_plan_says_the_timeline_is_there(b: Bridge) -> None:
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=b.world.transports.twenty) as meta:
        plan = await plan_workspace(meta, load_data_model(), "http://bridge.test")
    item = next(i for i in plan.items if i.kind == "timeline")
    assert item.status == "present" and plan.up_to_date


async def test_a_large_backfill_writes_its_lines_as_it_goes_in_full_batches(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A company whose lines exceed what a sync keeps in memory: the ready ones go in full
    # batches while the run goes on, and none is lost or doubled.
    monkeypatch.setattr(engine, "TIMELINE_FLUSH_LINES", 8)
    world = await make_world(tmp_path, "2.x", members=8, memberships=10, TWENTY_BATCH_SIZE=5)
    try:
        result = await run_sync(world.runtime, kind="full")
        assert result.status == "succeeded", result.problems
        written = [a for a in world.twenty.records("timelineActivities") if str(a["name"]).startswith("whop")]
        assert result.counts["timeline"]["written"] == len(written) > 8
        assert "waiting" not in result.counts["timeline"]
        calls = world.twenty.stats.operations["createTimelineActivities"]
        assert calls <= math.ceil(len(written) / 5) + 1, "full batches on the way, the rest at the end"
        assert len({a["id"] for a in written}) == len(written)
    finally:
        await world.runtime.aclose()


_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # Whop's times are read as aware


@pytest.mark.parametrize(
    ("created_at", "ends", "returning"),
    [
        (_T0, [("mem_old", _T0 - timedelta(days=1))], True),  # came back after another one ended
        (_T0, [("mem_old", _T0 + timedelta(days=1))], False),  # that one ended after this began
        (_T0, [("mem_old", _T0)], False),  # ended the moment this one began: not before
        (_T0, [("mem_new", _T0 - timedelta(days=1))], False),  # its own end does not count
        (None, [("mem_old", _T0 - timedelta(days=1))], False),  # no start known: never "returning"
        (_T0, [], False),  # no membership of theirs ended
    ],
)
def test_a_membership_is_told_as_a_return_only_when_another_of_the_buyers_ended_before_it_began(
    created_at: datetime | None, ends: list[tuple[str, datetime]], returning: bool
) -> None:
    ms = Membership(id="mem_new", user_id="user_1", created_at=created_at)
    assert _ended_before(ms, ends) is returning
