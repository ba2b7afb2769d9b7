"""The fake's in-memory data: records, and the add/update/delete helpers tests use.

Records are plain dataclasses holding *facts* (times as epoch ms, money as Decimal); the
wire shapes (native and legacy) are produced from them by `shapes.py`, so one record can
answer under either API version.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fakes.whop._util import (
    MONEY_FIELDS,
    TIME_FIELDS,
    IdFactory,
    MoneyInput,
    TimeInput,
    slugify,
    to_decimal,
    to_ms,
)

OWNER_USER_ID = "user_owner"
OWNER_NAME = "Olive Owner"
OWNER_USERNAME = "oliveowner"
OWNER_EMAIL = "olive.owner@example.com"

MEMBERSHIP_STATUSES = (
    "trialing",
    "active",
    "past_due",
    "completed",
    "canceled",
    "expired",
    "unresolved",
    "drafted",
    "canceling",
)
# Statuses that still grant access to the product (the fact sheet, §2.3).
ACCESS_STATUSES = frozenset({"trialing", "active", "past_due", "completed", "canceling"})
PAYMENT_STATUSES = ("draft", "open", "authorized", "paid", "pending", "uncollectible", "unresolved", "void")

_AUTO: Any = object()  # "make one up" marker, distinct from an explicit None


@dataclass(kw_only=True)
class User:
    id: str
    username: str
    name: str | None
    email: str | None = None
    profile_picture_url: str | None = None
    bio: str | None = None
    created_at: int = 0


@dataclass(kw_only=True)
class Company:
    id: str
    title: str
    route: str
    owner_user_id: str | None
    logo_url: str | None = None
    api_key: str | None = None
    # Permissions the company's API key lacks (keys have every permission unless denied here).
    denied_permissions: set[str] = field(default_factory=set)
    created_at: int = 0


@dataclass(kw_only=True)
class Product:
    id: str
    company_id: str
    title: str
    headline: str | None = None
    description: str | None = None
    route: str = ""
    visibility: str = "visible"
    marketplace_status: str = "not_available"
    external_identifier: str | None = None
    owner_user_id: str | None = None
    logo_url: str | None = None
    member_count: int | None = None  # None: counted from memberships
    published_reviews_count: int = 0
    average_review_rating: float | None = None
    verified: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    custom_cta: str = "join"
    default_plan_id: str | None = None  # None: the first plan added
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class Plan:
    id: str
    company_id: str
    product_id: str
    title: str
    description: str | None = None
    plan_type: str = "renewal"  # renewal | one_time
    billing_period: int | None = 30
    trial_period_days: int | None = None
    expiration_days: int | None = None
    initial_price: Decimal = Decimal("0")
    renewal_price: Decimal | None = Decimal("49")
    currency: str = "usd"
    visibility: str = "visible"
    release_method: str = "buy_now"
    stock: int | None = None
    unlimited_stock: bool = True
    split_pay_required_payments: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    internal_notes: str | None = None
    sku: str | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class Member:
    id: str
    company_id: str
    user_id: str | None  # None: a business buyer
    display_name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    access_level: str = "customer"  # customer | admin | no_access
    status: str = "joined"  # joined | left
    most_recent_action: str | None = "joined"
    most_recent_action_at: int | None = None
    usd_total_spent: Decimal | None = None  # None: summed from payments
    token_balance: int = 0
    joined_at: int = 0
    last_accessed_at: int | None = None
    created_at: int = 0
    updated_at: int = 0  # legacy shape only; native members have no updated_at


@dataclass(kw_only=True)
class Membership:
    id: str
    company_id: str
    member_id: str | None
    user_id: str | None
    product_id: str
    plan_id: str
    status: str = "active"
    promo_code_id: str | None = None
    affiliate_id: str | None = None  # the affiliate who referred it (`aff_…`) and their user
    affiliate_user_id: str | None = None
    initial_price: Decimal = Decimal("0")
    renewal_price: Decimal | None = None
    currency: str = "usd"
    billing_period_days: int | None = None
    collection_method: str = "charge_automatically"
    cancel_at_period_end: bool = False
    cancel_option: str | None = None
    cancellation_reason: str | None = None
    canceled_at: int | None = None
    feedback_option: str | None = None
    current_period_start: int | None = None
    current_period_end: int | None = None
    expires_at: int | None = None
    most_recent_action: str | None = None
    most_recent_action_at: int | None = None
    split_pay_current_payments: int | None = None
    split_pay_required_payments: int | None = None
    license_key: str | None = None
    manage_url: str | None = None
    phone_number: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    payment_collection_paused: bool = False
    custom_field_responses: list[dict[str, Any]] = field(default_factory=list)
    joined_at: int = 0
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class Payment:
    id: str
    company_id: str
    membership_id: str | None
    member_id: str | None
    user_id: str | None
    product_id: str | None
    plan_id: str | None
    status: str = "paid"
    substatus: str = "succeeded"
    billing_reason: str | None = "subscription_cycle"
    promo_code_id: str | None = None
    checkout_configuration_id: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    currency: str = "usd"
    subtotal: Decimal | None = None
    tax_amount: Decimal | None = None
    tax_behavior: str | None = None
    tax_refunded_amount: Decimal = Decimal("0")
    total: Decimal = Decimal("0")
    usd_total: Decimal | None = None  # None: same as total (USD)
    amount_after_fees: Decimal | None = None
    refunded_amount: Decimal | None = None
    refunded_at: int | None = None
    refundable: bool = True
    retryable: bool = False
    voidable: bool = False
    auto_refunded: bool = False
    payments_failed: int = 0
    failure_message: str | None = None
    decline_code: str | None = None
    payment_method_type: str | None = "card"
    payment_method_id: str | None = None
    card_brand: str | None = "visa"
    card_last4: str | None = "4242"
    three_ds_verified: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    paid_at: int | None = None
    last_payment_attempt_at: int | None = None
    next_payment_attempt_at: int | None = None
    dispute_alerted_at: int | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class Invoice:
    """A bill sent to a customer (PY26 `types/invoice.py`). Whop's invoice names no membership;
    `membership_id` is the fake's own note of which membership it bills (never rendered)."""

    id: str
    company_id: str
    member_id: str | None
    user_id: str | None
    product_id: str
    plan_id: str
    membership_id: str | None = None
    number: str = "0001"
    status: str = "open"  # draft | open | paid | past_due | uncollectible | void
    collection_method: str = "send_invoice"
    due_date: int | None = None
    payment_id: str | None = None
    email_address: str | None = None
    customer_name: str | None = None
    charge_buyer_fee: bool = False
    payment_processing: bool = False
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class WaitlistEntry:
    """A signup for a waitlisted plan (PY26 `types/waitlist_entry.py`)."""

    id: str
    company_id: str
    user_id: str
    plan_id: str
    product_id: str | None
    status: str = "pending"  # pending | approved | denied | canceled
    membership_id: str | None = None
    buyer_account_id: str | None = None
    approval_failure_reason: str | None = None
    custom_field_responses: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class Review:
    """A member's review of a product (PY26 `types/review.py`)."""

    id: str
    company_id: str
    product_id: str
    user_id: str
    stars: int = 5
    title: str | None = None
    description: str | None = None
    status: str = "published"  # pending | published | removed
    paid_for_product: bool | None = True
    joined_at: int | None = None
    published_at: int | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class PromoCode:
    id: str
    company_id: str
    code: str
    promo_type: str = "percentage"  # percentage | flat_amount
    amount_off: Decimal = Decimal("10")
    currency: str = "usd"
    status: str = "active"
    uses: int = 0
    created_at: int = 0
    updated_at: int = 0


@dataclass(kw_only=True)
class PersonView:
    """A buyer's `/people` profile at one company, derived from what the fake holds (its member,
    payments) plus the sources a test gives (`WhopStore.set_sources`)."""

    id: str  # prsn_…
    company_id: str
    user_id: str
    member_id: str
    purchase_count: int
    ltv: Decimal
    first_seen_at: int
    last_seen_at: int
    first_purchase_at: int | None
    last_purchase_at: int | None
    first_source: dict[str, Any] | None
    last_source: dict[str, Any] | None

    @property
    def created_at(self) -> int:  # what the lists' created_after/before filter on
        return self.first_seen_at


Record = User | Company | Product | Plan | Member | Membership | Payment | Invoice | WaitlistEntry | Review | PromoCode


@dataclass
class _Index:
    """Reverse lookups, rebuilt lazily after any change (cheap, and never stale)."""

    memberships_by_member: dict[str, list[str]] = field(default_factory=dict)
    memberships_by_product: dict[str, list[str]] = field(default_factory=dict)
    memberships_by_plan: dict[str, list[str]] = field(default_factory=dict)
    payments_by_member: dict[str, list[str]] = field(default_factory=dict)
    plans_by_product: dict[str, list[str]] = field(default_factory=dict)


class WhopStore:
    """Every object of every company the fake knows, plus the helpers to shape them."""

    def __init__(self, *, clock: Callable[[], float], api_key: str | None, id_seed: str = "fake-whop") -> None:
        self.clock = clock
        self.api_key = api_key  # bound to the first company added without its own key
        self.api_keys: dict[str, str] = {}  # key → company id
        self.users: dict[str, User] = {}
        self.companies: dict[str, Company] = {}
        self.products: dict[str, Product] = {}
        self.plans: dict[str, Plan] = {}
        self.members: dict[str, Member] = {}
        self.memberships: dict[str, Membership] = {}
        self.payments: dict[str, Payment] = {}
        self.invoices: dict[str, Invoice] = {}
        self.waitlist_entries: dict[str, WaitlistEntry] = {}
        self.reviews: dict[str, Review] = {}
        self.promo_codes: dict[str, PromoCode] = {}
        # (company, user) -> (first source, last source), as `/people` shows them
        self.sources: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
        self.neighbor_company_id: str | None = None
        self._usernames: set[str] = set()
        self.ids = IdFactory(random.Random(id_seed))
        self.lock = threading.RLock()  # uvicorn may serve from another thread
        self.version = 0  # bumped by every change; list caches key on it
        self._index: _Index | None = None
        self._index_version = -1
        self.add_user(
            id=OWNER_USER_ID,
            username=OWNER_USERNAME,
            name=OWNER_NAME,
            email=OWNER_EMAIL,
            created_at=1_700_000_000,
        )

    # ---- plumbing ---------------------------------------------------------------------
    def now_ms(self) -> int:
        return round(self.clock() * 1000)

    def _touch(self) -> None:
        self.version += 1

    def _tables(self) -> dict[str, dict[str, Any]]:
        return {
            "user_": self.users,
            "biz_": self.companies,
            "prod_": self.products,
            "plan_": self.plans,
            "mber_": self.members,
            "mem_": self.memberships,
            "pay_": self.payments,
            "inv_": self.invoices,
            "entry_": self.waitlist_entries,
            "rev_": self.reviews,
            "promo_": self.promo_codes,
        }

    def table_for(self, obj_id: str) -> dict[str, Any]:
        for prefix, table in self._tables().items():
            if obj_id.startswith(prefix):
                return table
        raise ValueError(f"unknown id prefix: {obj_id!r}")

    def find(self, obj_id: str) -> Record | None:
        return self.table_for(obj_id).get(obj_id)

    def get(self, obj_id: str) -> Record:
        record = self.find(obj_id)
        if record is None:
            raise KeyError(obj_id)
        return record

    def new_id(self, prefix: str, length: int = 14) -> str:
        table = self.table_for(prefix)
        while True:
            candidate = self.ids.new(prefix, length)
            if candidate not in table:
                return candidate

    def _claim_id(self, obj_id: str | None, prefix: str) -> str:
        if obj_id is None:
            return self.new_id(prefix)
        if not obj_id.startswith(prefix):
            raise ValueError(f"{obj_id!r} must start with {prefix!r}")
        if obj_id in self.table_for(prefix):
            raise ValueError(f"{obj_id!r} already exists")
        return obj_id

    @staticmethod
    def _coerce(fields: dict[str, Any]) -> dict[str, Any]:
        """Accept datetimes/ISO strings/epoch seconds and str/float money from callers."""
        out = dict(fields)
        for name, value in fields.items():
            if name in TIME_FIELDS:
                out[name] = to_ms(value)
            elif name in MONEY_FIELDS:
                out[name] = to_decimal(value)
        return out

    def index(self) -> _Index:
        with self.lock:
            if self._index is not None and self._index_version == self.version:
                return self._index
            idx = _Index()
            for plan in self.plans.values():
                idx.plans_by_product.setdefault(plan.product_id, []).append(plan.id)
            for m in self.memberships.values():
                if m.member_id:
                    idx.memberships_by_member.setdefault(m.member_id, []).append(m.id)
                idx.memberships_by_product.setdefault(m.product_id, []).append(m.id)
                idx.memberships_by_plan.setdefault(m.plan_id, []).append(m.id)
            for p in self.payments.values():
                if p.member_id:
                    idx.payments_by_member.setdefault(p.member_id, []).append(p.id)
            self._index, self._index_version = idx, self.version
            return idx

    # ---- derived facts ----------------------------------------------------------------
    def companies_of_user(self, user_id: str) -> list[str]:
        return [c.id for c in self.companies.values() if c.owner_user_id == user_id]

    def member_total_spent(self, member: Member) -> Decimal:
        if member.usd_total_spent is not None:
            return member.usd_total_spent
        total = Decimal(0)
        for pay_id in self.index().payments_by_member.get(member.id, []):
            pay = self.payments[pay_id]
            if pay.status == "paid":
                usd = pay.usd_total if pay.usd_total is not None else pay.total
                refunded = pay.refunded_amount or Decimal(0)
                # Refunds are in the charge currency; scale them into USD like the total.
                ratio = usd / pay.total if pay.total else Decimal(1)
                total += usd - refunded * ratio
        return total.quantize(Decimal("0.01"))

    def product_member_count(self, product: Product) -> int:
        if product.member_count is not None:
            return product.member_count
        ids = self.index().memberships_by_product.get(product.id, [])
        return len({self.memberships[i].member_id for i in ids if self.memberships[i].status in ACCESS_STATUSES})

    def plan_member_count(self, plan: Plan) -> int:
        ids = self.index().memberships_by_plan.get(plan.id, [])
        return len({self.memberships[i].member_id for i in ids if self.memberships[i].status in ACCESS_STATUSES})

    def default_plan(self, product: Product) -> Plan | None:
        if product.default_plan_id and product.default_plan_id in self.plans:
            return self.plans[product.default_plan_id]
        plan_ids = self.index().plans_by_product.get(product.id, [])
        return self.plans[plan_ids[0]] if plan_ids else None

    # ---- adding -----------------------------------------------------------------------
    def add_user(
        self,
        id: str | None = None,
        *,
        username: str | None = None,
        name: str | None = None,
        email: str | None = None,
        profile_picture_url: str | None = None,
        created_at: TimeInput = None,
        **fields: Any,
    ) -> User:
        with self.lock:
            user_id = self._claim_id(id, "user_")
            user = User(
                id=user_id,
                username=username or user_id.removeprefix("user_").lower(),
                name=name,
                email=email,
                profile_picture_url=profile_picture_url,
                **self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields}),
            )
            self.users[user_id] = user
            self._usernames.add(user.username)
            self._touch()
            return user

    def _unique_username(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self._usernames:
            n += 1
            candidate = f"{base}{n}"
        return candidate

    def user_by_email(self, email: str) -> User | None:
        wanted = email.lower()
        return next((u for u in self.users.values() if u.email and u.email.lower() == wanted), None)

    def add_company(
        self,
        id: str | None = None,
        *,
        title: str = "Acme Trading",
        route: str | None = None,
        owner_user_id: str | None = OWNER_USER_ID,
        api_key: str | None = None,
        created_at: TimeInput = None,
        **fields: Any,
    ) -> Company:
        with self.lock:
            company_id = self._claim_id(id, "biz_")
            if owner_user_id is not None and owner_user_id not in self.users:
                raise ValueError(f"owner {owner_user_id!r} is not a known user (add_user first)")
            # The fake's own key belongs to the first company that does not bring one; every
            # other company still gets a key, so "which key sees what" can be tested.
            if api_key is None:
                if self.api_key is not None and self.api_key not in self.api_keys:
                    api_key = self.api_key
                else:
                    api_key = f"whop-key-{company_id}"
            if api_key in self.api_keys:
                raise ValueError(f"api key already belongs to {self.api_keys[api_key]}")
            company = Company(
                id=company_id,
                title=title,
                route=route or slugify(title),
                owner_user_id=owner_user_id,
                api_key=api_key,
                **self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields}),
            )
            self.companies[company_id] = company
            self.api_keys[api_key] = company_id
            self._touch()
            return company

    def add_product(
        self,
        company_id: str,
        *,
        id: str | None = None,
        title: str = "Pro Signals",
        route: str | None = None,
        visibility: str = "visible",
        owner_user_id: str | None = _AUTO,
        created_at: TimeInput = None,
        updated_at: TimeInput = None,
        **fields: Any,
    ) -> Product:
        with self.lock:
            company = self.companies[company_id]
            product_id = self._claim_id(id, "prod_")
            created = created_at if created_at is not None else self.clock()
            product = Product(
                id=product_id,
                company_id=company_id,
                title=title,
                route=route or slugify(title),
                visibility=visibility,
                owner_user_id=company.owner_user_id if owner_user_id is _AUTO else owner_user_id,
                **self._coerce(
                    {
                        "created_at": created,
                        "updated_at": updated_at if updated_at is not None else created,
                        **fields,
                    }
                ),
            )
            self.products[product_id] = product
            self._touch()
            return product

    def add_plan(
        self,
        product_id: str,
        *,
        id: str | None = None,
        title: str = "Monthly",
        plan_type: str = "renewal",
        billing_period: int | None = 30,
        initial_price: MoneyInput = "0",
        renewal_price: MoneyInput = "49",
        currency: str = "usd",
        trial_period_days: int | None = None,
        created_at: TimeInput = None,
        updated_at: TimeInput = None,
        **fields: Any,
    ) -> Plan:
        with self.lock:
            product = self.products[product_id]
            plan_id = self._claim_id(id, "plan_")
            created = created_at if created_at is not None else self.clock()
            plan = Plan(
                id=plan_id,
                company_id=product.company_id,
                product_id=product_id,
                title=title,
                plan_type=plan_type,
                billing_period=billing_period if plan_type == "renewal" else None,
                trial_period_days=trial_period_days,
                currency=currency,
                **self._coerce(
                    {
                        "initial_price": initial_price,
                        "renewal_price": renewal_price,
                        "created_at": created,
                        "updated_at": updated_at if updated_at is not None else created,
                        **fields,
                    }
                ),
            )
            self.plans[plan_id] = plan
            self._touch()
            return plan

    def add_member(
        self,
        company_id: str,
        *,
        id: str | None = None,
        user_id: str | None = _AUTO,
        business: bool = False,
        name: str | None = None,
        username: str | None = None,
        email: str | None = _AUTO,
        created_at: TimeInput = None,
        **fields: Any,
    ) -> Member:
        """A member of `company_id`.

        `business=True` (or `user_id=None`) makes a business buyer (`user: null`). Otherwise the member's user is
        `user_id` if given (created when unknown), else the user already owning `email`, else
        a new user. `email=None` makes a member without an email.
        """
        with self.lock:
            if company_id not in self.companies:
                raise KeyError(company_id)
            member_id = self._claim_id(id, "mber_")
            user: User | None = None
            if business or user_id is None:
                name = name or "Business buyer"
                if email is _AUTO:
                    email = f"billing@{slugify(name)}.example.com"
            else:
                if user_id is not _AUTO and user_id in self.users:
                    user = self.users[user_id]
                elif user_id is _AUTO and isinstance(email, str) and (found := self.user_by_email(email)):
                    user = found  # one Whop account per email: members of two companies share it
                else:
                    uname = self._unique_username(username or slugify(name or "user").replace("-", "") or "user")
                    user = self.add_user(
                        None if user_id is _AUTO else user_id,
                        username=uname,
                        name=name,
                        email=f"{uname}@example.com" if email is _AUTO else email,
                        created_at=created_at if created_at is not None else self.clock(),
                    )
                if email is _AUTO:
                    email = user.email
                name = name or user.name
            created = created_at if created_at is not None else self.clock()
            coerced = self._coerce({"created_at": created, **fields})
            coerced.setdefault("joined_at", coerced["created_at"])
            coerced.setdefault("updated_at", coerced["created_at"])
            coerced.setdefault("most_recent_action_at", coerced["created_at"])
            coerced.setdefault("last_accessed_at", coerced["created_at"])
            member = Member(
                id=member_id,
                company_id=company_id,
                user_id=user.id if user else None,
                display_name=name,
                email=email,
                **coerced,
            )
            self.members[member_id] = member
            self._touch()
            return member

    def add_membership(
        self,
        member_id: str,
        plan_id: str,
        *,
        id: str | None = None,
        status: str = "active",
        created_at: TimeInput = None,
        **fields: Any,
    ) -> Membership:
        """A membership of `member_id` on `plan_id`; prices and period follow the plan."""
        with self.lock:
            member = self.members[member_id]
            plan = self.plans[plan_id]
            if member.company_id != plan.company_id:
                raise ValueError("member and plan belong to different companies")
            mem_id = self._claim_id(id, "mem_")
            coerced = self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields})
            start = coerced["created_at"]
            if plan.plan_type == "renewal" and plan.billing_period:
                coerced.setdefault("current_period_start", start)
                coerced.setdefault("current_period_end", start + plan.billing_period * 86_400_000)
            coerced.setdefault("joined_at", start)
            coerced.setdefault("updated_at", start)
            coerced.setdefault("initial_price", plan.initial_price)
            coerced.setdefault("renewal_price", plan.renewal_price if plan.plan_type == "renewal" else None)
            coerced.setdefault("billing_period_days", plan.billing_period)
            membership = Membership(
                id=mem_id,
                company_id=member.company_id,
                member_id=member_id,
                user_id=member.user_id,
                product_id=plan.product_id,
                plan_id=plan_id,
                status=status,
                currency=plan.currency,
                **coerced,
            )
            self.memberships[mem_id] = membership
            self._touch()
            return membership

    def add_payment(
        self,
        membership_id: str,
        *,
        id: str | None = None,
        status: str = "paid",
        substatus: str = "succeeded",
        total: MoneyInput = None,
        created_at: TimeInput = None,
        **fields: Any,
    ) -> Payment:
        """A payment for `membership_id`; the amount defaults to the renewal (or initial) price."""
        with self.lock:
            m = self.memberships[membership_id]
            member = self.members.get(m.member_id or "")
            pay_id = self._claim_id(id, "pay_")
            amount = to_decimal(total)
            if amount is None:
                amount = m.renewal_price if m.renewal_price is not None else m.initial_price
            coerced = self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields})
            created = coerced["created_at"]
            coerced.setdefault("updated_at", created)
            coerced.setdefault("subtotal", amount)
            coerced.setdefault("last_payment_attempt_at", created)
            if status == "paid":
                coerced.setdefault("paid_at", created)
            coerced.setdefault("amount_after_fees", (amount * Decimal("0.92")).quantize(Decimal("0.01")))
            coerced.setdefault("payment_method_id", self.ids.new("payt_", 13))
            payment = Payment(
                id=pay_id,
                company_id=m.company_id,
                membership_id=m.id,
                member_id=m.member_id,
                user_id=m.user_id,
                product_id=m.product_id,
                plan_id=m.plan_id,
                status=status,
                substatus=substatus,
                currency=m.currency,
                total=amount,
                customer_email=member.email if member else None,
                **coerced,
            )
            self.payments[pay_id] = payment
            self._touch()
            return payment

    # ---- changing ---------------------------------------------------------------------
    def _update(self, table: dict[str, Any], obj_id: str, changes: dict[str, Any], *, bump: bool) -> Any:
        with self.lock:
            record = table[obj_id]
            names = {f.name for f in dataclasses.fields(record)}
            unknown = set(changes) - names
            if unknown:
                raise TypeError(f"unknown field(s) for {obj_id}: {sorted(unknown)}")
            for name, value in self._coerce(changes).items():
                setattr(record, name, value)
            if bump and "updated_at" not in changes and hasattr(record, "updated_at"):
                # Strictly later than before, even under a frozen or backwards test clock, so
                # "compare updated_at" reconciliation always sees the change.
                record.updated_at = max(self.now_ms(), record.updated_at + 1)
            self._touch()
            return record

    def update_membership(self, mem_id: str, **changes: Any) -> Membership:
        """Change fields of a membership (native field names); bumps `updated_at` to now."""
        result: Membership = self._update(self.memberships, mem_id, changes, bump=True)
        return result

    def update_member(self, member_id: str, **changes: Any) -> Member:
        result: Member = self._update(self.members, member_id, changes, bump=True)
        return result

    def update_product(self, product_id: str, **changes: Any) -> Product:
        result: Product = self._update(self.products, product_id, changes, bump=True)
        return result

    def update_plan(self, plan_id: str, **changes: Any) -> Plan:
        result: Plan = self._update(self.plans, plan_id, changes, bump=True)
        return result

    def update_payment(self, pay_id: str, **changes: Any) -> Payment:
        result: Payment = self._update(self.payments, pay_id, changes, bump=True)
        return result

    def update_user(self, user_id: str, **changes: Any) -> User:
        result: User = self._update(self.users, user_id, changes, bump=False)
        self._usernames.add(result.username)
        return result

    def _delete(self, table: dict[str, Any], obj_id: str) -> None:
        with self.lock:
            del table[obj_id]
            self._touch()

    def delete_membership(self, mem_id: str) -> None:
        """Gone from lists and retrieve (404); payments keep pointing at it, as on Whop."""
        self._delete(self.memberships, mem_id)

    def delete_member(self, member_id: str) -> None:
        self._delete(self.members, member_id)

    def delete_product(self, product_id: str) -> None:
        self._delete(self.products, product_id)

    def delete_plan(self, plan_id: str) -> None:
        self._delete(self.plans, plan_id)

    def delete_payment(self, pay_id: str) -> None:
        self._delete(self.payments, pay_id)

    # ---- invoices and waitlists (moments a sales team acts on) ----------------------------
    def add_invoice(
        self,
        membership_id: str,
        *,
        id: str | None = None,
        status: str = "open",
        due_date: TimeInput = None,
        created_at: TimeInput = None,
        **fields: Any,
    ) -> Invoice:
        """An invoice billing `membership_id`'s member for its plan (`send_invoice` by default)."""
        with self.lock:
            m = self.memberships[membership_id]
            member = self.members.get(m.member_id or "")
            inv_id = self._claim_id(id, "inv_")
            coerced = self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields})
            coerced.setdefault("updated_at", coerced["created_at"])
            number = f"{len([i for i in self.invoices.values() if i.company_id == m.company_id]) + 1:04d}"
            coerced.setdefault("number", number)
            invoice = Invoice(
                id=inv_id,
                company_id=m.company_id,
                member_id=m.member_id,
                user_id=m.user_id,
                product_id=m.product_id,
                plan_id=m.plan_id,
                membership_id=m.id,
                status=status,
                due_date=to_ms(due_date),
                email_address=member.email if member else None,
                customer_name=member.display_name if member else None,
                **coerced,
            )
            self.invoices[inv_id] = invoice
            self._touch()
            return invoice

    def update_invoice(self, inv_id: str, **changes: Any) -> Invoice:
        """Change an invoice (e.g. `status="past_due"`, or `"paid"` with `payment_id`); bumps `updated_at`."""
        if "due_date" in changes:
            changes["due_date"] = to_ms(changes["due_date"])
        result: Invoice = self._update(self.invoices, inv_id, changes, bump=True)
        return result

    def add_waitlist_entry(
        self,
        company_id: str,
        plan_id: str,
        *,
        id: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        email: str | None = None,
        status: str = "pending",
        created_at: TimeInput = None,
        as_member: bool = True,
        **fields: Any,
    ) -> WaitlistEntry:
        """A signup for `plan_id` by `user_id` (a new user, named `name`, when not given).

        Guess (no source says more): Whop lists members whose most recent action is
        `pending_entry`, so a signup makes the user a (drafted) member of the company unless they
        are one; `as_member=False` leaves them a user only."""
        with self.lock:
            plan = self.plans[plan_id]
            if plan.company_id != company_id:
                raise ValueError("the plan belongs to another company")
            if user_id is None:
                uname = self._unique_username(slugify(name or "waiter").replace("-", "") or "waiter")
                user_id = self.add_user(username=uname, name=name, email=email or f"{uname}@example.com").id
            elif user_id not in self.users:
                raise KeyError(user_id)
            entry_id = self._claim_id(id, "entry_")
            coerced = self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields})
            coerced.setdefault("updated_at", coerced["created_at"])
            entry = WaitlistEntry(
                id=entry_id,
                company_id=company_id,
                user_id=user_id,
                plan_id=plan_id,
                product_id=plan.product_id,
                status=status,
                **coerced,
            )
            self.waitlist_entries[entry_id] = entry
            known = any(m.company_id == company_id and m.user_id == user_id for m in self.members.values())
            if as_member and not known:
                self.add_member(
                    company_id,
                    user_id=user_id,
                    status="drafted",
                    most_recent_action="pending_entry",
                    created_at=coerced["created_at"] / 1000,
                )
            self._touch()
            return entry

    def approve_waitlist_entry(self, entry_id: str, *, membership_status: str = "active") -> Membership:
        """What Whop's approval does: the user becomes a member (if not one yet) with a membership
        on the plan, and the entry is `approved` and names it."""
        with self.lock:
            entry = self.waitlist_entries[entry_id]
            member = next(
                (m for m in self.members.values() if m.company_id == entry.company_id and m.user_id == entry.user_id),
                None,
            )
            if member is None:
                member = self.add_member(entry.company_id, user_id=entry.user_id)
            elif member.status == "drafted":
                self.update_member(member.id, status="joined", most_recent_action="joined")
            membership = self.add_membership(member.id, entry.plan_id, status=membership_status)
            self.update_waitlist_entry(entry_id, status="approved", membership_id=membership.id)
            return membership

    def update_waitlist_entry(self, entry_id: str, **changes: Any) -> WaitlistEntry:
        result: WaitlistEntry = self._update(self.waitlist_entries, entry_id, changes, bump=True)
        return result

    def delete_waitlist_entry(self, entry_id: str) -> None:
        """Gone from lists and retrieve (404), as after `entry.deleted`."""
        self._delete(self.waitlist_entries, entry_id)

    # ---- reviews ------------------------------------------------------------------------------
    def add_review(
        self,
        member_id: str,
        product_id: str,
        *,
        id: str | None = None,
        stars: int = 5,
        status: str = "published",
        created_at: TimeInput = None,
        **fields: Any,
    ) -> Review:
        """`member_id`'s user reviews `product_id` (published at once unless `status` says otherwise)."""
        with self.lock:
            member = self.members[member_id]
            product = self.products[product_id]
            if member.company_id != product.company_id or member.user_id is None:
                raise ValueError("a review is by a member with a user, of a product of their company")
            review_id = self._claim_id(id, "rev_")
            coerced = self._coerce({"created_at": created_at if created_at is not None else self.clock(), **fields})
            coerced.setdefault("updated_at", coerced["created_at"])
            if status == "published":
                coerced.setdefault("published_at", coerced["created_at"])
            coerced.setdefault("joined_at", member.joined_at)
            review = Review(
                id=review_id,
                company_id=product.company_id,
                product_id=product_id,
                user_id=member.user_id,
                stars=stars,
                status=status,
                **coerced,
            )
            self.reviews[review_id] = review
            self._touch()
            return review

    def update_review(self, review_id: str, **changes: Any) -> Review:
        if "published_at" in changes:
            changes["published_at"] = to_ms(changes["published_at"])
        result: Review = self._update(self.reviews, review_id, changes, bump=True)
        return result

    def delete_review(self, review_id: str) -> None:
        self._delete(self.reviews, review_id)

    # ---- attribution: promo codes, affiliates, `/people` profiles ------------------------------
    def add_promo_code(self, company_id: str, code: str, *, id: str | None = None, **fields: Any) -> PromoCode:
        with self.lock:
            promo_id = self._claim_id(id, "promo_")
            coerced = self._coerce({"created_at": self.clock(), **fields})
            coerced.setdefault("updated_at", coerced["created_at"])
            promo = PromoCode(id=promo_id, company_id=company_id, code=code, **coerced)
            self.promo_codes[promo_id] = promo
            self._touch()
            return promo

    def set_sources(
        self,
        company_id: str,
        user_id: str,
        *,
        first: dict[str, Any] | None = None,
        last: dict[str, Any] | None = None,
    ) -> None:
        """Where `user_id` came from to `company_id`, as `/people` reports it (PY26 source shape:
        `{"type": "referrer", "domain": "…"}`, `{"type": "utm", "utm_source": "…"}`, …)."""
        with self.lock:
            self.sources[(company_id, user_id)] = (first, last if last is not None else first)
            self._touch()

    @property
    def people(self) -> dict[str, PersonView]:
        """Every member with a user, as a `/people` profile of their company."""
        out: dict[str, PersonView] = {}
        with self.lock:
            for member in self.members.values():
                if member.user_id is None:
                    continue
                paid = [
                    self.payments[i]
                    for i in self.index().payments_by_member.get(member.id, [])
                    if self.payments[i].status == "paid"
                ]
                times = sorted(p.paid_at or p.created_at for p in paid)
                first, last = self.sources.get((member.company_id, member.user_id), (None, None))
                view = PersonView(
                    id=f"prsn_{member.id.removeprefix('mber_')}",
                    company_id=member.company_id,
                    user_id=member.user_id,
                    member_id=member.id,
                    purchase_count=len(paid),
                    ltv=self.member_total_spent(member),
                    first_seen_at=member.created_at,
                    last_seen_at=max(member.last_accessed_at or 0, member.created_at, *(times or [0])),
                    first_purchase_at=times[0] if times else None,
                    last_purchase_at=times[-1] if times else None,
                    first_source=first,
                    last_source=last,
                )
                out[view.id] = view
        return out
