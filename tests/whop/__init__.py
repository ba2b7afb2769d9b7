"""Whop fixtures shared by the Whop and mapping tests.

The JSON texts are copied verbatim from /work/shared/research/whop-api.md §7 (validated there
against the whop-sdk 2.6.0 models). The legacy variants below them are written for these tests
from the legacy shapes of §2.4 and describe the same membership/product/payment/member, so the
native and legacy parses can be compared value for value.
"""

# ruff: noqa: E501  (the fixture JSON is kept verbatim, long lines and all)
from __future__ import annotations

import copy
import json
from typing import Any

from fakes.whop import fixtures

MEMBERSHIP_NATIVE_JSON = json.dumps(fixtures.load("membership_native"))

PRODUCT_NATIVE_JSON = json.dumps(fixtures.load("product_native"))

PAYMENT_NATIVE_JSON = json.dumps(fixtures.load("payment_native"))

WEBHOOK_LEGACY_JSON = """\
{"id":"msg_xxxxxxxxxxxxxxxxxxxxxxxx","api_version":"v1","timestamp":"2025-01-01T00:00:00.000Z","type":"membership.deactivated","company_id":"biz_Hq2LmVx9TcR4sA",
 "data":{"id":"mem_8kQmZt3VbN1xLp","status":"canceled","created_at":"2026-09-01T14:03:11.000Z","updated_at":"2026-10-31T14:03:12.000Z","joined_at":"2026-09-01T14:03:11.000Z",
  "manage_url":null,"member":{"id":"mber_Zx81QwLk5Tn0B"},
  "user":{"id":"user_w3RtYp7KsD2mN","username":"jdoe42","name":"Jane Doe","email":"jane.doe@example.com","profile_pic":"https://assets.whop.com/avatars/placeholder.png"},
  "renewal_period_start":"2026-10-01T14:03:11.000Z","renewal_period_end":"2026-10-31T14:03:11.000Z",
  "cancel_at_period_end":true,"cancel_option":"too_expensive","cancellation_reason":null,"canceled_at":"2026-10-12T09:00:00.000Z",
  "currency":"usd","company":{"id":"biz_Hq2LmVx9TcR4sA","title":"Pickaxe Trading"},"plan":{"id":"plan_7TyUi1OpAs3Df"},
  "promo_code":null,"product":{"id":"prod_4GhJk2LmPq9Rs","title":"Pro Signals"},"license_key":null,"metadata":{},
  "payment_collection_paused":false,"custom_field_responses":[],"initial_price_paid":"$0.00","formatted_renewal_price":"$49.00 / month"}}
"""

MEMBER_NATIVE_JSON = json.dumps(fixtures.load("member_native"))

# Written for these tests (not from §7): the same objects in the legacy shapes of §2.4, with the
# legacy float prices the tolerant parser must turn into Money.

MEMBERSHIP_LEGACY_JSON = """\
{"id":"mem_8kQmZt3VbN1xLp","status":"active","created_at":"2026-09-01T14:03:11.000Z","updated_at":"2026-10-01T14:03:15.412Z",
 "joined_at":"2026-09-01T14:03:11.000Z","manage_url":null,"member":{"id":"mber_Zx81QwLk5Tn0B"},
 "user":{"id":"user_w3RtYp7KsD2mN","username":"jdoe42","name":"Jane Doe","email":"jane.doe@example.com","profile_pic":null},
 "renewal_period_start":"2026-10-01T14:03:11.000Z","renewal_period_end":"2026-10-31T14:03:11.000Z",
 "cancel_at_period_end":false,"cancel_option":null,"cancellation_reason":null,"canceled_at":null,
 "currency":"usd","initial_price":0.0,"renewal_price":49.0,
 "company":{"id":"biz_Hq2LmVx9TcR4sA","title":"Pickaxe Trading"},"plan":{"id":"plan_7TyUi1OpAs3Df","metadata":{}},
 "promo_code":null,"product":{"id":"prod_4GhJk2LmPq9Rs","title":"Pro Signals","metadata":{}},"license_key":null,
 "metadata":{},"payment_collection_paused":false,"custom_field_responses":[],
 "initial_price_paid":"$0.00","formatted_renewal_price":"$49.00 / month"}
"""

PRODUCT_LEGACY_JSON = """\
{"id":"prod_4GhJk2LmPq9Rs","title":"Pro Signals","headline":"Daily trade ideas with entries and exits",
 "description":"Members-only signals room and weekly live sessions.","route":"pro-signals","visibility":"visible",
 "company":{"id":"biz_Hq2LmVx9TcR4sA","route":"pickaxe-trading","title":"Pickaxe Trading"},"member_count":412,
 "product_type":"regular","created_at":"2025-03-02T09:15:00.000Z","updated_at":"2026-09-28T18:40:12.000Z"}
"""

PAYMENT_LEGACY_JSON = """\
{"id":"pay_Qw3Er5Ty7Ui9Op","status":"paid","substatus":"succeeded","billing_reason":"subscription_cycle",
 "company":{"id":"biz_Hq2LmVx9TcR4sA","route":"pickaxe-trading","title":"Pickaxe Trading"},
 "user":{"id":"user_w3RtYp7KsD2mN","email":"jane.doe@example.com","name":"Jane Doe","username":"jdoe42"},
 "member":{"id":"mber_Zx81QwLk5Tn0B","phone":null},"membership":{"id":"mem_8kQmZt3VbN1xLp","status":"active"},
 "plan":{"id":"plan_7TyUi1OpAs3Df","metadata":{}},
 "product":{"id":"prod_4GhJk2LmPq9Rs","title":"Pro Signals","route":"pro-signals","metadata":{}},
 "promo_code":null,"currency":"usd","subtotal":49.0,"total":49.0,"usd_total":49.0,"amount_after_fees":45.08,
 "settlement_amount":45.08,"settlement_currency":"usd","refunded_amount":null,"tax_amount":0.0,
 "card_brand":"visa","card_last4":"4242","paid_at":"2026-10-01T14:03:14.000Z",
 "last_payment_attempt":"2026-10-01T14:03:12.000Z","next_payment_attempt":null,"refunded_at":null,
 "dispute_alerted_at":null,"created_at":"2026-10-01T14:03:11.000Z","updated_at":"2026-10-01T14:03:15.000Z",
 "refundable":true,"retryable":false,"voidable":false,"auto_refunded":false}
"""

MEMBER_LEGACY_JSON = """\
{"id":"mber_Zx81QwLk5Tn0B","user":{"id":"user_w3RtYp7KsD2mN","email":"jane.doe@example.com","name":"Jane Doe","username":"jdoe42"},
 "access_level":"customer","status":"joined","phone":null,"usd_total_spent":98.0,"company_token_balance":0,
 "most_recent_action":"paid_subscriber","most_recent_action_at":"2026-10-01T14:03:14.000Z",
 "joined_at":"2026-09-01T14:03:11.000Z","created_at":"2026-09-01T14:03:11.000Z","updated_at":"2026-10-01T14:03:14.000Z"}
"""

# PY26 plans: float prices plus a top-level currency (§2.3).
PLAN_PY26_JSON = """\
{"id":"plan_7TyUi1OpAs3Df","title":"Monthly","description":null,"plan_type":"renewal","billing_period":30,
 "trial_period_days":null,"expiration_days":null,"initial_price":0.0,"renewal_price":49.0,
 "initial_price_due":{"amount":"0.00","currency":"usd","decimals":2,"display_decimals":2},
 "formatted_price":"$49.00 / month","currency":"usd","visibility":"visible","release_method":"buy_now",
 "product":{"id":"prod_4GhJk2LmPq9Rs","title":"Pro Signals"},"account":{"id":"biz_Hq2LmVx9TcR4sA","title":"Pickaxe Trading"},
 "member_count":412,"created_at":"2025-03-02T09:15:00.000Z","updated_at":"2026-09-28T18:40:12.000Z"}
"""

PLAN_LEGACY_JSON = """\
{"id":"plan_7TyUi1OpAs3Df","plan_type":"renewal","billing_period":30,"initial_price":0.0,"renewal_price":49.0,
 "currency":"usd","company":{"id":"biz_Hq2LmVx9TcR4sA","title":"Pickaxe Trading"},
 "product":{"id":"prod_4GhJk2LmPq9Rs","title":"Pro Signals"},"title":"Monthly",
 "created_at":"2025-03-02T09:15:00.000Z","updated_at":"2026-09-28T18:40:12.000Z"}
"""


def load(text: str) -> dict[str, Any]:
    """A fresh dict for a fixture text (tests may mutate it)."""
    result: dict[str, Any] = json.loads(text)
    return result


def webhook_native() -> dict[str, Any]:
    """§7.4: the pinned delivery; `data` is the §7.1 membership, key order kept."""
    return {
        "id": "msg_2xQp9LmVt7RkWz4NbC8sYd1F",
        "api_version": "v1",
        "api_version_date": "2026-10-15-1",
        "timestamp": "2026-10-20T12:00:00.000Z",
        "type": "membership.activated",
        "account_id": "biz_Hq2LmVx9TcR4sA",
        "data": load(MEMBERSHIP_NATIVE_JSON),
    }


def page(items: list[dict[str, Any]], end_cursor: str | None, has_next_page: bool) -> dict[str, Any]:
    """A list response as Whop wraps it."""
    return {
        "data": copy.deepcopy(items),
        "page_info": {
            "end_cursor": end_cursor,
            "start_cursor": "start" if items else None,
            "has_next_page": has_next_page,
            "has_previous_page": False,
        },
    }
