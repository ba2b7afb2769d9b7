"""Several Whop companies in one Twenty workspace, each with the webhook the bridge registered.

One company comes in by OAuth (Connect Whop), another by its API key (`connect`); the fake
Whop delivers each company's events signed with that company's own webhook secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge import companies, registration
from bridge.config import WHOP_API_VERSION_DATE
from bridge.doctor import WEBHOOK_CHECK, Doctor
from bridge.runtime import Runtime
from bridge.services import run_sync
from bridge.store import connections, inbox
from bridge.whop.models import Member
from bridge.worker import Worker
from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.web.conftest import BRIDGE_URL, COMPANY_ID, COMPANY_TITLE, connect_flow, login, page_csrf

SECOND = "biz_second"
SECOND_TITLE = "Second Shop"
HOOK_URL = f"{BRIDGE_URL}/webhooks/whop"


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await login(client)).status_code == 303
    return client


@pytest.fixture
def runtime(app: Starlette) -> Runtime:
    return app.state.ctx.runtime  # type: ignore[no-any-return]


@pytest.fixture
async def delivering(fake_whop: FakeWhop, app: Starlette) -> AsyncIterator[FakeWhop]:
    """The fake Whop delivers webhooks to the bridge app in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as bridge:
        fake_whop.webhook_client = bridge
        yield fake_whop
        fake_whop.webhook_client = None


def shared_email(fake: FakeWhop) -> str:
    """The e-mail of a member of the first company who is a Whop user (to buy from the second)."""
    for m in fake.members.values():
        user = fake.users.get(m.user_id or "")
        if m.company_id == COMPANY_ID and user is not None and user.email:
            return user.email
    raise AssertionError("the seed has no member with an e-mail")


async def connect_both(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, runtime: Runtime, fake: FakeWhop
) -> None:
    seed_company(
        fake,
        company_id=SECOND,
        title=SECOND_TITLE,
        members=6,
        memberships=8,
        products=1,
        seed=5,
        shared_emails=[shared_email(fake)],
        neighbor=False,
        owner_user_id=None,  # not the OAuth approver's: this one comes in by its API key
    )
    done = await connect_flow(admin, whop_browser)  # OAuth: provisions and syncs the first company
    assert done.status_code == 303
    added = await companies.connect_api_key(runtime, fake.api_key_for(SECOND))
    assert added.connection.company_id == SECOND and added.webhook.ok, added.webhook.summary
    await run_sync(runtime, kind="full", company_id=SECOND)


def live(twenty: FakeTwenty, plural: str) -> list[dict[str, Any]]:
    return [r for r in twenty.records(plural) if not r.get("deletedAt")]


def total_spent(fake: FakeWhop, member_id: str) -> Decimal:
    """What Whop says the member spent, read through the bridge's own model of it."""
    spent = Member.model_validate(fake.render(member_id)).usd_total_spent
    return spent.amount if spent is not None else Decimal(0)


async def test_two_companies_fill_one_workspace_and_a_shared_buyer_is_one_person(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    runtime: Runtime,
    fake_whop: FakeWhop,
    fake_twenty: FakeTwenty,
    engine: AsyncEngine,
) -> None:
    await connect_both(admin, whop_browser, runtime, fake_whop)

    rows = {c.company_id: c for c in await connections.list_connections(engine)}
    assert (rows[COMPANY_ID].mode, rows[COMPANY_ID].status) == ("oauth", "connected")
    assert (rows[SECOND].mode, rows[SECOND].status) == ("api_key", "connected")
    assert sorted(await runtime.companies()) == sorted([COMPANY_ID, SECOND])

    # Every membership of both companies is an Opportunity that says which company it is of.
    opportunities = {o["whopMembershipId"]: o for o in live(fake_twenty, "opportunities")}
    for ms in fake_whop.memberships.values():
        if ms.company_id in (COMPANY_ID, SECOND):
            assert opportunities[ms.id]["whopCompanyId"] == ms.company_id
    titles = {COMPANY_ID: COMPANY_TITLE, SECOND: SECOND_TITLE}
    for product in live(fake_twenty, "whopProducts"):
        company = fake_whop.products[product["whopProductId"]].company_id
        assert (product["whopCompanyId"], product["whopCompanyName"]) == (company, titles[company])

    # The buyer of both companies is one Person, with an Opportunity from each, and a total
    # spent that adds up both companies' members.
    email = shared_email(fake_whop)
    (user_id,) = {u.id for u in fake_whop.users.values() if u.email == email}
    (person,) = [p for p in live(fake_twenty, "people") if p["whopUserId"] == user_id]
    theirs = [o for o in opportunities.values() if o.get("pointOfContactId") == person["id"]]
    assert {o["whopCompanyId"] for o in theirs} == {COMPANY_ID, SECOND}
    connected = (COMPANY_ID, SECOND)  # the fake's neighbour company is not connected
    members = [m for m in fake_whop.members.values() if m.user_id == user_id and m.company_id in connected]
    assert {m.company_id for m in members} == {COMPANY_ID, SECOND}
    expected = sum((total_spent(fake_whop, m.id) for m in members), Decimal(0))
    assert person["whopTotalSpent"]["amountMicros"] == int(expected * 1_000_000)
    assert person["whopMemberId"] == ", ".join(m.id for m in sorted(members, key=lambda m: m.company_id))
    # Its revenue spans both companies too (written by the sync of the company that came last).
    actives = [
        ms
        for ms in fake_whop.memberships.values()
        if ms.user_id == user_id
        and ms.company_id in connected
        and ms.status in ("trialing", "active", "past_due", "canceling")
    ]
    assert person["whopActiveMemberships"] == len(actives)

    # The first company last wrote the shared buyer before the second one's member was known:
    # its next sync brings its record of that one Person up to date, and then nothing moves.
    result = await run_sync(runtime, kind="full", company_id=COMPANY_ID)
    assert result.counts["person"].get("updated", 0) <= 1 and result.counts["opportunity"] == {"unchanged": 12}
    for company in (COMPANY_ID, SECOND):
        result = await run_sync(runtime, kind="full", company_id=company)
        assert result.twenty_writes == 0, (company, result.counts)


async def test_each_company_gets_one_webhook_whose_deliveries_verify_without_a_configured_secret(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    runtime: Runtime,
    delivering: FakeWhop,
    engine: AsyncEngine,
) -> None:
    fake = delivering
    assert not runtime.settings.webhook_secrets  # no WHOP_WEBHOOK_SECRET
    await connect_both(admin, whop_browser, runtime, fake)
    for company in (COMPANY_ID, SECOND):
        (hook,) = fake.webhooks_of(company)
        assert hook.url == HOOK_URL and hook.api_version_date == WHOP_API_VERSION_DATE
        assert set(hook.events) == set(registration.EVENTS)
        membership = next(ms for ms in fake.memberships.values() if ms.company_id == company)
        (sent,) = await fake.emit(company, "membership.updated", membership.id)
        assert sent.response_code == 200, sent.response_text
    stored = await inbox.list_events(engine, limit=10)
    assert {e.company_id for e in stored} == {COMPANY_ID, SECOND}

    # Reconnecting reuses the webhook (its secret is still the stored one): still one each.
    await companies.connect_api_key(runtime, fake.api_key_for(SECOND))
    assert len(fake.webhooks_of(SECOND)) == 1
    (sent,) = await fake.emit(SECOND, "membership.updated", membership.id)
    assert sent.response_code == 200


async def test_a_delivery_signed_with_one_companys_secret_for_another_company_is_refused(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    runtime: Runtime,
    delivering: FakeWhop,
    engine: AsyncEngine,
) -> None:
    fake = delivering
    await connect_both(admin, whop_browser, runtime, fake)
    (first_hook,) = fake.webhooks_of(COMPANY_ID)
    membership = next(ms for ms in fake.memberships.values() if ms.company_id == SECOND)
    forged = await fake.deliver(
        HOOK_URL,
        "membership.updated",
        membership.id,
        first_hook.secret,
        company_id=SECOND,
        client=fake.webhook_client,
    )
    assert forged.status_code == 401
    assert await inbox.list_events(engine, limit=10) == []


async def test_a_webhook_at_the_bridge_url_with_an_unknown_secret_is_replaced_not_duplicated(
    runtime: Runtime, fake_whop: FakeWhop, engine: AsyncEngine
) -> None:
    seed_company(fake_whop, company_id=SECOND, title=SECOND_TITLE, members=2, products=1, neighbor=False)
    stale = fake_whop.add_webhook(SECOND, HOOK_URL, ["membership.updated"])  # made by hand, secret unknown
    other = fake_whop.add_webhook(SECOND, "https://elsewhere.example/hook", ["payment.succeeded"])
    await companies.connect_api_key(runtime, fake_whop.api_key_for(SECOND))
    hooks = {h.id: h for h in fake_whop.webhooks_of(SECOND)}
    assert stale.id not in hooks and other.id in hooks  # someone else's webhook is left alone
    (ours,) = [h for h in hooks.values() if h.url == HOOK_URL]
    row = await connections.get_connection(engine, SECOND)
    assert row is not None and row.webhook_id == ours.id
    assert row.webhook_secret(runtime.box()) == ours.secret


async def test_disconnecting_one_company_leaves_the_others_records_and_webhook(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    runtime: Runtime,
    delivering: FakeWhop,
    fake_twenty: FakeTwenty,
    engine: AsyncEngine,
) -> None:
    fake = delivering
    await connect_both(admin, whop_browser, runtime, fake)
    before = {o["whopMembershipId"]: o for o in live(fake_twenty, "opportunities")}
    response = await admin.post("/disconnect", data={"csrf_token": await page_csrf(admin), "company_id": SECOND})
    assert response.status_code == 303
    assert fake.webhooks_of(SECOND) == []  # deleted at Whop
    assert len(fake.webhooks_of(COMPANY_ID)) == 1
    rows = {c.company_id: c for c in await connections.list_connections(engine)}
    assert rows[SECOND].status == "disconnected" and rows[SECOND].webhook_secret_enc is None
    assert rows[COMPANY_ID].status == "connected" and rows[COMPANY_ID].has_tokens
    assert await runtime.companies() == [COMPANY_ID]
    # Nothing in Twenty was touched, and the remaining company still syncs and delivers.
    assert {o["whopMembershipId"]: o for o in live(fake_twenty, "opportunities")} == before
    result = await run_sync(runtime, kind="reconcile", company_id=COMPANY_ID)
    assert result.status == "succeeded"
    membership = next(ms for ms in fake.memberships.values() if ms.company_id == COMPANY_ID)
    (sent,) = await fake.emit(COMPANY_ID, "membership.updated", membership.id)
    assert sent.response_code == 200


async def test_deletion_marking_of_one_company_never_touches_the_other(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    runtime: Runtime,
    fake_whop: FakeWhop,
    fake_twenty: FakeTwenty,
) -> None:
    await connect_both(admin, whop_browser, runtime, fake_whop)
    gone = next(ms.id for ms in fake_whop.memberships.values() if ms.company_id == COMPANY_ID)
    fake_whop.delete_membership(gone)
    for company in (SECOND, COMPANY_ID):
        await run_sync(runtime, kind="reconcile", company_id=company)
    statuses = {o["whopMembershipId"]: o["whopMembershipStatus"] for o in live(fake_twenty, "opportunities")}
    assert statuses[gone] == "DELETED"
    seconds = [ms.id for ms in fake_whop.memberships.values() if ms.company_id == SECOND]
    assert seconds and all(statuses[m] != "DELETED" for m in seconds)


async def test_without_the_webhook_permission_the_page_says_what_to_do_by_hand(
    admin: httpx.AsyncClient, runtime: Runtime, fake_whop: FakeWhop
) -> None:
    seed_company(fake_whop, company_id=SECOND, title=SECOND_TITLE, members=2, products=1, neighbor=False)
    fake_whop.deny_key_permission(SECOND)
    added = await companies.connect_api_key(runtime, fake_whop.api_key_for(SECOND))
    assert added.connection.status == "connected"  # the connection stands; only the webhook is manual
    assert fake_whop.webhooks_of(SECOND) == []
    assert "developer:manage_webhook" in added.webhook.summary
    assert HOOK_URL in added.webhook.summary and "WHOP_WEBHOOK_SECRET" in added.webhook.summary
    page = (await admin.get("/")).text
    assert "developer:manage_webhook" in page and "WHOP_WEBHOOK_SECRET" in page
    report = await Doctor(runtime).run()
    (line,) = [c for c in report.checks if c.name == WEBHOOK_CHECK]
    assert line.status == "fail" and SECOND in line.detail
    assert "developer:manage_webhook" in line.fix and HOOK_URL in line.fix


async def test_webhook_health_from_whop_shows_on_the_page_and_in_metrics_and_can_be_reenabled(
    admin: httpx.AsyncClient, runtime: Runtime, fake_whop: FakeWhop, client: httpx.AsyncClient
) -> None:
    seed_company(fake_whop, company_id=SECOND, title=SECOND_TITLE, members=2, products=1, neighbor=False)
    await companies.connect_api_key(runtime, fake_whop.api_key_for(SECOND))
    (hook,) = fake_whop.webhooks_of(SECOND)
    fake_whop.disable_webhook(hook.id)
    state = await registration.refresh(runtime, SECOND)
    assert state.enabled is False and state.disabled_reason == "delivery_failures"
    page = (await admin.get("/")).text
    assert "disabled at Whop (delivery_failures)" in page
    metrics = (await client.get("/metrics")).text
    assert f'bridge_whop_webhook_enabled{{company_id="{SECOND}"}} 0.0' in metrics

    response = await admin.post("/webhooks/enable", data={"csrf_token": await page_csrf(admin), "company_id": SECOND})
    assert response.status_code == 303
    assert fake_whop.webhook(hook.id).enabled
    assert "healthy" in (await admin.get("/")).text
    metrics = (await client.get("/metrics")).text
    assert f'bridge_whop_webhook_enabled{{company_id="{SECOND}"}} 1.0' in metrics


class Down(httpx.AsyncBaseTransport):
    """The bridge while it is stopped: every delivery is refused."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


async def test_deliveries_missed_while_the_bridge_was_down_arrive_by_replay_and_apply_once(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    runtime: Runtime,
    app: Starlette,
    fake_whop: FakeWhop,
    fake_twenty: FakeTwenty,
    engine: AsyncEngine,
) -> None:
    fake = fake_whop
    await connect_both(admin, whop_browser, runtime, fake)
    targets = [ms for ms in fake.memberships.values() if ms.company_id == SECOND][:3]
    async with httpx.AsyncClient(transport=Down()) as down:
        fake.webhook_client = down
        for ms in targets:  # changes at Whop while the bridge is stopped
            fake.update_membership(ms.id, cancel_at_period_end=True)
            (sent,) = await fake.emit(SECOND, "membership.updated", ms.id)
            assert not sent.success
    assert await inbox.list_events(engine, limit=10) == []

    # Back up: the scheduler's start-up step asks Whop to replay, then the worker applies.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as up:
        fake.webhook_client = up
        asked = await registration.recover_all(runtime)
        assert asked[SECOND] is not None
        stored = await inbox.list_events(engine, limit=50)
        assert sorted(e.event_type or "" for e in stored) == ["membership.updated"] * 3
        assert await Worker(runtime, poll_interval=0.01).run_once() == 3
        applied = await inbox.list_events(engine, limit=50)
        assert {e.status for e in applied} == {"applied"}
        opportunities = {o["whopMembershipId"]: o for o in live(fake_twenty, "opportunities")}
        assert all(opportunities[ms.id]["whopCancelAtPeriodEnd"] is True for ms in targets)

        # Asking again (another replica, or the button) re-sends; the inbox keeps one of each.
        await registration.recover(runtime, SECOND, force=True)
        assert len(await inbox.list_events(engine, limit=50)) == 3
        fake.webhook_client = None
