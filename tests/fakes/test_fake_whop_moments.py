"""The fake Whop's invoices and waitlist signups, as the official SDK (whop-sdk 2.6, PY26)
describes them: `/invoices` and `/waitlist_entries` lists and retrieves, and the `invoice.*` and
`entry.*` webhook payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fakes.whop import NATIVE_VERSION, OWNER_USER_ID, FakeWhop, SeededCompany, seed_company

# Field names of PY26 `types/invoice.py`, `invoice_list_item.py`, `waitlist_entry.py`, `entry.py`.
INVOICE_KEYS = {
    "automatically_finalizes_at",
    "charge_buyer_fee",
    "collection_method",
    "company",
    "created_at",
    "current_plan",
    "customer_name",
    "due_date",
    "email_address",
    "fetch_invoice_token",
    "id",
    "line_items",
    "mailing_address",
    "member",
    "number",
    "pay_online_url",
    "payment",
    "payment_processing",
    "product",
    "status",
    "subscription_billing_anchor_at",
    "updated_at",
    "user",
}
INVOICE_LIST_KEYS = {
    "created_at",
    "current_plan",
    "due_date",
    "email_address",
    "fetch_invoice_token",
    "id",
    "line_items",
    "number",
    "payment_processing",
    "status",
    "user",
}
ENTRY_KEYS = {
    "account_id",
    "approval_failure_reason",
    "buyer_account_id",
    "created_at",
    "custom_field_responses",
    "id",
    "membership_id",
    "metadata",
    "plan_id",
    "product_id",
    "status",
    "updated_at",
    "user_id",
}
ENTRY_EVENT_KEYS = {"created_at", "custom_field_responses", "id", "plan", "product", "status", "user"}


@pytest.fixture
def fake() -> FakeWhop:
    return FakeWhop(clock=lambda: 1_792_497_600.0)


@pytest.fixture
def company(fake: FakeWhop) -> SeededCompany:
    seed_company(fake, company_id="biz_other", members=3, memberships=3, products=1, seed=2)
    return seed_company(fake, company_id="biz_test", members=10, memberships=12, products=2, seed=1)


@pytest.fixture
async def client(fake: FakeWhop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://whop.test") as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Api-Version-Date": NATIVE_VERSION}


def ours(fake: FakeWhop, company: SeededCompany) -> Any:
    return next(m for m in fake.memberships.values() if m.company_id == company.company_id)


async def test_invoices_list_as_items_and_retrieve_whole(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    ms = ours(fake, company)
    open_one = fake.add_invoice(ms.id, status="open", created_at=1_792_000_000)
    late = fake.add_invoice(ms.id, status="past_due", due_date="2026-10-01T00:00:00Z", created_at=1_792_100_000)
    theirs = next(m for m in fake.memberships.values() if m.company_id == "biz_other")
    fake.add_invoice(theirs.id, status="past_due")
    key = auth(company.api_key)

    listed = await client.get("/api/v1/invoices", params={"account_id": company.company_id}, headers=key)
    assert listed.status_code == 200
    items = listed.json()["data"]
    assert [i["id"] for i in items] == [open_one.id, late.id], "only this company's, oldest first"
    assert all(set(i) == INVOICE_LIST_KEYS for i in items), "a list item names no member, product or payment"

    due = await client.get(
        "/api/v1/invoices", params={"account_id": company.company_id, "statuses": "past_due"}, headers=key
    )
    assert [i["id"] for i in due.json()["data"]] == [late.id]

    whole = (await client.get(f"/api/v1/invoices/{late.id}", headers=key)).json()
    assert set(whole) == INVOICE_KEYS
    assert whole["company"] == {"id": company.company_id}
    assert whole["member"] == {"id": ms.member_id} and whole["payment"] is None
    assert whole["current_plan"]["id"] == ms.plan_id and whole["due_date"] == "2026-10-01T00:00:00.000Z"
    assert "membership" not in whole and "membership_id" not in whole, "Whop's invoice names no membership"

    paid = fake.add_payment(ms.id)
    fake.update_invoice(late.id, status="paid", payment_id=paid.id)
    after = (await client.get(f"/api/v1/invoices/{late.id}", headers=key)).json()
    assert (after["status"], after["payment"]) == ("paid", {"id": paid.id})
    assert after["updated_at"] > whole["updated_at"]

    other = await client.get(f"/api/v1/invoices/{late.id}", headers=auth(fake.api_key_for("biz_other")))
    assert other.status_code == 403
    assert (await client.get("/api/v1/invoices/inv_nope", headers=key)).status_code == 404
    bad = await client.get("/api/v1/invoices", params={"statuses": "late"}, headers=key)
    assert bad.status_code == 400


async def test_an_invoice_webhook_carries_the_whole_invoice(fake: FakeWhop, company: SeededCompany) -> None:
    inv = fake.add_invoice(ours(fake, company).id, status="past_due")
    envelope = fake.event("invoice.past_due", inv.id)
    assert envelope["account_id"] == company.company_id and envelope["type"] == "invoice.past_due"
    assert set(envelope["data"]) == INVOICE_KEYS


async def test_waitlist_entries_list_retrieve_approve_and_delete(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    plan = next(p for p in fake.plans.values() if p.company_id == company.company_id)
    first = fake.add_waitlist_entry(company.company_id, plan.id, name="Wanda Waits", created_at=1_792_000_000)
    second = fake.add_waitlist_entry(company.company_id, plan.id, name="Carl Cancels", created_at=1_792_100_000)
    fake.update_waitlist_entry(second.id, status="canceled")
    key = auth(company.api_key)

    listed = await client.get("/api/v1/waitlist_entries", params={"account_id": company.company_id}, headers=key)
    assert [e["id"] for e in listed.json()["data"]] == [first.id], "canceled ones only when asked for"
    canceled = await client.get(
        "/api/v1/waitlist_entries", params={"account_id": company.company_id, "status": "canceled"}, headers=key
    )
    assert [e["id"] for e in canceled.json()["data"]] == [second.id]
    body = (await client.get(f"/api/v1/waitlist_entries/{first.id}", headers=key)).json()
    assert set(body) == ENTRY_KEYS
    assert (body["status"], body["membership_id"], body["plan_id"]) == ("pending", None, plan.id)

    membership = fake.approve_waitlist_entry(first.id)
    approved = (await client.get(f"/api/v1/waitlist_entries/{first.id}", headers=key)).json()
    assert (approved["status"], approved["membership_id"]) == ("approved", membership.id)
    assert fake.memberships[membership.id].user_id == first.user_id, "the waiting user became the member"

    event = fake.event("entry.approved", first.id)
    assert set(event["data"]) == ENTRY_EVENT_KEYS
    assert event["data"]["user"]["id"] == first.user_id and event["data"]["plan"] == {"id": plan.id}
    assert "membership_id" not in event["data"] and "updated_at" not in event["data"]

    fake.delete_waitlist_entry(first.id)
    assert (await client.get(f"/api/v1/waitlist_entries/{first.id}", headers=key)).status_code == 404
    other = await client.get(f"/api/v1/waitlist_entries/{second.id}", headers=auth(fake.api_key_for("biz_other")))
    assert other.status_code == 403


REVIEW_LIST_KEYS = {
    "attachments",
    "created_at",
    "description",
    "id",
    "joined_at",
    "paid_for_product",
    "published_at",
    "stars",
    "status",
    "title",
    "updated_at",
    "user",
}


async def test_reviews_list_published_ones_per_product_and_retrieve_any(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    member = next(m for m in fake.members.values() if m.company_id == company.company_id and m.user_id)
    product = next(p for p in fake.products.values() if p.company_id == company.company_id)
    good = fake.add_review(member.id, product.id, stars=5, title="Great", created_at=1_792_000_000)
    hidden = fake.add_review(member.id, product.id, stars=2, status="pending", created_at=1_792_100_000)
    key = auth(company.api_key)

    listed = await client.get("/api/v1/reviews", params={"product_id": product.id}, headers=key)
    assert [r["id"] for r in listed.json()["data"]] == [good.id], "lists publish only published reviews"
    assert set(listed.json()["data"][0]) == REVIEW_LIST_KEYS, "a list item names no product"
    low = await client.get("/api/v1/reviews", params={"product_id": product.id, "max_stars": "3"}, headers=key)
    assert low.json()["data"] == []
    whole = (await client.get(f"/api/v1/reviews/{hidden.id}", headers=key)).json()
    assert whole["status"] == "pending" and whole["product"]["id"] == product.id
    assert whole["account"]["id"] == company.company_id
    assert (await client.get("/api/v1/reviews", params={"min_stars": "9"}, headers=key)).status_code == 400


async def test_people_profiles_promo_codes_and_affiliates_as_the_sdk_describes(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    key = auth(company.api_key)
    ms = next(m for m in fake.memberships.values() if m.company_id == company.company_id and m.user_id)
    fake.set_sources(company.company_id, ms.user_id, first={"type": "referrer", "domain": "google.com"})
    people = (await client.get("/api/v1/people", params={"user_id": ms.user_id}, headers=key)).json()["data"]
    assert len(people) == 1 and people[0]["id"].startswith("prsn_")
    assert people[0]["user"]["id"] == ms.user_id and people[0]["first_source"]["domain"] == "google.com"
    assert {"ltv", "purchase_count", "first_seen_at", "last_seen_at", "last_source"} <= set(people[0])
    buyers = (await client.get("/api/v1/people", params={"has_purchased": "true", "first": 100}, headers=key)).json()
    assert all(p["purchase_count"] > 0 for p in buyers["data"])

    promo = fake.add_promo_code(company.company_id, "SPRING20")
    body = (await client.get(f"/api/v1/promo_codes/{promo.id}", headers=key)).json()
    assert (body["code"], body["account"]["id"]) == ("SPRING20", company.company_id)

    fake.update_membership(ms.id, affiliate_id="aff_A0000000000001", affiliate_user_id=OWNER_USER_ID)
    read = (await client.get(f"/api/v1/memberships/{ms.id}", headers=key)).json()
    assert read["affiliate"]["id"] == "aff_A0000000000001" and read["affiliate"]["user_id"] == OWNER_USER_ID
    assert fake.event("membership.updated", ms.id)["data"]["affiliate"] is None, "always null in webhooks"
