"""Which moment Whop's state is in, and the Task it asks for (bridge/sync/moments.py): tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.sync.moments import CANCEL, INVOICE, TRIAL, invoice_want, membership_wants, task_record
from bridge.whop.models import Invoice, Membership

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CONNECTED = NOW - timedelta(days=30)


def membership(**fields: Any) -> Membership:
    base: dict[str, Any] = {
        "id": "mem_A",
        "status": "active",
        "user_id": "user_A",
        "member_id": "mber_A",
        "product": {"id": "prod_A", "title": "Pro Signals"},
        "current_period_end": (NOW + timedelta(days=10)).isoformat(),
        "updated_at": (NOW - timedelta(hours=1)).isoformat(),
    }
    return Membership.model_validate({**base, **fields})


def wants(ms: Membership, *, announced: tuple[str, ...] = (), since: datetime | None = None) -> dict[str, Any]:
    """kind -> (open, may_open) for each moment the membership speaks of."""
    return {w.kind: (w.open, w.may_open) for w in membership_wants(ms, now=NOW, announced=announced, since=since)}


@pytest.mark.parametrize(
    ("fields", "announced", "since", "expected"),
    [
        # Set to cancel, announced by its event: open.
        ({"cancel_at_period_end": True}, (CANCEL,), None, {CANCEL: (True, True), TRIAL: (False, False)}),
        # Set to cancel, seen by a reconciliation after the connection: news, open.
        ({"cancel_at_period_end": True}, (), CONNECTED, {CANCEL: (True, True), TRIAL: (False, False)}),
        # …changed before the connection: history, may not open (but updates a Task held).
        (
            {"cancel_at_period_end": True, "updated_at": (CONNECTED - timedelta(days=1)).isoformat()},
            (),
            CONNECTED,
            {CANCEL: (True, False), TRIAL: (False, False)},
        ),
        # Whop's derived status says it too.
        ({"status": "canceling"}, (CANCEL,), None, {CANCEL: (True, True)}),
        # Live and not canceling: that moment is over (they changed their mind); paying: any trial
        # converted.
        ({}, (CANCEL,), None, {CANCEL: (False, False), TRIAL: (False, False)}),
        # Ended memberships say nothing of either: a Task someone works on is left as it is.
        ({"status": "canceled", "cancel_at_period_end": True}, (CANCEL,), None, {}),
        ({"status": "expired"}, (), CONNECTED, {}),
        # A trial ending within the window, or announced, is a moment; one further off says nothing.
        (
            {"status": "trialing", "current_period_end": (NOW + timedelta(days=2)).isoformat()},
            (),
            CONNECTED,
            {CANCEL: (False, False), TRIAL: (True, True)},
        ),
        ({"status": "trialing"}, (), CONNECTED, {CANCEL: (False, False)}),
        ({"status": "trialing"}, (TRIAL,), None, {CANCEL: (False, False), TRIAL: (True, True)}),
        # A trial set to cancel is a save moment, not a convert one.
        ({"status": "trialing", "cancel_at_period_end": True}, (TRIAL,), None, {CANCEL: (True, False)}),
        # Past due after a trial: it converted.
        ({"status": "past_due"}, (), None, {CANCEL: (False, False), TRIAL: (False, False)}),
    ],
)
def test_membership_moments(
    fields: dict[str, Any], announced: tuple[str, ...], since: datetime | None, expected: dict[str, Any]
) -> None:
    assert wants(membership(**fields), announced=announced, since=since) == expected


def invoice(**fields: Any) -> Invoice:
    base: dict[str, Any] = {
        "id": "inv_A",
        "status": "past_due",
        "number": "0007",
        "company": {"id": "biz_A"},
        "user": {"id": "user_A", "username": "ann", "name": "Ann"},
        "member": {"id": "mber_A"},
        "product": {"id": "prod_A", "title": "Pro Signals"},
        "current_plan": {"id": "plan_A", "formatted_price": "$49.00", "currency": "usd"},
        "payment": None,
        "payment_processing": False,
        "due_date": (NOW - timedelta(days=2)).isoformat(),
        "updated_at": NOW.isoformat(),
    }
    return Invoice.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "announced", "expected"),
    [
        ({}, True, (True, True)),
        ({}, False, (True, False)),  # no connection time given: nothing is news without its event
        ({"payment_processing": True}, True, None),  # a payment is clearing: not overdue yet
        ({"status": "paid", "payment": {"id": "pay_A"}}, False, (False, False)),
        ({"status": "void"}, False, (False, False)),
        ({"status": "open"}, True, None),
        ({"status": "uncollectible"}, True, None),  # written off: a Task someone holds stays theirs
    ],
)
def test_invoice_moments(fields: dict[str, Any], announced: bool, expected: tuple[bool, bool] | None) -> None:
    want = invoice_want(invoice(**fields), membership_id="mem_A", announced=announced)
    assert (None if want is None else (want.open, want.may_open)) == expected


def test_an_invoice_names_its_buyer_plan_and_payment() -> None:
    inv = invoice(status="paid", payment={"id": "pay_A"})
    assert (inv.company_id, inv.user_id, inv.member_id, inv.plan_id, inv.payment_id) == (
        "biz_A",
        "user_A",
        "mber_A",
        "plan_A",
        "pay_A",
    )
    assert (inv.product_title, inv.formatted_price) == ("Pro Signals", "$49.00")


def _due(want_kind: str, anchor: datetime | None, opened: datetime) -> datetime:
    ms = membership(
        status="trialing" if want_kind == TRIAL else "active",
        cancel_at_period_end=want_kind == CANCEL,
        current_period_end=anchor.isoformat() if anchor else None,
    )
    want = next(w for w in membership_wants(ms, now=NOW, announced=(want_kind,)) if w.kind == want_kind)
    task = task_record(want, who="Ann", product=None, opened_at=opened)
    return datetime.fromisoformat(task["dueAt"].replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("kind", "anchor", "opened", "due"),
    [
        (CANCEL, NOW + timedelta(days=10), NOW, NOW + timedelta(days=7)),  # three days before the end
        (CANCEL, NOW + timedelta(days=1), NOW, NOW),  # too late for that: due now, never in the past
        (CANCEL, None, NOW, NOW + timedelta(days=1)),  # no period end known: due tomorrow
        (TRIAL, NOW + timedelta(days=3), NOW, NOW + timedelta(days=2)),  # a day before the trial ends
    ],
)
def test_due_dates_come_before_the_moment_passes(
    kind: str, anchor: datetime | None, opened: datetime, due: datetime
) -> None:
    assert _due(kind, anchor, opened) == due


def test_task_text_names_the_customer_the_product_and_the_facts() -> None:
    ms = membership(cancel_at_period_end=True, cancel_option="too_expensive", manage_url="https://whop.com/m/1")
    want = next(w for w in membership_wants(ms, now=NOW, announced=(CANCEL,)) if w.kind == CANCEL)
    task = task_record(want, who="  Ann   Lee ", product=None, opened_at=NOW)
    assert task["title"] == "Save Ann Lee: Pro Signals cancels at period end"
    body = task["bodyV2"]["markdown"]
    assert "- Reason given: too_expensive" in body and "- Membership: mem_A" in body
    assert "https://whop.com/m/1" in body
    assert "status" not in task, "the status is set by whoever may set it, never by the text"
    inv = invoice_want(invoice(), membership_id=None, announced=True)
    assert inv is not None and inv.kind == INVOICE
    text = task_record(inv, who=None, product=None, opened_at=NOW)
    assert text["title"] == "Collect user_A: Pro Signals invoice past due"
    assert "- Amount: $49.00" in text["bodyV2"]["markdown"]


def test_task_targets_use_the_morph_fields_where_twenty_has_them() -> None:
    """Twenty 2.21 links a Task through morph relations (`targetPersonId`, seen on the real
    server); 1.x and the 2.x before them through `personId`. The live metadata says which."""
    from bridge.sync.tasks import target_field
    from bridge.twenty.data import WriteRules
    from bridge.twenty.documents import Dialect
    from bridge.twenty.metadata import LiveField, LiveObject

    def field(name: str, type_: str) -> LiveField:
        return LiveField(id=name, name=name, type=type_, label=name, is_active=True, is_unique=False, options=())

    morph = LiveObject(
        id="t",
        name_singular="taskTarget",
        name_plural="taskTargets",
        is_active=True,
        fields={f.name: f for f in (field("task", "RELATION"), field("target", "MORPH_RELATION"))},
    )
    person = LiveObject(id="p", name_singular="person", name_plural="people", is_active=True)
    known = WriteRules.from_live(Dialect.V2, {"taskTarget": morph, "person": person}).known_fields["taskTarget"]
    assert {"taskId", "targetPersonId"} <= known
    assert target_field(known, "person") == "targetPersonId"
    assert target_field(frozenset({"id", "taskId", "personId", "opportunityId"}), "opportunity") == "opportunityId"
