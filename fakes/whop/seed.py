"""Deterministic test data: `seed_company` (generated) and `seed_fixtures` (the §7 objects).

The same arguments always give the same ids, names and timestamps (times hang off a fixed
anchor, not the clock), so tests can pin expectations. The first `seed_company` call also
adds a small *neighbor* company owned by someone else: its products show up in the
marketplace search and its data must never leak into a sync of the seeded company.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from fakes.whop._util import TIME_FIELDS, IdFactory, TimeInput, slugify, to_ms
from fakes.whop.store import ACCESS_STATUSES, MEMBERSHIP_STATUSES, OWNER_USER_ID, Plan

if TYPE_CHECKING:
    from fakes.whop.app import FakeWhop

ANCHOR = "2026-10-20T12:00:00Z"  # "now" of the generated data: the §7.4 delivery time
DAY = 86_400_000
HOUR = 3_600_000

FIRST = [
    "Ava", "Ben", "Chloe", "Diego", "Elena", "Farah", "Gus", "Hana", "Ivan", "Jada", "Kenji", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tess", "Uma", "Victor", "Wen", "Yara", "Zoe",
]  # fmt: skip
LAST = [
    "Alvarez", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quispe", "Rossi", "Silva", "Tanaka",
]  # fmt: skip
PRODUCTS = [
    ("Pro Signals", "Daily trade ideas with entries and exits"),
    ("Options Academy", "Learn options from zero to spreads"),
    ("Crypto Alpha", "On-chain research, every weekday"),
    ("Swing Trade Room", "Multi-day setups with a live room"),
    ("Futures Desk", "Index futures levels before the open"),
    ("Macro Weekly", "One macro letter every Sunday"),
    ("Scalping Bootcamp", "Four weeks of live scalping drills"),
]
PRICES = ["49.00", "299.00", "29.00", "99.00", "19.99", "149.00", "9.00"]
BUSINESSES = ["Northwind Capital LLC", "Bluewater Holdings", "Summit Prop Desk", "Orchid Ventures GmbH"]
DOMAINS = ["example.com", "example.org", "example.net"]
AREA_CODES = ["202", "212", "312", "415", "617"]
CANCEL_OPTIONS = ["too_expensive", "switching", "missing_features", "technical_issues", "bad_experience", "other"]
# Weights for memberships past the first nine (which cover every status once).
STATUS_WEIGHTS = {
    "active": 50,
    "trialing": 8,
    "past_due": 5,
    "completed": 8,
    "canceled": 12,
    "expired": 8,
    "unresolved": 2,
    "drafted": 2,
    "canceling": 5,
}
MEMBER_ACTION = {
    "active": "paid_subscriber",
    "trialing": "trialing",
    "past_due": "past_due",
    "completed": "paid_once",
    "canceled": "churned",
    "expired": "left",
    "unresolved": "past_due",
    "drafted": "pending_entry",
    "canceling": "canceling",
}


@dataclass
class SeededCompany:
    """What a seed produced, so tests can assert without re-deriving it."""

    company_id: str
    title: str
    api_key: str
    owner_user_id: str | None
    product_ids: list[str] = field(default_factory=list)
    plan_ids: list[str] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    membership_ids: list[str] = field(default_factory=list)
    payment_ids: list[str] = field(default_factory=list)
    business_member_ids: list[str] = field(default_factory=list)  # member.user is null
    no_email_member_ids: list[str] = field(default_factory=list)  # member.email is null
    shared_email_member_ids: dict[str, str] = field(default_factory=dict)  # email → member id
    memberships_by_status: dict[str, list[str]] = field(default_factory=dict)
    payments_by_substatus: dict[str, list[str]] = field(default_factory=dict)
    neighbor: SeededCompany | None = None  # the other company (first seed only)

    @property
    def neighbor_company_id(self) -> str | None:
        return self.neighbor.company_id if self.neighbor else None


def _count(n: int, ratio: float) -> int:
    if ratio <= 0 or n == 0:
        return 0
    return min(n, max(1, int(n * ratio + 0.5)))


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


class _Seeder:
    def __init__(self, fake: FakeWhop, key: str, anchor: int) -> None:
        self.fake = fake
        self.rng = random.Random(f"whop-seed|{key}")
        # Ids come from their own stream so they don't shift when other choices change.
        self.ids = IdFactory(random.Random(f"whop-ids|{key}"))
        self.anchor = anchor

    def new_id(self, prefix: str) -> str:
        table = self.fake.table_for(prefix)
        while True:
            candidate = self.ids.new(prefix)
            if candidate not in table:
                return candidate


def seed_company(
    fake: FakeWhop,
    *,
    company_id: str | None = None,
    title: str = "Pickaxe Trading",
    members: int = 50,
    memberships: int | None = None,
    products: int = 3,
    seed: int = 1,
    no_email_ratio: float = 0.1,
    business_ratio: float = 0.05,
    shared_emails: Sequence[str] = (),
    owner_user_id: str | None = OWNER_USER_ID,
    api_key: str | None = None,
    now: TimeInput = None,
    neighbor: bool = True,
) -> SeededCompany:
    """Add a company with `members` members, `memberships` (default 1.2×members) memberships
    spread over `products` products and their plans, and their payments.

    Covered on purpose: every membership status (when there are ≥ 9 memberships), members
    without email, business buyers (`user: null`), members whose email is one of
    `shared_emails` (an existing Whop user with that email is reused, as Whop has one
    account per email), members with several memberships, a EUR product, and payments that
    succeeded, failed (`open`/`failed`), were refunded, partially refunded or disputed.
    """
    anchor = to_ms(now) if now is not None else to_ms(ANCHOR)
    assert anchor is not None
    seeder = _Seeder(fake, f"{seed}|{company_id or title}", anchor)
    n_memberships = round(members * 1.2) if memberships is None else memberships
    if n_memberships and not products:
        raise ValueError("memberships need at least one product")
    if n_memberships and not members:
        raise ValueError("memberships need at least one member")

    company = fake.add_company(
        company_id or seeder.new_id("biz_"),
        title=title,
        owner_user_id=owner_user_id,
        api_key=api_key,
        created_at=_s(anchor - 700 * DAY),
    )
    assert company.api_key is not None
    out = SeededCompany(company.id, title, company.api_key, owner_user_id)
    plans = _seed_products(seeder, company.id, products, out)
    member_ids = _seed_members(seeder, company.id, members, no_email_ratio, business_ratio, list(shared_emails), out)
    by_member = _seed_memberships(seeder, plans, member_ids, n_memberships, out)
    _finish_members(seeder, member_ids, by_member)

    if neighbor and fake.neighbor_company_id is None:
        out.neighbor = _seed_neighbor(fake, seed, now, out)
    return out


def _seed_products(seeder: _Seeder, company_id: str, count: int, out: SeededCompany) -> list[Plan]:
    fake, rng, anchor = seeder.fake, seeder.rng, seeder.anchor
    plans: list[Plan] = []
    for i in range(count):
        base_title, headline = PRODUCTS[i % len(PRODUCTS)]
        title = base_title if i < len(PRODUCTS) else f"{base_title} {i // len(PRODUCTS) + 1}"
        created = anchor - max(30, 560 - 9 * i) * DAY + rng.randrange(HOUR)
        product = fake.add_product(
            company_id,
            id=seeder.new_id("prod_"),
            title=title,
            headline=headline,
            description=f"{title}: members-only room and weekly live sessions.",
            visibility="hidden" if i == 3 else "archived" if i == 5 else "visible",
            published_reviews_count=rng.randrange(0, 60),
            average_review_rating=round(rng.uniform(4.0, 5.0), 1),
            created_at=_s(created),
            updated_at=_s(created + rng.randrange(1, 200) * DAY),
        )
        out.product_ids.append(product.id)
        price = Decimal(PRICES[i % len(PRICES)])
        kind = i % 3
        currency = "eur" if i == 2 else "usd"  # one non-USD product: usd_total differs from total
        specs: list[dict[str, object]]
        if kind == 0:
            specs = [
                {"title": "Monthly", "billing_period": 30, "renewal_price": price},
                {"title": "Yearly", "billing_period": 365, "renewal_price": price * 10},
            ]
        elif kind == 1:
            specs = [{"title": "Lifetime", "plan_type": "one_time", "initial_price": price, "renewal_price": "0"}]
        else:
            specs = [{"title": "Monthly + trial", "billing_period": 30, "renewal_price": price, "trial_period_days": 7}]
        for spec in specs:
            plan = fake.add_plan(
                product.id,
                id=seeder.new_id("plan_"),
                currency=currency,
                created_at=_s(created),
                **{"initial_price": "0", **spec},  # type: ignore[arg-type]
            )
            plans.append(plan)
            out.plan_ids.append(plan.id)
    return plans


def _seed_members(
    seeder: _Seeder,
    company_id: str,
    count: int,
    no_email_ratio: float,
    business_ratio: float,
    shared: list[str],
    out: SeededCompany,
) -> list[str]:
    fake, rng, anchor = seeder.fake, seeder.rng, seeder.anchor
    n_business, n_no_email = _count(count, business_ratio), _count(count, no_email_ratio)
    if n_business + n_no_email + len(shared) > count:
        raise ValueError("not enough members for the business, no-email and shared-email cases")
    order = list(range(count))
    rng.shuffle(order)
    kind: dict[int, str] = {}
    for i in order[:n_business]:
        kind[i] = "business"
    for i in order[n_business : n_business + n_no_email]:
        kind[i] = "no_email"
    shared_at = dict(zip(order[n_business + n_no_email :], shared, strict=False))
    taken_emails = {u.email.lower() for u in fake.users.values() if u.email}
    taken_emails |= {e.lower() for e in shared}

    member_ids: list[str] = []
    span = 400 * DAY
    step = max(1, span // max(count, 1))
    for i in range(count):
        created = anchor - 420 * DAY + i * step + rng.randrange(max(1, step // 2))
        first, last = rng.choice(FIRST), rng.choice(LAST)
        phone = f"+1{rng.choice(AREA_CODES)}55501{rng.randrange(100):02d}" if rng.random() < 0.25 else None
        common = {"id": seeder.new_id("mber_"), "created_at": _s(created), "phone_number": phone}
        if kind.get(i) == "business":
            name = BUSINESSES[len(out.business_member_ids) % len(BUSINESSES)]
            member = fake.add_member(company_id, business=True, name=name, **common)  # type: ignore[arg-type]
            out.business_member_ids.append(member.id)
        elif i in shared_at:
            shared_email = shared_at[i]
            existing = fake.user_by_email(shared_email)
            local = shared_email.split("@")[0].replace(".", " ").replace("_", " ").title()
            member = fake.add_member(
                company_id,
                user_id=existing.id if existing else seeder.new_id("user_"),
                name=existing.name if existing else f"{local} {last}",
                username=slugify(local).replace("-", "") + str(rng.randrange(10, 99)),
                email=shared_email,
                **common,  # type: ignore[arg-type]
            )
            out.shared_email_member_ids[shared_email] = member.id
        else:
            email: str | None = None
            if kind.get(i) != "no_email":
                while True:
                    email = f"{first}.{last}{rng.randrange(1, 100)}@{rng.choice(DOMAINS)}".lower()
                    if email not in taken_emails:
                        taken_emails.add(email)
                        break
            member = fake.add_member(
                company_id,
                user_id=seeder.new_id("user_"),
                name=f"{first} {last}",
                username=f"{first}{last[0]}{rng.randrange(1, 1000)}".lower(),
                email=email,
                **common,  # type: ignore[arg-type]
            )
            if email is None:
                out.no_email_member_ids.append(member.id)
        if member.user_id:
            fake.users[member.user_id].profile_picture_url = (
                "https://assets.whop.com/avatars/placeholder.png" if rng.random() < 0.5 else None
            )
            out.user_ids.append(member.user_id)
        member_ids.append(member.id)
        out.member_ids.append(member.id)
    return member_ids


def _pick_plan(rng: random.Random, plans: list[Plan], status: str, avoid: Iterable[str]) -> Plan:
    one_time = [p for p in plans if p.plan_type == "one_time"]
    renewal = [p for p in plans if p.plan_type == "renewal"]
    if status == "completed" and one_time:
        pool = one_time
    elif status == "trialing":
        pool = [p for p in renewal if p.trial_period_days] or renewal or plans
    else:
        pool = renewal or plans
    fresh = [p for p in pool if p.product_id not in set(avoid)]
    return rng.choice(fresh or pool)


def _seed_memberships(
    seeder: _Seeder, plans: list[Plan], member_ids: list[str], count: int, out: SeededCompany
) -> dict[str, list[str]]:
    fake, rng = seeder.fake, seeder.rng
    forced = list(MEMBERSHIP_STATUSES)
    rng.shuffle(forced)
    names, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    by_member: dict[str, list[str]] = {}
    special_done: set[str] = set()
    for j in range(count):
        status = forced[j] if j < len(forced) and count >= len(forced) else rng.choices(names, weights)[0]
        member_id = member_ids[j] if j < len(member_ids) else rng.choice(member_ids)
        owned = [fake.memberships[m].product_id for m in by_member.get(member_id, [])]
        plan = _pick_plan(rng, plans, status, owned)
        mem_id = _one_membership(seeder, member_id, plan, status, first=not owned, special_done=special_done, out=out)
        by_member.setdefault(member_id, []).append(mem_id)
        out.membership_ids.append(mem_id)
        out.memberships_by_status.setdefault(status, []).append(mem_id)
    return by_member


def _one_membership(
    seeder: _Seeder,
    member_id: str,
    plan: Plan,
    status: str,
    *,
    first: bool,
    special_done: set[str],
    out: SeededCompany,
) -> str:
    fake, rng, anchor = seeder.fake, seeder.rng, seeder.anchor
    member = fake.members[member_id]
    joined = member.created_at
    if first:
        start = joined
    else:
        spare_days = max(2, (anchor - joined) // DAY - 2)
        start = joined + rng.randrange(1, spare_days) * DAY + rng.randrange(HOUR)
    period = (plan.billing_period or 30) * DAY
    fields: dict[str, object] = {}
    cycles: list[int] = []  # start times of billed periods, oldest first
    failed_last = False
    if status == "trialing":
        trial = plan.trial_period_days or 7
        start = max(start, anchor - rng.randrange(1, trial) * DAY - rng.randrange(HOUR))
        fields.update(
            current_period_start=start,
            current_period_end=start + trial * DAY,
            most_recent_action="trial_ends_at",
            most_recent_action_at=start + trial * DAY,
            initial_price=Decimal(0),
        )
        updated = start
    elif status in ("completed", "drafted"):
        fields.update(
            renewal_price=None if plan.plan_type == "one_time" else plan.renewal_price,
            current_period_start=None,
            current_period_end=None,
        )
        if status == "completed":
            cycles = [start]
            fields["license_key"] = f"{seeder.ids.new('', 5)}-{seeder.ids.new('', 5)}-{seeder.ids.new('', 5)}".upper()
        updated = start + 5000
    elif status in ("canceled", "expired"):
        elapsed = max(1, (anchor - start) // period)
        ended = start + rng.randrange(1, elapsed + 1) * period if elapsed > 1 else start + period // 2
        ended = min(ended, anchor - HOUR)
        cycles = list(range(start, ended, period))[-3:]
        last_start = cycles[-1] if cycles else start
        fields.update(current_period_start=last_start, current_period_end=ended)
        if status == "canceled":
            canceled = max(last_start + HOUR, ended - rng.randrange(1, 5) * DAY)
            fields.update(
                canceled_at=canceled,
                cancel_option=rng.choice(CANCEL_OPTIONS),
                most_recent_action="canceled_on",
                most_recent_action_at=canceled,
            )
        else:
            fields.update(expires_at=ended)
        updated = ended
    else:  # active, canceling, past_due, unresolved: an ongoing renewal
        elapsed = (anchor - start) // period
        current = start + elapsed * period
        cycles = list(range(start, current + 1, period))[-3:]
        fields.update(current_period_start=current, current_period_end=current + period)
        if status == "active":
            fields.update(most_recent_action="renewing_on", most_recent_action_at=current + period)
        elif status == "canceling":
            fields.update(
                cancel_at_period_end=True,
                cancel_option=rng.choice(CANCEL_OPTIONS),
                most_recent_action="canceling_on",
                most_recent_action_at=current + period,
            )
        elif status == "past_due":
            failed_last = True
            fields.update(most_recent_action="past_due", most_recent_action_at=current + 1000)
        else:
            fields.update(most_recent_action="unresolved_at", most_recent_action_at=min(anchor, current + 2 * DAY))
        updated = current + 5000
    if rng.random() < 0.3:
        fields["metadata"] = {"crm_source": rng.choice(["checkout", "affiliate", "import"])}

    membership = fake.add_membership(
        member_id,
        plan.id,
        id=seeder.new_id("mem_"),
        status=status,
        created_at=_s(start),
        joined_at=_s(joined),
        **{k: (_s(v) if k in TIME_FIELDS and isinstance(v, int) else v) for k, v in fields.items()},
    )
    latest = updated
    for k, cycle_start in enumerate(cycles):
        is_last = k == len(cycles) - 1
        pay_time = min(anchor - 1000, cycle_start + rng.randrange(1000, 5000))
        latest = max(
            latest,
            _seed_payment(
                seeder,
                membership.id,
                plan,
                status,
                pay_time,
                k == 0 and start == cycle_start,
                failed=failed_last and is_last,
                last=is_last,
                special_done=special_done,
                out=out,
            ),
        )
    fake.update_membership(membership.id, updated_at=_s(min(anchor, max(latest, membership.updated_at))))
    return membership.id


def _seed_payment(
    seeder: _Seeder,
    mem_id: str,
    plan: Plan,
    status: str,
    when: int,
    first: bool,
    *,
    failed: bool,
    last: bool,
    special_done: set[str],
    out: SeededCompany,
) -> int:
    """One payment; returns its last update time."""
    fake, rng, anchor = seeder.fake, seeder.rng, seeder.anchor
    if plan.plan_type == "one_time":
        amount, reason = plan.initial_price, "one_time"
    else:
        amount = plan.renewal_price or Decimal(0)
        reason = "subscription_create" if first else "subscription_cycle"
    usd = (amount * Decimal("1.08")).quantize(Decimal("0.01")) if plan.currency != "usd" else None
    fields: dict[str, object] = {"billing_reason": reason, "usd_total": usd}
    pay_status, substatus = "paid", "succeeded"
    updated = when + 4000
    if failed:
        pay_status, substatus = "open", "failed"
        fields.update(
            payments_failed=rng.randrange(1, 4),
            failure_message="Your card was declined.",
            decline_code="card_declined",
            retryable=True,
            refundable=False,
            next_payment_attempt_at=_s(anchor + 2 * DAY),
        )
    else:
        fields["paid_at"] = _s(when + 3000)
        special = None
        if last and status == "canceled" and "refunded" not in special_done:
            special = "refunded"
        elif last and status == "expired" and "partially_refunded" not in special_done:
            special = "partially_refunded"
        elif last and status == "unresolved":
            special = "dispute_needs_response" if "dispute_needs_response" not in special_done else "dispute_lost"
        if special is not None:
            special_done.add(special)
            substatus = special
            when_then = min(anchor - HOUR, when + 2 * DAY)
            if special == "refunded":
                fields.update(refunded_amount=amount, refunded_at=_s(when_then), refundable=False)
            elif special == "partially_refunded":
                fields.update(refunded_amount=(amount / 2).quantize(Decimal("0.01")), refunded_at=_s(when_then))
            else:
                fields.update(dispute_alerted_at=_s(when_then), refundable=False)
            updated = max(updated, when_then)
    payment = fake.add_payment(
        mem_id,
        id=seeder.new_id("pay_"),
        status=pay_status,
        substatus=substatus,
        total=amount,
        created_at=_s(when),
        updated_at=_s(updated),
        last_payment_attempt_at=_s(when + 1000),
        **fields,
    )
    out.payment_ids.append(payment.id)
    out.payments_by_substatus.setdefault(substatus, []).append(payment.id)
    return updated


def _finish_members(seeder: _Seeder, member_ids: list[str], by_member: dict[str, list[str]]) -> None:
    """Member status, access and last action follow from their memberships."""
    fake, rng, anchor = seeder.fake, seeder.rng, seeder.anchor
    for member_id in member_ids:
        member = fake.members[member_id]
        mems = [fake.memberships[m] for m in by_member.get(member_id, [])]
        if not mems:
            fake.update_member(member_id, updated_at=_s(member.created_at))
            continue
        latest = max(mems, key=lambda m: (m.updated_at, m.id))
        left = all(m.status in ("canceled", "expired") for m in mems)
        acted = min(anchor, latest.updated_at)
        fake.update_member(
            member_id,
            status="left" if left else "joined",
            access_level="customer" if any(m.status in ACCESS_STATUSES for m in mems) else "no_access",
            most_recent_action=MEMBER_ACTION[latest.status],
            most_recent_action_at=_s(acted),
            last_accessed_at=_s(acted if left else anchor - rng.randrange(1, 72) * HOUR),
            updated_at=_s(acted),
        )


def _seed_neighbor(fake: FakeWhop, seed: int, now: TimeInput, main: SeededCompany) -> SeededCompany:
    """Another company, owned by another user, sharing one customer with `main`."""
    rival_id = "user_" + IdFactory(random.Random(f"rival|{seed}")).new("", 14)
    if rival_id not in fake.users:
        fake.add_user(
            rival_id, username="ritarival", name="Rita Rival", email="rita.rival@example.net", created_at=1_700_000_000
        )
    shared: list[str] = []
    for member_id in main.member_ids:
        candidate = fake.members[member_id]
        if candidate.user_id and candidate.email and candidate.email not in main.shared_email_member_ids:
            shared.append(candidate.email)  # the same Whop user buys from both companies
            break
    key = "whop-neighbor-key" if "whop-neighbor-key" not in fake.api_keys else None
    neighbor = seed_company(
        fake,
        title="Rival Charts",
        members=6,
        memberships=8,
        products=2,
        seed=seed,
        no_email_ratio=0,
        business_ratio=0,
        shared_emails=shared,
        owner_user_id=rival_id,
        api_key=key,
        now=now,
        neighbor=False,
    )
    fake.neighbor_company_id = neighbor.company_id
    return neighbor


def seed_fixtures(fake: FakeWhop, *, api_key: str | None = None) -> SeededCompany:
    """The fact sheet's §7 objects, stored so the API returns them byte for byte.

    `GET /api/v1/memberships/mem_8kQmZt3VbN1xLp` (pinned) is §7.1, the product §7.2, the
    payment §7.3, the member §7.5; `fake.event("membership.activated", "mem_8kQmZt3VbN1xLp",
    webhook_id=…, timestamp=1792497600)` is the §7.4 envelope.
    """
    pat = fake.add_user("user_Ab12Cd34Ef56G", username="pickaxe", name="Pat Axe", created_at="2025-01-01T00:00:00Z")
    jane = fake.add_user(
        "user_w3RtYp7KsD2mN",
        username="jdoe42",
        name="Jane Doe",
        email="jane.doe@example.com",
        profile_picture_url="https://assets.whop.com/avatars/placeholder.png",
        created_at="2026-09-01T14:00:00Z",
    )
    company = fake.add_company(
        "biz_Hq2LmVx9TcR4sA",
        title="Pickaxe Trading",
        route="pickaxe-trading",
        api_key=api_key,
        created_at="2025-03-01T00:00:00Z",
    )
    product = fake.add_product(
        company.id,
        id="prod_4GhJk2LmPq9Rs",
        title="Pro Signals",
        headline="Daily trade ideas with entries and exits",
        description="Members-only signals room and weekly live sessions.",
        route="pro-signals",
        owner_user_id=pat.id,
        member_count=412,
        published_reviews_count=37,
        average_review_rating=4.8,
        created_at="2025-03-02T09:15:00.000Z",
        updated_at="2026-09-28T18:40:12.000Z",
    )
    plan = fake.add_plan(
        product.id,
        id="plan_7TyUi1OpAs3Df",
        title="Monthly",
        billing_period=30,
        initial_price="0.00",
        renewal_price="49.00",
        created_at="2025-03-02T09:15:00.000Z",
    )
    member = fake.add_member(
        company.id,
        id="mber_Zx81QwLk5Tn0B",
        user_id=jane.id,
        name="Jane Doe",
        email="jane.doe@example.com",
        most_recent_action="paid_subscriber",
        most_recent_action_at="2026-10-01T14:03:14.000Z",
        usd_total_spent="98.00",
        joined_at="2026-09-01T14:03:11.000Z",
        last_accessed_at="2026-10-19T08:12:40.000Z",
        created_at="2026-09-01T14:03:11.000Z",
    )
    membership = fake.add_membership(
        member.id,
        plan.id,
        id="mem_8kQmZt3VbN1xLp",
        status="active",
        created_at="2026-09-01T14:03:11.000Z",
        updated_at="2026-10-01T14:03:15.412Z",
        current_period_start="2026-10-01T14:03:11.000Z",
        current_period_end="2026-10-31T14:03:11.000Z",
        most_recent_action="renewing_on",
        most_recent_action_at="2026-10-31T14:03:11.000Z",
        metadata={"crm_source": "checkout"},
    )
    payment = fake.add_payment(
        membership.id,
        id="pay_Qw3Er5Ty7Ui9Op",
        billing_reason="subscription_cycle",
        total="49.00",
        amount_after_fees="45.08",
        payment_method_id="payt_Lk9Jh7Gf5Ds3A",
        paid_at="2026-10-01T14:03:14.000Z",
        last_payment_attempt_at="2026-10-01T14:03:12.000Z",
        created_at="2026-10-01T14:03:11.000Z",
        updated_at="2026-10-01T14:03:15.000Z",
    )
    assert company.api_key is not None
    return SeededCompany(
        company.id,
        company.title,
        company.api_key,
        company.owner_user_id,
        product_ids=[product.id],
        plan_ids=[plan.id],
        member_ids=[member.id],
        user_ids=[jane.id],
        membership_ids=[membership.id],
        payment_ids=[payment.id],
        memberships_by_status={"active": [membership.id]},
        payments_by_substatus={"succeeded": [payment.id]},
    )
