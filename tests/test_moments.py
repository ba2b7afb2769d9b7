"""Churn-risk and conversion moments become Tasks (bridge/sync/moments.py), end to end through
the webhook endpoint, the inbox and the worker, on both Twenty dialects: one Task per moment
whatever the replays, late or out-of-order deliveries and reconciliations, linked to the Person
and the Opportunity, and closed by the bridge only while it is still its own open Task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge.services import run_sync
from bridge.store import inbox
from bridge.store.db import utcnow
from tests.sync.conftest import COMPANY, TWENTY_KEY
from tests.test_worker import Bridge, _bridge, _memberships


@pytest.fixture(params=["2.x", "1.x"])
async def b(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, dialect=request.param, members=8, memberships=10):
        yield b


def tasks(b: Bridge, words: str) -> list[dict[str, Any]]:
    return [t for t in b.world.twenty.records("tasks") if words in (t.get("title") or "") and not t.get("deletedAt")]


def the_task(b: Bridge, words: str) -> dict[str, Any]:
    found = tasks(b, words)
    assert len(found) == 1, f"{len(found)} tasks titled {words!r}"
    return found[0]


def linked(b: Bridge, task: dict[str, Any]) -> tuple[set[str], set[str]]:
    targets = [t for t in b.world.twenty.records("taskTargets") if t.get("taskId") == task["id"]]
    return {t["personId"] for t in targets if t.get("personId")}, {
        t["opportunityId"] for t in targets if t.get("opportunityId")
    }


def person_id(b: Bridge, user_key: str) -> str:
    return next(p["id"] for p in b.world.people() if p.get("whopUserId") == user_key)


def when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


async def set_status(b: Bridge, task: dict[str, Any], status: str) -> None:
    """A person moves the Task in Twenty."""
    async with httpx.AsyncClient(transport=b.world.transports.twenty, base_url="http://twenty.test") as http:
        answer = await http.patch(
            f"/rest/tasks/{task['id']}", json={"status": status}, headers={"Authorization": f"Bearer {TWENTY_KEY}"}
        )
        assert answer.status_code == 200, answer.text


async def apply(b: Bridge, *deliveries: tuple[str, Any, str]) -> None:
    for event_type, data, webhook_id in deliveries:
        assert (await b.deliver(event_type, data, webhook_id=webhook_id)).status_code == 200
    worker = b.worker()
    while await worker.run_once():
        pass


async def live_membership(b: Bridge) -> Any:
    """An active membership renewing in three weeks (the seed's periods may be over already)."""
    ms = next(m for m in await _memberships(b) if m.status == "active" and not m.cancel_at_period_end)
    b.world.whop.update_membership(ms.id, current_period_end=utcnow() + timedelta(days=21))
    await apply(b, ("membership.updated", ms.id, f"msg_renews_{ms.id}"))
    return ms


SAVE = "cancels at period end"


async def test_a_cancel_at_period_end_opens_one_save_task_closed_when_they_change_their_mind(b: Bridge) -> None:
    ms = await live_membership(b)
    whop = b.world.whop
    whop.update_membership(ms.id, cancel_at_period_end=True, cancel_option="too_expensive")
    event = "membership.cancel_at_period_end_changed"
    # The delivery, Whop's retry of it (same webhook-id) and a replay under a new id.
    await apply(b, (event, ms.id, "msg_cancel_1"), (event, ms.id, "msg_cancel_1"), (event, ms.id, "msg_cancel_1b"))
    await apply(b, (event, ms.id, "msg_cancel_1c"))

    task = the_task(b, SAVE)
    assert task["status"] == "TODO"
    end = when(whop.render(ms.id)["current_period_end"])
    assert when(task["dueAt"]) < end, "due before the period ends"
    people, opportunities = linked(b, task)
    assert people == {person_id(b, ms.user_id or ms.member_id)}
    assert opportunities == {b.opportunity(ms.id)["id"]}
    assert b.opportunity(ms.id)["whopCancelAtPeriodEnd"] is True

    # They change their mind: the bridge closes its own open Task.
    whop.update_membership(ms.id, cancel_at_period_end=False)
    await apply(b, (event, ms.id, "msg_cancel_2"))
    assert the_task(b, SAVE)["status"] == "DONE"

    # And change it back within the period: the same Task opens again, never a second one.
    whop.update_membership(ms.id, cancel_at_period_end=True)
    await apply(b, (event, ms.id, "msg_cancel_3"))
    again = the_task(b, SAVE)
    assert (again["id"], again["status"]) == (task["id"], "TODO")
    counts = await inbox.counts(b.store)
    assert counts["failed"] == 0


async def test_a_save_task_a_person_moved_on_is_theirs(b: Bridge) -> None:
    ms = await live_membership(b)
    whop = b.world.whop
    event = "membership.cancel_at_period_end_changed"
    whop.update_membership(ms.id, cancel_at_period_end=True)
    await apply(b, (event, ms.id, "msg_theirs_1"))
    await set_status(b, the_task(b, SAVE), "IN_PROGRESS")

    whop.update_membership(ms.id, cancel_at_period_end=False)
    await apply(b, (event, ms.id, "msg_theirs_2"))

    assert the_task(b, SAVE)["status"] == "IN_PROGRESS", "a person's Task is not closed by the bridge"

    # A deleted Task is not restored by a later change either (2.x would restore it on upsert).
    whop.update_membership(ms.id, cancel_at_period_end=True)
    await apply(b, (event, ms.id, "msg_theirs_3"))
    task = the_task(b, SAVE)
    b.world.twenty.soft_delete("task", task["id"])
    whop.update_membership(ms.id, cancel_option="switching")
    await apply(b, (event, ms.id, "msg_theirs_4"), ("membership.updated", ms.id, "msg_theirs_5"))
    assert tasks(b, SAVE) == []


async def test_out_of_order_cancel_deliveries_end_in_whops_state(b: Bridge) -> None:
    ms = await live_membership(b)
    whop = b.world.whop
    whop.update_membership(ms.id, cancel_at_period_end=True)
    set_on = whop.event("membership.cancel_at_period_end_changed", ms.id, COMPANY, webhook_id="msg_ooo_on")
    whop.update_membership(ms.id, cancel_at_period_end=False)
    set_off = whop.event("membership.cancel_at_period_end_changed", ms.id, COMPANY, webhook_id="msg_ooo_off")

    # "Off" arrives first, then the older "on" (its payload says cancel): Whop says off.
    await apply(b, (set_off["type"], set_off["data"], set_off["id"]))
    await apply(b, (set_on["type"], set_on["data"], set_on["id"]))

    assert tasks(b, SAVE) == [], "the late delivery's payload is not what Whop holds now"
    assert b.opportunity(ms.id)["whopCancelAtPeriodEnd"] is False


async def test_trial_ending_soon_opens_a_convert_task_closed_when_the_trial_converts(b: Bridge) -> None:
    ms = await live_membership(b)
    whop = b.world.whop
    ends = utcnow() + timedelta(days=2)
    whop.update_membership(ms.id, status="trialing", current_period_end=ends, most_recent_action="trial_ends_at")
    await apply(
        b,
        ("membership.trial_ending_soon", ms.id, "msg_trial_1"),
        ("membership.trial_ending_soon", ms.id, "msg_trial_1"),
    )
    task = the_task(b, "trial ends")
    assert task["status"] == "TODO" and when(task["dueAt"]) < ends
    assert linked(b, task)[1] == {b.opportunity(ms.id)["id"]}

    whop.update_membership(ms.id, status="active")
    await apply(b, ("membership.updated", ms.id, "msg_trial_2"), ("membership.trial_ending_soon", ms.id, "msg_trial_3"))

    assert the_task(b, "trial ends")["status"] == "DONE", "converted: the replayed announcement opens nothing"


async def test_an_overdue_invoice_has_a_task_until_it_is_paid(b: Bridge) -> None:
    ms = await live_membership(b)
    whop = b.world.whop
    invoice = whop.add_invoice(ms.id, status="open", due_date=utcnow() - timedelta(days=1))
    whop.update_invoice(invoice.id, status="past_due")
    await apply(
        b,
        ("invoice.past_due", invoice.id, "msg_inv_1"),
        ("invoice.past_due", invoice.id, "msg_inv_1"),
        ("invoice.past_due", invoice.id, "msg_inv_2"),
    )
    task = the_task(b, "invoice past due")
    assert task["status"] == "TODO"
    people, opportunities = linked(b, task)
    assert people == {person_id(b, ms.user_id or ms.member_id)}
    assert opportunities == {b.opportunity(ms.id)["id"]}, "the invoice names no membership: found by its plan"

    payment = whop.add_payment(ms.id, created_at=utcnow())
    whop.update_invoice(invoice.id, status="paid", payment_id=payment.id)
    paid = whop.event("invoice.paid", invoice.id, COMPANY, webhook_id="msg_inv_3")
    await apply(b, ("invoice.paid", paid["data"], paid["id"]), ("invoice.past_due", invoice.id, "msg_inv_4"))

    assert the_task(b, "invoice past due")["status"] == "DONE"
    assert (await inbox.counts(b.store))["failed"] == 0


async def test_a_reconciliation_opens_what_webhooks_missed_once_and_then_writes_nothing(b: Bridge) -> None:
    ms = await live_membership(b)
    whop = b.world.whop
    whop.update_membership(ms.id, cancel_at_period_end=True)  # no webhook came
    invoice = whop.add_invoice(ms.id, status="past_due", due_date=utcnow() - timedelta(days=3), created_at=utcnow())

    first = await run_sync(b.world.runtime, kind="reconcile")

    assert first.counts["task"]["opened"] >= 2
    assert the_task(b, SAVE)["status"] == "TODO"
    assert the_task(b, "invoice past due")["status"] == "TODO"
    b.world.twenty.reset_stats()
    again = await run_sync(b.world.runtime, kind="reconcile")
    assert b.world.twenty.stats["data_writes"] == 0, again.counts

    # Paid and no longer canceling, both missed by webhooks: the next reconciliation closes both.
    whop.update_invoice(invoice.id, status="paid")
    whop.update_membership(ms.id, cancel_at_period_end=False)
    await run_sync(b.world.runtime, kind="reconcile")
    assert the_task(b, SAVE)["status"] == "DONE"
    assert the_task(b, "invoice past due")["status"] == "DONE"


async def test_many_moments_a_reconciliation_finds_open_their_tasks_in_one_call_with_their_links(b: Bridge) -> None:
    before = len(tasks(b, SAVE))
    canceling = [m for m in await _memberships(b) if m.user_id and not m.cancel_at_period_end][:3]
    assert len(canceling) == 3
    for ms in canceling:  # no webhook came for any of them
        b.world.whop.update_membership(
            ms.id, status="active", cancel_at_period_end=True, current_period_end=utcnow() + timedelta(days=21)
        )
    b.world.twenty.reset_stats()

    await run_sync(b.world.runtime, kind="reconcile")

    saves = tasks(b, SAVE)
    assert len(saves) == before + 3
    for task in saves:
        people, opportunities = linked(b, task)
        assert len(people) == 1 and len(opportunities) == 1, task["title"]
    calls = b.world.twenty.stats["operations"]
    assert (calls["createTasks"], calls["createTaskTargets"]) == (1, 1), calls


async def test_an_invoice_of_another_company_opens_nothing(b: Bridge) -> None:
    theirs = next(m for m in b.world.whop.memberships.values() if m.company_id != COMPANY)
    invoice = b.world.whop.add_invoice(theirs.id, status="past_due")
    envelope = {**b.world.whop.render(invoice.id), "company": {"id": COMPANY}}
    await apply(b, ("invoice.past_due", envelope, "msg_inv_theirs"))

    assert tasks(b, "invoice past due") == []
    event = await inbox.get_event(b.store, "msg_inv_theirs")
    assert event is not None and event.status != "applied"
