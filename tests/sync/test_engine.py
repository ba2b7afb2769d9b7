"""Full sync into Twenty: exact, idempotent, resumable, and careful with what people curate."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bridge.runtime import Runtime, Transports
from bridge.services import run_sync
from bridge.store import runs as run_store
from bridge.sync.mapping import person_key, status_value
from bridge.sync.objects import OBJECTS

from .conftest import SHARED_EMAIL, World, make_world, micros


def _by(records: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in records if r.get(key)}


async def test_full_sync_makes_one_record_per_whop_object_linked_and_exact(world: World) -> None:
    result = await run_sync(world.runtime, kind="full")
    assert result.status == "succeeded"
    whop = await world.whop_lists()

    people = [p for p in world.people() if p.get("whopUserId")]
    keys = Counter(p["whopUserId"] for p in people)
    assert set(keys) == {person_key(m) for m in whop["members"]}
    assert max(keys.values()) == 1, "one Person per Whop user"

    products = _by(world.products(), "whopProductId")
    assert set(products) == {p.id for p in whop["products"]}

    opps = world.opportunities()
    by_membership = Counter(o.get("whopMembershipId") for o in opps)
    assert set(by_membership) == {m.id for m in whop["memberships"]}
    assert max(by_membership.values()) == 1, "one Opportunity per membership"

    people_by_key = _by(people, "whopUserId")
    for ms in whop["memberships"]:
        opp = next(o for o in opps if o["whopMembershipId"] == ms.id)
        person = people_by_key[ms.user_id or ms.member_id]
        assert opp["pointOfContactId"] == person["id"], f"{ms.id} linked to its Person"
        assert opp["whopProductId"] == products[ms.product_id]["id"], f"{ms.id} linked to its WhopProduct"
        assert opp["whopMembershipStatus"] == status_value(ms.status)
        price = ms.renewal_price or ms.initial_price
        if price is not None and "amount" in opp and opp["amount"]:
            assert opp["amount"]["amountMicros"] == micros(price.amount)
            assert opp["amount"]["currencyCode"] == price.currency.upper()


async def test_a_full_sync_runs_every_checkpoint_phase_the_objects_declare(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An object declared with a phase but never driven by `SyncEngine._run` would never be synced.
    world = await make_world(tmp_path, "2.x", members=6, memberships=8)
    done: set[str] = set()
    save = run_store.save_checkpoint

    async def noting(engine: Any, run_id: int, checkpoint: dict[str, Any], counts: Any) -> None:
        done.update(checkpoint["done"])
        await save(engine, run_id, checkpoint, counts)

    monkeypatch.setattr(run_store, "save_checkpoint", noting)

    await run_sync(world.runtime, kind="full")

    declared = {phase for obj in OBJECTS for phase in obj.phases}
    assert declared and declared <= done, f"declared but never run: {sorted(declared - done)}"


async def test_a_second_full_sync_writes_nothing(world: World) -> None:
    await run_sync(world.runtime, kind="full")
    world.twenty.reset_stats()

    again = await run_sync(world.runtime, kind="full")

    assert world.twenty.stats["data_writes"] == 0
    assert world.twenty.stats["data_calls"] == 0, "unchanged records cost no Twenty call at all"
    assert again.counts["opportunity"].get("unchanged") == len(world.opportunities())


async def test_a_person_already_in_twenty_with_the_members_email_is_linked_and_keeps_its_name(
    tmp_path: Any,
) -> None:
    world = await make_world(tmp_path, "2.x")
    crm = world.twenty.add_record(
        "people", {"name": {"firstName": "Ann", "lastName": "Curated"}, "emails": {"primaryEmail": SHARED_EMAIL}}
    )
    await run_sync(world.runtime, kind="full")

    holders = [p for p in world.people() if (p.get("emails") or {}).get("primaryEmail") == SHARED_EMAIL]
    assert len(holders) == 1, "linked, not duplicated"
    assert holders[0]["id"] == crm["id"]
    assert holders[0]["whopUserId"], "the existing Person now carries the Whop key"
    assert holders[0]["name"] == {"firstName": "Ann", "lastName": "Curated"}, "the curated name is kept"


@pytest.mark.parametrize("dialect", ["2.x", "1.x"])
async def test_an_email_owned_by_another_whop_user_is_reported_and_the_rest_are_written(
    tmp_path: Any, dialect: str
) -> None:
    world = await make_world(tmp_path, dialect)
    world.twenty.add_record(
        "people",
        {
            "name": {"firstName": "Someone", "lastName": "Else"},
            "emails": {"primaryEmail": SHARED_EMAIL},
            "whopUserId": "user_belongs_to_someone_else",
        },
    )
    result = await run_sync(world.runtime, kind="full")

    conflicts = [p for p in result.problems if p["kind"] == "conflict"]
    assert conflicts and SHARED_EMAIL in conflicts[0]["reason"]
    whop = await world.whop_lists()
    written = {p["whopUserId"] for p in world.people() if p.get("whopUserId")}
    assert {person_key(m) for m in whop["members"]} <= written, "every member still became a Person"
    other = [p for p in world.people() if p.get("whopUserId") == "user_belongs_to_someone_else"]
    assert len(other) == 1, "the other user's Person was not taken over"


class Crash(Exception):
    """Stands in for the process dying mid-run (the run is left as `running`)."""


async def test_a_sync_stopped_midway_resumes_and_creates_no_duplicate(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x", members=120, memberships=150, TWENTY_BATCH_SIZE=20)

    def stop_after_one_page(obj: str, counts: dict[str, dict[str, int]]) -> None:
        if obj == "person" and counts.get("person", {}).get("created", 0) > 0:
            raise Crash  # right after the first page of people reached Twenty

    with pytest.raises(Crash):
        await run_sync(world.runtime, kind="full", progress=stop_after_one_page)
    assert 0 < len(world.people()) < 120

    result = await run_sync(world.runtime, kind="full")

    assert result.resumed_from is not None and "products" in result.resumed_from["done"]
    keys = Counter(p["whopUserId"] for p in world.people() if p.get("whopUserId"))
    assert max(keys.values()) == 1 and len(keys) == len({person_key(m) for m in (await world.whop_lists())["members"]})
    assert len({o["whopMembershipId"] for o in world.opportunities()}) == len(world.opportunities()) == 150


async def test_dry_run_reports_and_writes_nothing(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    result = await run_sync(world.runtime, kind="full", dry_run=True)
    assert world.twenty.stats["data_writes"] == 0
    assert world.people() == [] and world.opportunities() == []
    assert result.counts["person"]["created"] == 40
    assert result.counts["whopProduct"]["created"] == 3


async def test_an_unknown_whop_status_adds_a_select_option_instead_of_failing(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    membership = (await world.whop_lists())["memberships"][0]
    world.whop.update_membership(membership.id, status="paused_for_vacation")

    result = await run_sync(world.runtime, kind="full")

    assert not [p for p in result.problems if p["kind"] == "failed"]
    status_field = next(
        f for f in world.twenty.object_by_name("opportunity")["fieldsList"] if f["name"] == "whopMembershipStatus"
    )
    assert "PAUSED_FOR_VACATION" in {o["value"] for o in status_field["options"]}
    opp = next(o for o in world.opportunities() if o["whopMembershipId"] == membership.id)
    assert opp["whopMembershipStatus"] == "PAUSED_FOR_VACATION"


async def test_429_storms_from_both_sides_slow_the_sync_but_lose_nothing(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x", TWENTY_REQUESTS_PER_MINUTE=6000)
    start = asyncio.get_running_loop().time()
    world.twenty.set_rate_limit(3)
    world.whop.inject(status=429, count=4, retry_after=0.01)

    async def relax() -> None:
        # A storm of several refusals, then Twenty's bucket refills.
        while world.twenty.stats["throttled"] < 3:
            await asyncio.sleep(0.01)
        world.twenty.set_rate_limit(None)

    relaxer = asyncio.create_task(relax())
    result = await run_sync(world.runtime, kind="full")
    await relaxer
    assert result.status == "succeeded"
    assert world.twenty.stats["throttled"] > 0, "Twenty did throttle"
    assert len(world.opportunities()) == 55 and len([p for p in world.people() if p.get("whopUserId")]) == 40
    assert asyncio.get_running_loop().time() - start < 30


async def test_a_membership_deleted_at_whop_is_marked_by_the_next_reconciliation(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    await run_sync(world.runtime, kind="full")
    doomed = (await world.whop_lists())["memberships"][0]
    world.whop.delete_membership(doomed.id)
    world.twenty.reset_stats()

    result = await run_sync(world.runtime, kind="reconcile")

    opp = next(o for o in world.opportunities() if o["whopMembershipId"] == doomed.id)
    assert opp["whopMembershipStatus"] == "DELETED", "kept in the CRM, marked as gone"
    assert result.counts["opportunity"]["gone"] == 1
    assert world.twenty.stats["data_writes"] == 1, "only the gone membership was written"
    again = await run_sync(world.runtime, kind="reconcile")
    assert again.counts["opportunity"].get("gone", 0) == 0, "marked once"


async def test_a_reconciliation_with_nothing_changed_makes_no_twenty_call(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "1.x")
    await run_sync(world.runtime, kind="full")
    world.twenty.reset_stats()
    result = await run_sync(world.runtime, kind="reconcile")
    assert world.twenty.stats["data_calls"] == 0 and result.twenty_calls == 0
    assert result.whop_calls > 0, "it did walk Whop's lists"


async def test_missed_webhooks_are_repaired_by_the_next_reconciliation(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    await run_sync(world.runtime, kind="full")
    memberships = (await world.whop_lists())["memberships"]
    # Changes happen at Whop; their webhooks never arrive.
    world.whop.update_membership(memberships[0].id, status="canceled", cancel_at_period_end=True)
    world.whop.update_membership(memberships[1].id, status="past_due")

    await run_sync(world.runtime, kind="reconcile")

    by_id = {o["whopMembershipId"]: o for o in world.opportunities()}
    assert by_id[memberships[0].id]["whopMembershipStatus"] == "CANCELED"
    assert by_id[memberships[0].id]["whopCancelAtPeriodEnd"] is True
    assert by_id[memberships[1].id]["whopMembershipStatus"] == "PAST_DUE"


async def _edit_in_twenty(world: World, plural: str, record_id: str, values: dict[str, Any]) -> None:
    """What a person does in Twenty's UI: a plain update through its API."""
    import httpx

    async with httpx.AsyncClient(transport=world.transports.twenty, base_url="http://twenty.test") as http:
        response = await http.patch(
            f"/rest/{plural}/{record_id}", json=values, headers={"Authorization": "Bearer twenty-test-key"}
        )
        assert response.status_code == 200, response.text


async def test_deep_repairs_a_bridge_field_a_person_overwrote_and_keeps_their_curated_edits(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    await run_sync(world.runtime, kind="full")
    ms = (await world.whop_lists())["memberships"][0]
    opp = next(o for o in world.opportunities() if o["whopMembershipId"] == ms.id)
    wrong = "EXPIRED" if opp["whopMembershipStatus"] != "EXPIRED" else "ACTIVE"
    await _edit_in_twenty(world, "opportunities", opp["id"], {"whopMembershipStatus": wrong, "name": "Big deal"})

    plain = await run_sync(world.runtime, kind="reconcile")
    assert plain.twenty_calls == 0, "a plain reconciliation trusts its shadows"
    deep = await run_sync(world.runtime, kind="deep")

    repaired = next(o for o in world.opportunities() if o["whopMembershipId"] == ms.id)
    assert repaired["whopMembershipStatus"] == status_value(ms.status), "the bridge-owned field is Whop's again"
    assert repaired["name"] == "Big deal", "the name a person chose is kept"
    assert deep.counts["opportunity"]["changed_in_twenty"] == 1
    assert any(p["kind"] == "repaired" and "whopMembershipStatus" in p["reason"] for p in deep.problems)


@pytest.mark.parametrize("restore", [False, True])
async def test_deep_reports_a_record_deleted_in_twenty_and_restores_it_only_when_allowed(
    tmp_path: Any, restore: bool
) -> None:
    world = await make_world(tmp_path, "2.x", BRIDGE_RESTORE_DELETED=restore)
    await run_sync(world.runtime, kind="full")
    victim = next(p for p in world.people() if p.get("whopUserId"))
    world.twenty.soft_delete("people", victim["id"])

    deep = await run_sync(world.runtime, kind="deep")

    reported = [p for p in deep.problems if p["key"] == victim["whopUserId"]]
    assert reported and "deleted in Twenty" in reported[0]["reason"]
    alive = {p["id"] for p in world.people()}
    assert (victim["id"] in alive) is restore


async def test_a_curated_name_left_alone_is_sent_back_as_twenty_has_it(tmp_path: Any) -> None:
    """Twenty 1.x may blank a composite an upsert omits: the bridge re-sends the person's value."""
    import json

    import httpx

    world = await make_world(tmp_path, "1.x")
    world.twenty.add_record(
        "people", {"name": {"firstName": "Ann", "lastName": "Curated"}, "emails": {"primaryEmail": SHARED_EMAIL}}
    )
    sent: list[dict[str, Any]] = []
    inner = world.transports.twenty
    assert inner is not None

    class Capture(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/graphql":
                body = json.loads(request.content)
                if "createPeople" in body["query"]:
                    sent.extend(body["variables"]["data"])
            return await inner.handle_async_request(request)

    world.transports.twenty = Capture()
    await run_sync(world.runtime, kind="full")

    ann = next(r for r in sent if (r.get("emails") or {}).get("primaryEmail") == SHARED_EMAIL)
    assert ann["name"] == {"firstName": "Ann", "lastName": "Curated"}


async def test_a_server_that_refuses_200_records_a_call_is_answered_by_halving_and_the_sync_finishes(
    tmp_path: Any,
) -> None:
    world = await make_world(tmp_path, "2.x", members=150, memberships=170)
    assert world.settings.twenty_batch_size == 200, "the default writes 200 records a call"
    world.twenty.workspace.max_upsert = 50  # a plan that takes fewer records a call

    result = await run_sync(world.runtime, kind="full")

    assert result.status == "succeeded"
    whop = await world.whop_lists()
    assert {p["whopUserId"] for p in world.people() if p.get("whopUserId")} == {person_key(m) for m in whop["members"]}
    assert {o["whopMembershipId"] for o in world.opportunities()} == {m.id for m in whop["memberships"]}
    stats = world.twenty.stats
    refused = stats["data_calls"] - stats["data_reads"] - stats["data_writes"]
    assert refused == 1, "the size the server named is remembered: one refusal for the whole run"


async def test_records_twenty_already_holds_are_not_written_again_when_the_bridge_lost_its_shadows(
    world: World,
) -> None:
    """A sync killed after Twenty stored a batch but before the bridge noted it (or a lost
    database): the next run reads what Twenty has and writes nothing it already holds."""
    import sqlalchemy as sa

    from bridge.store.tables import record_shadows

    await run_sync(world.runtime, kind="full")
    async with world.runtime.store.begin() as conn:
        await conn.execute(sa.delete(record_shadows))
    world.twenty.reset_stats()

    again = await run_sync(world.runtime, kind="full")

    assert again.status == "succeeded"
    assert world.twenty.stats["data_writes"] == 0, "every record was already there"
    assert again.counts["opportunity"].get("unchanged") == len(world.opportunities())
    third = await run_sync(world.runtime, kind="full")
    assert third.twenty_calls == 0, "and the shadows are back"


async def test_a_record_with_money_twenty_cannot_hold_is_reported_alone_and_never_marked_deleted(
    tmp_path: Any,
) -> None:
    world = await make_world(tmp_path, "2.x")
    await run_sync(world.runtime, kind="full")
    victim = (await world.whop_lists())["memberships"][0]
    before = next(o for o in world.opportunities() if o["whopMembershipId"] == victim.id)
    world.whop.update_membership(victim.id, status="past_due", renewal_price=Decimal("1E+20"))
    other = (await world.whop_lists())["memberships"][1]
    world.whop.update_membership(other.id, status="past_due")

    result = await run_sync(world.runtime, kind="full")

    failed = [p for p in result.problems if p["kind"] == "failed"]
    assert [(p["object"], p["key"]) for p in failed] == [("opportunity", victim.id)], failed
    assert "beyond what Twenty can hold" in failed[0]["reason"]
    after = {o["whopMembershipId"]: o for o in world.opportunities()}
    assert after[victim.id] == before, "left as Twenty has it: not half-written, not marked deleted"
    assert after[other.id]["whopMembershipStatus"] == "PAST_DUE", "the rest of the page is written"


async def test_the_whop_walks_for_revenue_start_before_twentys_start_up_reads_are_answered(tmp_path: Any) -> None:
    """Twenty's first data call of the run (what people deleted) is held until Whop is asked for
    payments: held long, unless the run reads the revenue facts without waiting on Twenty."""
    world = await make_world(tmp_path, "2.x")
    whop_asked = asyncio.Event()
    held: list[bool] = []

    async def whop(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/payments"):
            whop_asked.set()
        await world.whop(scope, receive, send)

    async def twenty(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/graphql" and not held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(whop_asked.wait(), 10)
            held.append(whop_asked.is_set())
        await world.twenty(scope, receive, send)

    transports = Transports(twenty=httpx.ASGITransport(app=twenty), whop=httpx.ASGITransport(app=whop))
    async with await Runtime.open(world.settings, transports=transports) as runtime:
        result = await run_sync(runtime, kind="full")
    assert result.status == "succeeded"
    assert held == [True], "Whop was asked for payments while Twenty's first read was still unanswered"


async def test_a_backfill_reads_twenty_once_for_several_batches_of_new_records(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x", members=100, memberships=120, TWENTY_BATCH_SIZE=20)

    result = await run_sync(world.runtime, kind="full")

    assert result.status == "succeeded"
    ops = world.twenty.stats.operations
    upserts = {name: n for name, n in ops.items() if name.startswith("create")}
    assert upserts["createPeople"] >= 5 and upserts["createOpportunities"] >= 6
    reads = {name: n for name, n in ops.items() if name in ("people", "opportunities", "whopPayments")}
    for plural, n in reads.items():
        writes = upserts["create" + plural[0].upper() + plural[1:]]
        assert n <= writes // 2 + 1, f"{plural}: {n} reads for {writes} upserts"
    assert len(world.people()) == 100 and len(world.opportunities()) == 120, "every record once"
