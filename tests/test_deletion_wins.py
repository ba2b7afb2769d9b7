"""A person's deletion wins: a record soft-deleted in Twenty stays deleted through webhooks,
reconciliations and full syncs (Twenty 2.x would restore it on upsert; 1.x silently skips it),
is reported once, and comes back only with BRIDGE_RESTORE_DELETED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.services import run_sync
from tests.sync.conftest import COMPANY
from tests.test_worker import Bridge, _bridge


@pytest.fixture(params=["2.x", "1.x"])
async def bridge(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, dialect=request.param):
        b.world.runtime.deletions.interval = 0  # look at every pass (a minute apart in production)
        yield b


def row(b: Bridge, plural: str, key: str, value: str) -> dict[str, Any]:
    (found,) = [r for r in b.world.twenty.records(plural) if r.get(key) == value]
    return found


async def test_a_deleted_opportunity_and_person_stay_deleted_through_webhooks_and_syncs(bridge: Bridge) -> None:
    fake, twenty = bridge.world.whop, bridge.world.twenty
    ms = next(m for m in fake.memberships.values() if m.company_id == COMPANY and m.status == "active")
    opportunity = row(bridge, "opportunities", "whopMembershipId", ms.id)
    person = row(bridge, "people", "whopUserId", ms.user_id or ms.member_id or "")
    twenty.soft_delete("opportunities", opportunity["id"])
    twenty.soft_delete("people", person["id"])

    fake.update_membership(ms.id, cancel_at_period_end=True)
    await bridge.deliver("membership.updated", ms.id)
    await bridge.worker().run_once()
    for kind in ("reconcile", "full"):
        result = await run_sync(bridge.world.runtime, kind=kind)
        assert result.status == "succeeded"

    assert row(bridge, "opportunities", "whopMembershipId", ms.id)["deletedAt"] is not None
    assert row(bridge, "people", "id", person["id"])["deletedAt"] is not None
    assert len([r for r in twenty.records("opportunities") if r.get("whopMembershipId") == ms.id]) == 1  # no copy


async def test_a_deletion_is_reported_once_not_at_every_run(bridge: Bridge) -> None:
    ms = next(m for m in bridge.world.whop.memberships.values() if m.company_id == COMPANY)
    bridge.world.twenty.soft_delete("opportunities", row(bridge, "opportunities", "whopMembershipId", ms.id)["id"])
    first = await run_sync(bridge.world.runtime, kind="reconcile")
    second = await run_sync(bridge.world.runtime, kind="reconcile")
    reported = [p for p in first.problems if p["kind"] == "deleted_in_twenty"]
    assert [(p["object"], p["key"]) for p in reported] == [("opportunity", ms.id)]
    assert "left deleted" in reported[0]["reason"]
    assert not [p for p in second.problems if p["kind"] == "deleted_in_twenty"]


async def test_a_record_a_person_restores_in_twenty_is_synced_again(bridge: Bridge) -> None:
    fake, twenty = bridge.world.whop, bridge.world.twenty
    ms = next(m for m in fake.memberships.values() if m.company_id == COMPANY and m.status == "active")
    opp_id = row(bridge, "opportunities", "whopMembershipId", ms.id)["id"]
    twenty.soft_delete("opportunities", opp_id)
    await run_sync(bridge.world.runtime, kind="reconcile")
    twenty.workspace.records_of(twenty.object_by_name("opportunity"))[opp_id]["deletedAt"] = None  # restored by hand
    fake.update_membership(ms.id, cancel_at_period_end=True)
    await run_sync(bridge.world.runtime, kind="reconcile")
    assert row(bridge, "opportunities", "id", opp_id)["whopCancelAtPeriodEnd"] is True


async def test_with_bridge_restore_deleted_the_record_comes_back(tmp_path: Any) -> None:
    async for b in _bridge(tmp_path, dialect="2.x"):
        b.world.runtime.deletions.interval = 0
        b.world.runtime.settings.restore_deleted = True
        ms = next(m for m in b.world.whop.memberships.values() if m.company_id == COMPANY and m.status == "active")
        opp_id = row(b, "opportunities", "whopMembershipId", ms.id)["id"]
        b.world.twenty.soft_delete("opportunities", opp_id)
        b.world.whop.update_membership(ms.id, cancel_at_period_end=True)
        result = await run_sync(b.world.runtime, kind="reconcile")
        assert [p["reason"] for p in result.problems if p["kind"] == "deleted_in_twenty"] == [
            "deleted in Twenty by a person; restored by the next write (BRIDGE_RESTORE_DELETED)"
        ]
        restored = row(b, "opportunities", "id", opp_id)
        assert restored["deletedAt"] is None and restored["whopCancelAtPeriodEnd"] is True
