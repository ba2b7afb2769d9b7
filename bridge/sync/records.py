"""Whop models → writer `Item`s, and the payment fold: the records both paths send to Twenty.

The sync engine (full sync, reconciliation) and the webhook worker build what they write here,
so the same Whop state becomes the same Twenty record whichever path carries it. The field
values themselves come from the pure `bridge.sync.mapping`.

A membership's "last payment" is not a Twenty object: it is kept in the shadow object
"payment" keyed by membership id and folded into its Opportunity's last-payment fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import AuthError, NeedsReconnect, SkippableError
from bridge.store import revenue as revenue_store
from bridge.store.connections import get_connection
from bridge.store.facts import get_facts, put_facts
from bridge.store.shadows import Shadow, ShadowWrite, get_shadows
from bridge.sync import mapping
from bridge.sync.writer import Item, Problem, fixed
from bridge.whop.models import Invoice, Member, Membership, Payment, Plan, Product, WaitlistEntry

log = logging.getLogger(__name__)

PAYMENT_SHADOW = "payment"
# A Person's revenue fields are written apart from its member fields, under their own shadows.
REVENUE_SHADOW = "personRevenue"

# Payments -----------------------------------------------------------------------------------


def payment_time(p: Payment) -> datetime | None:
    """When a payment happened, for ordering: paid, else last attempted, else updated or created."""
    return p.paid_at or p.last_payment_attempt_at or p.updated_at or p.created_at


@dataclass(frozen=True)
class LastPayment:
    """The payment that counts as a membership's last one, as its "payment" shadow holds it."""

    membership_id: str
    payment_id: str
    at: datetime | None
    fields: dict[str, Any]  # the Opportunity's last-payment fields, plus "_paymentId"

    @classmethod
    def of(cls, p: Payment, membership_id: str) -> LastPayment:
        fields = {**mapping.payment_fields(p), "_paymentId": p.id}
        return cls(membership_id, p.id, payment_time(p), fields)

    @classmethod
    def from_shadow(cls, shadow: Shadow) -> LastPayment:
        written = shadow.written if isinstance(shadow.written, dict) else {}
        return cls(shadow.whop_id, str(written.get("_paymentId") or ""), shadow.whop_updated_at, written)

    def order(self) -> tuple[Any, ...]:
        # A payment with a time sorts after any without one (a payment that cannot be placed in
        # time never displaces one that can); then by time; on an equal time by payment id. The
        # id only breaks ties: it is arbitrary (Whop ids are not chronological) but the same
        # whatever order the payments arrive in, so the sync's pages and the worker's events
        # pick the same payment.
        if self.at is None:
            return (0, self.payment_id)
        return (1, self.at, self.payment_id)

    def shadow_row(self) -> ShadowWrite:
        return ShadowWrite(self.membership_id, mapping.record_hash(self.fields), None, self.at, self.fields)


def replaces(new: LastPayment, current: LastPayment | None) -> bool:
    """The one ordering rule: `new` becomes the last payment when its order is not lower.

    An equal order means the same payment at the same time: the newer read of it replaces the
    older (a refund changes a payment's status without moving its `paid_at`).
    """
    return current is None or new.order() >= current.order()


def later(a: LastPayment | None, b: LastPayment | None) -> LastPayment | None:
    """Of two holdings of a membership's last payment, the one the rule keeps."""
    if a is None or (b is not None and replaces(b, a)):
        return b
    return a


def fold_payments(payments: Iterable[Payment], *held: Mapping[str, LastPayment]) -> dict[str, LastPayment]:
    """The payments that become their membership's last payment, by membership id.

    `held` are what the bridge already has per membership (the "payment" shadows, a run's
    memo); a payment must replace every one of them. Payments of no membership, and a payment
    read again exactly as held, are left out.
    """
    best: dict[str, LastPayment] = {}
    for source in held:
        for membership_id, last in source.items():
            if replaces(last, best.get(membership_id)):
                best[membership_id] = last
    changed: dict[str, LastPayment] = {}
    for p in payments:
        if not p.membership_id:
            continue
        last, current = LastPayment.of(p, p.membership_id), best.get(p.membership_id)
        if last != current and replaces(last, current):
            best[p.membership_id] = changed[p.membership_id] = last
    return changed


async def held_payments(
    store: AsyncEngine, company_id: str, membership_ids: Iterable[str | None]
) -> dict[str, LastPayment]:
    """The last payments the "payment" shadows hold for these memberships (`None`s are skipped)."""
    shadows = await get_shadows(store, company_id, PAYMENT_SHADOW, [i for i in membership_ids if i])
    return {key: LastPayment.from_shadow(shadow) for key, shadow in shadows.items()}


# Items --------------------------------------------------------------------------------------


def product_item(p: Product, company: mapping.CompanyRef | None = None) -> Item:
    record = mapping.product_record(p, company)
    return Item(p.id, record, lambda _c, _l: dict(record), p.updated_at, label=p.title)


def person_item(m: Member, facts: Sequence[mapping.MemberFact] = (), revenue: dict[str, Any] | None = None) -> Item:
    basis = mapping.person_record(m, current=None, last_written=None, facts=facts, revenue=revenue)
    email = (basis.get("emails") or {}).get("primaryEmail")
    return Item(
        mapping.person_key(m),
        basis,
        lambda current, last: mapping.person_record(
            m, current=current, last_written=_strip(last), facts=facts, revenue=revenue
        ),
        m.updated_at,
        email=email,
        label=mapping.member_display_name(m),
    )


class PlanBook:
    """Plans, read once each and kept a while (a few plans serve many memberships, and they
    rarely change): the runtime holds one for the process, so the sync warms it for the worker.

    A plan that cannot be read is left out, and the membership's own prices stand.
    """

    TTL_SECONDS = 900.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._plans: dict[str, tuple[Plan | None, float]] = {}

    async def get(self, plan_ids: Iterable[str | None], fetch: Callable[[str], Awaitable[Plan]]) -> dict[str, Plan]:
        now = self._clock()
        wanted = list(dict.fromkeys(i for i in plan_ids if i))
        for plan_id in wanted:
            held = self._plans.get(plan_id)
            if held is not None and now - held[1] < self.TTL_SECONDS:
                continue
            try:
                self._plans[plan_id] = (await fetch(plan_id), now)
            except SkippableError as exc:  # gone, or not readable: the membership's prices stand
                log.info("plan %s not read: %s", plan_id, exc)
                self._plans[plan_id] = (None, now)
        return {i: plan for i in wanted if (plan := self._plans[i][0]) is not None}


Plans = Callable[[Iterable[str | None]], Awaitable[dict[str, Plan]]]


async def _no_plans(_ids: Iterable[str | None]) -> dict[str, Plan]:
    return {}


class CompanyItems:
    """Items of one connected company: its products and memberships say which company they are
    of, and its members' Persons fold in what every other connected company knows of them."""

    def __init__(self, store: AsyncEngine, company: mapping.CompanyRef, *, keep_facts: bool = True) -> None:
        self.store = store
        self.company = company
        self.keep_facts = keep_facts  # a dry run stores nothing
        self.moved: set[str] = set()  # person keys whose revenue facts changed since this was made

    @classmethod
    async def of(cls, store: AsyncEngine, company_id: str, *, keep_facts: bool = True) -> CompanyItems:
        row = await get_connection(store, company_id)
        return cls(store, mapping.CompanyRef(company_id, row.company_title if row else None), keep_facts=keep_facts)

    def products(self, products: Iterable[Product]) -> list[Item]:
        return [product_item(p, self.company) for p in products]

    async def record_memberships(self, memberships: Sequence[Membership]) -> None:
        """Keep what each membership says about its buyer's revenue (active, ended)."""
        if self.keep_facts:
            rows = [
                (ms.id, key, mapping.membership_fact(ms)) for ms in memberships if (key := membership_person_key(ms))
            ]
            self.moved |= await revenue_store.put_memberships(self.store, self.company.id, rows)

    async def revenue_items(self, keys: Sequence[str]) -> list[Item]:
        """Person revenue items (lifetime value, purchases, active memberships, churn) for `keys`,
        written apart from the member fields (`REVENUE_SHADOW`), so each changes alone."""
        found = await _revenue(self.store, keys)
        return [_revenue_item(key, fields) for key, fields in found.items()]

    async def record_payments(self, payments: Sequence[Payment]) -> None:
        """Keep what each payment adds to its buyer's revenue (net, when paid)."""
        if self.keep_facts:
            rows = [(p.id, key, mapping.payment_fact(p)) for p in payments if (key := _payer(p))]
            self.moved |= await revenue_store.put_payments(self.store, self.company.id, rows)

    async def payments(self, payments: Sequence[Payment]) -> list[Item]:
        """WhopPayment items linked to their Person and Opportunity by the ids the writer stored."""
        people = await get_shadows(self.store, self.company.id, "person", [k for p in payments if (k := _payer(p))])
        memberships = [p.membership_id for p in payments if p.membership_id]
        opportunities = await get_shadows(self.store, self.company.id, "opportunity", memberships)
        products = await get_shadows(
            self.store, self.company.id, "whopProduct", [p.product_id for p in payments if p.product_id]
        )
        items = []
        for p in payments:
            person = people.get(_payer(p) or "")
            opportunity = opportunities.get(p.membership_id or "")
            product = products.get(p.product_id or "")
            record = mapping.payment_record(
                p,
                person_id=_twenty_id(person),
                opportunity_id=_twenty_id(opportunity),
                company=self.company,
                product_title=_shadow_label(product),  # its name, not prod_…
            )
            items.append(Item(p.id, record, fixed(record), p.updated_at, label=record["name"]))
        return items

    async def people(self, members: Sequence[Member]) -> list[Item]:
        own = [(mapping.person_key(m), mapping.member_fact(m, self.company.id)) for m in members]
        if self.keep_facts:
            await put_facts(self.store, own)
        known = await get_facts(self.store, [key for key, _ in own])
        revenue = await _revenue(self.store, [key for key, _ in own])
        items = []
        for m, (key, fact) in zip(members, own, strict=True):
            others = [f for f in known.get(key, []) if f.company_id != self.company.id]
            items.append(person_item(m, [fact, *others], revenue.get(key)))
        return items


def opportunity_item(
    ms: Membership,
    *,
    person_name: str | None,
    product_title: str | None,
    person_id: str | None,
    product_id: str | None,
    payment: dict[str, Any] | None,
    stage_policy: str,
    company: mapping.CompanyRef | None = None,
    plan: Plan | None = None,
) -> Item:
    pay = {k: v for k, v in (payment or {}).items() if not k.startswith("_")}

    def build(current: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any]:
        record = mapping.opportunity_record(
            ms,
            person_name=person_name,
            product_title=product_title,
            person_id=person_id,
            product_id=product_id,
            current=current,
            last_written=_strip(last),
            stage_policy=stage_policy,
            company=company,
            plan=plan,
        )
        return {**record, **pay}

    return Item(ms.id, build(None, None), build, ms.updated_at)


def _revenue_item(key: str, fields: dict[str, Any]) -> Item:
    record = {"whopUserId": key, **fields}

    def build(existing: dict[str, Any] | None, _last: dict[str, Any] | None) -> dict[str, Any]:
        # Seen on 1.x: an upsert that leaves out a composite may blank it; send back what is there.
        kept = {k: v for k, v in (existing or {}).items() if isinstance(v, dict) and k not in record}
        return {**kept, **record}

    return Item(key, record, build, None)


def _payer(p: Payment) -> str | None:
    """The Person key of a payment's buyer: the user, or the member of a buyer with no user."""
    return p.user_id or (p.user.id if p.user else None) or p.member_id


def membership_person_key(ms: Membership) -> str | None:
    """The Person key of a membership: its user, or its member for a buyer with no user."""
    return ms.user_id or ms.member_id


FetchPeople = Callable[[list[Membership]], Awaitable[None]]


class MembershipItems:
    """Opportunity items for memberships, linked to Person and WhopProduct by their Twenty ids.

    The ids come from the shadows the writer stored for people and products. `fetch_people`,
    when given, is called with the memberships whose Person is not known yet (its member left,
    or is listed later) and is expected to write them; the shadows are then read again.
    `payments` is a run's memo of last payments (a dry run stores no shadows), weighed against
    the "payment" shadows by the same rule as `fold_payments`.
    """

    def __init__(
        self,
        store: AsyncEngine,
        company_id: str,
        *,
        stage_policy: str,
        payments: Mapping[str, LastPayment] | None = None,
        fetch_people: FetchPeople | None = None,
        plans: Plans = _no_plans,
        facts: CompanyItems | None = None,
    ) -> None:
        self.store = store
        self.company_id = company_id
        self.plans = plans
        self.facts = facts  # the company, and where each membership's revenue facts are kept (None: nowhere)
        self.seen: list[Membership] = []  # every membership built into an item, in order
        self.stage_policy = stage_policy
        self.payments: Mapping[str, LastPayment] = payments if payments is not None else {}
        self.fetch_people = fetch_people

    async def __call__(self, memberships: list[Membership]) -> list[Item]:
        people = await self._people(memberships)
        products = await get_shadows(
            self.store, self.company_id, "whopProduct", [ms.product_id for ms in memberships if ms.product_id]
        )
        held = await held_payments(self.store, self.company_id, [ms.id for ms in memberships])
        plans = await self.plans(ms.plan_id for ms in memberships)
        self.seen.extend(memberships)
        if self.facts is not None:
            await self.facts.record_memberships(memberships)
        items = []
        for ms in memberships:
            person = people.get(membership_person_key(ms) or "")
            product = products.get(ms.product_id or "")
            last = later(self.payments.get(ms.id), held.get(ms.id))
            items.append(
                opportunity_item(
                    ms,
                    person_name=_shadow_label(person),
                    product_title=_shadow_label(product),
                    person_id=_twenty_id(person),
                    product_id=_twenty_id(product),
                    payment=last.fields if last else None,
                    stage_policy=self.stage_policy,
                    company=self.facts.company if self.facts is not None else None,
                    plan=plans.get(ms.plan_id or ""),
                )
            )
        return items

    async def _people(self, memberships: list[Membership]) -> dict[str, Shadow]:
        keys = [k for k in (membership_person_key(ms) for ms in memberships) if k]
        people = await get_shadows(self.store, self.company_id, "person", keys)
        missing = [ms for ms in memberships if (key := membership_person_key(ms)) and key not in people]
        if missing and self.fetch_people is not None:
            await self.fetch_people(missing)
            people = await get_shadows(self.store, self.company_id, "person", keys)
        return people


async def fetch_members(
    get_member: Callable[[str], Awaitable[Member]], memberships: list[Membership]
) -> tuple[list[Member], list[Problem]]:
    """The members of memberships whose Person is missing, read from Whop; those not found are problems."""
    members: list[Member] = []
    problems: list[Problem] = []
    for ms in memberships:
        if not ms.member_id:
            continue
        try:
            members.append(await get_member(ms.member_id))
        except NeedsReconnect:
            raise  # the whole connection is gone, not this member
        except (SkippableError, AuthError) as exc:  # gone, or not this company's to read (403)
            problems.append(Problem("person", ms.member_id, f"member not read from Whop: {exc}"))
    return members, problems


# Whose records ------------------------------------------------------------------------------


async def _revenue(store: AsyncEngine, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The revenue fields of each person key with facts, folded across every company."""
    found = await revenue_store.person_facts(store, keys)
    return {key: mapping.person_revenue(payments, memberships) for key, (payments, memberships) in found.items()}


def foreign_company(
    record: Product | Member | Membership | Payment | Invoice | WaitlistEntry, company_id: str
) -> str | None:
    """Why `record` may not be written for `company_id`: it names another company. None when it
    may: it names this company, or none (Whop gave it to this company's credentials)."""
    owner = record.company_id
    if owner and owner != company_id:
        return f"{type(record).__name__.lower()} {record.id} belongs to {owner}, not {company_id}"
    return None


def _shadow_label(shadow: Shadow | None) -> str | None:
    """The name the writer stored with a record (None: not written yet)."""
    written = shadow.written if shadow else None
    return written.get("_label") if isinstance(written, dict) else None


def _twenty_id(shadow: Shadow | None) -> str | None:
    """A written record's Twenty id, to link to (None: not written yet)."""
    return shadow.twenty_id if shadow else None


def _strip(written: dict[str, Any] | None) -> dict[str, Any] | None:
    if written is None:
        return None
    return {k: v for k, v in written.items() if not k.startswith("_")}
