"""The acceptance, end to end, against a real Twenty (tests/live/conftest.py says how to run it).

The fake Whop stands in for Whop; everything on the Twenty side is the real server: its data and
metadata APIs, its rate limit, its views. CI has no Twenty server: it skips these and says why.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bridge.runtime import Runtime
from bridge.services import run_sync
from bridge.store import inbox
from bridge.twenty.dashboard_records import DASHBOARD
from bridge.twenty.data import (
    OPPORTUNITY,
    PERSON,
    TIMELINE_ACTIVITY,
    WHOP_PAYMENT,
    WHOP_PRODUCT,
    ObjectApi,
    TwentyDataClient,
)
from bridge.twenty.layout import index_view
from bridge.twenty.pages import parse_page
from bridge.twenty.provision import views_of
from bridge.twenty.schema import load_data_model, section_fields
from bridge.twenty.view_records import ViewRecordsApi
from bridge.webhooks import WebhookReceiver
from bridge.worker import Worker
from tests.live.conftest import (
    CONFIGURED,
    LIVE_KEY,
    LIVE_URL,
    MAIN,
    SHOP_A,
    SHOP_B,
    SKIP_REASON,
    WEBHOOK_SECRET,
    LiveWorld,
    by_key,
    person_key,
)
from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]

if not CONFIGURED:  # one line in the summary, saying why, rather than one per test
    pytest.skip(SKIP_REASON, allow_module_level=True)

pytestmark = pytest.mark.live

OWNED = {obj.singular: obj for obj in (PERSON, OPPORTUNITY, WHOP_PRODUCT, WHOP_PAYMENT)}


# Helpers -----------------------------------------------------------------------------------------


def _members_of(live: LiveWorld, company: str) -> list[Any]:
    return [m for m in live.whop.memberships.values() if m.company_id == company]


def _pick(live: LiveWorld, status: str, n: int) -> Any:
    """The n-th membership of the main company with `status`: each test takes its own."""
    return [m for m in _members_of(live, MAIN) if m.status == status][n]


async def _one(twenty: TwentyDataClient, obj: ObjectApi, key: str, selection: str | None = None) -> dict[str, Any]:
    found = await by_key(twenty, obj, [key], selection)
    assert key in found, f"no {obj.singular} with {obj.key} {key} in Twenty"
    return found[key]


async def _mutate(twenty: TwentyDataClient, document: str, what: str) -> None:
    """A change a person makes in Twenty (through its API, as the UI does)."""
    await twenty.graphql(document, {}, operation=what, write=True)


@contextlib.asynccontextmanager
async def _endpoint(runtime: Runtime) -> Any:
    """The bridge's webhook endpoint, in-process, verifying as `serve` does."""
    receiver = WebhookReceiver(runtime.store, [WEBHOOK_SECRET], company_secrets=runtime.webhook_secrets)
    app = Starlette(routes=[receiver.route()])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge.test") as client:
        yield client


async def _deliver(live: LiveWorld, client: httpx.AsyncClient, event_type: str, data: Any, company: str,
                   secret: str = WEBHOOK_SECRET) -> None:  # fmt: skip
    answer = await live.whop.deliver(
        "http://bridge.test/webhooks/whop", event_type, data, secret, client=client, company_id=company
    )
    assert answer.status_code == 200, answer.text


# Provisioning ------------------------------------------------------------------------------------


def test_provisioning_creates_the_data_model_then_a_second_run_changes_nothing(live: LiveWorld) -> None:
    first, second = live.provisioned
    assert not first.plan.conflicts, [c.detail for c in first.plan.conflicts]
    assert first.mutations > 0, "a fresh workspace needed the bridge's objects and fields"
    assert second.mutations == 0, [(i.kind, i.name, i.status) for i in second.plan.items if i.status != "present"]
    assert {i.status for i in second.plan.items} <= {"present", "manual", "unsupported"}


# The backfill ------------------------------------------------------------------------------------


async def test_a_full_sync_writes_every_product_member_membership_and_payment_with_their_links(
    live: LiveWorld,
) -> None:
    result = live.first_sync
    assert result is not None and result.status == "succeeded"
    assert not [p for p in result.problems if p["kind"] == "failed"], result.problems
    seeded, whop = live.main, live.whop
    async with live.runtime() as runtime, runtime.twenty() as twenty:
        products = await by_key(twenty, WHOP_PRODUCT, seeded.product_ids, "id whopProductId name whopCompanyId")
        people_keys = sorted({person_key(whop, m) for m in seeded.member_ids})
        people = await by_key(twenty, PERSON, people_keys, "id whopUserId name { firstName lastName }")
        opportunities = await by_key(
            twenty,
            OPPORTUNITY,
            seeded.membership_ids,
            "id whopMembershipId name pointOfContactId whopProductId whopMembershipStatus whopCompanyId",
        )
        payments = await by_key(twenty, WHOP_PAYMENT, seeded.payment_ids, "id whopPaymentId personId opportunityId")

    assert set(products) == set(seeded.product_ids)
    assert set(people) == set(people_keys), "every member is a Person, keyed by its Whop user"
    assert set(opportunities) == set(seeded.membership_ids)
    assert set(payments) == set(seeded.payment_ids), "every payment is a WhopPayment"
    person_ids = {p["id"]: key for key, p in people.items()}
    product_ids = {p["id"]: key for key, p in products.items()}
    opportunity_ids = {o["id"]: key for key, o in opportunities.items()}
    for key, opp in opportunities.items():
        ms = whop.memberships[key]
        assert person_ids.get(opp["pointOfContactId"]) == person_key(whop, ms.member_id), key
        assert product_ids.get(opp["whopProductId"]) == ms.product_id, key
        assert opp["whopMembershipStatus"] == ms.status.upper()
        assert opp["whopCompanyId"] == MAIN
    for key, pay in payments.items():
        p = whop.payments[key]
        assert opportunity_ids.get(pay["opportunityId"]) == p.membership_id, key
        assert person_ids.get(pay["personId"]) == person_key(whop, p.member_id), key


async def test_a_second_full_sync_writes_nothing(live: LiveWorld) -> None:
    async with live.runtime() as runtime:
        again = await run_sync(runtime, kind="full", company_id=MAIN)
    assert again.status == "succeeded"
    assert again.twenty_writes == 0, again.counts


async def test_a_name_a_person_gave_in_twenty_is_kept_when_whop_changes_the_record(live: LiveWorld) -> None:
    ms = _pick(live, "active", 0)
    async with live.runtime() as runtime, runtime.twenty() as twenty:
        opp = await _one(twenty, OPPORTUNITY, ms.id)
        person = await _one(twenty, PERSON, person_key(live.whop, ms.member_id))
        uuid.UUID(opp["id"]), uuid.UUID(person["id"])  # only well-formed ids are inlined below
        await _mutate(
            twenty, f'mutation {{ updateOpportunity(id: "{opp["id"]}", data: {{name: "Kept deal name"}}) {{ id }} }}',
            "rename an opportunity",
        )  # fmt: skip
        await _mutate(
            twenty,
            f'mutation {{ updatePerson(id: "{person["id"]}",'
            ' data: {name: {firstName: "Curated", lastName: "Name"}}) { id } }',
            "rename a person",
        )
        live.whop.update_membership(ms.id, cancel_at_period_end=True)
        result = await run_sync(runtime, kind="reconcile", company_id=MAIN)
        assert result.status == "succeeded"
        opp = await _one(twenty, OPPORTUNITY, ms.id, "id whopMembershipId name whopCancelAtPeriodEnd")
        person = await _one(
            twenty, PERSON, person_key(live.whop, ms.member_id), "id whopUserId name { firstName lastName }"
        )
    assert opp["whopCancelAtPeriodEnd"] is True, "Whop's change arrived"
    assert opp["name"] == "Kept deal name"
    assert person["name"] == {"firstName": "Curated", "lastName": "Name"}


# Webhooks ----------------------------------------------------------------------------------------


async def test_a_signed_webhook_is_verified_stored_and_applied_to_twenty(live: LiveWorld) -> None:
    ms = _pick(live, "active", 1)
    live.whop.update_membership(ms.id, status="past_due")
    async with live.runtime() as runtime, _endpoint(runtime) as endpoint:
        await _deliver(live, endpoint, "membership.updated", ms.id, MAIN)
        assert await Worker(runtime).run_once() >= 1
        async with runtime.twenty() as twenty:
            opp = await _one(twenty, OPPORTUNITY, ms.id, "id whopMembershipId whopMembershipStatus")
        applied = [e for e in await inbox.list_events(runtime.store, limit=50) if e.status == "applied"]
    assert opp["whopMembershipStatus"] == "PAST_DUE"
    assert applied, "the delivery is marked applied"


async def test_a_record_deleted_in_twenty_stays_deleted_through_webhooks_and_syncs(live: LiveWorld) -> None:
    ms = _pick(live, "active", 2)
    async with live.runtime() as runtime, runtime.twenty() as twenty:
        opp = await _one(twenty, OPPORTUNITY, ms.id)
        uuid.UUID(opp["id"])
        await _mutate(twenty, f'mutation {{ deleteOpportunity(id: "{opp["id"]}") {{ id }} }}', "delete an opportunity")
        live.whop.update_membership(ms.id, cancel_at_period_end=True)
        async with _endpoint(runtime) as endpoint:
            await _deliver(live, endpoint, "membership.updated", ms.id, MAIN)
            await Worker(runtime).run_once()
        for kind in ("reconcile", "full"):
            result = await run_sync(runtime, kind=kind, company_id=MAIN)
            assert result.status == "succeeded"
        live_rows = await by_key(twenty, OPPORTUNITY, [ms.id])
        deleted_rows = await by_key(twenty, OPPORTUNITY, [ms.id], "id whopMembershipId deletedAt", deleted=True)
    assert ms.id not in live_rows, "not restored, and no copy made"
    assert deleted_rows[ms.id]["id"] == opp["id"] and deleted_rows[ms.id]["deletedAt"]


# How it reads in Twenty --------------------------------------------------------------------------


async def test_the_kanban_is_grouped_by_status_and_its_cards_show_the_declared_fields(live: LiveWorld) -> None:
    """Read where a person's screens read it: 2.x's views (metadata API), 1.x's view records
    (data API; a core view made through 1.x's metadata API was shown nowhere, observed)."""
    model = load_data_model()
    async with live.runtime() as runtime, runtime.metadata() as meta, runtime.twenty() as twenty:
        views = views_of(meta, ViewRecordsApi(twenty))
        assert views is not None
        objects = await meta.list_objects()
        for spec in model.views:
            obj = objects[spec.object]
            named = [v for v in await views.list_views(obj.id) if v.name == spec.name]
            assert len(named) == 1, f"one view {spec.name!r} on {spec.object}, not {len(named)}"
            (view,) = named
            assert view.type == spec.type
            assert view.key is None, "not keyed INDEX: the object's standard list stays Twenty's"
            if spec.groupBy:
                group = objects[spec.object].fields[spec.groupBy]
                assert view.group_field_id == group.id, f"grouped by {spec.groupBy}"
                wanted = {str(o["value"]) for o in group.options}
                assert wanted <= set(view.column_values), f"a column per {spec.groupBy} option"
            shown = {f.field_id for f in view.fields if f.visible}
            missing = [name for name in spec.fields if obj.fields[name].id not in shown]
            assert not missing, f"card fields not shown on {spec.name!r}: {missing}"
            if spec.kanbanSum:
                assert view.kanban_aggregate == "SUM"
                assert view.kanban_aggregate_field_id == obj.fields[spec.kanbanSum].id


async def test_each_standard_list_shows_the_columns_views_toml_declares_on_its_first_screen(
    live: LiveWorld,
) -> None:
    """Every declared column is shown, right after the name (or the column named by `after`):
    2.x files new fields hidden, 1.x shows them at the end of the list (observed); the bridge
    places the declared ones on the first screen. Read where the screens read (1.x: the view
    records of the data API)."""
    model = load_data_model()
    plan = {item.name: item for item in live.provisioned[1].plan.items}
    hidden: dict[str, list[str]] = {}
    late: dict[str, list[str]] = {}
    async with live.runtime() as runtime, runtime.metadata() as meta, runtime.twenty() as twenty:
        views = views_of(meta, ViewRecordsApi(twenty))
        assert views is not None
        objects = await meta.list_objects()
        for spec in model.columns:
            assert plan[f"columns {spec.object}"].status == "present", plan[f"columns {spec.object}"].detail
            obj = objects[spec.object]
            index = index_view(await views.list_views(obj.id))
            assert index is not None, f"{spec.object} has its standard list view"
            shown = {f.field_id for f in index.fields if f.visible}
            missing = [name for name in spec.fields if obj.fields[name].id not in shown]
            if missing:
                hidden[f"{index.name} ({spec.object})"] = missing
            # The screen shows the name first, then the columns by position.
            names = {f.id: n for n, f in obj.fields.items()}
            order = [names.get(f.field_id) for f in sorted(index.fields, key=lambda f: f.position) if f.visible]
            order = sorted(order, key=lambda n: n != "name")
            first = order[: len(spec.fields) + (2 if spec.after else 1)]
            if [n for n in spec.fields if n not in first]:
                late[f"{index.name} ({spec.object})"] = order[: len(first) + 3]
    assert not hidden, f"columns not shown: {hidden}"
    assert not late, f"declared columns not right after the name: {late}"


async def test_on_2x_the_record_pages_hold_a_whop_section_with_the_bridges_fields(live: LiveWorld) -> None:
    model = load_data_model()
    async with live.runtime() as runtime, runtime.metadata() as meta:
        if not meta.supports_record_page_sections:
            pytest.skip(f"Twenty {live.dialect} record pages have no sections (the plan says so)")
        objects = await meta.list_objects()
        for spec in model.sections:
            obj = objects[spec.object]
            view_ids = await meta.record_page_view_ids(obj.id)
            assert view_ids, f"{spec.object} has a record page"
            view = await meta.get_view(view_ids[0])
            assert view is not None
            groups = {g.name: g for g in view.field_groups}
            assert spec.name in groups, f"{spec.object}'s page has a {spec.name!r} section"
            assert "System" not in groups or groups[spec.name].position < groups["System"].position
            inside = {f.field_id for f in view.fields if f.group_id == groups[spec.name].id}
            wanted = [n for n in section_fields(model, spec) if n in obj.fields]
            outside = [n for n in wanted if obj.fields[n].id not in inside]
            assert not outside, f"{spec.object} fields not in the {spec.name!r} section: {outside}"


async def test_the_whop_dashboard_is_listed_with_every_declared_widget_over_the_synced_records(
    live: LiveWorld,
) -> None:
    model = load_data_model()
    assert model.dashboards, "schema/dashboards.toml declares the Whop dashboard"
    async with live.runtime() as runtime, runtime.metadata() as meta:
        if not meta.supports_page_layouts:
            pytest.skip(f"Twenty {live.dialect} has no page layouts, so no dashboards (the plan says so)")
        layouts = [parse_page(n) for n in await meta.page_layouts(object_id=None, layout_type="DASHBOARD")]
        objects = await meta.list_objects()
    twenty = TwentyDataClient(LIVE_URL or "", LIVE_KEY or "")
    try:
        for spec in model.dashboards:
            mine = [p for p in layouts if p.name == spec.key]
            assert len(mine) == 1, f"one layout named {spec.key!r}: {[p.name for p in layouts]}"
            (page,) = mine
            (tab,) = page.tabs
            titles = [w.title for w in tab.widgets]
            missing = [w.title for w in spec.widgets if w.title not in titles]
            assert not missing, f"widgets the dashboard lacks: {missing}"
            assert len(titles) == len(set(titles)), f"a widget made twice: {titles}"
            # Listed under Dashboards (the record people open it by), once, with its title.
            listed = await twenty.find(DASHBOARD, {"pageLayoutId": {"eq": page.id}})
            assert [d["title"] for d in listed] == [spec.title]
            # Each widget aggregates fields the real workspace has (Twenty would show it empty).
            for w in spec.widgets:
                fields = objects[w.object].fields
                used = [w.field, *(g.split(".")[0] for g in (w.groupBy, w.stackBy) if g)]
                assert all(f == "id" or f in fields for f in used), f"{w.title}: {used} on {w.object}"
    finally:
        await twenty.aclose()


# The timeline ------------------------------------------------------------------------------------

LINE = "id name createdAt linkedRecordCachedName linkedRecordId targetPersonId targetOpportunityId"


async def _lines(twenty: TwentyDataClient, opportunity_id: str) -> list[dict[str, Any]]:
    """The bridge's lines on an Opportunity's timeline (Twenty's own entries left out)."""
    found = await twenty.find(TIMELINE_ACTIVITY, {"targetOpportunityId": {"eq": opportunity_id}}, selection=LINE)
    return sorted((a for a in found if str(a["name"]).startswith("whop")), key=lambda a: (a["createdAt"], a["name"]))


# What Twenty itself names its timeline activities after (`<object>.<action>`).
TWENTYS_OWN_ACTIONS = frozenset({"created", "updated", "deleted", "restored", "destroyed"})


async def test_the_timeline_tells_a_memberships_story_once_through_syncs_and_webhooks(live: LiveWorld) -> None:
    ms = _pick(live, "active", 4)
    whop = live.whop
    title = whop.products[ms.product_id].title
    async with live.runtime() as runtime, runtime.twenty() as twenty:
        opp = await _one(twenty, OPPORTUNITY, ms.id)
        person = await _one(twenty, PERSON, person_key(whop, ms.member_id))
        if live.dialect != "2.x":
            # Twenty 1.x writes its own "whopPayment.created"… for the custom objects; none of the bridge's.
            found = await twenty.find(TIMELINE_ACTIVITY, {"name": {"like": "whop%"}}, selection="id name")
            assert [a for a in found if a["name"].rsplit(".", 1)[-1] not in TWENTYS_OWN_ACTIONS] == []
            pytest.skip(f"Twenty {live.dialect} shows no lines of the bridge's: none written (checked)")
        history = await _lines(twenty, opp["id"])
        started = [a for a in history if a["name"] == "whopMembership.started"]
        assert len(started) == 1 and title in started[0]["linkedRecordCachedName"], history
        assert started[0]["targetPersonId"] == person["id"] and started[0]["linkedRecordId"] == opp["id"]
        assert started[0]["createdAt"][:19] == whop.render(ms.id)["created_at"][:19], "dated when it began"

        # A renewal, its refund and a cancellation, each delivered twice (a retry, a replay); the
        # period renews in three weeks (the seed's may be over already).
        whop.update_membership(ms.id, current_period_end=time.time() + 21 * 86_400)
        renewal = whop.add_payment(ms.id, billing_reason="subscription_cycle")
        deliveries: list[tuple[str, Any]] = [("payment.succeeded", renewal.id)] * 2
        async with _endpoint(runtime) as endpoint:
            for event_type, data in deliveries:
                await _deliver(live, endpoint, event_type, data, MAIN)
            while await Worker(runtime).run_once():
                pass
            whop.update_payment(renewal.id, substatus="refunded", refunded_amount=renewal.total)
            refund = {"id": "rfnd_LiveTimeline01", "payment": {"id": renewal.id}}
            whop.update_membership(ms.id, cancel_at_period_end=True, cancel_option="too_expensive")
            for event_type, data in [("refund.created", refund)] * 2 + [
                ("membership.cancel_at_period_end_changed", ms.id)
            ] * 2:
                await _deliver(live, endpoint, event_type, data, MAIN)
            while await Worker(runtime).run_once():
                pass
            whop.update_membership(ms.id, status="canceled")
            for _ in range(2):
                await _deliver(live, endpoint, "membership.deactivated", ms.id, MAIN)
            while await Worker(runtime).run_once():
                pass
        told = await _lines(twenty, opp["id"])
        again = await run_sync(runtime, kind="reconcile", company_id=MAIN)
        after = await _lines(twenty, opp["id"])
    names = [a["name"] for a in told if a["id"] not in {h["id"] for h in history}]
    assert sorted(names) == sorted(
        ["whopPayment.renewed", "whopPayment.refunded", "whopMembership.cancel_scheduled", "whopMembership.canceled"]
    ), told
    for line in told:
        assert line["targetPersonId"] == person["id"], "on the buyer's timeline too"
        assert title in line["linkedRecordCachedName"]
    assert again.status == "succeeded" and after == told, "a reconciliation adds nothing"


# Processes ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _serve(live: LiveWorld, role: str, logs: Path) -> Iterator[str]:
    """`whop-twenty-bridge serve --role ROLE` as its own process, on the session's database."""
    port = free_port()
    log = (logs / f"serve-{role}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--role", role, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=live.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (logs / f"serve-{role}.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"serve --role {role} did not start: " + (logs / f"serve-{role}.log").read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


async def test_a_web_process_takes_the_webhook_and_a_worker_process_applies_it(live: LiveWorld, tmp_path: Path) -> None:
    ms = _pick(live, "active", 3)
    live.whop.update_membership(ms.id, status="canceled")
    with _serve(live, "web", tmp_path) as web, _serve(live, "worker", tmp_path) as worker:
        assert httpx.get(worker + "/readyz", timeout=10).status_code == 200, (
            "the worker reaches the database and Twenty"
        )
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await live.whop.deliver(
                f"{web}/webhooks/whop", "membership.updated", ms.id, WEBHOOK_SECRET, client=client, company_id=MAIN
            )
        assert answer.status_code == 200, answer.text
        shown = None
        deadline = time.monotonic() + 90
        async with live.runtime() as runtime, runtime.twenty() as twenty:
            while time.monotonic() < deadline:
                shown = (await _one(twenty, OPPORTUNITY, ms.id, "id whopMembershipId whopMembershipStatus"))[
                    "whopMembershipStatus"
                ]
                if shown == "CANCELED":
                    break
                time.sleep(1)
    assert shown == "CANCELED", (tmp_path / "serve-worker.log").read_text()[-3000:]


# Several companies -------------------------------------------------------------------------------


async def test_two_companies_sync_into_one_workspace_each_under_its_own_name(live: LiveWorld) -> None:
    two = live.two_companies()
    for company, result in two.syncs.items():
        assert result.status == "succeeded", (company, result.problems)
        assert not [p for p in result.problems if p["kind"] == "failed"], result.problems
    whop = live.whop
    async with live.runtime() as runtime, runtime.twenty() as twenty:
        for seeded in (two.a, two.b):
            opportunities = await by_key(
                twenty, OPPORTUNITY, seeded.membership_ids, "id whopMembershipId whopCompanyId whopCompanyName"
            )
            assert set(opportunities) == set(seeded.membership_ids)
            assert {o["whopCompanyId"] for o in opportunities.values()} == {seeded.company_id}
            assert {o["whopCompanyName"] for o in opportunities.values()} == {seeded.title}
            products = await by_key(twenty, WHOP_PRODUCT, seeded.product_ids, "id whopProductId whopCompanyId")
            assert {p["whopCompanyId"] for p in products.values()} == {seeded.company_id}
        buyer = whop.user_by_email(two.shared_email)
        assert buyer is not None
        people = await by_key(twenty, PERSON, [buyer.id], "id whopUserId")
        both = [m for m in whop.memberships.values() if m.user_id == buyer.id and m.company_id in (SHOP_A, SHOP_B)]
        theirs = await by_key(twenty, OPPORTUNITY, [m.id for m in both], "id whopMembershipId pointOfContactId")
    assert {m.company_id for m in both} == {SHOP_A, SHOP_B}, "the seed gives the shared buyer a membership at each"
    assert len(people) == 1, "a buyer of both companies is one Person"
    assert {o["pointOfContactId"] for o in theirs.values()} == {people[buyer.id]["id"]}


async def test_company_as_signed_payment_webhook_naming_company_bs_payment_leaves_it_as_it_was(
    live: LiveWorld,
) -> None:
    """A's correctly signed `payment.succeeded` carries B's payment id with A's company, a huge
    amount and a 2030 date; the worker applies it, and B's WhopPayment in Twenty is unchanged."""
    two = live.two_companies()
    payment_id = two.b.payment_ids[0]
    forged = live.whop.render(payment_id)
    forged.update(account_id=SHOP_A, paid_at="2030-01-01T00:00:00Z", updated_at="2030-01-01T00:00:00Z")
    for money in ("subtotal", "total", "usd_total", "presentment_total", "amount_after_fees"):
        if isinstance(forged.get(money), dict):
            forged[money] = {**forged[money], "amount": "99999999.00"}
    before, after = await _delivered_by_a(live, WHOP_PAYMENT, payment_id, "payment.succeeded", forged)
    assert after == before, "B's payment is left as it was"


async def test_company_as_signed_product_deleted_webhook_naming_company_bs_product_leaves_it_as_it_was(
    live: LiveWorld,
) -> None:
    two = live.two_companies()
    product_id = two.b.product_ids[0]
    product = live.whop.render(product_id)
    product["account"] = {**product["account"], "id": SHOP_A}
    before, after = await _delivered_by_a(live, WHOP_PRODUCT, product_id, "product.deleted", product)
    assert after == before, "B's product is left as it was"


async def _delivered_by_a(
    live: LiveWorld, obj: ObjectApi, key: str, event_type: str, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """B's record before and after company A's signed delivery of `data` is applied."""
    two = live.two_companies()
    selection = _selection(obj)
    async with live.runtime() as runtime, runtime.twenty() as twenty:
        before = await _one(twenty, obj, key, selection)
        async with _endpoint(runtime) as endpoint:
            await _deliver(live, endpoint, event_type, data, SHOP_A, two.secrets[SHOP_A])
            await Worker(runtime).run_once()
        after = await _one(twenty, obj, key, selection)
    return before, after


def _selection(obj: ObjectApi) -> str:
    """Every field the bridge owns on `obj`: what 'left exactly as it was' compares."""
    from bridge.twenty.values import read_selection

    return read_selection(load_data_model(), obj.singular, obj.selection)
