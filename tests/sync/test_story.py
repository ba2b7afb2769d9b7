"""What Whop's state says happened, as timeline lines (bridge/sync/story.py): tables of states,
the keys that make each event one line, and the words a salesperson reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.store.timeline import HeldLine
from bridge.sync.story import Line, membership_lines, payment_lines
from bridge.whop.models import Membership, Payment

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STARTED = NOW - timedelta(days=100)
PERIOD_END = NOW + timedelta(days=10)


def membership(**fields: Any) -> Membership:
    base: dict[str, Any] = {
        "id": "mem_A",
        "status": "active",
        "user_id": "user_A",
        "member_id": "mber_A",
        "product": {"id": "prod_A", "title": "Pro Signals"},
        "renewal_price": {"amount": "49.00", "currency": "usd"},
        "billing_period_days": 30,
        "created_at": STARTED.isoformat(),
        "current_period_end": PERIOD_END.isoformat(),
        "updated_at": (NOW - timedelta(hours=1)).isoformat(),
    }
    return Membership.model_validate({**base, **fields})


def payment(**fields: Any) -> Payment:
    base: dict[str, Any] = {
        "id": "pay_A",
        "status": "paid",
        "substatus": "succeeded",
        "billing_reason": "subscription_cycle",
        "membership_id": "mem_A",
        "user_id": "user_A",
        "product": {"id": "prod_A", "title": "Pro Signals"},
        "total": {"amount": "49.00", "currency": "usd"},
        "paid_at": (NOW - timedelta(days=3)).isoformat(),
        "created_at": (NOW - timedelta(days=3)).isoformat(),
        "updated_at": (NOW - timedelta(days=3)).isoformat(),
    }
    return Payment.model_validate({**base, **fields})


def told(lines: list[Line]) -> dict[str, str]:
    """kind -> the line's text."""
    return {line.kind: line.text(None) for line in lines}


def held(lines: list[Line]) -> list[HeldLine]:
    return [line.held("tw-1") for line in lines]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"started": "Membership started · $49.00/month · Pro Signals"}),
        (
            {"status": "trialing"},
            {"trial": "Trial started · then $49.00/month · Pro Signals"},
        ),
        (
            {"status": "past_due"},
            {
                "started": "Membership started · $49.00/month · Pro Signals",
                "past_due": "Past due · $49.00 · Pro Signals",
            },
        ),
        (
            {"cancel_at_period_end": True, "cancel_option": "too_expensive"},
            {
                "started": "Membership started · $49.00/month · Pro Signals",
                "cancel_scheduled": f"Set to cancel on {PERIOD_END.date()} · $49.00/month · Pro Signals"
                " · reason: too expensive",
            },
        ),
        (
            {"status": "canceled", "canceled_at": (NOW - timedelta(days=1)).isoformat()},
            {
                "started": "Membership started · $49.00/month · Pro Signals",
                "canceled": "Canceled · $49.00/month · Pro Signals",
            },
        ),
        (
            {"status": "expired", "billing_period_days": 365, "renewal_price": {"amount": "490", "currency": "usd"}},
            {
                "started": "Membership started · $490.00/year · Pro Signals",
                "expired": "Expired · $490.00/year · Pro Signals",
            },
        ),
        # A one-time purchase: its price, no period.
        (
            {"renewal_price": None, "initial_price": {"amount": "99", "currency": "eur"}, "billing_period_days": None},
            {"started": "Membership started · €99.00 · Pro Signals"},
        ),
        # Not begun, or nothing a timeline tells.
        ({"status": "drafted"}, {}),
        ({"status": "completed"}, {}),
    ],
)
def test_what_a_membership_state_tells(fields: dict[str, Any], expected: dict[str, str]) -> None:
    assert told(membership_lines(membership(**fields))) == expected


def test_each_event_has_a_key_of_its_own_that_the_next_reading_makes_again() -> None:
    first = membership_lines(membership(status="past_due", cancel_at_period_end=True))
    again = membership_lines(membership(status="past_due", cancel_at_period_end=True, updated_at=NOW.isoformat()))
    assert [line.key for line in first] == [line.key for line in again]
    assert {line.key for line in first} == {
        "mem_A:started",
        f"mem_A:past_due:{PERIOD_END.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
        f"mem_A:cancel:{PERIOD_END.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
    }
    # A trial and the start it becomes are one line: the start is told once, as first seen.
    assert {line.key for line in membership_lines(membership(status="trialing"))} == {"mem_A:started"}
    # Past due again in a later period is another event; in the same period, the same one.
    later = membership_lines(
        membership(status="past_due", current_period_end=(PERIOD_END + timedelta(days=30)).isoformat())
    )
    assert {line.key for line in later} - {line.key for line in first} == {later[1].key}


def test_lines_are_dated_when_the_event_happened_and_link_their_people() -> None:
    canceled_at = NOW - timedelta(days=1)
    lines = {
        line.kind: line for line in membership_lines(membership(status="canceled", canceled_at=canceled_at.isoformat()))
    }
    assert lines["started"].at == STARTED and lines["canceled"].at == canceled_at
    assert (lines["canceled"].person_key, lines["canceled"].membership_id) == ("user_A", "mem_A")
    assert lines["canceled"].event == "whopMembership.canceled"
    # Set to cancel at period end, then canceled: access ended with the period, not when they asked.
    at_end = membership_lines(
        membership(status="canceled", cancel_at_period_end=True, canceled_at=canceled_at.isoformat())
    )
    assert next(line for line in at_end if line.kind == "canceled").at == PERIOD_END


def test_a_withdrawn_cancellation_answers_the_cancel_line_once_and_only_from_a_newer_state() -> None:
    asked = membership(cancel_at_period_end=True, updated_at=(NOW - timedelta(hours=5)).isoformat())
    written = held(membership_lines(asked))
    # A page read before they asked (older state): no withdrawal.
    stale = membership(updated_at=(NOW - timedelta(hours=6)).isoformat())
    assert "cancel_withdrawn" not in told(membership_lines(stale, written))
    # Whop says they changed their mind.
    fresh = membership(updated_at=(NOW - timedelta(hours=1)).isoformat())
    lines = membership_lines(fresh, written)
    assert told(lines)["cancel_withdrawn"] == "Cancellation withdrawn · $49.00/month · Pro Signals"
    withdrawal = next(line for line in lines if line.kind == "cancel_withdrawn")
    # Once written, it is not told again, however often the membership is read.
    again = membership_lines(membership(updated_at=NOW.isoformat()), [*written, withdrawal.held("tw-2")])
    assert {line.key for line in again} <= {h.key for h in [*written, withdrawal.held("tw-2")]}


def test_a_return_answers_the_end_and_a_page_read_before_the_end_does_not_bring_them_back() -> None:
    ended = membership(
        status="expired",
        expires_at=(NOW - timedelta(days=2)).isoformat(),
        updated_at=(NOW - timedelta(days=2)).isoformat(),
    )
    written = held(membership_lines(ended))
    before = membership(updated_at=(NOW - timedelta(days=3)).isoformat())  # a sync's page from before
    assert "returned" not in told(membership_lines(before, written))
    back = membership_lines(membership(updated_at=NOW.isoformat()), written)
    assert told(back)["returned"] == "Came back · $49.00/month · Pro Signals"
    # Set to cancel, the period ended (canceled): coming back is a return, not a withdrawal.
    scheduled = membership(cancel_at_period_end=True, updated_at=(NOW - timedelta(days=5)).isoformat())
    canceled = membership(
        status="canceled", cancel_at_period_end=True, updated_at=(NOW - timedelta(days=2)).isoformat()
    )
    history = held(membership_lines(scheduled)) + held(membership_lines(canceled))
    kinds = told(membership_lines(membership(updated_at=NOW.isoformat()), history))
    assert "returned" in kinds and "cancel_withdrawn" not in kinds


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"renewed": "Renewed · $49.00 · Pro Signals"}),
        ({"billing_reason": "subscription_create"}, {"paid": "Paid · $49.00 · Pro Signals"}),
        (
            {"status": "open", "substatus": "failed", "paid_at": None, "failure_message": "Your card was declined."},
            {"failed": "Payment failed · $49.00 · Pro Signals · Your card was declined."},
        ),
        (
            {"status": "open", "substatus": "failed", "paid_at": None, "decline_code": "insufficient_funds"},
            {"failed": "Payment failed · $49.00 · Pro Signals · insufficient funds"},
        ),
        (
            {"substatus": "refunded", "refunded_amount": {"amount": "49", "currency": "usd"}},
            {"renewed": "Renewed · $49.00 · Pro Signals", "refunded": "Refunded · $49.00 · Pro Signals"},
        ),
        (
            {"substatus": "partially_refunded", "refunded_amount": {"amount": "20", "currency": "usd"}},
            {
                "renewed": "Renewed · $49.00 · Pro Signals",
                "refunded": "Partially refunded · $20.00 of $49.00 · Pro Signals",
            },
        ),
        (
            {"substatus": "dispute_needs_response"},
            {"renewed": "Renewed · $49.00 · Pro Signals", "disputed": "Disputed · $49.00 · Pro Signals"},
        ),
        (
            {"substatus": "dispute_won"},
            {
                "renewed": "Renewed · $49.00 · Pro Signals",
                "disputed": "Disputed · $49.00 · Pro Signals",
                "dispute_won": "Dispute won · $49.00 · Pro Signals",
            },
        ),
        (
            {"substatus": "dispute_lost"},
            {
                "renewed": "Renewed · $49.00 · Pro Signals",
                "disputed": "Disputed · $49.00 · Pro Signals",
                "dispute_lost": "Dispute lost · $49.00 · Pro Signals",
            },
        ),
        ({"status": "pending", "substatus": "pending", "paid_at": None}, {}),
    ],
)
def test_what_a_payment_state_tells(fields: dict[str, Any], expected: dict[str, str]) -> None:
    assert told(payment_lines(payment(**fields))) == expected


def test_each_failed_attempt_and_each_refund_is_its_own_event() -> None:
    first = payment(
        status="open", substatus="failed", paid_at=None, last_payment_attempt_at=(NOW - timedelta(days=2)).isoformat()
    )
    second = payment(
        status="open", substatus="failed", paid_at=None, last_payment_attempt_at=(NOW - timedelta(days=1)).isoformat()
    )
    assert payment_lines(first)[0].key != payment_lines(second)[0].key
    # The same refund in Whop's two money shapes is one event; a second refund is another.
    native = payment(substatus="partially_refunded", refunded_amount={"amount": "20.00", "currency": "usd"})
    legacy = payment(substatus="partially_refunded", refunded_amount=20, currency="usd")
    more = payment(substatus="refunded", refunded_amount={"amount": "49.00", "currency": "usd"})
    refund = [[line.key for line in payment_lines(p) if line.kind == "refunded"] for p in (native, legacy, more)]
    assert refund[0] == refund[1] == ["pay_A:refund:20.00"] and refund[2] == ["pay_A:refund:49.00"]
    # A payment's lines link the WhopPayment, and point at its buyer and membership.
    line = payment_lines(payment())[0]
    assert (line.obj, line.payment_id, line.membership_id, line.person_key) == (
        "whopPayment",
        "pay_A",
        "mem_A",
        "user_A",
    )
    assert line.event == "whopPayment.renewed" and line.at == NOW - timedelta(days=3)


def test_the_product_is_named_by_what_twenty_holds_then_by_whop() -> None:
    line = membership_lines(membership())[0]
    assert line.text("Pro Signals (annual)") == "Membership started · $49.00/month · Pro Signals (annual)"
    bare = membership_lines(membership(product="prod_A"))[0]
    assert bare.text(None) == "Membership started · $49.00/month · prod_A"


def test_a_new_membership_of_a_buyer_whose_earlier_one_ended_is_a_return() -> None:
    assert told(membership_lines(membership(), ended_before=True)) == {
        "returned": "Came back · $49.00/month · Pro Signals"
    }
    trial = membership_lines(membership(status="trialing"), ended_before=True)
    assert told(trial) == {"trial": "Came back for a trial · then $49.00/month · Pro Signals"}
    assert {line.key for line in trial} == {"mem_A:started"}, "still the membership's one start"
