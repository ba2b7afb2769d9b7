"""What a sales team sees (issue 11), end to end against the fake Whop and fake Twenty: plans and
revenue on each Opportunity, a WhopPayment per payment linked to its Person and Opportunity,
refunds and disputes that arrive by webhook, Tasks with the evidence deadline, deleted products."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bridge.services import run_sync
from bridge.sync.tasks import task_id
from fakes.twenty.records import update_record
from tests.sync.conftest import COMPANY
from tests.test_worker import Bridge, _bridge


@pytest.fixture(params=["2.x", "1.x"])
async def bridge(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, dialect=request.param):
        yield b


def live(b: Bridge, plural: str) -> list[dict[str, Any]]:
    return [r for r in b.world.twenty.records(plural) if not r.get("deletedAt")]


def payment_record(b: Bridge, pay_id: str) -> dict[str, Any]:
    (found,) = [r for r in live(b, "whopPayments") if r["whopPaymentId"] == pay_id]
    return found


def micros(amount: Decimal) -> int:
    return int(amount * 1_000_000)


async def test_a_full_sync_fills_plans_revenue_and_the_payment_history(bridge: Bridge) -> None:
    fake = bridge.world.whop
    opportunities = {o["whopMembershipId"]: o for o in live(bridge, "opportunities")}
    people = {p["id"] for p in live(bridge, "people")}
    for ms in fake.memberships.values():
        if ms.company_id != COMPANY:
            continue
        o = opportunities[ms.id]
        plan = fake.plans[ms.plan_id]
        assert o["whopPlanTitle"] == plan.title
        assert o["whopPlanType"] == plan.plan_type.upper()
        assert o["whopCompanyId"] == COMPANY
        if ms.status in ("expired", "canceled"):
            assert o["stage"] == "CHURNED" and o["whopMrr"]["amountMicros"] == 0
    payments = [p for p in fake.payments.values() if p.company_id == COMPANY]
    records = {r["whopPaymentId"]: r for r in live(bridge, "whopPayments")}
    assert set(records) == {p.id for p in payments}
    for p in payments:
        r = records[p.id]
        if p.membership_id:
            assert r["opportunityId"] == opportunities[p.membership_id]["id"]
        assert r["personId"] in people
        assert r["amount"]["amountMicros"] == micros(p.total)
    outcomes = {r["paymentStatus"] for r in records.values()}
    assert {"SUCCEEDED", "FAILED", "REFUNDED"} <= outcomes  # the seed covers them

    bridge.world.twenty.reset_stats()
    again = await run_sync(bridge.world.runtime, kind="full")
    assert again.twenty_writes == 0, again.counts  # plans and payments are as stable as the rest


async def test_a_refund_and_a_won_dispute_arrive_by_webhook_and_change_the_payment(bridge: Bridge) -> None:
    fake = bridge.world.whop
    paid = next(
        p for p in fake.payments.values() if p.company_id == COMPANY and p.substatus == "succeeded" and p.total > 10
    )
    refund = Decimal("5.00")
    fake.update_payment(paid.id, substatus="partially_refunded", refunded_amount=refund)
    assert (await bridge.deliver("refund.created", {"id": "rfnd_1", "payment": {"id": paid.id}})).status_code == 200
    await bridge.worker().run_once()
    r = payment_record(bridge, paid.id)
    assert r["paymentStatus"] == "PARTIALLY_REFUNDED"
    assert r["netAmount"]["amountMicros"] == micros(paid.total - refund)
    assert bridge.opportunity(paid.membership_id or "")["whopLastPaymentStatus"] in (
        "PARTIALLY_REFUNDED",
        "SUCCEEDED",  # a later payment of the same membership keeps the last-payment fields
        "FAILED",
        "REFUNDED",
        "DISPUTED",
    )

    due = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    dispute = {
        "id": "dspt_1",
        "payment": {"id": paid.id},
        "amount": float(paid.total),
        "currency": "usd",
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence_due_at": due.isoformat().replace("+00:00", "Z"),
    }
    fake.update_payment(paid.id, substatus="dispute_needs_response")
    await bridge.deliver("dispute.created", dispute)
    await bridge.worker().run_once()
    assert payment_record(bridge, paid.id)["paymentStatus"] == "DISPUTED"
    tasks = {t["id"]: t for t in live(bridge, "tasks")}
    task = tasks[task_id(COMPANY, "dspt_1")]
    assert task["dueAt"].startswith(due.strftime("%Y-%m-%dT%H:%M:%S"))
    assert "dispute" in task["title"] and task["status"] == "TODO"
    targets = [t for t in live(bridge, "taskTargets") if t["taskId"] == task["id"]]
    assert {bool(t.get("personId")) for t in targets} == {True, False}  # one to the Person, one to the deal
    assert any(t.get("opportunityId") == bridge.opportunity(paid.membership_id or "")["id"] for t in targets)

    # Someone works the Task and closes it; the dispute is then won.
    twenty = bridge.world.twenty
    update_record(twenty.workspace, twenty.object_by_name("task"), task["id"], {"status": "DONE"})
    fake.update_payment(paid.id, substatus="dispute_won")
    await bridge.deliver("dispute.updated", dispute | {"status": "won"})
    await bridge.worker().run_once()
    assert payment_record(bridge, paid.id)["paymentStatus"] == "DISPUTE_WON"
    updated = {t["id"]: t for t in live(bridge, "tasks")}[task["id"]]
    assert "won" in str(updated.get("bodyV2")) and updated["status"] == "DONE"  # their status stands


async def test_a_deleted_product_is_marked_and_not_written_back_as_live(bridge: Bridge) -> None:
    fake = bridge.world.whop
    product = next(p for p in fake.products.values() if p.company_id == COMPANY)
    reads = fake.stats.calls_per_path[f"/api/v1/products/{product.id}"]
    await bridge.deliver("product.deleted", {"id": product.id, "title": product.title})
    await bridge.worker().run_once()
    (row,) = [p for p in live(bridge, "whopProducts") if p["whopProductId"] == product.id]
    assert row["visibility"] == "DELETED" and row["name"]  # the rest stays as it was
    assert fake.stats.calls_per_path[f"/api/v1/products/{product.id}"] == reads  # not re-read


async def test_a_failed_payment_found_by_reconciliation_opens_a_task_only_when_newer_than_the_connection(
    bridge: Bridge,
) -> None:
    fake = bridge.world.whop
    before = {t["id"] for t in live(bridge, "tasks")}
    assert before == set(), "the seed's old failures are history, not news"
    ms = next(m for m in fake.memberships.values() if m.company_id == COMPANY and m.status == "active")
    failed = fake.add_payment(ms.id, status="open", substatus="failed", failure_message="Card declined", total=49)
    result = await run_sync(bridge.world.runtime, kind="reconcile")
    assert result.status == "succeeded"
    tasks = {t["id"]: t for t in live(bridge, "tasks")}
    assert set(tasks) == {task_id(COMPANY, failed.id)}
    assert "Failed Whop payment" in tasks[task_id(COMPANY, failed.id)]["title"]
    again = await run_sync(bridge.world.runtime, kind="reconcile")
    assert again.counts.get("task") is None  # once


def expected_revenue(b: Bridge, key: str) -> tuple[int, int]:
    """(lifetime value in micros, active memberships) of a buyer, from what the fake Whop holds."""
    from bridge.sync.mapping import payment_fact
    from bridge.whop.models import Payment

    fake = b.world.whop
    nets = []
    for p in fake.payments.values():
        if p.company_id == COMPANY and (p.user_id or p.member_id) == key:
            fact = payment_fact(Payment.model_validate(fake.render(p.id)))
            if fact.net is not None and fact.net.amount > 0:
                nets.append(fact.net)
    # In the currency most of them are in (the seed has a EUR product beside USD ones).
    currencies = [n.currency for n in nets]
    main = max(sorted(set(currencies), key=str), key=currencies.count) if currencies else None  # ties: by name
    total = sum((n.amount for n in nets if n.currency == main), Decimal(0))
    active = sum(
        1
        for m in fake.memberships.values()
        if m.company_id == COMPANY
        and (m.user_id or m.member_id) == key
        and m.status in ("trialing", "active", "past_due", "canceling")
    )
    return micros(total), active


async def test_each_person_shows_lifetime_value_purchases_active_memberships_and_churn(bridge: Bridge) -> None:
    people = [p for p in live(bridge, "people") if p.get("whopUserId")]
    checked = 0
    for person in people:
        ltv, active = expected_revenue(bridge, person["whopUserId"])
        assert person["whopLifetimeValue"]["amountMicros"] == ltv, person["whopUserId"]
        assert person["whopActiveMemberships"] == active
        if active:
            assert person["whopChurnedAt"] is None
        if ltv:
            assert person["whopFirstPurchaseAt"] and person["whopLastPurchaseAt"] >= person["whopFirstPurchaseAt"]
            checked += 1
    assert checked >= 3

    # A refund by webhook lowers the lifetime value of its buyer.
    fake = bridge.world.whop
    paid = next(
        p for p in fake.payments.values() if p.company_id == COMPANY and p.substatus == "succeeded" and p.total > 10
    )
    key = paid.user_id or paid.member_id or ""
    before = next(p for p in live(bridge, "people") if p["whopUserId"] == key)["whopLifetimeValue"]["amountMicros"]
    fake.update_payment(paid.id, substatus="refunded", refunded_amount=paid.total)
    await bridge.deliver("refund.created", {"id": "rfnd_2", "payment": {"id": paid.id}})
    await bridge.worker().run_once()
    after = next(p for p in live(bridge, "people") if p["whopUserId"] == key)["whopLifetimeValue"]["amountMicros"]
    assert after == before - micros(paid.total)
    assert after == expected_revenue(bridge, key)[0]
