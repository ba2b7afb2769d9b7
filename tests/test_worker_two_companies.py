"""No company can touch another's records (issue 19).

Two companies are connected and synced. Company A then sends correctly signed deliveries that
name company B's records, for every event type that carries a payload: the payload claims A, a
huge amount, a far-off date. B's records in Twenty stay exactly as they were, and A gets no Task
built from B's data.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette

from bridge.companies import connect_api_key
from bridge.services import run_sync
from bridge.store import inbox
from bridge.webhooks import WebhookReceiver
from fakes.whop import signer
from tests.sync.conftest import COMPANY, World, make_world
from tests.test_worker import SECRET, Bridge

OTHER = "biz_othercompany"  # seeded by make_world; connected here with its own API key
OBJECTS = ("whopPayments", "whopProducts", "opportunities", "people", "tasks", "timelineActivities")


@pytest.fixture(params=["2.x", "1.x"])
async def bridge(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Bridge]:
    world = await make_world(
        tmp_path,
        request.param,
        members=6,
        memberships=6,
        WHOP_WEBHOOK_SECRET=SECRET,
        BRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
    )
    await connect_api_key(world.runtime, world.whop.api_key_for(OTHER))
    for company in (COMPANY, OTHER):
        result = await run_sync(world.runtime, kind="full", company_id=company)
        assert result.status == "succeeded", result.problems
    app = Starlette(routes=[WebhookReceiver(world.runtime.store, [SECRET]).route()])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge.test") as http:
        yield Bridge(world, world.runtime.store, http)
    await world.runtime.aclose()


def snapshot(world: World) -> dict[str, list[dict[str, Any]]]:
    return {name: sorted((dict(r) for r in world.twenty.records(name)), key=lambda r: str(r["id"])) for name in OBJECTS}


def theirs(records: dict[str, Any]) -> Any:
    return next(r for r in records.values() if r.company_id == OTHER)


def claimed_by_a(payload: dict[str, Any]) -> dict[str, Any]:
    """B's record as A's delivery tells it: A's company, a huge amount, a date in 2030."""
    payload = copy.deepcopy(payload)
    payload["account_id"] = COMPANY
    payload.pop("company_id", None)
    payload["updated_at"] = "2030-01-01T00:00:00.000Z"
    for money in ("total", "subtotal", "usd_total", "renewal_price", "initial_price"):
        if isinstance(payload.get(money), dict):
            payload[money] = {**payload[money], "amount": "99999.00"}
    if "paid_at" in payload:
        payload["paid_at"] = "2030-01-01T00:00:00.000Z"
    if "visibility" in payload:
        payload["visibility"] = "hidden"
    return payload


async def send_as_a(b: Bridge, event_type: str, data: dict[str, Any], webhook_id: str) -> None:
    envelope = b.world.whop.event(event_type, data, COMPANY, webhook_id=webhook_id)
    body, headers = signer.delivery(SECRET, envelope, timestamp=int(time.time()))
    response = await b.http.post("/webhooks/whop", content=body, headers=headers)
    assert response.status_code == 200


async def test_company_a_cannot_change_company_bs_records_with_any_event(bridge: Bridge) -> None:
    whop = bridge.world.whop
    payment = theirs(whop.payments)
    product = theirs(whop.products)
    membership = theirs(whop.memberships)
    member = theirs(whop.members)
    b_payment = claimed_by_a(whop.render(payment.id))
    case = {"id": "dspt_TheirDispute01", "payment": {"id": payment.id}, "amount": "99999.00", "currency": "usd"}
    deliveries = {
        "msg_pay": ("payment.succeeded", b_payment),
        "msg_pay_failed": ("payment.failed", {**b_payment, "status": "open", "substatus": "failed"}),
        "msg_refund": ("refund.created", {"id": "rfnd_TheirRefund01", "payment": {"id": payment.id}}),
        "msg_dispute": ("dispute.created", case),
        "msg_case": ("resolution_center_case.created", {**case, "id": "reso_TheirCase0001"}),
        "msg_invoice": ("invoice.past_due", {"id": "inv_TheirInvoice01", "payment_id": payment.id}),
        "msg_product_deleted": ("product.deleted", {"id": product.id, "account_id": COMPANY}),
        "msg_product": ("product.updated", claimed_by_a(whop.render(product.id))),
        "msg_membership": ("membership.activated", claimed_by_a(whop.render(membership.id))),
        "msg_member": ("member.updated", claimed_by_a(whop.render(member.id))),
    }
    before = snapshot(bridge.world)
    worker = bridge.worker()
    changed: dict[str, list[str]] = {}
    for webhook_id, (event_type, data) in deliveries.items():
        await send_as_a(bridge, event_type, data, webhook_id)
        await worker.run_once()  # one at a time: each delivery is judged on its own
        after = snapshot(bridge.world)
        changed[event_type] = [name for name in OBJECTS if after[name] != before[name]]

    assert changed == {event_type: [] for event_type, _ in deliveries.values()}
    for webhook_id in deliveries:
        event = await inbox.get_event(bridge.store, webhook_id)
        assert event is not None and event.status != "applied", (webhook_id, event)


async def test_a_record_twenty_holds_for_another_company_is_refused_even_without_the_bridges_memory(
    bridge: Bridge,
) -> None:
    # A's shadows are lost (a new database) and Whop, asked with A's credentials, shows A a
    # product that B sells (Whop lets anyone read a visible product): Twenty says it is B's.
    product = theirs(bridge.world.whop.products)
    bridge.world.whop.update_product(product.id, company_id=COMPANY)
    before = snapshot(bridge.world)

    result = await run_sync(bridge.world.runtime, kind="full", company_id=COMPANY)

    refused = [p for p in result.problems if p["kind"] == "refused"]
    assert [p["key"] for p in refused] == [product.id]
    assert OTHER in refused[0]["reason"]
    assert snapshot(bridge.world)["whopProducts"] == before["whopProducts"]


async def test_each_companys_timeline_lines_point_only_at_its_own_records(bridge: Bridge) -> None:
    twenty, whop = bridge.world.twenty, bridge.world.whop
    lines = [a for a in twenty.records("timelineActivities") if str(a["name"]).startswith("whop")]
    if twenty.workspace.dialect == "1.x":
        assert lines == []  # its timeline shows no lines of the bridge's
        return
    opportunities = {o["id"]: o for o in twenty.records("opportunities")}
    payments = {p["id"]: p for p in twenty.records("whopPayments")}
    companies = set()
    for line in lines:
        about = line["properties"]["whop"]
        company = whop.memberships[about["membership"]].company_id
        companies.add(company)
        opportunity = opportunities[line["targetOpportunityId"]]
        assert (opportunity["whopMembershipId"], opportunity["whopCompanyId"]) == (about["membership"], company)
        if "payment" in about:
            assert payments[line["linkedRecordId"]]["whopCompanyId"] == company
    assert companies == {COMPANY, OTHER}
