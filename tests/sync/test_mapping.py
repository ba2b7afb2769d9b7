"""The Whop → Twenty mapping: pure functions, table-driven, plus property tests."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.sync import mapping
from bridge.sync.mapping import (
    curated,
    failed_payment_task,
    member_display_name,
    money_to_currency,
    opportunity_record,
    opportunity_stage,
    payment_fields,
    payment_is_failure,
    payment_status_value,
    person_key,
    person_record,
    product_record,
    record_hash,
    split_name,
    status_value,
)
from bridge.whop.models import Member, Membership, Money, Payment, Plan, Product
from tests.whop import (
    MEMBER_LEGACY_JSON,
    MEMBER_NATIVE_JSON,
    MEMBERSHIP_LEGACY_JSON,
    MEMBERSHIP_NATIVE_JSON,
    PAYMENT_LEGACY_JSON,
    PAYMENT_NATIVE_JSON,
    PRODUCT_LEGACY_JSON,
    PRODUCT_NATIVE_JSON,
    WEBHOOK_LEGACY_JSON,
    load,
)

SELECT_RE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "objects"
PERSON_UUID = "6b0c9c1e-0000-4000-8000-000000000001"
PRODUCT_UUID = "6b0c9c1e-0000-4000-8000-000000000002"


def schema_fields(object_name: str) -> dict[str, dict[str, Any]]:
    data = tomllib.loads((SCHEMA / f"{object_name}.toml").read_text())
    return {field["name"]: field for field in data["fields"]}


def money(amount: str, currency: str | None = "usd") -> Money:
    return Money(amount=Decimal(amount), currency=currency)


def membership(**changes: Any) -> Membership:
    return Membership.model_validate(load(MEMBERSHIP_NATIVE_JSON) | changes)


def member(**changes: Any) -> Member:
    return Member.model_validate(load(MEMBER_NATIVE_JSON) | changes)


def payment(**changes: Any) -> Payment:
    return Payment.model_validate(load(PAYMENT_NATIVE_JSON) | changes)


# Money -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        pytest.param("49.00", "usd", {"amountMicros": 49_000_000, "currencyCode": "USD"}, id="whole"),
        pytest.param("0.29", "usd", {"amountMicros": 290_000, "currencyCode": "USD"}, id="float-trap-0.29"),
        pytest.param("19.99", "eur", {"amountMicros": 19_990_000, "currencyCode": "EUR"}, id="upper-currency"),
        pytest.param("0.0000005", "usd", {"amountMicros": 0, "currencyCode": "USD"}, id="half-even-down"),
        pytest.param("0.0000015", "usd", {"amountMicros": 2, "currencyCode": "USD"}, id="half-even-up"),
        pytest.param("0.0000025", "usd", {"amountMicros": 2, "currencyCode": "USD"}, id="half-even-to-even"),
        pytest.param("-12.5", "usd", {"amountMicros": -12_500_000, "currencyCode": "USD"}, id="negative"),
        pytest.param(
            "9223372036854.775807",
            "cop",
            {"amountMicros": 9_223_372_036_854_775_807, "currencyCode": "COP"},
            id="largest-twenty-holds-exact",
        ),
        pytest.param(
            "-9223372036854.775807",
            "cop",
            {"amountMicros": -9_223_372_036_854_775_807, "currencyCode": "COP"},
            id="most-negative-twenty-holds-exact",
        ),
        pytest.param("5", None, {"amountMicros": 5_000_000, "currencyCode": None}, id="unknown-currency"),
    ],
)
def test_money_to_currency(amount: str, currency: str | None, expected: dict[str, Any]) -> None:
    result = money_to_currency(money(amount, currency))
    assert result == expected
    assert result is not None and isinstance(result["amountMicros"], int)


@pytest.mark.parametrize("amount", ["98765432109876.123456", "9223372036854.775808", "-1E+20", "1E+400"])
def test_money_beyond_a_64_bit_amount_micros_is_refused_with_the_reason(amount: str) -> None:
    # Twenty's CURRENCY amountMicros is a 64-bit integer: such money cannot be written at all.
    with pytest.raises(ValueError, match="beyond what Twenty can hold"):
        money(amount, "usd")


def test_money_none() -> None:
    assert money_to_currency(None) is None


six_places = st.decimals(
    min_value=Decimal("-1000000000000"),
    max_value=Decimal("1000000000000"),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)


@given(six_places)
def test_money_micros_are_exact_and_round_trip(amount: Decimal) -> None:
    parsed = Money.model_validate({"amount": str(amount), "currency": "usd"})
    result = money_to_currency(parsed)
    assert result is not None
    assert result["amountMicros"] == int(amount.scaleb(6))
    assert Decimal(result["amountMicros"]).scaleb(-6) == amount  # back to the same amount


@given(
    st.decimals(
        min_value=Decimal("-99999999"), max_value=Decimal("99999999"), places=6, allow_nan=False, allow_infinity=False
    )
)
def test_legacy_float_amounts_stay_exact(amount: Decimal) -> None:
    # ≤ 14 significant digits survive float → str → Decimal, so legacy JSON numbers are exact.
    parsed = Money.model_validate({"amount": float(amount), "currency": "usd"})
    result = money_to_currency(parsed)
    assert result is not None and result["amountMicros"] == int(amount.scaleb(6))


@given(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, allow_infinity=False))
def test_money_sub_micro_rounding_is_half_even(amount: Decimal) -> None:
    result = money_to_currency(Money(amount=amount, currency="usd"))
    assert result is not None
    assert result["amountMicros"] == int(amount.scaleb(6).quantize(Decimal(1), rounding="ROUND_HALF_EVEN"))


# Select values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("past_due", "PAST_DUE", id="snake"),
        pytest.param("active", "ACTIVE", id="word"),
        pytest.param("PAST_DUE", "PAST_DUE", id="already-upper"),
        pytest.param("foo-bar baz", "FOO_BAR_BAZ", id="punctuation-and-space"),
        pytest.param("  trialing ", "TRIALING", id="padded"),
        pytest.param("pastDue", "PAST_DUE", id="camel"),
        pytest.param("a--b__c", "A_B_C", id="runs-collapse"),
        pytest.param("__x__", "X", id="edges-trimmed"),
        pytest.param("3ds_required", "V_3DS_REQUIRED", id="digit-first"),
        pytest.param("héllo wörld", "HELLO_WORLD", id="accents-folded"),
        pytest.param("!!!", None, id="nothing-left"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
    ],
)
def test_status_value(raw: str | None, expected: str | None) -> None:
    assert status_value(raw) == expected


def test_status_value_is_capped_at_63() -> None:
    value = status_value("x" * 62 + "_y" * 10)
    assert value is not None and len(value) <= 63 and SELECT_RE.match(value)


@given(st.text(max_size=200))
def test_status_value_is_always_a_valid_option(raw: str) -> None:
    value = status_value(raw)
    if value is not None:
        assert SELECT_RE.match(value), value
        assert len(value) <= 63
        assert status_value(value) == value  # idempotent


# Every Whop enum value documented today lands on a declared option (research §2.3).
@pytest.mark.parametrize(
    ("object_name", "field", "whop_values"),
    [
        pytest.param(
            "opportunity",
            "whopMembershipStatus",
            "trialing active past_due completed canceled expired unresolved drafted canceling",
            id="membership-status",
        ),
        pytest.param("person", "whopMemberStatus", "joined left drafted", id="member-status"),
        pytest.param("whopProduct", "visibility", "visible hidden archived quick_link", id="visibility"),
    ],
)
def test_known_whop_values_match_schema_options(object_name: str, field: str, whop_values: str) -> None:
    options = {option["value"] for option in schema_fields(object_name)[field]["options"]}
    assert {status_value(v) for v in whop_values.split()} <= options


# Products ----------------------------------------------------------------------------------------------

PRODUCT_RECORD = {
    "whopProductId": "prod_4GhJk2LmPq9Rs",
    "name": "Pro Signals",
    "description": "Members-only signals room and weekly live sessions.",
    "headline": "Daily trade ideas with entries and exits",
    "visibility": "VISIBLE",
    "memberCount": 412,
    "whopCreatedAt": "2025-03-02T09:15:00.000Z",
    "whopUpdatedAt": "2026-09-28T18:40:12.000Z",
    "url": {
        "primaryLinkUrl": "https://whop.com/pro-signals/",
        "primaryLinkLabel": "Pro Signals",
        "secondaryLinks": [],
    },
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(load(PRODUCT_NATIVE_JSON), PRODUCT_RECORD, id="native"),
        pytest.param(load(PRODUCT_LEGACY_JSON), PRODUCT_RECORD, id="legacy"),
        pytest.param(
            {"id": "prod_x", "title": "  ", "visibility": "members_only", "route": None},
            {
                "whopProductId": "prod_x",
                "name": "prod_x",
                "description": None,
                "headline": None,
                "visibility": "MEMBERS_ONLY",
                "memberCount": None,
                "whopCreatedAt": None,
                "whopUpdatedAt": None,
            },
            id="sparse-no-route-unknown-visibility",
        ),
    ],
)
def test_product_record(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    assert product_record(Product.model_validate(raw)) == expected


# People ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        pytest.param("Jane Doe", "Jane", "Doe", id="two-words"),
        pytest.param("Jean Claude Van Damme", "Jean Claude Van", "Damme", id="many-words"),
        pytest.param("Madonna", "Madonna", "", id="one-word"),
        pytest.param("  Jane \t  Doe \n", "Jane", "Doe", id="whitespace"),
        pytest.param("", "", "", id="empty"),
        pytest.param(None, "", "", id="none"),
    ],
)
def test_split_name(text: str | None, first: str, last: str) -> None:
    assert split_name(text) == {"firstName": first, "lastName": last}


@given(st.one_of(st.none(), st.text()))
def test_split_name_never_fails_and_keeps_every_word(text: str | None) -> None:
    name = split_name(text)
    assert isinstance(name["firstName"], str) and isinstance(name["lastName"], str)
    assert name["firstName"].split() + name["lastName"].split() == (text or "").split()
    assert " " not in name["lastName"]


@given(st.text())
def test_split_name_whole_keeps_business_names_together(text: str) -> None:
    name = split_name(text, whole=True)
    assert name == {"firstName": " ".join(text.split()), "lastName": ""}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        pytest.param({}, "user_w3RtYp7KsD2mN", id="user"),
        pytest.param({"user": None}, "mber_Zx81QwLk5Tn0B", id="business-buyer"),
    ],
)
def test_person_key(changes: dict[str, Any], key: str) -> None:
    assert person_key(member(**changes)) == key


PERSON_CREATE = {
    "whopUserId": "user_w3RtYp7KsD2mN",
    "whopMemberId": "mber_Zx81QwLk5Tn0B",
    "whopUsername": "jdoe42",
    "whopJoinedAt": "2026-09-01T14:03:11.000Z",
    "whopTotalSpent": {"amountMicros": 98_000_000, "currencyCode": "USD"},
    "whopMemberStatus": "JOINED",
    "name": {"firstName": "Jane", "lastName": "Doe"},
    "emails": {"primaryEmail": "jane.doe@example.com", "additionalEmails": []},
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(load(MEMBER_NATIVE_JSON), PERSON_CREATE, id="native"),
        pytest.param(load(MEMBER_LEGACY_JSON), PERSON_CREATE, id="legacy"),
        pytest.param(
            load(MEMBER_NATIVE_JSON)
            | {"user": None, "display_name": "Acme Trading LLC", "email": None, "phone_number": "+1 (555) 010-2000"},
            {
                **PERSON_CREATE,
                "whopUserId": "mber_Zx81QwLk5Tn0B",
                "whopUsername": None,
                "name": {"firstName": "Acme Trading LLC", "lastName": ""},
                "emails": None,
                "phones": {"primaryPhoneNumber": "+15550102000"},
            },
            id="business-buyer-with-phone",
        ),
        pytest.param(
            load(MEMBER_NATIVE_JSON)
            | {"user": {"id": "user_2", "username": "solo", "name": None}, "display_name": None, "email": " Jo@X.COM "},
            {
                **PERSON_CREATE,
                "whopUserId": "user_2",
                "whopUsername": "solo",
                "name": {"firstName": "solo", "lastName": ""},
                "emails": {"primaryEmail": "jo@x.com", "additionalEmails": []},
            },
            id="username-fallback-email-normalized",
        ),
        pytest.param(
            {"id": "mber_9", "user": None, "status": "rejoined_somehow"},
            {
                "whopUserId": "mber_9",
                "whopMemberId": "mber_9",
                "whopUsername": None,
                "whopJoinedAt": None,
                "whopTotalSpent": None,
                "whopMemberStatus": "REJOINED_SOMEHOW",
            },
            id="bare-minimum",
        ),
    ],
)
def test_person_record_on_create(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    record = person_record(Member.model_validate(raw), current=None, last_written=None)
    assert record == {k: v for k, v in expected.items() if v is not None or k.startswith("whop")}


# The curated rule ----------------------------------------------------------------------------------------

JANE = {"firstName": "Jane", "lastName": "Doe"}
JANE_WRITTEN_BEFORE = {"firstName": "Jane", "lastName": "Smith"}
EDITED = {"firstName": "Janet", "lastName": "Doe-Smith"}


@pytest.mark.parametrize(
    ("new", "current", "last_written", "write"),
    [
        pytest.param(JANE, None, None, True, id="no-current-value"),
        pytest.param(JANE, {"firstName": "", "lastName": ""}, None, True, id="current-empty-composite"),
        pytest.param(JANE, "", None, True, id="current-empty-string"),
        pytest.param(JANE, JANE_WRITTEN_BEFORE, JANE_WRITTEN_BEFORE, True, id="unchanged-since-bridge-wrote"),
        pytest.param(JANE, EDITED, JANE_WRITTEN_BEFORE, False, id="person-edited"),
        pytest.param(JANE, EDITED, None, False, id="someone-elses-value"),
        pytest.param(JANE, JANE, EDITED, True, id="already-equal-is-a-no-op"),
        pytest.param(None, EDITED, EDITED, False, id="never-blank-a-field"),
        pytest.param({"firstName": "", "lastName": ""}, None, None, False, id="empty-new-not-written"),
        pytest.param(
            {"primaryEmail": "new@x.com", "additionalEmails": []},
            {"primaryEmail": "old@x.com", "additionalEmails": None},
            {"primaryEmail": "old@x.com", "additionalEmails": []},
            True,
            id="null-vs-empty-list-is-the-same",
        ),
        pytest.param(
            {"primaryEmail": "new@x.com", "additionalEmails": []},
            {"primaryEmail": "old@x.com", "additionalEmails": ["work@x.com"]},
            {"primaryEmail": "old@x.com", "additionalEmails": []},
            False,
            id="person-added-an-email",
        ),
        pytest.param(
            {"primaryPhoneNumber": "+1555"},
            {"primaryPhoneNumber": "+1444", "primaryPhoneCountryCode": "", "additionalPhones": None},
            {"primaryPhoneNumber": "+1444"},
            True,
            id="twenty-extra-empty-subfields",
        ),
    ],
)
def test_curated(new: Any, current: Any, last_written: Any, write: bool) -> None:
    assert curated(new, current, last_written) is write


def test_person_record_keeps_a_person_edit_and_updates_the_rest() -> None:
    m = member(display_name="Jane Doe", email="jane.new@example.com")
    last = person_record(member(email="jane.doe@example.com"), current=None, last_written=None)
    current = dict(last) | {"name": {"firstName": "Janie", "lastName": "D."}}  # edited in Twenty
    record = person_record(m, current=current, last_written=last)
    assert "name" not in record
    assert record["emails"] == {"primaryEmail": "jane.new@example.com", "additionalEmails": []}
    assert record["whopUserId"] == "user_w3RtYp7KsD2mN"  # bridge fields always


def test_person_record_fills_an_existing_person_only_where_empty() -> None:
    # Matched by email, never written by the bridge: only empty fields are filled.
    current = {"name": {"firstName": "J.", "lastName": "Doe"}, "emails": {"primaryEmail": "jane.doe@example.com"}}
    record = person_record(member(phone_number="+447700900123"), current=current, last_written=None)
    assert "name" not in record
    assert record["emails"]["primaryEmail"] == "jane.doe@example.com"  # equal: harmless
    assert record["phones"] == {"primaryPhoneNumber": "+447700900123"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({}, "Jane Doe", id="user-name"),
        pytest.param({"user": {"id": "u", "username": "jd", "name": " "}, "display_name": None}, "jd", id="username"),
        pytest.param({"user": None, "display_name": "Acme"}, "Acme", id="business"),
        pytest.param({"user": None, "display_name": None}, "mber_Zx81QwLk5Tn0B", id="nothing"),
    ],
)
def test_member_display_name(changes: dict[str, Any], expected: str) -> None:
    assert member_display_name(member(**changes)) == expected


# Opportunities -------------------------------------------------------------------------------------------

OPPORTUNITY_CREATE = {
    "whopMembershipId": "mem_8kQmZt3VbN1xLp",
    "whopMembershipStatus": "ACTIVE",
    "whopPlanId": "plan_7TyUi1OpAs3Df",
    "whopRenewalDate": "2026-10-31T14:03:11.000Z",
    "whopCancelAtPeriodEnd": False,
    "whopCanceledAt": None,
    "whopCancelReason": None,
    "whopCreatedAt": "2026-09-01T14:03:11.000Z",
    "whopUpdatedAt": "2026-10-01T14:03:15.412Z",
    "pointOfContactId": PERSON_UUID,
    "whopProductId": PRODUCT_UUID,
    "name": "Jane Doe \u2013 Pro Signals",
    "amount": {"amountMicros": 49_000_000, "currencyCode": "USD"},
    "stage": "CUSTOMER",
    # plan and revenue (the sample membership: $49 every 30 days, renewing)
    "whopPlanTitle": None,
    "whopPlanType": "RENEWAL",
    "whopBillingPeriodDays": 30,
    "whopTrialDays": None,
    "whopInitialPrice": {"amountMicros": 0, "currencyCode": "USD"},
    "whopRenewalPrice": {"amountMicros": 49_000_000, "currencyCode": "USD"},
    "whopMrr": {"amountMicros": 49_000_000, "currencyCode": "USD"},
    "whopMostRecentAction": "RENEWING_ON",
    "whopMostRecentActionAt": "2026-10-31T14:03:11.000Z",
    "whopExpiresAt": None,
    "whopManageUrl": None,
    "whopPromoCode": None,
}
NO_PRICES = {"whopPlanType": None, "whopInitialPrice": None, "whopRenewalPrice": None}


def opportunity(ms: Membership, **kwargs: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "person_name": "Jane Doe",
        "product_title": "Pro Signals",
        "person_id": PERSON_UUID,
        "product_id": PRODUCT_UUID,
        "current": None,
        "last_written": None,
    } | kwargs
    return opportunity_record(ms, **arguments)


@pytest.mark.parametrize(
    ("raw", "kwargs", "expected"),
    [
        pytest.param(load(MEMBERSHIP_NATIVE_JSON), {}, OPPORTUNITY_CREATE, id="native"),
        pytest.param(
            load(MEMBERSHIP_LEGACY_JSON),
            {},
            # legacy payloads do not say the next action; the period comes from renewal_period_*
            OPPORTUNITY_CREATE | {"whopMostRecentAction": None, "whopMostRecentActionAt": None},
            id="legacy-same-membership",
        ),
        pytest.param(
            load(WEBHOOK_LEGACY_JSON)["data"],
            {"person_name": None, "product_title": None, "person_id": None, "product_id": None},
            {
                **OPPORTUNITY_CREATE,
                "whopMembershipStatus": "CANCELED",
                "whopCancelAtPeriodEnd": True,
                "whopCanceledAt": "2026-10-12T09:00:00.000Z",
                "whopCancelReason": "too_expensive",
                "whopUpdatedAt": "2026-10-31T14:03:12.000Z",
                "pointOfContactId": None,
                "whopProductId": None,
                "name": "Jane Doe \u2013 Pro Signals",  # from the legacy nested user and product
                "amount": None,
                "stage": "CHURNED",  # an ended membership leaves the first column
                **NO_PRICES,
                "whopBillingPeriodDays": 30,  # the span of its renewal period
                "whopMrr": {"amountMicros": 0, "currencyCode": "USD"},
                "whopMostRecentAction": None,
                "whopMostRecentActionAt": None,
            },
            id="legacy-webhook-canceled-no-join-columns",
        ),
        pytest.param(
            load(MEMBERSHIP_NATIVE_JSON) | {"product": None, "status": "trialing"},
            {"person_name": None, "product_title": None},
            {
                **OPPORTUNITY_CREATE,
                "whopMembershipStatus": "TRIALING",
                "stage": "PROPOSAL",
                "whopMrr": {"amountMicros": 0, "currencyCode": "USD"},  # a trial pays nothing yet
                "name": "user_w3RtYp7KsD2mN \u2013 prod_4GhJk2LmPq9Rs",
            },
            id="names-fall-back-to-ids",
        ),
        pytest.param(
            load(MEMBERSHIP_NATIVE_JSON)
            | {
                "cancel_option": "other",
                "cancellation_reason": "moving to a cheaper tool",
                "renewal_price": {"amount": "0.00", "currency": "usd"},
                "initial_price": {"amount": "299.00", "currency": "usd"},
                "status": "completed",
            },
            {},
            {
                **OPPORTUNITY_CREATE,
                "whopMembershipStatus": "COMPLETED",
                "whopCancelReason": "other: moving to a cheaper tool",
                "amount": {"amountMicros": 299_000_000, "currencyCode": "USD"},
                "whopPlanType": "ONE_TIME",
                "whopBillingPeriodDays": None,
                "whopInitialPrice": {"amountMicros": 299_000_000, "currencyCode": "USD"},
                "whopRenewalPrice": {"amountMicros": 0, "currencyCode": "USD"},
                "whopMrr": {"amountMicros": 0, "currencyCode": "USD"},
            },
            id="one-time-price-and-both-reasons",
        ),
    ],
)
def test_opportunity_record_on_create(raw: dict[str, Any], kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    record = opportunity(Membership.model_validate(raw), **kwargs)
    omitted = {"pointOfContactId", "whopProductId", "amount"}
    assert record == {k: v for k, v in expected.items() if not (k in omitted and v is None)}


def test_opportunity_join_column_is_the_twenty_uuid_not_the_whop_id() -> None:
    record = opportunity(membership())
    assert record["whopProductId"] == PRODUCT_UUID
    assert not record["whopProductId"].startswith("prod_")


def test_opportunity_curated_fields_respect_edits() -> None:
    ms = membership(renewal_price={"amount": "59.00", "currency": "usd"})
    last = opportunity(membership())
    current = dict(last) | {"name": "Jane – Enterprise deal"}  # renamed by sales
    record = opportunity(ms, current=current, last_written=last)
    assert "name" not in record
    assert record["amount"] == {"amountMicros": 59_000_000, "currencyCode": "USD"}  # untouched: updated


# Stage policy --------------------------------------------------------------------------------------------

CREATE = object()  # marks "no current record"


@pytest.mark.parametrize(
    ("status", "current_stage", "last_stage", "policy", "expected"),
    [
        # On create
        pytest.param("trialing", CREATE, None, "advance", "PROPOSAL", id="create-trialing"),
        pytest.param("active", CREATE, None, "advance", "CUSTOMER", id="create-active"),
        pytest.param("past_due", CREATE, None, "advance", "CUSTOMER", id="create-past-due"),
        pytest.param("canceled", CREATE, None, "advance", "CHURNED", id="create-canceled-is-churned"),
        pytest.param("expired", CREATE, None, "advance", "CHURNED", id="create-expired-is-churned"),
        pytest.param("something_new", CREATE, None, "advance", "NEW", id="create-unknown-status"),
        pytest.param("active", CREATE, None, "create-only", "CUSTOMER", id="create-only-on-create"),
        pytest.param("active", CREATE, None, "off", None, id="off-on-create"),
        # Advancing
        pytest.param("active", "PROPOSAL", "PROPOSAL", "advance", "CUSTOMER", id="trial-converts"),
        pytest.param("trialing", "NEW", "NEW", "advance", "PROPOSAL", id="new-to-proposal"),
        pytest.param("active", "NO_STAGE", "NO_STAGE", "advance", "CUSTOMER", id="no-stage-counts-as-new"),
        # Never backwards, never the same, never without a target
        pytest.param("trialing", "CUSTOMER", "CUSTOMER", "advance", None, id="never-backwards"),
        pytest.param("active", "CUSTOMER", "CUSTOMER", "advance", None, id="already-there"),
        pytest.param("canceled", "CUSTOMER", "CUSTOMER", "advance", "CHURNED", id="churn-leaves-customer"),
        pytest.param("active", "CHURNED", "CHURNED", "advance", "CUSTOMER", id="a-churned-membership-comes-back"),
        pytest.param("active", "CHURNED", "CUSTOMER", "advance", None, id="a-person-churned-it-by-hand"),
        # A person's stage is theirs
        pytest.param("active", "MEETING", "PROPOSAL", "advance", None, id="person-moved-it"),
        pytest.param("active", "SCREENING", "CUSTOMER", "advance", None, id="person-moved-it-back"),
        pytest.param("active", "NEW", None, "advance", None, id="bridge-never-wrote-a-stage"),
        pytest.param("active", "WON", "WON", "advance", None, id="unknown-custom-stage"),
        pytest.param("active", None, "PROPOSAL", "advance", None, id="stage-not-read"),
        # Other policies on update
        pytest.param("active", "PROPOSAL", "PROPOSAL", "create-only", None, id="create-only-never-updates"),
        pytest.param("active", "PROPOSAL", "PROPOSAL", "off", None, id="off-never-updates"),
    ],
)
def test_stage_policy(
    status: str, current_stage: Any, last_stage: str | None, policy: str, expected: str | None
) -> None:
    current = None if current_stage is CREATE else {"stage": current_stage}
    last = None if last_stage is None else {"stage": last_stage}
    assert opportunity_stage(status, current=current, last_written=last, policy=policy) == expected
    record = opportunity(membership(status=status), current=current, last_written=last, stage_policy=policy)
    assert record.get("stage") == expected


def test_unknown_stage_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="stage policy"):
        opportunity_stage("active", current=None, last_written=None, policy="sometimes")


def test_stage_moves_forward_over_a_lifecycle_and_leaves_churned_when_it_comes_back() -> None:
    ranks = mapping.STAGE_ORDER
    current: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    seen: list[str] = []
    for status in ["trialing", "active", "past_due", "trialing", "canceled", "expired", "active"]:
        record = opportunity(membership(status=status), current=current, last_written=last)
        stage = record.get("stage", (current or {}).get("stage"))
        assert stage is not None
        seen.append(stage)
        current = {"stage": stage}
        last = record if "stage" in record else (last or {}) | {"stage": stage}
    assert seen == ["PROPOSAL", "CUSTOMER", "CUSTOMER", "CUSTOMER", "CHURNED", "CHURNED", "CUSTOMER"]
    # Forward only, except that the bridge's own CHURNED gives way when the membership is live again.
    live = seen[:5]
    assert [ranks[s] for s in live] == sorted(ranks[s] for s in live)


# Payments ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "substatus", "expected"),
    [
        pytest.param("paid", "succeeded", "SUCCEEDED", id="paid"),
        pytest.param("paid", None, "SUCCEEDED", id="paid-no-substatus"),
        pytest.param("open", "failed", "FAILED", id="failed"),
        pytest.param("uncollectible", None, "FAILED", id="uncollectible"),
        pytest.param("open", "past_due", "FAILED", id="past-due"),
        pytest.param("paid", "refunded", "REFUNDED", id="refunded"),
        pytest.param("paid", "auto_refunded", "REFUNDED", id="auto-refunded"),
        pytest.param("paid", "partially_refunded", "PARTIALLY_REFUNDED", id="partial"),
        pytest.param("paid", "dispute_needs_response", "DISPUTED", id="dispute"),
        pytest.param("paid", "dispute_won", "DISPUTED", id="dispute-won"),
        pytest.param("paid", "open_dispute", "DISPUTED", id="open-dispute"),
        pytest.param("paid", "resolution_under_review", "DISPUTED", id="resolution"),
        pytest.param("pending", "pending", "PENDING", id="pending"),
        pytest.param("open", "requires_capture", "PENDING", id="requires-capture"),
        pytest.param("open", None, "PENDING", id="open"),
        pytest.param("draft", None, "PENDING", id="draft"),
        pytest.param("void", None, "CANCELED", id="void"),
        pytest.param("open", "canceled", "CANCELED", id="canceled"),
        pytest.param("paid", "brand_new_substatus", "SUCCEEDED", id="unknown-substatus-falls-back-to-status"),
        pytest.param("mystery", "stranger_things", "STRANGER_THINGS", id="unknown-both"),
        pytest.param(None, None, None, id="nothing"),
    ],
)
def test_payment_status(status: str | None, substatus: str | None, expected: str | None) -> None:
    p = payment(status=status, substatus=substatus)
    assert payment_status_value(p) == expected
    assert payment_fields(p)["whopLastPaymentStatus"] == expected
    assert payment_is_failure(p) is (expected == "FAILED")


PAYMENT_FIELDS = {
    "whopLastPaymentAt": "2026-10-01T14:03:14.000Z",
    "whopLastPaymentAmount": {"amountMicros": 49_000_000, "currencyCode": "USD"},
    "whopLastPaymentStatus": "SUCCEEDED",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(load(PAYMENT_NATIVE_JSON), PAYMENT_FIELDS, id="native"),
        pytest.param(load(PAYMENT_LEGACY_JSON), PAYMENT_FIELDS, id="legacy"),
        pytest.param(
            load(PAYMENT_NATIVE_JSON) | {"paid_at": None, "status": "open", "substatus": "failed"},
            PAYMENT_FIELDS | {"whopLastPaymentAt": "2026-10-01T14:03:12.000Z", "whopLastPaymentStatus": "FAILED"},
            id="failed-uses-last-attempt",
        ),
        pytest.param(
            load(PAYMENT_NATIVE_JSON) | {"paid_at": None, "last_payment_attempt_at": None, "total": None},
            PAYMENT_FIELDS | {"whopLastPaymentAt": "2026-10-01T14:03:11.000Z", "whopLastPaymentAmount": None},
            id="falls-back-to-created-at",
        ),
    ],
)
def test_payment_fields(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    assert payment_fields(Payment.model_validate(raw)) == expected


@pytest.mark.parametrize(
    ("changes", "person", "product", "title", "body_has"),
    [
        pytest.param(
            {"status": "open", "substatus": "failed", "failure_message": "Your card was declined."},
            "Jane Doe",
            "Pro Signals",
            "Failed Whop payment: Pro Signals \u2013 Jane Doe",
            ["49.00 USD", "Your card was declined.", "pay_Qw3Er5Ty7Ui9Op", "mem_8kQmZt3VbN1xLp"],
            id="named",
        ),
        pytest.param(
            {"status": "uncollectible", "substatus": None, "failure_message": None, "user": None, "total": None},
            None,
            None,
            "Failed Whop payment: prod_4GhJk2LmPq9Rs \u2013 jane.doe@example.com",
            ["unknown", "Whop gave none"],
            id="fallbacks",
        ),
    ],
)
def test_failed_payment_task(
    changes: dict[str, Any], person: str | None, product: str | None, title: str, body_has: list[str]
) -> None:
    task = failed_payment_task(payment(**changes), person_name=person, product_title=product)
    assert task["title"] == title
    assert task["status"] == "TODO"
    body = task["bodyV2"]["markdown"]
    for text in body_has:
        assert text in body


# Record hashes -------------------------------------------------------------------------------------------


def test_record_hash_is_canonical_and_stable() -> None:
    record = {"c": {"y": [1, 2], "x": None}, "b": "é", "a": 1}
    # sha256 of '{"a":1,"b":"é","c":{"x":null,"y":[1,2]}}' (UTF-8): fixed across runs and machines.
    assert record_hash(record) == "0e37066d0e8b94f87ebabe2f682d3b8c791e76c3f64721597aa0eac3594b6d06"
    assert record_hash(dict(reversed(record.items()))) == record_hash(record)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param({"a": 1}, {"a": 2}, id="value"),
        pytest.param({"a": None}, {}, id="null-vs-missing"),
        pytest.param({"a": [1, 2]}, {"a": [2, 1]}, id="list-order-matters"),
        pytest.param({"a": 1}, {"a": "1"}, id="type"),
    ],
)
def test_record_hash_sees_differences(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert record_hash(a) != record_hash(b)


def test_same_whop_object_same_hash_native_or_legacy() -> None:
    native = product_record(Product.model_validate(load(PRODUCT_NATIVE_JSON)))
    legacy = product_record(Product.model_validate(load(PRODUCT_LEGACY_JSON)))
    assert record_hash(native) == record_hash(legacy)


# The contract with schema/ -------------------------------------------------------------------------------

STANDARD = {
    "whopProduct": {"name"},
    "person": {"name", "emails", "phones"},
    # `whopProductId` on Opportunity is the join column of the `whopProduct` relation.
    "opportunity": {"name", "amount", "stage", "pointOfContactId", "whopProductId"},
}


def _full_records() -> dict[str, list[dict[str, Any]]]:
    m = Member.model_validate(load(MEMBER_NATIVE_JSON) | {"phone_number": "+15550100"})
    ms = membership()
    return {
        "whopProduct": [product_record(Product.model_validate(load(PRODUCT_NATIVE_JSON)))],
        "person": [person_record(m, current=None, last_written=None)],
        "opportunity": [opportunity(ms), payment_fields(payment())],
    }


@pytest.mark.parametrize("object_name", ["whopProduct", "person", "opportunity"])
def test_records_use_only_declared_fields(object_name: str) -> None:
    declared = set(schema_fields(object_name)) | STANDARD[object_name]
    for record in _full_records()[object_name]:
        assert set(record) <= declared, set(record) - declared


@pytest.mark.parametrize(
    ("object_name", "field", "values"),
    [
        pytest.param(
            "opportunity",
            "whopLastPaymentStatus",
            "SUCCEEDED FAILED REFUNDED PARTIALLY_REFUNDED DISPUTED PENDING CANCELED",
            id="payment-status",
        ),
    ],
)
def test_payment_statuses_are_declared_options(object_name: str, field: str, values: str) -> None:
    options = {option["value"] for option in schema_fields(object_name)[field]["options"]}
    assert set(values.split()) <= options


def test_iso_utc_normalizes_offsets() -> None:
    from datetime import timedelta, timezone

    local = datetime(2026, 10, 1, 16, 3, 11, tzinfo=timezone(timedelta(hours=2)))
    assert mapping.iso_utc(local) == "2026-10-01T14:03:11.000Z"
    assert mapping.iso_utc(datetime(2026, 10, 1, 14, 3, 11, 412999)) == "2026-10-01T14:03:11.412Z"
    assert mapping.iso_utc(None) is None
    assert mapping.iso_utc(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"


# Several companies -----------------------------------------------------------------------------------

_T1 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
_T2 = datetime(2024, 7, 9, 8, 30, tzinfo=UTC)


def _fact(company: str, member_id: str, spent: str | None, joined: datetime | None, status: str | None) -> Any:
    money = Money(amount=Decimal(spent), currency="usd") if spent is not None else None
    return mapping.MemberFact(company, member_id, money, joined, status)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        pytest.param(
            [_fact("biz_a", "mber_a", "49.00", _T1, "joined")],
            {
                "whopMemberId": "mber_a",
                "whopJoinedAt": "2025-03-01T12:00:00.000Z",
                "whopTotalSpent": {"amountMicros": 49_000_000, "currencyCode": "USD"},
                "whopMemberStatus": "JOINED",
            },
            id="one-company-is-the-member-itself",
        ),
        pytest.param(
            [_fact("biz_b", "mber_b", "10.50", _T1, "left"), _fact("biz_a", "mber_a", "0.29", _T2, "joined")],
            {
                "whopMemberId": "mber_a, mber_b",
                "whopJoinedAt": "2024-07-09T08:30:00.000Z",
                "whopTotalSpent": {"amountMicros": 10_790_000, "currencyCode": "USD"},
                "whopMemberStatus": "JOINED",
            },
            id="two-companies-sum-earliest-joined-wins",
        ),
        pytest.param(
            [_fact("biz_a", "mber_a", None, None, "left"), _fact("biz_b", "mber_b", None, None, "left")],
            {
                "whopMemberId": "mber_a, mber_b",
                "whopJoinedAt": None,
                "whopTotalSpent": None,
                "whopMemberStatus": "LEFT",
            },
            id="left-everywhere-nothing-spent",
        ),
        pytest.param(
            [_fact("biz_a", "mber_a", None, _T1, "left"), _fact("biz_b", "mber_b", "5", None, None)],
            {
                "whopMemberId": "mber_a, mber_b",
                "whopJoinedAt": "2025-03-01T12:00:00.000Z",
                "whopTotalSpent": {"amountMicros": 5_000_000, "currencyCode": "USD"},
                "whopMemberStatus": "LEFT",
            },
            id="partial-facts",
        ),
    ],
)
def test_a_persons_member_fields_fold_every_company(facts: list[Any], expected: dict[str, Any]) -> None:
    assert mapping.fold_member_facts(facts) == expected
    assert mapping.fold_member_facts(list(reversed(facts))) == expected  # the order of arrival does not matter


def test_a_person_of_one_company_is_mapped_as_before_when_no_facts_are_given() -> None:
    m = member()
    alone = mapping.person_record(m, current=None, last_written=None)
    folded = mapping.person_record(m, current=None, last_written=None, facts=[mapping.member_fact(m, "biz_x")])
    assert alone == folded
    assert alone["whopMemberId"] == m.id


@pytest.mark.parametrize(
    ("company", "expected"),
    [
        (None, {}),
        (mapping.CompanyRef("biz_a", "Acme  Trading"), {"whopCompanyId": "biz_a", "whopCompanyName": "Acme Trading"}),
        (mapping.CompanyRef("biz_a", None), {"whopCompanyId": "biz_a", "whopCompanyName": "biz_a"}),
        (mapping.CompanyRef("biz_a", "  "), {"whopCompanyId": "biz_a", "whopCompanyName": "biz_a"}),
    ],
)
def test_products_and_memberships_say_which_company_they_are_of(
    company: mapping.CompanyRef | None, expected: dict[str, Any]
) -> None:
    assert mapping.company_fields(company) == expected
    record = mapping.product_record(Product.model_validate(load(PRODUCT_NATIVE_JSON)), company)
    assert {k: record[k] for k in expected} == expected
    assert ("whopCompanyId" in record) == (company is not None)


# Plans and revenue (issue 11) --------------------------------------------------------------------------


def plan(**changes: Any) -> Plan:
    return Plan.model_validate(
        {"id": "plan_x", "title": "Pro monthly", "plan_type": "renewal", "billing_period": 30, "currency": "usd"}
        | changes
    )


def usd(amount: str) -> dict[str, int | str]:
    return {"amountMicros": int(Decimal(amount) * 1_000_000), "currencyCode": "USD"}


@pytest.mark.parametrize(
    ("ms_changes", "plan_changes", "expected"),
    [
        pytest.param(
            {"billing_period_days": None},
            {"renewal_price": 49.0, "initial_price": 0},
            {"whopPlanType": "RENEWAL", "whopBillingPeriodDays": 30, "whopMrr": usd("49"), "amount": usd("49")},
            id="monthly",
        ),
        pytest.param(
            {"billing_period_days": None, "renewal_price": None},
            {"billing_period": 365, "renewal_price": 490.0, "title": "Pro yearly"},
            {"whopPlanType": "RENEWAL", "whopBillingPeriodDays": 365, "whopMrr": usd("40.27"), "amount": usd("490")},
            id="yearly-normalised-per-30-days",
        ),
        pytest.param(
            {
                "billing_period_days": None,
                "renewal_price": {"amount": "0", "currency": "usd"},
                "initial_price": {"amount": "299", "currency": "usd"},
                "status": "completed",
            },
            {"plan_type": "one_time", "billing_period": None, "initial_price": 299.0, "renewal_price": 0},
            {"whopPlanType": "ONE_TIME", "whopBillingPeriodDays": None, "whopMrr": usd("0"), "amount": usd("299")},
            id="one-time",
        ),
        pytest.param(
            {"renewal_price": {"amount": "0", "currency": "usd"}, "initial_price": {"amount": "0", "currency": "usd"}},
            {"renewal_price": 0, "initial_price": 0, "plan_type": "renewal"},
            {"whopPlanType": "RENEWAL", "whopMrr": usd("0"), "amount": usd("0")},
            id="free",
        ),
        pytest.param(
            {"status": "trialing", "most_recent_action": "trial_ends_at"},
            {"trial_period_days": 7, "renewal_price": 49.0},
            {"whopTrialDays": 7, "whopMrr": usd("0"), "whopMostRecentAction": "TRIAL_ENDS_AT", "amount": usd("49")},
            id="trial-pays-nothing-yet",
        ),
        pytest.param(
            {"status": "canceling"},
            {},
            {"whopMrr": usd("49")},
            id="canceling-still-pays-this-period",
        ),
        pytest.param(
            {"status": "expired"},
            {},
            {"whopMrr": usd("0")},
            id="ended-pays-nothing",
        ),
        pytest.param(
            {"manage_url": "https://whop.com/orders/mem_x/manage", "promo_code_id": "promo_abc"},
            {},
            {
                "whopManageUrl": {
                    "primaryLinkUrl": "https://whop.com/orders/mem_x/manage",
                    "primaryLinkLabel": "Manage on Whop",
                    "secondaryLinks": [],
                },
                "whopPromoCode": "promo_abc",
                "whopPlanTitle": "Pro monthly",
            },
            id="manage-url-and-promo",
        ),
        pytest.param({"manage_url": "javascript:alert(1)"}, {}, {"whopManageUrl": None}, id="only-https-links"),
    ],
)
def test_plan_pricing_and_monthly_recurring_revenue(
    ms_changes: dict[str, Any], plan_changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    record = opportunity(membership(**ms_changes), plan=plan(**plan_changes))
    assert {k: record.get(k) for k in expected} == expected


PAYMENT_CASES = [
    # (status, substatus, refunded, outcome, net)
    pytest.param("paid", "succeeded", None, "SUCCEEDED", "49.00", id="succeeded"),
    pytest.param("open", "failed", None, "FAILED", "0", id="failed"),
    pytest.param("paid", "refunded", "49.00", "REFUNDED", "0", id="refunded"),
    pytest.param("paid", "partially_refunded", "9.00", "PARTIALLY_REFUNDED", "40.00", id="partially-refunded"),
    pytest.param("paid", "dispute_needs_response", None, "DISPUTED", "0", id="disputed"),
    pytest.param("paid", "open_resolution", None, "DISPUTED", "0", id="resolution-open"),
    pytest.param("paid", "dispute_won", None, "DISPUTE_WON", "49.00", id="dispute-won"),
    pytest.param("paid", "resolution_won", None, "DISPUTE_WON", "49.00", id="resolution-won"),
    pytest.param("paid", "dispute_lost", None, "DISPUTE_LOST", "0", id="dispute-lost"),
    pytest.param("void", "canceled", None, "CANCELED", "0", id="canceled"),
    pytest.param("pending", "pending", None, "PENDING", "0", id="pending"),
]


@pytest.mark.parametrize(("status", "substatus", "refunded", "outcome", "net"), PAYMENT_CASES)
def test_every_payment_outcome_and_what_the_seller_keeps(
    status: str, substatus: str, refunded: str | None, outcome: str, net: str
) -> None:
    changes: dict[str, Any] = {"status": status, "substatus": substatus}
    if refunded is not None:
        changes["refunded_amount"] = {"amount": refunded, "currency": "usd"}
    p = payment(**changes, total={"amount": "49.00", "currency": "usd"})
    record = mapping.payment_record(p, person_id="person-uuid", opportunity_id="opp-uuid")
    assert mapping.payment_outcome(p) == outcome
    assert record["paymentStatus"] == outcome
    assert record["netAmount"] == usd(net)
    assert (record["personId"], record["opportunityId"]) == ("person-uuid", "opp-uuid")


def test_a_failed_payment_record_carries_the_decline_reason_and_next_retry() -> None:
    p = payment(
        status="open",
        substatus="failed",
        failure_message="Your card was declined.",
        next_payment_attempt_at="2026-12-08T10:00:00Z",
        billing_reason="subscription_cycle",
    )
    record = mapping.payment_record(p, person_id=None, opportunity_id=None)
    assert record["declineReason"] == "Your card was declined."
    assert record["nextRetryAt"] == "2026-12-08T10:00:00.000Z"
    assert record["billingReason"] == "SUBSCRIPTION_CYCLE"
    assert "personId" not in record and "opportunityId" not in record  # unknown links are left alone
    succeeded = mapping.payment_record(
        payment(status="paid", substatus="succeeded"), person_id=None, opportunity_id=None
    )
    assert succeeded["declineReason"] is None and succeeded["nextRetryAt"] is None


@pytest.mark.parametrize(
    ("changes", "product_title", "expected"),
    [
        pytest.param(
            {"status": "paid", "substatus": "succeeded", "paid_at": "2026-08-31T12:00:00Z"},
            "Signals Pro",
            "2026-08-31 · $49.00 · Succeeded · Signals Pro",
            id="paid",
        ),
        pytest.param(
            {
                "status": "open",
                "substatus": "failed",
                "paid_at": None,
                "last_payment_attempt_at": "2026-09-30T08:00:00Z",
            },
            "Signals Pro",
            "2026-09-30 · $49.00 · Failed · Signals Pro",
            id="failed-on-its-attempt-date",
        ),
        pytest.param(
            {"substatus": "dispute_lost", "total": {"amount": "1200", "currency": "eur"}},
            "Course Vault",
            None,
            id="euros-and-a-dispute",
        ),
    ],
)
def test_a_payment_is_named_by_date_amount_outcome_and_product_name(
    changes: dict[str, Any], product_title: str, expected: str | None
) -> None:
    p = payment(**({"total": {"amount": "49.00", "currency": "usd"}} | changes))
    name = mapping.payment_record(p, person_id=None, opportunity_id=None, product_title=product_title)["name"]
    if expected is not None:
        assert name == expected
    else:
        assert name.split(" · ")[1:] == ["€1,200.00", "Dispute lost", "Course Vault"]
    assert "prod_" not in name, "the product's name, never its id"


# Revenue on the Person (issue 11) ------------------------------------------------------------------------


def _pay(amount: str | None, when: datetime | None, currency: str = "usd") -> mapping.PaymentFact:
    return mapping.PaymentFact(Money(amount=Decimal(amount), currency=currency) if amount else None, when)


_D1, _D2, _D3 = (datetime(2026, m, 1, tzinfo=UTC) for m in (3, 6, 9))


@pytest.mark.parametrize(
    ("payments", "memberships", "expected"),
    [
        pytest.param(
            [_pay("49", _D1), _pay("49", _D2), _pay("0", None)],  # the last: refunded in full
            [mapping.MembershipFact(True, None), mapping.MembershipFact(False, _D2)],
            {
                "whopLifetimeValue": usd("98"),
                "whopFirstPurchaseAt": "2026-03-01T00:00:00.000Z",
                "whopLastPurchaseAt": "2026-06-01T00:00:00.000Z",
                "whopActiveMemberships": 1,
                "whopChurnedAt": None,
            },
            id="two-memberships-and-a-refund",
        ),
        pytest.param(
            [_pay("40", _D1)],  # a partial refund: the net is what is left
            [mapping.MembershipFact(False, _D2), mapping.MembershipFact(False, _D3)],
            {
                "whopLifetimeValue": usd("40"),
                "whopFirstPurchaseAt": "2026-03-01T00:00:00.000Z",
                "whopLastPurchaseAt": "2026-03-01T00:00:00.000Z",
                "whopActiveMemberships": 0,
                "whopChurnedAt": "2026-09-01T00:00:00.000Z",
            },
            id="churned-when-the-last-one-ended",
        ),
        pytest.param(
            [],
            [mapping.MembershipFact(True, None)],
            {
                "whopLifetimeValue": usd("0"),
                "whopFirstPurchaseAt": None,
                "whopLastPurchaseAt": None,
                "whopActiveMemberships": 1,
                "whopChurnedAt": None,
            },
            id="free-member",
        ),
        pytest.param(
            [_pay("10", _D1, "eur"), _pay("20", _D2), _pay("30", _D3)],
            [],
            {
                "whopLifetimeValue": usd("50"),
                "whopFirstPurchaseAt": "2026-03-01T00:00:00.000Z",
                "whopLastPurchaseAt": "2026-09-01T00:00:00.000Z",
                "whopActiveMemberships": 0,
                "whopChurnedAt": None,
            },
            id="in-the-main-currency",
        ),
    ],
)
def test_a_persons_revenue_across_memberships_and_companies(
    payments: list[mapping.PaymentFact], memberships: list[mapping.MembershipFact], expected: dict[str, Any]
) -> None:
    assert mapping.person_revenue(payments, memberships) == expected


@pytest.mark.parametrize(
    ("payments", "expected"),
    [
        pytest.param([], Money(amount=Decimal(0), currency="usd"), id="nothing-paid-is-zero-dollars"),
        pytest.param(
            [_pay("10", _D1, "usd"), _pay("20", _D2, "eur"), _pay("5", _D3, "eur")],
            Money(amount=Decimal(25), currency="eur"),
            id="most-payments-decide-the-currency",
        ),
        pytest.param(
            [_pay("10", _D1, "usd"), _pay("20", _D2, "eur")],
            Money(amount=Decimal(20), currency="eur"),
            id="a-tie-goes-to-the-first-currency-by-name",
        ),
    ],
)
def test_lifetime_value_counts_only_the_main_currency(payments: list[mapping.PaymentFact], expected: Money) -> None:
    assert mapping._lifetime_value(payments) == expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param(["left", "joined"], "JOINED", id="joined-anywhere-wins"),
        pytest.param([None, "left", "drafted"], "LEFT", id="else-the-first-company-with-a-status"),
        pytest.param([None, "  "], None, id="no-status-anywhere"),
    ],
)
def test_member_status_is_joined_while_any_company_says_so(statuses: list[str | None], expected: str | None) -> None:
    facts = [_fact(f"biz_{i}", f"mber_{i}", None, None, status) for i, status in enumerate(statuses)]
    assert mapping._member_status(facts) == expected


def test_a_payments_fact_counts_only_what_the_seller_kept() -> None:
    refunded = payment(status="paid", substatus="refunded", refunded_amount={"amount": "49.00", "currency": "usd"})
    assert mapping.payment_fact(refunded).paid_at is None
    paid = payment(status="paid", substatus="succeeded", total={"amount": "49.00", "currency": "usd"})
    fact = mapping.payment_fact(paid)
    assert fact.net == Money(amount=Decimal("49.00"), currency="usd") and fact.paid_at is not None
