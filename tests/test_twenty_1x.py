"""The whole bridge on Twenty 1.x, as the real 1.x server behaved (research/twenty-observed.md).

Provision, full sync, a resync that writes nothing, a webhook and a reconciliation, with members
who have no username, memberships with no cancellation reason and values cleared at Whop: on
1.x every TEXT column is NOT NULL, so a `null` refuses the whole batch (observed 1.19). The other
1.x facts each have a test here too: 60 of 200 upserted records answered (#17), an upsert onto a
soft-deleted record answering nothing (#9), REST ignoring `upsert` (#1: the bridge writes through
GraphQL) and a 500 right after a cache flush (#16, 1.22). E-mail uniqueness not being enforced
(#7) is covered on both dialects by tests/sync/test_engine.py's e-mail tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.services import provision_workspace, run_sync
from bridge.store import inbox
from bridge.sync.mapping import person_key
from tests.sync.conftest import World, make_world
from tests.test_worker import Bridge, _bridge, _memberships


@pytest.fixture
async def bridge_1x(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, dialect="1.x"):
        yield b


def _rest_writes(world: World) -> list[str]:
    return [op for op in world.twenty.stats.operations if op.startswith(("POST ", "PATCH ", "PUT ", "DELETE "))]


async def test_on_1x_a_full_sync_writes_members_without_username_and_a_resync_writes_nothing(tmp_path: Any) -> None:
    # 150 members in batches of 200: 1.x answers 60 records a call, the rest are read back.
    world = await make_world(tmp_path, "1.x", members=150, memberships=170, TWENTY_BATCH_SIZE=200)
    again = await provision_workspace(world.runtime)
    assert again.mutations == 0, "provisioning is idempotent on 1.x"
    world.twenty.reset_stats()

    result = await run_sync(world.runtime, kind="full")

    assert result.status == "succeeded"
    assert not [p for p in result.problems if p["kind"] == "failed"], result.problems
    whop = await world.whop_lists()
    people = {p["whopUserId"]: p for p in world.people() if p.get("whopUserId")}
    assert set(people) == {person_key(m) for m in whop["members"]}
    business = [m for m in whop["members"] if m.user is None]
    assert business, "the seed has buyers with no Whop user, so no username"
    assert {people[person_key(m)]["whopUsername"] for m in business} == {""}
    opps = {o["whopMembershipId"]: o for o in world.opportunities()}
    assert set(opps) == {m.id for m in whop["memberships"]}
    no_reason = [m for m in whop["memberships"] if not m.cancel_option and not m.cancellation_reason]
    assert no_reason and {opps[m.id]["whopCancelReason"] for m in no_reason} == {""}
    assert all(o["pointOfContactId"] and o["whopProductId"] for o in opps.values()), "short answers: every id known"
    assert _rest_writes(world) == [], "1.x ignores REST's upsert flag: records go through GraphQL"

    world.twenty.reset_stats()
    resync = await run_sync(world.runtime, kind="full")
    assert resync.status == "succeeded"
    assert world.twenty.stats["data_writes"] == 0 and world.twenty.stats["data_calls"] == 0
    assert Counter(p["whopUserId"] for p in world.people() if p.get("whopUserId")).most_common(1)[0][1] == 1


def _canceling(memberships: list[Any]) -> Any:
    return next(m for m in memberships if m.cancel_option and m.status == "canceling")


def _uncancel(b: Bridge, membership_id: str) -> None:
    """The buyer takes their cancellation back at Whop: the reason is cleared."""
    b.world.whop.update_membership(
        membership_id, status="active", cancel_at_period_end=False, cancel_option=None, cancellation_reason=None
    )


@pytest.mark.parametrize("dialect", ["1.x", "2.x"])
async def test_a_cancellation_reason_cleared_at_whop_is_cleared_in_twenty_by_the_webhook(
    tmp_path: Any, dialect: str
) -> None:
    async for b in _bridge(tmp_path, dialect=dialect):
        ms = _canceling(await _memberships(b))
        assert b.opportunity(ms.id)["whopCancelReason"], "the sync wrote the reason"
        _uncancel(b, ms.id)
        assert (await b.deliver("membership.updated", ms.id, webhook_id="msg_uncancel")).status_code == 200

        await b.worker().run_once()

        opp = b.opportunity(ms.id)
        assert opp["whopMembershipStatus"] == "ACTIVE" and opp["whopCancelAtPeriodEnd"] is False
        assert opp["whopCancelReason"] == ("" if dialect == "1.x" else None)
        counts = await inbox.counts(b.store)
        assert counts["applied"] == 1 and counts["failed"] == 0


async def test_on_1x_a_value_cleared_at_whop_whose_webhook_was_missed_is_cleared_by_the_reconciliation(
    bridge_1x: Bridge,
) -> None:
    ms = _canceling(await _memberships(bridge_1x))
    _uncancel(bridge_1x, ms.id)

    result = await run_sync(bridge_1x.world.runtime, kind="reconcile")

    assert result.status == "succeeded" and result.counts["opportunity"].get("updated") == 1
    assert bridge_1x.opportunity(ms.id)["whopCancelReason"] == ""


async def test_on_1x_a_person_deleted_in_twenty_is_reported_not_duplicated(bridge_1x: Bridge) -> None:
    world = bridge_1x.world
    member = next(m for m in (await world.whop_lists())["members"] if m.user is not None)
    (person,) = [p for p in world.people() if p["whopUserId"] == person_key(member)]
    world.twenty.soft_delete("people", person["id"])
    # A change at Whop, so the bridge writes the Person again.
    world.whop.update_member(member.id, status="joined" if member.status == "left" else "left")

    result = await run_sync(world.runtime, kind="reconcile")

    assert result.status == "succeeded"
    # 1.x answered nothing for the upsert and stored nothing: no second Person appears.
    same_key = [p for p in world.twenty.records("people") if p.get("whopUserId") == person_key(member)]
    assert [(p["id"], bool(p["deletedAt"])) for p in same_key] == [(person["id"], True)]
    assert [p for p in result.problems if p["key"] == person_key(member) and "deleted in Twenty" in p["reason"]]


async def test_on_1x_the_500_after_a_cache_flush_is_retried_by_the_worker_and_the_sync(bridge_1x: Bridge) -> None:
    world = bridge_1x.world
    ms = (await _memberships(bridge_1x))[0]
    world.whop.update_membership(ms.id, status="past_due")
    await bridge_1x.deliver("membership.updated", ms.id, webhook_id="msg_after_flush")
    world.twenty.flush_cache()

    await bridge_1x.worker().run_once()

    assert bridge_1x.opportunity(ms.id)["whopMembershipStatus"] == "PAST_DUE"
    assert (await inbox.counts(bridge_1x.store))["applied"] == 1

    world.whop.update_membership(ms.id, status="active")
    world.twenty.flush_cache()
    result = await run_sync(world.runtime, kind="reconcile")
    assert result.status == "succeeded"
    assert bridge_1x.opportunity(ms.id)["whopMembershipStatus"] == "ACTIVE"
