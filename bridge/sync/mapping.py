"""Whop models → Twenty records. Pure functions: no I/O, no clock, no randomness.

Records are plain dicts in the shape of Twenty's data API, with the field names declared in
`schema/objects/*.toml` (the contract with the provisioner) plus Twenty's standard fields.

Ownership (design.md, "Keys and mapping"):

* fields whose names start with `whop` belong to the bridge and are always written;
* curated standard fields (a Person's name, emails, phones; an Opportunity's name and amount)
  are filled by the bridge but owned by people: see `curated`;
* an Opportunity's `stage` belongs to the sales team: see `opportunity_stage`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any
from urllib.parse import quote

from bridge.facts import MemberFact, MembershipFact, PaymentFact
from bridge.money import Money
from bridge.whop.models import Member, Membership, Payment, Plan, Product

__all__ = [
    "STAGE_ORDER",
    "CompanyRef",
    "MemberFact",
    "MembershipFact",
    "PaymentFact",
    "case_task",
    "company_fields",
    "curated",
    "failed_payment_task",
    "fold_member_facts",
    "iso_utc",
    "member_display_name",
    "member_fact",
    "membership_fact",
    "money_label",
    "money_to_currency",
    "opportunity_record",
    "opportunity_stage",
    "payment_fact",
    "payment_fields",
    "payment_is_failure",
    "payment_outcome",
    "payment_record",
    "payment_status_value",
    "person_key",
    "person_record",
    "person_revenue",
    "plan_fields",
    "product_record",
    "record_hash",
    "split_name",
    "status_value",
    "target_stage",
]

EN_DASH = "\u2013"
MICROS = Decimal(1_000_000)
MAX_SELECT_VALUE = 63  # Twenty's limit on metadata names applies to option values too

# Scalars -------------------------------------------------------------------------------------


def iso_utc(value: datetime | None) -> str | None:
    """A DATE_TIME value: ISO 8601 in UTC with milliseconds and `Z` (stable for hashing)."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def money_to_currency(m: Money | None) -> dict[str, Any] | None:
    """Whop Money → Twenty CURRENCY `{amountMicros, currencyCode}`, exactly.

    Decimal all the way (a float would turn 0.29 into 289999.99… micros); sub-micro fractions
    round half-even. A Money with no currency keeps `currencyCode: None` rather than guessing.
    """
    if m is None or not m.amount.is_finite():
        return None
    with localcontext() as ctx:
        ctx.prec = 60  # far above any real amount, so the multiplication is exact
        micros = (m.amount * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return {
        "amountMicros": int(micros),
        "currencyCode": m.currency.strip().upper() if m.currency and m.currency.strip() else None,
    }


_CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NON_ALNUM_RE = re.compile(r"[^A-Za-z0-9]+")


def status_value(raw: str | None) -> str | None:
    """A Whop status → a Twenty SELECT option value (`past_due` → `PAST_DUE`).

    Unknown values still produce a valid option (`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`, ≤ 63 chars)
    so the writer can add it to the SELECT instead of failing the record.
    """
    if raw is None:
        return None
    # Accents fold to ASCII; camelCase splits into words; every other run becomes one "_".
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    text = _CAMEL_RE.sub("_", text.strip())
    value = _NON_ALNUM_RE.sub("_", text).strip("_").upper()
    if not value:
        return None
    if value[0].isdigit():
        value = f"V_{value}"  # options must start with a letter
    return value[:MAX_SELECT_VALUE].rstrip("_")


# The curated rule -----------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    """Empty as Twenty shows it: null, "", [], or a composite whose sub-fields are all empty."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return all(_is_empty(item) for item in value)
    if isinstance(value, dict):
        return all(_is_empty(item) for item in value.values())
    return False


def _same(a: Any, b: Any) -> bool:
    """Equal once Twenty's ways of saying "nothing" are ignored (null vs "" vs a missing key)."""
    if _is_empty(a) and _is_empty(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same(a.get(key), b.get(key)) for key in a.keys() | b.keys())
    return bool(a == b)


def curated(new: Any, current_value: Any, last_written_value: Any) -> bool:
    """Should the bridge write `new` into a field that people may edit?

    Yes when Twenty's value is empty, when it still equals what the bridge wrote last time (no
    person has edited it since), or when it already equals `new` (a no-op). Never to blank a
    field: an empty `new` is not written.
    """
    if _is_empty(new):
        return False
    if _is_empty(current_value) or _same(current_value, new):
        return True
    return last_written_value is not None and _same(current_value, last_written_value)


# Fields people may edit in Twenty, per object (the rest of a record is the bridge's).
CURATED_FIELDS: dict[str, tuple[str, ...]] = {
    "person": ("name", "emails", "phones"),
    "opportunity": ("name", "amount", "stage"),
}


def without_unchanged_curated(obj: str, record: dict[str, Any], written: dict[str, Any]) -> dict[str, Any] | None:
    """`record` for an update that needs no read of Twenty first, or None when it needs one.

    The bridge has nothing new to say about a curated field whose value is what it wrote last
    time: the field is left out, so whatever a person did with it stands (the read would only
    have told the builder to send the same value or leave it alone). A curated field whose
    value changed at Whop needs Twenty's current value to know whether a person edited it.
    """
    out = dict(record)
    for name in CURATED_FIELDS.get(obj, ()):
        if name not in out:
            continue
        if not _same(out[name], written.get(name)):
            return None
        del out[name]
    return out


def _field(record: dict[str, Any] | None, name: str) -> Any:
    return None if record is None else record.get(name)


def _put_curated(
    out: dict[str, Any],
    name: str,
    new: Any,
    current: dict[str, Any] | None,
    last_written: dict[str, Any] | None,
) -> None:
    if curated(new, _field(current, name), _field(last_written, name)):
        out[name] = new


# Products ------------------------------------------------------------------------------------


# Companies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyRef:
    """The connected Whop company a record comes from (several may feed one workspace)."""

    id: str
    name: str | None = None


def company_fields(company: CompanyRef | None) -> dict[str, Any]:
    """`whopCompanyId` and `whopCompanyName` of an Opportunity or WhopProduct ({} when unknown)."""
    if company is None:
        return {}
    return {"whopCompanyId": company.id, "whopCompanyName": _clean(company.name) or company.id}


def product_record(p: Product, company: CompanyRef | None = None) -> dict[str, Any]:
    """A WhopProduct record; the whole object is the bridge's, so every field is written."""
    title = (p.title or "").strip() or p.id
    record: dict[str, Any] = {
        "whopProductId": p.id,
        "name": title,
        "description": p.description,
        "headline": p.headline,
        "visibility": status_value(p.visibility),
        "memberCount": p.member_count,
        "whopCreatedAt": iso_utc(p.created_at),
        "whopUpdatedAt": iso_utc(p.updated_at),
        **company_fields(company),
    }
    route = (p.route or "").strip().strip("/")
    if route:
        record["url"] = {
            "primaryLinkUrl": f"https://whop.com/{quote(route, safe='-_.~')}/",
            "primaryLinkLabel": title,
            "secondaryLinks": [],
        }
    return record


# People --------------------------------------------------------------------------------------


def person_key(m: Member) -> str:
    """The Person's key `whopUserId`: the user id, or the member id for a business buyer."""
    return m.user.id if m.user is not None else m.id


def split_name(full: str | None, *, whole: bool = False) -> dict[str, str]:
    """A FULL_NAME value: last word → lastName, the words before → firstName.

    One word goes to firstName with lastName "" (Twenty shows "Madonna", not " Madonna").
    `whole=True` keeps the text in firstName unsplit (a business name is not a person's name).
    Never returns None; whitespace runs collapse to single spaces.
    """
    words = (full or "").split()
    if whole or len(words) <= 1:
        return {"firstName": " ".join(words), "lastName": ""}
    return {"firstName": " ".join(words[:-1]), "lastName": words[-1]}


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def member_display_name(m: Member) -> str:
    """The name to show for a member: Whop name, then display name, then username, then id."""
    user = m.user
    for candidate in (
        user.name if user else None,
        m.display_name,
        user.username if user else None,
    ):
        if _clean(candidate):
            return _clean(candidate)
    return m.id


def _person_name(m: Member) -> dict[str, str] | None:
    if m.user is None:
        business = _clean(m.display_name)
        return split_name(business, whole=True) if business else None
    for candidate in (m.user.name, m.display_name, m.user.username):
        if _clean(candidate):
            return split_name(candidate)
    return None


def _email(m: Member) -> str | None:
    email = (m.email or (m.user.email if m.user else None) or "").strip().lower()
    return email or None


_PHONE_JUNK_RE = re.compile(r"[\s().\-]+")


def _phone(raw: str | None) -> dict[str, Any] | None:
    """Kept simple: the number as Whop has it (E.164 in practice), minus spaces and dashes.

    Splitting out the country/calling code needs a numbering-plan table the bridge does not
    carry; Twenty shows a `+…` number fine without them.
    """
    number = _PHONE_JUNK_RE.sub("", raw or "")
    return {"primaryPhoneNumber": number} if number else None


def member_fact(m: Member, company_id: str) -> MemberFact:
    return MemberFact(company_id, m.id, m.usd_total_spent, m.joined_at or m.created_at, m.status)


_JOINED = "JOINED"


def fold_member_facts(facts: Sequence[MemberFact]) -> dict[str, Any]:
    """A Person's member fields across the companies it bought from.

    Total spent is the sum; joined is the earliest; the status is JOINED while any company
    counts the person as joined; member ids are listed in company order, so the value does not
    flip with whichever company wrote last.
    """
    ordered = sorted(facts, key=lambda f: f.company_id)
    return {
        "whopMemberId": ", ".join(dict.fromkeys(f.member_id for f in ordered)),
        "whopJoinedAt": _earliest_joined(ordered),
        "whopTotalSpent": money_to_currency(_total_spent(ordered)),
        "whopMemberStatus": _member_status(ordered),
    }


def _total_spent(ordered: Sequence[MemberFact]) -> Money | None:
    """The sum of the finite amounts, in the first one's currency; None when there is none."""
    spent = [f.total_spent for f in ordered if f.total_spent is not None and f.total_spent.amount.is_finite()]
    if not spent:
        return None
    return Money(amount=sum((m.amount for m in spent), Decimal(0)), currency=next((m.currency for m in spent), None))


def _earliest_joined(ordered: Sequence[MemberFact]) -> str | None:
    joined = [f.joined_at if f.joined_at.tzinfo else f.joined_at.replace(tzinfo=UTC) for f in ordered if f.joined_at]
    return iso_utc(min(joined)) if joined else None


def _member_status(ordered: Sequence[MemberFact]) -> str | None:
    """JOINED while any company says so, else the first status any company has."""
    statuses = [status_value(f.status) for f in ordered]
    return _JOINED if _JOINED in statuses else next((s for s in statuses if s), None)


# Statuses that grant access (research: active/trialing grant it, past_due is grace, canceling
# still runs to the period's end).
_ACTIVE_STATUSES = frozenset({"TRIALING", "ACTIVE", "PAST_DUE", "CANCELING"})


def payment_fact(p: Payment) -> PaymentFact:
    net = _net(p)
    paid = net is not None and net.amount > 0
    return PaymentFact(net, (p.paid_at or p.created_at) if paid else None)


def membership_fact(ms: Membership) -> MembershipFact:
    active = status_value(ms.status) in _ACTIVE_STATUSES
    ended = None if active else (ms.canceled_at or ms.expires_at or ms.current_period_end or ms.updated_at)
    return MembershipFact(active, ended)


def person_revenue(payments: Sequence[PaymentFact], memberships: Sequence[MembershipFact]) -> dict[str, Any]:
    """A Person's revenue across memberships and companies: lifetime value (net of successful
    payments, in the currency most of them are in), first and last purchase, active memberships,
    and when the last active one ended (empty while one is active)."""
    paid = [f for f in payments if f.net is not None and f.net.amount > 0]
    times = sorted(_aware(f.paid_at) for f in paid if f.paid_at is not None)
    active = sum(1 for f in memberships if f.active)
    return {
        "whopLifetimeValue": money_to_currency(_lifetime_value(paid)),
        "whopFirstPurchaseAt": iso_utc(times[0]) if times else None,
        "whopLastPurchaseAt": iso_utc(times[-1]) if times else None,
        "whopActiveMemberships": active,
        "whopChurnedAt": None if active else _last_ended(memberships),
    }


def _lifetime_value(paid: Sequence[PaymentFact]) -> Money:
    """The sum of the nets in the currency most of them are in (ties: by name); other
    currencies are left out rather than added across an exchange rate."""
    currencies = [f.net.currency for f in paid if f.net is not None]
    main = max(sorted(set(currencies), key=str), key=currencies.count) if currencies else None
    total = sum((f.net.amount for f in paid if f.net is not None and f.net.currency == main), Decimal(0))
    return Money(amount=total, currency=main or "usd")


def _last_ended(memberships: Sequence[MembershipFact]) -> str | None:
    ended = [_aware(f.ended_at) for f in memberships if f.ended_at is not None]
    return iso_utc(max(ended)) if ended else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def person_record(
    m: Member,
    *,
    current: dict[str, Any] | None,
    last_written: dict[str, Any] | None,
    facts: Sequence[MemberFact] = (),
    revenue: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Person record for a Whop member.

    `current` is the Person as Twenty has it now (None when it does not exist yet);
    `last_written` is the record the bridge wrote last time (None when it never wrote one);
    `facts` are the member rows of every connected company for this person (this member's
    included), whose totals the Person shows; without them, this member alone counts.
    """
    record: dict[str, Any] = {
        "whopUserId": person_key(m),
        "whopUsername": m.user.username if m.user else None,
        **fold_member_facts(facts or [member_fact(m, "")]),
        **(revenue or {}),
    }
    _put_curated(record, "name", _person_name(m), current, last_written)
    email = _email(m)
    if email:
        _put_curated(record, "emails", {"primaryEmail": email, "additionalEmails": []}, current, last_written)
    _put_curated(record, "phones", _phone(m.phone_number), current, last_written)
    return record


# Opportunities -------------------------------------------------------------------------------

# Twenty's standard stages, in pipeline order. NO_STAGE (2.5+) counts as NEW.
STAGE_ORDER: dict[str, int] = {
    # Provisioned by the bridge: a waitlist signup (bridge/sync/waitlist.py), before anything.
    "WAITLISTED": -1,
    "NEW": 0,
    "NO_STAGE": 0,
    "SCREENING": 1,
    "MEETING": 2,
    "PROPOSAL": 3,
    "CUSTOMER": 4,
    # Provisioned by the bridge: ended memberships leave the first column (and a churned
    # membership that comes back returns to CUSTOMER, see `opportunity_stage`).
    "CHURNED": 5,
}
_STAGE_BY_STATUS = {
    "TRIALING": "PROPOSAL",
    "ACTIVE": "CUSTOMER",
    "PAST_DUE": "CUSTOMER",
    "CANCELING": "CUSTOMER",
    "COMPLETED": "CUSTOMER",
    "EXPIRED": "CHURNED",
    "CANCELED": "CHURNED",
}
STAGE_POLICIES = frozenset({"advance", "create-only", "off"})
CHURNED = "CHURNED"


def target_stage(membership_status: str | None) -> str | None:
    """The stage a membership status argues for (trialing → PROPOSAL, paying → CUSTOMER)."""
    return _STAGE_BY_STATUS.get(status_value(membership_status) or "")


def opportunity_stage(
    membership_status: str | None,
    *,
    current: dict[str, Any] | None,
    last_written: dict[str, Any] | None,
    policy: str = "advance",
) -> str | None:
    """The stage to write, or None to leave `stage` out of the record.

    * create (`current` is None): the target stage, else NEW; unless the policy is "off";
    * update, policy "advance": only when the stage is still what the bridge last wrote (no
      person moved it) and the target is strictly later in the pipeline: never backwards;
    * "create-only" never updates; "off" never writes.
    """
    if policy not in STAGE_POLICIES:
        raise ValueError(f"unknown stage policy {policy!r}; use one of {sorted(STAGE_POLICIES)}")
    if policy == "off":
        return None
    target = target_stage(membership_status)
    if current is None:
        return target or "NEW"
    if policy != "advance" or target is None:
        return None
    now = _field(current, "stage")
    written = _field(last_written, "stage")
    if now is None or written is None or now != written:
        return None  # a person moved it (or the bridge never set it): theirs now
    rank = STAGE_ORDER.get(now)
    if rank is None:  # a custom stage the bridge does not know how to order
        return None
    if now == CHURNED and target != CHURNED:
        return target  # the bridge's own CHURNED, and the membership is live again
    return target if STAGE_ORDER[target] > rank else None


def _cancel_reason(ms: Membership) -> str | None:
    option = (ms.cancel_option or "").strip()
    reason = (ms.cancellation_reason or "").strip()
    if option and reason:
        return f"{option}: {reason}"
    return option or reason or None


def _opportunity_amount(ms: Membership, plan: Plan | None = None) -> dict[str, Any] | None:
    """What the membership is worth: the renewal price, or the initial price of a one-time plan.

    A zero renewal price (a one-time plan) does not hide a paid initial price; the plan fills
    prices the membership does not carry.
    """
    renewal = ms.renewal_price or (plan.renewal_price if plan else None)
    initial = ms.initial_price or (plan.initial_price if plan else None)
    prices = (initial, renewal) if _is_one_time(ms, plan) else (renewal, initial)
    for price in prices:
        if price is not None and price.amount != 0:
            return money_to_currency(price)
    return money_to_currency(renewal or initial)


# A month, for MRR: Whop bills in days (30 = monthly, 365 = yearly).
DAYS_PER_MONTH = Decimal(30)
# Statuses that pay every period now; a trial pays nothing yet and an ended membership nothing more.
_RECURRING_STATUSES = frozenset({"ACTIVE", "PAST_DUE", "CANCELING"})


def _days(value: float | int | None) -> int | None:
    return None if value is None or value != value else round(value)  # NaN is not a number of days


def _period_days(ms: Membership, plan: Plan | None) -> int | None:
    """The billing period in days: the membership's, the plan's, else its current period's span
    (legacy payloads carry only `renewal_period_start/end`)."""
    days = _days(ms.billing_period_days) or _days(plan.billing_period if plan else None)
    if days is None and ms.current_period_start and ms.current_period_end:
        span = round((ms.current_period_end - ms.current_period_start).total_seconds() / 86_400)
        days = span if span > 0 else None
    return days


def _plan_kind(ms: Membership, plan: Plan | None) -> str | None:
    """RENEWAL or ONE_TIME: the plan's type, else what the prices say; None when nothing does."""
    kind = status_value(plan.plan_type if plan else None)
    if kind:
        return kind
    if ms.renewal_price is not None:
        return "RENEWAL" if ms.renewal_price.amount != 0 else "ONE_TIME"
    return "ONE_TIME" if ms.initial_price is not None else None


def _is_one_time(ms: Membership, plan: Plan | None) -> bool:
    return _plan_kind(ms, plan) == "ONE_TIME"


def monthly_revenue(ms: Membership, plan: Plan | None) -> Money | None:
    """The renewal price per 30 days while the membership pays every period; 0 otherwise."""
    price = ms.renewal_price or (plan.renewal_price if plan else None)
    currency = (price.currency if price else None) or ms.currency or (plan.currency if plan else None)
    period = _period_days(ms, plan)
    recurring = status_value(ms.status) in _RECURRING_STATUSES and _plan_kind(ms, plan) == "RENEWAL"
    if not recurring or price is None or not period or period <= 0:
        return Money(amount=Decimal(0), currency=currency)
    with localcontext() as ctx:
        ctx.prec = 40
        amount = (price.amount * DAYS_PER_MONTH / Decimal(period)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return Money(amount=amount, currency=currency)


def plan_fields(ms: Membership, plan: Plan | None) -> dict[str, Any]:
    """Plan, prices, periods and revenue of a membership (the plan fills what the membership lacks)."""
    manage = (ms.manage_url or "").strip()
    return {
        "whopPlanTitle": _clean(plan.title if plan else None) or None,
        "whopPlanType": _plan_kind(ms, plan),
        "whopBillingPeriodDays": None if _is_one_time(ms, plan) else _period_days(ms, plan),
        "whopTrialDays": _days(plan.trial_period_days if plan else None),
        "whopInitialPrice": money_to_currency(ms.initial_price or (plan.initial_price if plan else None)),
        "whopRenewalPrice": money_to_currency(ms.renewal_price or (plan.renewal_price if plan else None)),
        "whopMrr": money_to_currency(monthly_revenue(ms, plan)),
        "whopMostRecentAction": status_value(ms.most_recent_action),
        "whopMostRecentActionAt": iso_utc(ms.most_recent_action_at),
        "whopExpiresAt": iso_utc(ms.expires_at),
        "whopManageUrl": {"primaryLinkUrl": manage, "primaryLinkLabel": "Manage on Whop", "secondaryLinks": []}
        if manage.startswith("https://")
        else None,
        "whopPromoCode": ms.promo_code_id,
    }


def _opportunity_name(ms: Membership, person_name: str | None, product_title: str | None) -> str:
    who = _clean(person_name) or _clean(ms.user.name if ms.user else None)
    who = who or ms.user_id or ms.member_id or ms.id
    what = _clean(product_title) or _clean(ms.product_title) or ms.product_id or ms.id
    return f"{who} {EN_DASH} {what}"


def opportunity_record(
    ms: Membership,
    *,
    person_name: str | None,
    product_title: str | None,
    person_id: str | None,
    product_id: str | None,
    current: dict[str, Any] | None,
    last_written: dict[str, Any] | None,
    stage_policy: str = "advance",
    company: CompanyRef | None = None,
    plan: Plan | None = None,
) -> dict[str, Any]:
    """An Opportunity record for a Whop membership.

    `person_id` and `product_id` are **Twenty** record UUIDs (the Person and the WhopProduct),
    not Whop ids. Payment fields come from `payment_fields` and are merged by the caller.
    """
    record: dict[str, Any] = {
        "whopMembershipId": ms.id,
        "whopMembershipStatus": status_value(ms.status),
        "whopPlanId": ms.plan_id,
        "whopRenewalDate": iso_utc(ms.current_period_end),
        "whopCancelAtPeriodEnd": bool(ms.cancel_at_period_end),
        "whopCanceledAt": iso_utc(ms.canceled_at),
        "whopCancelReason": _cancel_reason(ms),
        "whopCreatedAt": iso_utc(ms.created_at),
        "whopUpdatedAt": iso_utc(ms.updated_at),
        **company_fields(company),
        **plan_fields(ms, plan),
    }
    # Join columns of the MANY_TO_ONE relations. Beware the name clash: `whopProductId` here is
    # the join column of the relation field `whopProduct`, so it holds the Twenty UUID of the
    # WhopProduct record, while on WhopProduct itself `whopProductId` is the Whop `prod_…` id.
    if person_id is not None:
        record["pointOfContactId"] = person_id
    if product_id is not None:
        record["whopProductId"] = product_id
    _put_curated(record, "name", _opportunity_name(ms, person_name, product_title), current, last_written)
    _put_curated(record, "amount", _opportunity_amount(ms, plan), current, last_written)
    stage = opportunity_stage(ms.status, current=current, last_written=last_written, policy=stage_policy)
    if stage is not None:
        record["stage"] = stage
    return record


# Payments ------------------------------------------------------------------------------------

_PAYMENT_STATUS = {
    "succeeded": "SUCCEEDED",
    "paid": "SUCCEEDED",
    "failed": "FAILED",
    "uncollectible": "FAILED",
    "past_due": "FAILED",
    "blocked": "FAILED",
    "price_too_low": "FAILED",
    "refunded": "REFUNDED",
    "auto_refunded": "REFUNDED",
    "partially_refunded": "PARTIALLY_REFUNDED",
    "open_dispute": "DISPUTED",
    "open_resolution": "DISPUTED",
    "pending": "PENDING",
    "requires_capture": "PENDING",
    "authorized": "PENDING",
    "open": "PENDING",
    "draft": "PENDING",
    "drafted": "PENDING",
    "incomplete": "PENDING",
    "canceled": "CANCELED",
    "void": "CANCELED",
}


def _payment_status_of(raw: str | None) -> str | None:
    if not raw:
        return None
    key = raw.strip().lower()
    if key.startswith(("dispute_", "resolution_")):
        return "DISPUTED"
    return _PAYMENT_STATUS.get(key)


def payment_status_value(p: Payment) -> str | None:
    """SUCCEEDED / FAILED / REFUNDED / … from the substatus (more precise), then the status.

    A value neither knows passes through `status_value`, so the writer adds it as an option.
    """
    known = _payment_status_of(p.substatus) or _payment_status_of(p.status)
    return known or status_value(p.substatus or p.status)


# Disputes and Resolution Center cases, by how they ended (FriendlyReceiptStatus, PY26).
_DISPUTE_OUTCOME = {
    "dispute_warning": "DISPUTED",
    "dispute_needs_response": "DISPUTED",
    "dispute_warning_needs_response": "DISPUTED",
    "resolution_needs_response": "DISPUTED",
    "dispute_under_review": "DISPUTED",
    "dispute_warning_under_review": "DISPUTED",
    "resolution_under_review": "DISPUTED",
    "open_dispute": "DISPUTED",
    "open_resolution": "DISPUTED",
    "dispute_won": "DISPUTE_WON",
    "resolution_won": "DISPUTE_WON",
    "dispute_warning_closed": "DISPUTE_WON",
    "dispute_lost": "DISPUTE_LOST",
    "resolution_lost": "DISPUTE_LOST",
    "dispute_closed": "DISPUTE_LOST",
}


def payment_outcome(p: Payment) -> str | None:
    """The real outcome for the payment history: a dispute's result where there is one."""
    sub = (p.substatus or "").strip().lower()
    return _DISPUTE_OUTCOME.get(sub) or payment_status_value(p)


def _net(p: Payment) -> Money | None:
    """What the seller keeps of the payment after refunds (before Whop's fees): 0 unless it was paid."""
    if p.total is None:
        return None
    outcome = payment_outcome(p)
    if outcome not in ("SUCCEEDED", "PARTIALLY_REFUNDED", "DISPUTE_WON"):
        return Money(amount=Decimal(0), currency=p.total.currency)
    refunded = p.refunded_amount.amount if p.refunded_amount is not None else Decimal(0)
    return Money(amount=max(p.total.amount - refunded, Decimal(0)), currency=p.total.currency)


def payment_record(
    p: Payment,
    *,
    person_id: str | None,
    opportunity_id: str | None,
    company: CompanyRef | None = None,
    product_title: str | None = None,
) -> dict[str, Any]:
    """A WhopPayment record; the whole object is the bridge's. `person_id`/`opportunity_id` are
    Twenty UUIDs (None: not linked yet; the link is left as it is)."""
    outcome = payment_outcome(p)
    failed = outcome == "FAILED"
    record: dict[str, Any] = {
        "whopPaymentId": p.id,
        "name": payment_name(p, outcome, product_title),
        "paymentStatus": outcome,
        "amount": money_to_currency(p.total),
        "netAmount": money_to_currency(_net(p)),
        "refundedAmount": money_to_currency(p.refunded_amount),
        "declineReason": (_clean(p.failure_message) or _clean(p.decline_code) or None) if failed else None,
        "nextRetryAt": iso_utc(p.next_payment_attempt_at) if failed else None,
        "billingReason": status_value(p.billing_reason),
        "paidAt": iso_utc(p.paid_at),
        "whopCreatedAt": iso_utc(p.created_at),
        "whopUpdatedAt": iso_utc(p.updated_at),
        **company_fields(company),
    }
    if person_id is not None:
        record["personId"] = person_id
    if opportunity_id is not None:
        record["opportunityId"] = opportunity_id
    return record


# How a payment's outcome reads in its name (the labels of the paymentStatus options).
_OUTCOME_WORDS = {
    "SUCCEEDED": "Succeeded",
    "PENDING": "Pending",
    "FAILED": "Failed",
    "REFUNDED": "Refunded",
    "PARTIALLY_REFUNDED": "Partially refunded",
    "DISPUTED": "Disputed",
    "DISPUTE_WON": "Dispute won",
    "DISPUTE_LOST": "Dispute lost",
    "CANCELED": "Canceled",
}
_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}
MIDDLE_DOT = "\u00b7"


def payment_name(p: Payment, outcome: str | None, product_title: str | None) -> str:
    """ "2026-08-31 · $49.00 · Succeeded · Signals Pro": the date first, so a list reads (and
    sorts) by month, then what, how it went and for which product."""
    when = (iso_utc(p.paid_at or p.last_payment_attempt_at or p.created_at) or "")[:10]
    how = _OUTCOME_WORDS.get(outcome or "") or (outcome or "").replace("_", " ").capitalize()
    what = _clean(product_title) or _clean(p.product_title) or p.product_id or ""
    return f" {MIDDLE_DOT} ".join(part for part in (when, money_label(p.total), how, what) if part) or p.id


def money_label(m: Money | None) -> str:
    if m is None:
        return ""
    currency = (m.currency or "").upper()
    amount = f"{m.amount:,.2f}"
    sign = _CURRENCY_SIGNS.get(currency)
    return f"{sign}{amount}" if sign else f"{amount} {currency}".strip()


def payment_fields(p: Payment) -> dict[str, Any]:
    """The Opportunity fields a payment sets (the latest payment wins; the caller decides)."""
    return {
        "whopLastPaymentAt": iso_utc(p.paid_at or p.last_payment_attempt_at or p.created_at),
        "whopLastPaymentAmount": money_to_currency(p.total),
        "whopLastPaymentStatus": payment_status_value(p),
    }


def payment_is_failure(p: Payment) -> bool:
    return payment_status_value(p) == "FAILED"


def _format_money(m: Money | None) -> str:
    if m is None:
        return "unknown"
    currency = (m.currency or "").upper()
    return f"{m.amount} {currency}".strip()


def _case_text(value: Any) -> str | None:
    if isinstance(value, str):
        return _clean(value) or None
    if isinstance(value, dict):  # an enum object in some shapes: {"id":…, "name":…}
        return _case_text(value.get("name") or value.get("id"))
    return None


def _case_time(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return iso_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def case_task(
    case_type: str, data: dict[str, Any], *, person_name: str | None, product_title: str | None
) -> dict[str, Any]:
    """A Twenty Task for a dispute or a Resolution Center case, due when Whop needs the evidence
    (`evidence_due_at`, or a case's `response_due_at`)."""
    dispute = case_type.startswith("dispute")
    what = "dispute" if dispute else "Resolution Center case"
    due = _case_time(data.get("evidence_due_at")) or _case_time(data.get("response_due_at"))
    amount = _to_money(data.get("amount"), data.get("currency"))
    payment = data.get("payment")
    payment_id = payment.get("id") if isinstance(payment, dict) else data.get("payment_id")
    product = _clean(product_title) or "a Whop product"
    who = _clean(person_name) or "unknown customer"
    lines = [
        f"A Whop {what} was opened for {product}.",
        "",
        f"- Amount: {_format_money(amount)}",
        f"- Reason: {_case_text(data.get('reason')) or 'Whop gave none'}",
        f"- Status: {_case_text(data.get('status')) or 'unknown'}",
        f"- Respond by: {due or 'no deadline given'}",
        f"- Case: {data.get('id')}",
    ]
    if isinstance(payment_id, str):
        lines.append(f"- Payment: {payment_id}")
    return {
        "title": f"Whop {what}: {product} {EN_DASH} {who}",
        "bodyV2": {"markdown": "\n".join(lines)},
        "status": "TODO",
        "dueAt": due,
    }


def _to_money(amount: Any, currency: Any) -> Money | None:
    try:
        value = Decimal(str(amount)) if amount is not None and not isinstance(amount, bool) else None
    except (ArithmeticError, ValueError):
        return None
    if value is None or not value.is_finite():
        return None
    return Money(amount=value, currency=currency if isinstance(currency, str) else None)


def failed_payment_task(p: Payment, *, person_name: str | None, product_title: str | None) -> dict[str, Any]:
    """A Twenty Task asking someone to follow up a failed payment.

    The body goes in `bodyV2.markdown` (RICH_TEXT_V2, Twenty 1.x and later); Twenty derives the
    blocknote form itself.
    """
    product = _clean(product_title) or _clean(p.product_title) or p.product_id or "a Whop product"
    return {
        "title": f"Failed Whop payment: {product} {EN_DASH} {_failed_payment_customer(p, person_name)}",
        "bodyV2": {"markdown": "\n".join(_failed_payment_lines(p, product))},
        "status": "TODO",
    }


def _failed_payment_customer(p: Payment, person_name: str | None) -> str:
    """Who the task names: the Person's name, else whatever Whop knows the buyer by."""
    person = _clean(person_name) or _clean(p.user.name if p.user else None)
    return person or p.customer_email or p.user_id or p.member_id or "unknown customer"


def _failed_payment_lines(p: Payment, product: str) -> list[str]:
    lines = [
        f"A Whop payment for {product} failed.",
        "",
        f"- Amount: {_format_money(p.total)}",
        f"- Reason: {_clean(p.failure_message) or 'Whop gave none'}",
        f"- Status: {p.status or 'unknown'}" + (f" ({p.substatus})" if p.substatus else ""),
        f"- Attempted: {iso_utc(p.last_payment_attempt_at or p.created_at) or 'unknown'}",
        f"- Payment: {p.id}",
    ]
    if p.membership_id:
        lines.append(f"- Membership: {p.membership_id}")
    if p.customer_email:
        lines.append(f"- Customer email: {p.customer_email}")
    return lines


# Change detection -------------------------------------------------------------------------------


def record_hash(record: dict[str, Any]) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace): equal records, equal hashes."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
