"""The tolerant Whop models: native and legacy shapes normalize to the same values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from bridge.whop.models import (
    Member,
    Membership,
    Money,
    Page,
    PageInfo,
    Payment,
    Plan,
    Product,
    WebhookEnvelope,
    WhopUser,
)
from tests.whop import (
    MEMBER_LEGACY_JSON,
    MEMBER_NATIVE_JSON,
    MEMBERSHIP_LEGACY_JSON,
    MEMBERSHIP_NATIVE_JSON,
    PAYMENT_LEGACY_JSON,
    PAYMENT_NATIVE_JSON,
    PLAN_LEGACY_JSON,
    PLAN_PY26_JSON,
    PRODUCT_LEGACY_JSON,
    PRODUCT_NATIVE_JSON,
    WEBHOOK_LEGACY_JSON,
    load,
    page,
    webhook_native,
)

BIZ = "biz_Hq2LmVx9TcR4sA"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="usd")


# Native fixtures (§7) ---------------------------------------------------------------------------


def test_native_membership_fixture() -> None:
    ms = Membership.model_validate(load(MEMBERSHIP_NATIVE_JSON))
    assert ms.id == "mem_8kQmZt3VbN1xLp"
    assert ms.status == "active"
    assert ms.company_id == BIZ
    assert ms.user_id == "user_w3RtYp7KsD2mN"
    assert ms.member_id == "mber_Zx81QwLk5Tn0B"
    assert ms.product_id == "prod_4GhJk2LmPq9Rs"
    assert ms.product_title == "Pro Signals"
    assert ms.plan_id == "plan_7TyUi1OpAs3Df"
    assert ms.initial_price == usd("0.00")
    assert ms.renewal_price == usd("49.00")
    assert ms.renewal_price is not None and str(ms.renewal_price.amount) == "49.00"  # exact, not 49.0
    assert ms.currency == "usd"
    assert ms.cancel_at_period_end is False
    assert ms.current_period_start == at("2026-10-01T14:03:11Z")
    assert ms.current_period_end == at("2026-10-31T14:03:11Z")
    assert ms.updated_at == at("2026-10-01T14:03:15.412Z")
    assert ms.expires_at is None
    assert ms.user is None  # the native membership carries no user


def test_native_product_fixture() -> None:
    product = Product.model_validate(load(PRODUCT_NATIVE_JSON))
    assert (product.id, product.title, product.route) == ("prod_4GhJk2LmPq9Rs", "Pro Signals", "pro-signals")
    assert product.headline == "Daily trade ideas with entries and exits"
    assert product.visibility == "visible"
    assert product.member_count == 412
    assert product.company_id == BIZ
    assert product.created_at == at("2025-03-02T09:15:00Z")


def test_native_payment_fixture() -> None:
    payment = Payment.model_validate(load(PAYMENT_NATIVE_JSON))
    assert (payment.status, payment.substatus, payment.billing_reason) == (
        "paid",
        "succeeded",
        "subscription_cycle",
    )
    assert payment.company_id == BIZ
    assert payment.membership_id == "mem_8kQmZt3VbN1xLp"
    assert payment.member_id == "mber_Zx81QwLk5Tn0B"
    assert payment.user_id == "user_w3RtYp7KsD2mN"
    assert payment.customer_email == "jane.doe@example.com"
    assert payment.total == usd("49.00")
    assert payment.refunded_amount is None
    assert payment.currency == "usd"
    assert payment.paid_at == at("2026-10-01T14:03:14Z")
    assert payment.last_payment_attempt_at == at("2026-10-01T14:03:12Z")


def test_native_member_fixture() -> None:
    member = Member.model_validate(load(MEMBER_NATIVE_JSON))
    assert member.company_id == BIZ
    assert member.user == WhopUser(id="user_w3RtYp7KsD2mN", username="jdoe42", name="Jane Doe")
    assert member.display_name == "Jane Doe"
    assert member.email == "jane.doe@example.com"
    assert member.usd_total_spent == usd("98.00")
    assert member.updated_at is None  # the native member has none
    assert member.joined_at == at("2026-09-01T14:03:11Z")


# Native and legacy give the same normalized values -------------------------------------------------


@pytest.mark.parametrize(
    ("model", "native", "legacy", "differ"),
    [
        # The legacy membership nests the user (with email); the native one has none. Only the
        # native one says its next action and its billing period.
        pytest.param(
            Membership,
            MEMBERSHIP_NATIVE_JSON,
            MEMBERSHIP_LEGACY_JSON,
            {"user", "most_recent_action", "most_recent_action_at", "billing_period_days"},
            id="membership",
        ),
        pytest.param(Product, PRODUCT_NATIVE_JSON, PRODUCT_LEGACY_JSON, set(), id="product"),
        # Legacy payments name the product and put the email on the user.
        pytest.param(Payment, PAYMENT_NATIVE_JSON, PAYMENT_LEGACY_JSON, {"user", "product_title"}, id="payment"),
        # The legacy member has no account id, no display name, and an updated_at.
        pytest.param(
            Member,
            MEMBER_NATIVE_JSON,
            MEMBER_LEGACY_JSON,
            {"user", "company_id", "display_name", "updated_at"},
            id="member",
        ),
        pytest.param(Plan, PLAN_PY26_JSON, PLAN_LEGACY_JSON, set(), id="plan-py26-vs-legacy"),
    ],
)
def test_native_and_legacy_normalize_alike(model: type[BaseModel], native: str, legacy: str, differ: set[str]) -> None:
    a = model.model_validate(load(native))
    b = model.model_validate(load(legacy))
    assert a.model_dump(exclude=differ) == b.model_dump(exclude=differ)


def test_legacy_user_fills_the_flat_ids_and_email() -> None:
    ms = Membership.model_validate(load(MEMBERSHIP_LEGACY_JSON))
    assert ms.user == WhopUser(
        id="user_w3RtYp7KsD2mN", username="jdoe42", name="Jane Doe", email="jane.doe@example.com"
    )
    member = Member.model_validate(load(MEMBER_LEGACY_JSON))
    assert member.email == "jane.doe@example.com"
    assert member.user is not None and member.user.email == "jane.doe@example.com"
    assert member.usd_total_spent == usd("98")
    payment = Payment.model_validate(load(PAYMENT_LEGACY_JSON))
    assert payment.product_title == "Pro Signals"
    assert payment.total == usd("49.0")


def test_legacy_webhook_fixture() -> None:
    envelope = WebhookEnvelope.model_validate(load(WEBHOOK_LEGACY_JSON))
    assert envelope.id == "msg_xxxxxxxxxxxxxxxxxxxxxxxx"
    assert envelope.type == "membership.deactivated"
    assert envelope.company_id == BIZ
    assert envelope.api_version_date is None and not envelope.is_native
    assert envelope.timestamp == at("2025-01-01T00:00:00Z")
    ms = envelope.data_as(Membership)
    assert ms is not None
    assert ms.status == "canceled"
    assert ms.company_id == BIZ
    assert (ms.user_id, ms.member_id, ms.plan_id) == (
        "user_w3RtYp7KsD2mN",
        "mber_Zx81QwLk5Tn0B",
        "plan_7TyUi1OpAs3Df",
    )
    assert (ms.product_id, ms.product_title) == ("prod_4GhJk2LmPq9Rs", "Pro Signals")
    assert ms.current_period_end == at("2026-10-31T14:03:11Z")  # from renewal_period_end
    assert ms.cancel_at_period_end is True
    assert ms.cancel_option == "too_expensive"
    assert ms.canceled_at == at("2026-10-12T09:00:00Z")
    assert ms.currency == "usd"
    assert ms.initial_price is None and ms.renewal_price is None  # only formatted strings there
    assert ms.user is not None and ms.user.email == "jane.doe@example.com"


def test_native_webhook_fixture() -> None:
    envelope = WebhookEnvelope.model_validate(webhook_native())
    assert envelope.id == "msg_2xQp9LmVt7RkWz4NbC8sYd1F"
    assert envelope.type == "membership.activated"
    assert envelope.company_id == BIZ
    assert envelope.api_version_date == "2026-10-15-1" and envelope.is_native
    assert envelope.timestamp == datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    assert envelope.previous_attributes is None
    assert envelope.data_as(Membership) == Membership.model_validate(load(MEMBERSHIP_NATIVE_JSON))


# Envelope edge cases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"id": "msg_1", "type": "payment.succeeded", "account_id": "biz_a", "data": None},
            {"company_id": "biz_a", "data": None},
            id="test-delivery-data-null",
        ),
        pytest.param(
            {"type": "x", "company_id": "biz_b", "data": [{"id": "mem_1"}]},
            {"company_id": "biz_b", "data": [{"id": "mem_1"}]},
            id="array-data",
        ),
        pytest.param(
            {"action": "membership.went_valid", "data": {"id": "mem_1", "company": {"id": "biz_c"}}},
            {"type": "membership.went_valid", "company_id": "biz_c"},
            id="v2-action-and-company-from-data",
        ),
        pytest.param(
            {"type": "x", "company": {"id": "biz_d"}, "data": {"account_id": "biz_other"}},
            {"company_id": "biz_d"},
            id="envelope-company-wins-over-data",
        ),
        pytest.param(
            {
                "type": "membership.updated",
                "account_id": "biz_e",
                "data": {"id": "m"},
                "previous_attributes": {"status": "trialing"},
            },
            {"previous_attributes": {"status": "trialing"}},
            id="previous-attributes",
        ),
        pytest.param(
            {"type": "x", "data": "garbage", "previous_attributes": []},
            {"data": None, "previous_attributes": None, "company_id": None},
            id="junk-is-dropped",
        ),
    ],
)
def test_envelope_shapes(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    envelope = WebhookEnvelope.model_validate(raw)
    for name, value in expected.items():
        assert getattr(envelope, name) == value


def test_envelope_data_as_needs_an_object() -> None:
    assert WebhookEnvelope.model_validate({"data": [1, 2]}).data_as(Membership) is None
    assert WebhookEnvelope.model_validate({"data": None}).data_as(Membership) is None


# Money -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "amount", "currency"),
    [
        pytest.param({"amount": "49.00", "currency": "usd"}, "49.00", "usd", id="decimal-string"),
        pytest.param({"amount": 49.99, "currency": "USD"}, "49.99", "usd", id="float-exact-and-lowered"),
        pytest.param({"amount": 0.1, "currency": "eur"}, "0.1", "eur", id="float-0.1-no-binary-noise"),
        pytest.param({"amount": 10, "currency": "usd"}, "10", "usd", id="int"),
        pytest.param({"amount": "1234567890.123456", "currency": "cop"}, "1234567890.123456", "cop", id="big"),
        pytest.param({"amount": "5", "currency": None}, "5", None, id="no-currency"),
        pytest.param({"amount": "5", "currency": "  "}, "5", None, id="blank-currency"),
    ],
)
def test_money_is_exact(raw: dict[str, Any], amount: str, currency: str | None) -> None:
    money = Money.model_validate(raw)
    assert money.amount == Decimal(amount)
    assert str(money.amount) == amount
    assert money.currency == currency


@pytest.mark.parametrize("amount", ["abc", "NaN", "Infinity", True, None, [1]], ids=repr)
def test_money_rejects_non_numbers(amount: Any) -> None:
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": amount, "currency": "usd"})


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        pytest.param(49.0, usd("49"), id="legacy-float"),
        pytest.param("19.99", usd("19.99"), id="old-string"),
        pytest.param({"amount": "49.00", "currency": "usd"}, usd("49.00"), id="native-object"),
        pytest.param("$49.00", None, id="formatted-string-is-dropped"),
        pytest.param(None, None, id="null"),
    ],
)
def test_plan_prices_tolerated(price: Any, expected: Money | None) -> None:
    plan = Plan.model_validate({"id": "plan_1", "renewal_price": price, "currency": "usd"})
    assert plan.renewal_price == expected


def test_product_default_plan_shape_parses_as_plan() -> None:
    default_plan = load(PRODUCT_NATIVE_JSON)["default_plan"]
    plan = Plan.model_validate(default_plan)
    assert plan.renewal_price == usd("49.00")
    assert plan.currency == "usd"  # filled from the Money objects
    assert plan.product_id is None


# Timestamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("2023-12-01T05:00:00.401Z", datetime(2023, 12, 1, 5, 0, 0, 401000, tzinfo=UTC), id="iso-z"),
        pytest.param(
            "2023-12-01T07:00:00+02:00",
            datetime(2023, 12, 1, 7, tzinfo=timezone(timedelta(hours=2))),
            id="iso-offset",
        ),
        pytest.param("2023-12-01T05:00:00", datetime(2023, 12, 1, 5, tzinfo=UTC), id="naive-is-utc"),
        pytest.param(1792497600, datetime(2026, 10, 20, 12, tzinfo=UTC), id="unix-seconds"),
        pytest.param("1792497600", datetime(2026, 10, 20, 12, tzinfo=UTC), id="unix-seconds-string"),
        pytest.param(1792497600000, datetime(2026, 10, 20, 12, tzinfo=UTC), id="unix-millis"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
    ],
)
def test_timestamps_become_aware(raw: Any, expected: datetime | None) -> None:
    product = Product.model_validate({"id": "prod_1", "created_at": raw})
    assert product.created_at == expected
    if expected is not None:
        assert product.created_at is not None and product.created_at.tzinfo is not None


def test_unparseable_timestamp_is_an_error() -> None:
    with pytest.raises(ValidationError):
        Product.model_validate({"id": "prod_1", "created_at": "next tuesday"})


# Tolerance -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "raw", "attribute", "value"),
    [
        pytest.param(Membership, {"id": "mem_1", "status": "hibernating"}, "status", "hibernating", id="ms-status"),
        pytest.param(
            Payment,
            {"id": "pay_1", "substatus": "dispute_new_kind"},
            "substatus",
            "dispute_new_kind",
            id="payment-substatus",
        ),
        pytest.param(Member, {"id": "mber_1", "access_level": "owner"}, "access_level", "owner", id="access-level"),
        pytest.param(Product, {"id": "prod_1", "visibility": "unlisted"}, "visibility", "unlisted", id="visibility"),
    ],
)
def test_unknown_enum_values_are_kept(model: type[BaseModel], raw: dict[str, Any], attribute: str, value: str) -> None:
    assert getattr(model.model_validate(raw), attribute) == value


@pytest.mark.parametrize("model", [Membership, Member, Payment, Plan, Product], ids=lambda m: m.__name__)
def test_minimal_objects_and_unknown_fields(model: type[BaseModel]) -> None:
    parsed = model.model_validate({"id": "x_1", "brand_new_field": {"nested": True}})
    assert parsed.id == "x_1"  # type: ignore[attr-defined]
    assert not hasattr(parsed, "brand_new_field")


def test_business_buyer_has_no_user() -> None:
    raw = load(MEMBER_NATIVE_JSON) | {"user": None, "display_name": "Acme Trading LLC"}
    member = Member.model_validate(raw)
    assert member.user is None
    assert member.display_name == "Acme Trading LLC"


def test_cancel_at_period_end_null_is_false() -> None:
    assert Membership.model_validate({"id": "mem_1", "cancel_at_period_end": None}).cancel_at_period_end is False


def test_native_flat_ids_win_over_nested_objects() -> None:
    # The native `member` object is the caller's own row: the flat member_id stays authoritative.
    raw = load(MEMBERSHIP_NATIVE_JSON) | {"member": {"id": "mber_someone_else"}}
    assert Membership.model_validate(raw).member_id == "mber_Zx81QwLk5Tn0B"


# Pages -----------------------------------------------------------------------------------------------


def test_page_parses_items_and_cursor() -> None:
    body = page([load(MEMBERSHIP_NATIVE_JSON)], "cursor_1", True)
    parsed = Page[Membership].model_validate(body)
    assert parsed.data[0].id == "mem_8kQmZt3VbN1xLp"
    assert parsed.end_cursor == "cursor_1"
    assert parsed.has_next_page


@pytest.mark.parametrize(
    ("info", "has_next"),
    [
        pytest.param({"end_cursor": "c", "has_next_page": True}, True, id="more"),
        pytest.param({"end_cursor": "c", "has_next_page": False}, False, id="last"),
        pytest.param({"end_cursor": "", "has_next_page": True}, False, id="empty-cursor-ends"),
        pytest.param({"end_cursor": None, "has_next_page": True}, False, id="null-cursor-ends"),
    ],
)
def test_page_has_next(info: dict[str, Any], has_next: bool) -> None:
    assert Page[Product](data=[], page_info=PageInfo.model_validate(info)).has_next_page is has_next
