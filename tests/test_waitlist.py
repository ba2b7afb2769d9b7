"""Waitlists are the top of the pipeline (bridge/sync/waitlist.py), end to end through the
webhook endpoint, the inbox and the worker, and through reconciliations, on both Twenty
dialects: a signup is a Person and an Opportunity at the stage WAITLISTED, and when it becomes a
membership that Opportunity is the membership's, whatever the order of the deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.services import run_sync
from bridge.store import inbox
from bridge.sync.waitlist import entry_record
from bridge.whop.models import WaitlistEntry
from tests.sync.conftest import COMPANY
from tests.test_worker import Bridge, _bridge


@pytest.fixture(params=["2.x", "1.x"])
async def b(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Bridge]:
    async for bridge in _bridge(tmp_path, dialect=request.param, members=6, memberships=8):
        yield bridge


async def apply(b: Bridge, *deliveries: tuple[str, Any, str]) -> None:
    for event_type, data, webhook_id in deliveries:
        assert (await b.deliver(event_type, data, webhook_id=webhook_id)).status_code == 200
    worker = b.worker()
    while await worker.run_once():
        pass


def signup(b: Bridge, name: str = "Wanda Waits") -> Any:
    plan = next(p for p in b.world.whop.plans.values() if p.company_id == COMPANY)
    return b.world.whop.add_waitlist_entry(COMPANY, plan.id, name=name)


def records_of(b: Bridge, entry: Any) -> list[dict[str, Any]]:
    """Every Opportunity the signup became: by its key, or by where it started."""
    return [
        o
        for o in b.world.opportunities()
        if o.get("whopWaitlistEntryId") == entry.id or o.get("whopMembershipId") == entry.id
    ]


def the_record(b: Bridge, entry: Any) -> dict[str, Any]:
    found = records_of(b, entry)
    assert len(found) == 1, f"{len(found)} opportunities for {entry.id}"
    return found[0]


def person(b: Bridge, user_id: str) -> dict[str, Any]:
    found = [p for p in b.world.people() if p.get("whopUserId") == user_id]
    assert len(found) == 1
    return found[0]


async def test_a_signup_is_a_lead_that_becomes_its_membership(b: Bridge) -> None:
    entry = signup(b)
    await apply(b, ("entry.created", entry.id, "msg_wl_1"), ("entry.created", entry.id, "msg_wl_1"))

    lead = the_record(b, entry)
    assert (lead["stage"], lead["whopWaitlistStatus"], lead["whopMembershipId"]) == ("WAITLISTED", "PENDING", entry.id)
    who = person(b, entry.user_id)
    assert lead["pointOfContactId"] == who["id"] and who["name"]["firstName"] == "Wanda"
    assert lead["whopCompanyId"] == COMPANY and lead["name"].startswith("Wanda Waits")

    membership = b.world.whop.approve_waitlist_entry(entry.id)
    await apply(b, ("entry.approved", entry.id, "msg_wl_2"), ("membership.activated", membership.id, "msg_wl_3"))

    opp = the_record(b, entry)
    assert opp["id"] == lead["id"], "the lead is the membership's Opportunity, not a second record"
    assert (opp["whopMembershipId"], opp["whopMembershipStatus"]) == (membership.id, "ACTIVE")
    assert opp["stage"] == "CUSTOMER", "the stage moves on from WAITLISTED as the membership says"
    assert opp["whopWaitlistEntryId"] == entry.id, "it still says where it came from"

    # Late and replayed deliveries of the signup change nothing.
    created = b.world.whop.event("entry.created", entry.id, COMPANY)
    await apply(
        b,
        ("entry.created", created["data"], "msg_wl_4"),
        ("entry.approved", entry.id, "msg_wl_2"),
        ("entry.approved", entry.id, "msg_wl_5"),
        ("membership.updated", membership.id, "msg_wl_6"),
    )
    assert the_record(b, entry)["whopMembershipId"] == membership.id
    assert len([p for p in b.world.people() if p.get("whopUserId") == entry.user_id]) == 1
    assert (await inbox.counts(b.store))["failed"] == 0


async def test_a_membership_delivered_before_its_approval_takes_the_lead(b: Bridge) -> None:
    entry = signup(b, "Mona Member")
    await apply(b, ("entry.created", entry.id, "msg_first_1"))
    lead = the_record(b, entry)
    membership = b.world.whop.approve_waitlist_entry(entry.id)

    await apply(b, ("membership.activated", membership.id, "msg_first_2"))  # the approval comes later
    await apply(b, ("entry.approved", entry.id, "msg_first_3"))

    opp = the_record(b, entry)
    assert (opp["id"], opp["whopMembershipId"]) == (lead["id"], membership.id)


async def test_denied_and_deleted_signups_say_so(b: Bridge) -> None:
    denied, deleted = signup(b, "Dan Denied"), signup(b, "Del Deleted")
    await apply(b, ("entry.created", denied.id, "msg_no_1"), ("entry.created", deleted.id, "msg_no_2"))
    b.world.whop.update_waitlist_entry(denied.id, status="denied")
    gone = b.world.whop.event("entry.deleted", deleted.id, COMPANY)
    b.world.whop.delete_waitlist_entry(deleted.id)

    await apply(b, ("entry.denied", denied.id, "msg_no_3"), ("entry.deleted", gone["data"], "msg_no_4"))

    assert the_record(b, denied)["whopWaitlistStatus"] == "DENIED"
    assert the_record(b, deleted)["whopWaitlistStatus"] == "DELETED"
    assert the_record(b, deleted)["stage"] == "WAITLISTED", "a lead's stage is the sales team's after it is made"


async def test_a_reconciliation_brings_missed_signups_and_conversions_once(b: Bridge) -> None:
    entry = signup(b, "Rita Reconciled")
    await run_sync(b.world.runtime, kind="reconcile")
    lead = the_record(b, entry)
    assert lead["stage"] == "WAITLISTED"

    membership = b.world.whop.approve_waitlist_entry(entry.id)  # no webhook came
    result = await run_sync(b.world.runtime, kind="reconcile")

    opp = the_record(b, entry)
    assert (opp["id"], opp["whopMembershipId"], opp["stage"]) == (lead["id"], membership.id, "CUSTOMER")
    assert result.counts["opportunity"]["converted"] == 1
    b.world.twenty.reset_stats()
    again = await run_sync(b.world.runtime, kind="reconcile")
    assert b.world.twenty.stats["data_writes"] == 0
    assert again.counts.get("opportunity", {}).get("converted", 0) == 0, "a conversion is counted once"


async def test_another_companys_signup_is_never_written(b: Bridge) -> None:
    plan = next(p for p in b.world.whop.plans.values() if p.company_id != COMPANY)
    theirs = b.world.whop.add_waitlist_entry(plan.company_id, plan.id, name="Their Lead")
    data = {**b.world.whop.event("entry.created", theirs.id)["data"], "account_id": COMPANY}
    await apply(b, ("entry.created", data, "msg_theirs"))

    assert records_of(b, theirs) == []
    event = await inbox.get_event(b.store, "msg_theirs")
    assert event is not None and event.status != "applied"


@pytest.mark.parametrize(
    ("person_name", "product_title", "fields", "expected"),
    [
        ("Ada  Lovelace", "Pro Signals", {"user_name": "ada", "product_title": "Pro"}, "Ada Lovelace – Pro Signals"),
        (" ", None, {"user_name": "Ada L", "username": "ada", "product_title": "Pro"}, "Ada L – Pro"),
        (None, None, {"username": "ada", "product_id": "prod_1", "plan_id": "plan_1"}, "ada – prod_1"),
        (None, None, {"user_id": "user_1", "plan_id": "plan_1"}, "user_1 – plan_1"),
        (None, None, {}, "entry_1 – a waitlist"),
    ],
)
def test_a_lead_is_named_by_who_signed_up_and_for_what_best_name_first(
    person_name: str | None, product_title: str | None, fields: dict[str, Any], expected: str
) -> None:
    entry = WaitlistEntry(id="entry_1", **fields)
    record = entry_record(
        entry,
        person_name=person_name,
        product_title=product_title,
        person_id=None,
        product_id=None,
        company=None,
        current=None,
        last_written=None,
    )
    assert record["name"] == expected
