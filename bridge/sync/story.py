"""What happened to a membership or a payment, as timeline lines (pure; issue 22).

A line is read from Whop's state, never from a payload alone, and keyed by what it is, not by the
delivery that brought it: "mem_…:started", "mem_…:canceled:<when>", "pay_…:refund:<amount>". So
the worker and a sync that see the same state make the same key, and `store/timeline.py` makes
each key one line, however often and in whatever order the state is seen.

Most lines follow from one state: a membership started (or a trial did), is past due, is set to
cancel at the end of a period, was canceled or expired; a payment was paid (a renewal when Whop
billed a cycle), failed (each attempt), was refunded (each amount), disputed, and the dispute won
or lost. Two follow from a state and the lines already written: a cancellation withdrawn (a cancel
line for the period, and the membership live and no longer set to cancel) and a return (an end
line, and the membership live again). Those two are judged only on a state newer than the line
they answer (`observed_at`), so a page read before the change cannot take it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.money import Money
from bridge.store.timeline import HeldLine
from bridge.sync.mapping import (
    MIDDLE_DOT,
    iso_utc,
    money_label,
    payment_outcome,
    status_value,
)
from bridge.whop.models import Membership, Payment

MEMBERSHIP, PAYMENT = "whopMembership", "whopPayment"
# Membership statuses in which it gives access (and may renew, be set to cancel, or come back).
LIVE = frozenset({"TRIALING", "ACTIVE", "PAST_DUE", "CANCELING"})
ENDED = frozenset({"CANCELED", "EXPIRED"})
_PAID = frozenset({"SUCCEEDED", "REFUNDED", "PARTIALLY_REFUNDED", "DISPUTED", "DISPUTE_WON", "DISPUTE_LOST"})
_DISPUTED = frozenset({"DISPUTED", "DISPUTE_WON", "DISPUTE_LOST"})
_RENEWALS = frozenset({"SUBSCRIPTION_CYCLE", "RENEWAL", "SUBSCRIPTION_RENEWAL"})
_PERIODS = {1: "day", 7: "week", 14: "2 weeks", 30: "month", 31: "month", 90: "quarter", 365: "year", 366: "year"}


@dataclass(frozen=True)
class Line:
    """One timeline line: what happened, when, to whom, and the parts its text is made of."""

    key: str  # what it is, for the store: "mem_…:canceled:2026-05-07T00:00:00.000Z"
    subject: str  # the membership or payment it is about
    kind: str  # started, trial, renewed, paid, failed, refunded, disputed, dispute_won, …
    obj: str  # MEMBERSHIP or PAYMENT: the record the line links to
    what: str  # "Renewed", "Set to cancel on 2026-05-07"
    at: datetime | None  # when it happened at Whop
    observed_at: datetime | None  # Whop's updated_at of the state that told it
    amount: str = ""  # "$49.00", "$49.00/month"
    detail: str = ""  # a decline or cancellation reason
    person_key: str | None = None
    membership_id: str | None = None
    payment_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None

    @property
    def event(self) -> str:
        """The activity's name: its object and what happened ("whopPayment.refunded"); never one
        of Twenty's own actions (created, updated…), so Twenty shows it as a linked record."""
        return f"{self.obj}.{self.kind}"

    def text(self, product: str | None) -> str:
        """The line as it reads: "Renewed · $49.00 · Pro Signals"."""
        name = _clean(product) or _clean(self.product_title) or self.product_id or ""
        parts = (self.what, self.amount, name, _clean(self.detail))
        return f" {MIDDLE_DOT} ".join(p for p in parts if p)[:250]

    def held(self, activity_id: str | None) -> HeldLine:
        return HeldLine(self.key, self.subject, self.kind, self.at, self.observed_at, activity_id)


# Memberships ------------------------------------------------------------------------------------


def membership_lines(ms: Membership, held: Sequence[HeldLine] = (), *, ended_before: bool = False) -> list[Line]:
    """The lines Whop's state of a membership tells, given those already written for it;
    `ended_before`: its buyer had a membership here that ended before this one began."""
    status = status_value(ms.status) or ""
    if status not in LIVE | ENDED:
        return []  # drafted, completed (one-time), unresolved…: nothing a timeline tells
    price = _price(ms)
    canceling = status in LIVE and (ms.cancel_at_period_end or status == "CANCELING")
    lines = [_started(ms, status, price, returning=ended_before)]
    lines += _state_lines(ms, status, price, canceling=canceling)
    if status in LIVE:
        lines += _answer_lines(ms, held, price, canceling=canceling)
    return lines


def _state_lines(ms: Membership, status: str, price: str, *, canceling: bool) -> list[Line]:
    """The lines this state tells by itself: past due, set to cancel, canceled or expired."""
    lines: list[Line] = []
    period = _stamp(ms.current_period_end)
    if status == "PAST_DUE":
        lines.append(
            _line(ms, f"past_due:{period}", "past_due", "Past due", ms.updated_at, money_label(ms.renewal_price))
        )
    if canceling:
        ends = (iso_utc(ms.current_period_end) or "")[:10]
        what = f"Set to cancel on {ends}" if ends else "Set to cancel at period end"
        lines.append(
            _line(ms, f"cancel:{period}", "cancel_scheduled", what, ms.canceled_at or ms.updated_at, price, _reason(ms))
        )
    if status == "CANCELED":
        lines.append(_canceled(ms, price))
    elif status == "EXPIRED":
        when = ms.expires_at or ms.current_period_end
        lines.append(_line(ms, f"expired:{_stamp(when)}", "expired", "Expired", when or ms.updated_at, price))
    return lines


def _canceled(ms: Membership, price: str) -> Line:
    # Set to cancel at period end: access ended with the period (`canceled_at` is when they asked).
    at_end = ms.current_period_end if ms.cancel_at_period_end else None
    when = at_end or ms.canceled_at or ms.expires_at or ms.current_period_end
    return _line(ms, f"canceled:{_stamp(when)}", "canceled", "Canceled", when or ms.updated_at, price, _reason(ms))


def _answer_lines(ms: Membership, held: Sequence[HeldLine], price: str, *, canceling: bool) -> list[Line]:
    """The lines a live membership's state tells against those held: a cancellation withdrawn
    (unless it is set to cancel still), a return after an end."""
    lines: list[Line] = []
    keys = {h.key for h in held}
    if not canceling:
        withdrawn = _answer(ms, held, keys, ("cancel_scheduled",), "uncancel", ends_too=True)
        if withdrawn is not None:
            lines.append(_line(ms, withdrawn, "cancel_withdrawn", "Cancellation withdrawn", ms.updated_at, price))
    back = _answer(ms, held, keys, ("canceled", "expired"), "returned")
    if back is not None:
        lines.append(_line(ms, back, "returned", "Came back", ms.updated_at, price))
    return lines


def _started(ms: Membership, status: str, price: str, *, returning: bool) -> Line:
    """Once per membership: a trial when first seen trialing, else a start; a buyer whose
    earlier membership ended comes back with it."""
    if status == "TRIALING":
        what = "Came back for a trial" if returning else "Trial started"
        return _line(ms, "started", "trial", what, ms.created_at, f"then {price}" if price else "")
    what, kind = ("Came back", "returned") if returning else ("Membership started", "started")
    return _line(ms, "started", kind, what, ms.created_at, price)


def _answer(
    ms: Membership,
    held: Sequence[HeldLine],
    keys: set[str],
    kinds: tuple[str, ...],
    answer: str,
    *,
    ends_too: bool = False,
) -> str | None:
    """The key of the line that answers the newest held line of `kinds` (a withdrawal answers a
    cancel, a return an end), when none does yet and this state is newer than that line's."""
    asked = [h for h in held if h.kind in kinds]
    if not asked or ms.updated_at is None:
        return None
    now = ms.updated_at
    newest = max(asked, key=lambda h: (h.observed_at or h.happened_at or now, h.key))
    if ends_too and any(h.kind in ("canceled", "expired") and _after(h, newest) for h in held):
        return None  # it ended after that cancel: what follows is a return, not a withdrawal
    seen = newest.observed_at or newest.happened_at
    if seen is None or ms.updated_at <= seen:
        return None  # a state no newer than the one that wrote the line cannot answer it
    key = f"{ms.id}:{answer}:{newest.key.split(':', 2)[-1]}"
    return None if key in keys else key


def _after(line: HeldLine, other: HeldLine) -> bool:
    a, b = line.observed_at or line.happened_at, other.observed_at or other.happened_at
    return a is not None and b is not None and a > b


def _line(
    ms: Membership, suffix: str, kind: str, what: str, at: datetime | None, amount: str = "", detail: str | None = None
) -> Line:
    return Line(
        key=f"{ms.id}:{suffix}",
        subject=ms.id,
        kind=kind,
        obj=MEMBERSHIP,
        what=what,
        at=at,
        observed_at=ms.updated_at,
        amount=amount,
        detail=detail or "",
        person_key=ms.user_id or ms.member_id,
        membership_id=ms.id,
        product_id=ms.product_id,
        product_title=ms.product_title,
    )


def _price(ms: Membership) -> str:
    """ "$49.00/month" for a renewing membership, "$99.00" for a one-time one."""
    renewal = ms.renewal_price
    if renewal is not None and renewal.amount != 0:
        days = round(ms.billing_period_days) if ms.billing_period_days and ms.billing_period_days > 0 else None
        if days is None and ms.current_period_start and ms.current_period_end:
            span = round((ms.current_period_end - ms.current_period_start).total_seconds() / 86_400)
            days = span if span > 0 else None
        every = _PERIODS.get(days or 0) or (f"{days} days" if days else "")
        return f"{money_label(renewal)}/{every}" if every else money_label(renewal)
    return money_label(ms.initial_price)


def _reason(ms: Membership) -> str | None:
    parts = [_clean(ms.cancel_option).replace("_", " "), _clean(ms.cancellation_reason)]
    text = ": ".join(p for p in parts if p)
    return f"reason: {text}" if text else None


# Payments ---------------------------------------------------------------------------------------


def payment_lines(p: Payment) -> list[Line]:
    """The lines a payment's state tells: paid (or renewed), each failed attempt, each refund,
    a dispute and how it ended."""
    outcome = payment_outcome(p) or ""
    total = money_label(p.total)
    told = (_paid(p, outcome, total), _failed(p, outcome, total), _refunded(p, total))
    return [line for line in told if line is not None] + _dispute_lines(p, outcome, total)


def _paid(p: Payment, outcome: str, total: str) -> Line | None:
    if outcome not in _PAID:
        return None
    renewal = (status_value(p.billing_reason) or "") in _RENEWALS
    kind, what = ("renewed", "Renewed") if renewal else ("paid", "Paid")
    return _pay(p, "paid", kind, what, p.paid_at or p.created_at, total)


def _failed(p: Payment, outcome: str, total: str) -> Line | None:
    if outcome != "FAILED":
        return None
    when = p.last_payment_attempt_at or p.created_at
    reason = _clean(p.failure_message) or _clean(p.decline_code).replace("_", " ")
    return _pay(p, f"failed:{_stamp(when)}", "failed", "Payment failed", when, total, reason)


def _refunded(p: Payment, total: str) -> Line | None:
    """One line per refunded amount: a later, larger refund is a new line."""
    refunded = p.refunded_amount
    if refunded is None or refunded.amount <= 0:
        return None
    whole = p.total is None or refunded.amount >= p.total.amount
    amount = money_label(refunded) if whole else f"{money_label(refunded)} of {total}"
    what = "Refunded" if whole else "Partially refunded"
    return _pay(p, f"refund:{_amount_key(refunded)}", "refunded", what, p.refunded_at or p.updated_at, amount)


# How a dispute ended: the line's kind and text.
_DISPUTE_ENDS = {"DISPUTE_WON": ("dispute_won", "Dispute won"), "DISPUTE_LOST": ("dispute_lost", "Dispute lost")}


def _dispute_lines(p: Payment, outcome: str, total: str) -> list[Line]:
    if outcome not in _DISPUTED:
        return []
    lines = [_pay(p, "disputed", "disputed", "Disputed", p.dispute_alerted_at or p.updated_at, total)]
    if outcome in _DISPUTE_ENDS:
        kind, what = _DISPUTE_ENDS[outcome]
        lines.append(_pay(p, kind, kind, what, p.updated_at, total))
    return lines


def _pay(
    p: Payment, suffix: str, kind: str, what: str, at: datetime | None, amount: str, detail: str | None = None
) -> Line:
    return Line(
        key=f"{p.id}:{suffix}",
        subject=p.id,
        kind=kind,
        obj=PAYMENT,
        what=what,
        at=at,
        observed_at=p.updated_at,
        amount=amount,
        detail=detail or "",
        person_key=p.user_id or (p.user.id if p.user else None) or p.member_id,
        membership_id=p.membership_id,
        payment_id=p.id,
        product_id=p.product_id,
        product_title=p.product_title,
    )


def _amount_key(m: Money) -> str:
    """An amount in a key, the same whichever shape Whop sent it in (49, 49.0, "49.00")."""
    return f"{m.amount:.2f}"


# Helpers ----------------------------------------------------------------------------------------


def _stamp(value: datetime | None) -> str:
    """A time in a key: stable whoever reads it (ISO 8601 UTC, milliseconds); "" when unknown."""
    return iso_utc(value) or ""


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())
