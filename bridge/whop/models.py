"""Tolerant pydantic models of the Whop objects the bridge reads.

Whop sends two payload families (research/whop-api.md §2.3, §2.4):

* native, for the pinned `Api-Version-Date` (flat `*_id` fields, `account{}`/`account_id`,
  `current_period_*`, money as `{amount: "49.00", currency: "usd", ...}` objects);
* legacy, for unpinned calls and dashboard-made webhooks (nested `company{}`, `user{}`,
  `product{}`, `plan{}`, `renewal_period_*`, money as JSON numbers plus a top-level `currency`).

Every model normalizes both into one attribute set in a `mode="before"` validator, so the sync
engine never branches on the shape. Unknown fields are ignored and enum-like fields are plain
strings: a value Whop adds tomorrow must not break a sync.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from bridge.money import MAX_AMOUNT, Money, to_decimal

__all__ = [
    "MAX_AMOUNT",
    "Invoice",
    "Member",
    "Membership",
    "Money",
    "Page",
    "PageInfo",
    "Payment",
    "Plan",
    "Product",
    "PromoCode",
    "Review",
    "Source",
    "WaitlistEntry",
    "WebhookEnvelope",
    "WhopPerson",
    "WhopUser",
]


# Timestamps ---------------------------------------------------------------------------------

# Unix timestamps above this are taken as milliseconds (year 5138 in seconds).
_MS_THRESHOLD = 100_000_000_000


def _parse_timestamp(value: Any) -> Any:
    """ISO 8601 strings, and unix seconds/milliseconds from very old payloads, → datetimes.

    Strings `fromisoformat` cannot read are left for pydantic's own parser.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):  # bool is an int subclass; a flag is never a time
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        try:
            # 3.11's fromisoformat reads "Z" and 1-6 fractional digits.
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    return value


def _aware(value: datetime | None) -> datetime | None:
    """A naive time is taken as UTC: Whop documents every timestamp as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Timestamp = Annotated[datetime | None, BeforeValidator(_parse_timestamp), AfterValidator(_aware)]


# Helpers for the legacy → native normalization ----------------------------------------------


def _id_of(value: Any) -> str | None:
    """The id of a nested `{id: ...}` object, or the value itself when it is already an id."""
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    if isinstance(value, str) and value:
        return value
    return None


def _first(*values: Any) -> Any:
    """The first value that is neither None nor an empty string."""
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _money_input(value: Any, currency: Any) -> Any:
    """Turn a legacy number/string amount into a Money dict; leave Money objects alone.

    A legacy amount that is not a number (e.g. a formatted "$49.00") becomes None rather than an
    error: a missing price is better than a failed sync.
    """
    if value is None or isinstance(value, dict | Money):
        return value
    amount = to_decimal(value)
    if amount is None:
        return None
    return {"amount": amount, "currency": currency if isinstance(currency, str) else None}


def _fill(data: dict[str, Any], key: str, *candidates: Any) -> None:
    """Set `data[key]` from the first usable candidate unless the native field is already there."""
    if data.get(key) in (None, ""):
        value = _first(*candidates)
        if value is not None:
            data[key] = value


class _Tolerant(BaseModel):
    # extra="ignore": Whop adds fields all the time; populate_by_name is harmless and lets tests
    # build models directly from attribute names.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# Models -------------------------------------------------------------------------------------


class WhopUser(_Tolerant):
    id: str
    username: str | None = None
    name: str | None = None
    email: str | None = None


def _user_input(value: Any) -> Any:
    """A nested user without a usable id (or a bare string) is treated as no user."""
    if isinstance(value, dict) and _id_of(value) is not None:
        return value
    return None


class Product(_Tolerant):
    id: str
    title: str | None = None
    headline: str | None = None
    description: str | None = None
    route: str | None = None
    visibility: str | None = None
    member_count: int | None = None
    company_id: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        # native: account{id}; legacy: company{id}; some payloads carry the flat id.
        _fill(
            data,
            "company_id",
            data.get("account_id"),
            _id_of(data.get("account")),
            _id_of(data.get("company")),
        )
        return data


class Member(_Tolerant):
    id: str
    company_id: str | None = None
    user: WhopUser | None = None  # None = a business buyer with no Whop user
    display_name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    access_level: str | None = None
    status: str | None = None
    most_recent_action: str | None = None
    usd_total_spent: Money | None = None
    joined_at: Timestamp = None
    created_at: Timestamp = None
    updated_at: Timestamp = None  # legacy only; the native member has no updated_at

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(
            data,
            "company_id",
            data.get("account_id"),
            _id_of(data.get("account")),
            _id_of(data.get("company")),
        )
        data["user"] = _user_input(data.get("user"))
        user = data["user"] or {}
        # legacy: the email sits on the nested user and the phone is `phone`.
        _fill(data, "email", user.get("email"))
        _fill(data, "phone_number", data.get("phone"))
        # legacy: a float in USD (the field name says so).
        data["usd_total_spent"] = _money_input(data.get("usd_total_spent"), "usd")
        return data


class Membership(_Tolerant):
    id: str
    status: str | None = None
    company_id: str | None = None
    user_id: str | None = None
    member_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None
    plan_id: str | None = None
    initial_price: Money | None = None
    renewal_price: Money | None = None
    currency: str | None = None
    cancel_at_period_end: bool = False
    cancel_option: str | None = None
    cancellation_reason: str | None = None
    canceled_at: Timestamp = None
    current_period_start: Timestamp = None
    current_period_end: Timestamp = None
    expires_at: Timestamp = None
    billing_period_days: float | None = None
    most_recent_action: str | None = None
    most_recent_action_at: Timestamp = None
    manage_url: str | None = None
    promo_code_id: str | None = None
    affiliate_id: str | None = None  # the affiliate who brought it (retrieve and lists; null in webhooks)
    affiliate_user_id: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None
    user: WhopUser | None = None  # legacy nested user; the native membership carries none

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(
            data,
            "company_id",
            data.get("account_id"),
            _id_of(data.get("account")),
            _id_of(data.get("company")),
        )
        data["user"] = _user_input(data.get("user"))
        _fill(data, "user_id", _id_of(data.get("user")))
        # native `member` is the caller's own row; it still names the member when set.
        _fill(data, "member_id", _id_of(data.get("member")))
        _fill(data, "product_id", _id_of(data.get("product")))
        product = data.get("product")
        if isinstance(product, dict):
            _fill(data, "product_title", product.get("title"))
        _fill(data, "plan_id", _id_of(data.get("plan")))
        _fill(data, "promo_code_id", _id_of(data.get("promo_code")))
        affiliate = data.get("affiliate")
        if isinstance(affiliate, dict):
            _fill(data, "affiliate_id", _id_of(affiliate))
            _fill(data, "affiliate_user_id", affiliate.get("user_id"), _id_of(affiliate.get("user")))
        # legacy: renewal_period_* instead of current_period_*
        _fill(data, "current_period_start", data.get("renewal_period_start"))
        _fill(data, "current_period_end", data.get("renewal_period_end"))
        if data.get("cancel_at_period_end") is None:
            data["cancel_at_period_end"] = False
        currency = data.get("currency")
        data["initial_price"] = _money_input(data.get("initial_price"), currency)
        data["renewal_price"] = _money_input(data.get("renewal_price"), currency)
        _fill(data, "currency", *_money_currencies(data.get("renewal_price"), data.get("initial_price")))
        return data

    @field_validator("currency", mode="before")
    @classmethod
    def _lower_currency(cls, value: Any) -> str | None:
        return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _money_currencies(*values: Any) -> list[Any]:
    """The currencies of Money-shaped dicts, to fill a missing top-level `currency`."""
    return [value.get("currency") for value in values if isinstance(value, dict)]


class Payment(_Tolerant):
    id: str
    status: str | None = None
    substatus: str | None = None
    billing_reason: str | None = None
    company_id: str | None = None
    membership_id: str | None = None
    member_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None  # not in the brief's list; handy for the failed-payment task
    plan_id: str | None = None
    user_id: str | None = None
    user: WhopUser | None = None
    customer_email: str | None = None
    total: Money | None = None
    refunded_amount: Money | None = None
    currency: str | None = None
    paid_at: Timestamp = None
    last_payment_attempt_at: Timestamp = None
    next_payment_attempt_at: Timestamp = None
    failure_message: str | None = None
    decline_code: str | None = None
    refunded_at: Timestamp = None
    dispute_alerted_at: Timestamp = None
    created_at: Timestamp = None
    updated_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(
            data,
            "company_id",
            data.get("account_id"),
            _id_of(data.get("account")),
            _id_of(data.get("company")),
        )
        data["user"] = _user_input(data.get("user"))
        _fill(data, "user_id", _id_of(data.get("user")))
        _fill(data, "member_id", _id_of(data.get("member")))
        _fill(data, "membership_id", _id_of(data.get("membership")))
        _fill(data, "product_id", _id_of(data.get("product")))
        product = data.get("product")
        if isinstance(product, dict):
            _fill(data, "product_title", product.get("title"))
        _fill(data, "plan_id", _id_of(data.get("plan")))
        user = data["user"] or {}
        _fill(data, "customer_email", user.get("email"))
        # legacy: last_payment_attempt; very old v2/v5: final_amount instead of total.
        _fill(data, "last_payment_attempt_at", data.get("last_payment_attempt"))
        _fill(data, "total", data.get("final_amount"))
        currency = data.get("currency")
        data["total"] = _money_input(data.get("total"), currency)
        data["refunded_amount"] = _money_input(data.get("refunded_amount"), currency)
        _fill(data, "currency", *_money_currencies(data.get("total")))
        return data

    @field_validator("currency", mode="before")
    @classmethod
    def _lower_currency(cls, value: Any) -> str | None:
        return value.strip().lower() if isinstance(value, str) and value.strip() else None


class Plan(_Tolerant):
    id: str
    product_id: str | None = None
    company_id: str | None = None
    title: str | None = None
    plan_type: str | None = None
    billing_period: int | None = None
    trial_period_days: float | None = None
    expiration_days: float | None = None
    initial_price: Money | None = None
    renewal_price: Money | None = None
    currency: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "product_id", _id_of(data.get("product")))
        _fill(
            data,
            "company_id",
            data.get("account_id"),
            _id_of(data.get("account")),
            _id_of(data.get("company")),
        )
        # PY26 plans still send floats plus a top-level currency.
        currency = data.get("currency")
        data["initial_price"] = _money_input(data.get("initial_price"), currency)
        data["renewal_price"] = _money_input(data.get("renewal_price"), currency)
        _fill(data, "currency", *_money_currencies(data.get("renewal_price"), data.get("initial_price")))
        return data

    @field_validator("currency", mode="before")
    @classmethod
    def _lower_currency(cls, value: Any) -> str | None:
        return value.strip().lower() if isinstance(value, str) and value.strip() else None


class Invoice(_Tolerant):
    """A bill a company sent a customer (PY26 `types/invoice.py`). It names no membership: the
    member, product and plan say whose it is; `payment` is set once a payment settled it."""

    id: str
    status: str | None = None  # draft, open, paid, past_due, uncollectible, void
    number: str | None = None
    company_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    member_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None
    plan_id: str | None = None
    formatted_price: str | None = None  # the plan's price as Whop shows it ("$49.00")
    payment_id: str | None = None
    customer_name: str | None = None
    email_address: str | None = None
    pay_online_url: str | None = None
    collection_method: str | None = None
    payment_processing: bool = False
    due_date: Timestamp = None
    created_at: Timestamp = None
    updated_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "company_id", data.get("account_id"), _id_of(data.get("company")), _id_of(data.get("account")))
        user = data.get("user")
        _fill(data, "user_id", _id_of(user))
        if isinstance(user, dict):
            _fill(data, "user_name", user.get("name"), user.get("username"))
        _fill(data, "member_id", _id_of(data.get("member")))
        product = data.get("product")
        _fill(data, "product_id", _id_of(product))
        if isinstance(product, dict):
            _fill(data, "product_title", product.get("title"))
        plan = data.get("current_plan") or data.get("plan")
        _fill(data, "plan_id", _id_of(plan))
        if isinstance(plan, dict):
            _fill(data, "formatted_price", plan.get("formatted_price"))
        _fill(data, "payment_id", _id_of(data.get("payment")))
        if data.get("payment_processing") is None:
            data["payment_processing"] = False
        for name in ("user", "member", "product", "plan", "current_plan", "payment", "company", "account"):
            data.pop(name, None)
        return data


class WaitlistEntry(_Tolerant):
    """A signup for a waitlisted plan: PY26 `types/waitlist_entry.py` (flat ids, as
    `/waitlist_entries` answers) or `types/entry.py` (nested user, plan and product, as the
    `entry.*` webhooks carry it, with no account, membership or `updated_at`)."""

    id: str
    status: str | None = None  # pending, approved, denied, canceled (drafted in webhooks)
    company_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    username: str | None = None
    plan_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None
    membership_id: str | None = None  # the membership approval made, once it did
    approval_failure_reason: str | None = None
    answers: list[tuple[str, str]] = Field(default_factory=list)  # (question, answer)
    created_at: Timestamp = None
    updated_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "company_id", data.get("account_id"), _id_of(data.get("account")), _id_of(data.get("company")))
        user = data.get("user")
        _fill(data, "user_id", _id_of(user))
        if isinstance(user, dict):
            _fill(data, "user_name", user.get("name"))
            _fill(data, "username", user.get("username"))
        _fill(data, "plan_id", _id_of(data.get("plan")))
        product = data.get("product")
        _fill(data, "product_id", _id_of(product))
        if isinstance(product, dict):
            _fill(data, "product_title", product.get("title"))
        _fill(data, "membership_id", _id_of(data.get("membership")))
        responses = data.get("custom_field_responses")
        data["answers"] = [
            (str(r.get("question") or ""), str(r.get("answer") or ""))
            for r in (responses if isinstance(responses, list) else [])
            if isinstance(r, dict)
        ]
        for name in ("user", "plan", "product", "membership", "account", "company"):
            data.pop(name, None)
        return data


class Review(_Tolerant):
    """A member's review of a product: PY26 `types/review.py` (retrieve: with product and
    account) or `types/review_list_item.py` (lists, asked per product: without them)."""

    id: str
    status: str | None = None  # pending, published, removed
    stars: int | None = None
    title: str | None = None
    description: str | None = None
    company_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    paid_for_product: bool | None = None
    published_at: Timestamp = None
    created_at: Timestamp = None
    updated_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "company_id", data.get("account_id"), _id_of(data.get("account")), _id_of(data.get("company")))
        user = data.get("user")
        _fill(data, "user_id", _id_of(user))
        if isinstance(user, dict):
            _fill(data, "user_name", user.get("name"), user.get("username"))
        product = data.get("product")
        _fill(data, "product_id", _id_of(product))
        if isinstance(product, dict):
            _fill(data, "product_title", product.get("title"))
        for name in ("user", "product", "account", "company", "attachments"):
            data.pop(name, None)
        return data


class Source(_Tolerant):
    """Where a visit came from (PY26 `/people` `first_source`, `last_source`): a Whop ad click,
    a lead form, an external ad, a referring site, or UTM parameters."""

    type: str | None = None  # ad_click, lead_form, external_ad_click, referrer, utm
    domain: str | None = None
    utm_source: str | None = None
    platform: str | None = None
    campaign: str | None = None  # the campaign's name, else its id
    ad_group: str | None = None
    ad: str | None = None
    occurred_at: Timestamp = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("campaign", "ad_group", "ad"):
            value = data.get(name)
            if isinstance(value, dict):
                data[name] = _first(value.get("name"), value.get("id"))
        return data


class WhopPerson(_Tolerant):
    """A buyer's profile at a company (PY26 `/people`): Whop's own figures and attribution."""

    id: str
    user_id: str | None = None
    member_id: str | None = None
    ltv: Decimal | None = None  # in USD, as Whop reports it
    aov: Decimal | None = None
    purchase_count: int | None = None
    first_seen_at: Timestamp = None
    last_seen_at: Timestamp = None
    first_purchase_at: Timestamp = None
    last_purchase_at: Timestamp = None
    first_source: Source | None = None
    last_source: Source | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "user_id", _id_of(data.get("user")))
        _fill(data, "member_id", _id_of(data.get("member")))
        for name in ("ltv", "aov"):
            data[name] = to_decimal(data.get(name))
        for name in ("user", "member"):
            data.pop(name, None)
        return data


class PromoCode(_Tolerant):
    id: str
    code: str | None = None
    promo_type: str | None = None
    company_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "company_id", data.get("account_id"), _id_of(data.get("account")), _id_of(data.get("company")))
        return data


# Pages and webhooks -------------------------------------------------------------------------


class PageInfo(_Tolerant):
    end_cursor: str | None = None
    start_cursor: str | None = None
    has_next_page: bool = False
    has_previous_page: bool = False


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(_Tolerant, Generic[ItemT]):
    """One page of a cursor list; `end_cursor` is what a sync checkpoints to resume from."""

    data: list[ItemT] = Field(default_factory=list)
    page_info: PageInfo = Field(default_factory=PageInfo)
    # Records of this page the bridge cannot read (id, why): left out, never half-written.
    unreadable: list[tuple[str, str]] = Field(default_factory=list)

    @property
    def end_cursor(self) -> str | None:
        return self.page_info.end_cursor or None

    @property
    def has_next_page(self) -> bool:
        return self.page_info.has_next_page and bool(self.page_info.end_cursor)


ModelT = TypeVar("ModelT", bound=BaseModel)


class WebhookEnvelope(_Tolerant):
    """The outer object of a webhook delivery, native or legacy.

    `company_id` routes the event to a connection: native envelopes say `account_id`, legacy ones
    `company_id` (or an old `company{id}`); when the envelope has none, the object's own account
    is used. `data` stays raw: parse it with `data_as(Model)` once the type is known (test
    deliveries may carry `data: null`, some dashboards send arrays).
    """

    id: str | None = None
    type: str | None = None
    timestamp: Timestamp = None
    api_version: str | None = None
    api_version_date: str | None = None
    company_id: str | None = None
    data: dict[str, Any] | list[Any] | None = None
    previous_attributes: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _fill(data, "type", data.get("action"))  # v2/v5 era: {"action": "...", "data": {...}}
        inner = data.get("data")
        inner = inner if isinstance(inner, dict) else {}
        _fill(
            data,
            "company_id",
            data.get("account_id"),
            _id_of(data.get("account")),
            _id_of(data.get("company")),
            inner.get("account_id"),
            inner.get("company_id"),
            _id_of(inner.get("account")),
            _id_of(inner.get("company")),
        )
        if not isinstance(data.get("previous_attributes"), dict):
            data["previous_attributes"] = None
        if not isinstance(data.get("data"), dict | list):
            data["data"] = None
        return data

    @property
    def is_native(self) -> bool:
        """True when the delivery was made for a pinned `api_version_date`."""
        return self.api_version_date is not None

    def data_as(self, model: builtins.type[ModelT]) -> ModelT | None:
        """The `data` object parsed as `model`, or None when there is no single object."""
        if not isinstance(self.data, dict):
            return None
        return model.model_validate(self.data)
