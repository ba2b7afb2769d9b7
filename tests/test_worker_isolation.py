"""One bad event fails alone, with its own error; the events claimed with it apply (issue 13).

Each hostile delivery below is signed, so it passes the endpoint and lands in the inbox beside
30 ordinary ones; one worker pass claims them all together.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from bridge.store import inbox
from tests.sync.conftest import COMPANY
from tests.test_worker import Bridge, _bridge

GOOD = 30
OTHER_COMPANY = "biz_othercompany"  # seeded by make_world, not connected

Hostile = Callable[[dict[str, Any]], None]  # changes a signed envelope in place


@pytest.fixture
async def bridge(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path, members=34, memberships=40):
        yield b


async def _ours(b: Bridge) -> list[Any]:
    return list((await b.world.whop_lists())["memberships"])


async def deliver_good(b: Bridge, memberships: list[Any]) -> None:
    """30 memberships change at Whop; each delivery carries the changed record."""
    for i, ms in enumerate(memberships[:GOOD]):
        b.world.whop.update_membership(ms.id, status="canceled")
        response = await b.deliver("membership.updated", ms.id, webhook_id=f"msg_good_{i:02d}")
        assert response.status_code == 200


async def assert_good_applied(b: Bridge, memberships: list[Any]) -> None:
    events = {e.webhook_id: e for e in await inbox.list_events(b.store, limit=1000)}
    good = {k: e for k, e in events.items() if k.startswith("msg_good_")}
    assert len(good) == GOOD
    assert {e.status for e in good.values()} == {"applied"}, {k: (e.status, e.last_error) for k, e in good.items()}
    assert {b.opportunity(ms.id)["whopMembershipStatus"] for ms in memberships[:GOOD]} == {"CANCELED"}
    assert not [e for e in events.values() if e.status == "processing"], "nothing is left claimed"


def _set(path: str, value: Any) -> Hostile:
    """Set `data.a.b` (or a top-level field) of the envelope."""

    def change(envelope: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = envelope
        for name in parents:
            target = target[name]
        target[last] = value

    return change


# Deliveries that cannot be applied: they fail (their error kept), the others apply.
FAILS_ALONE: dict[str, tuple[Hostile, str]] = {
    "an envelope timestamp of 1e300": (_set("timestamp", 1e300), "timestamp"),
    "an envelope timestamp of 20 digits": (_set("timestamp", "12345678901234567890"), "timestamp"),
    "an id over 64 KB": (_set("data.id", "mem_" + "x" * 70_000), "not a Whop membership id"),
    "the id '..'": (_set("data.id", ".."), "not a Whop membership id"),
    "the id '.'": (_set("data.id", "."), "not a Whop membership id"),
    "an id that is an object": (_set("data.id", {"$ne": None}), "not a Whop membership id"),
    "an id with a slash": (_set("data.id", "mem_1/../../products"), "not a Whop membership id"),
}


@pytest.mark.parametrize("case", list(FAILS_ALONE))
async def test_an_event_that_cannot_be_applied_fails_alone_and_its_group_mates_apply(bridge: Bridge, case: str) -> None:
    change, error = FAILS_ALONE[case]
    memberships = await _ours(bridge)
    await deliver_good(bridge, memberships)
    victim = memberships[GOOD]  # a membership of its own: a shared one would share the failure
    bridge.world.whop.update_membership(victim.id, status="past_due")
    envelope = bridge.world.whop.event("membership.updated", victim.id, COMPANY, webhook_id="msg_hostile")
    change(envelope)
    assert (await bridge.post(envelope)).status_code == 200
    whop_paths_before = len(bridge.world.whop.stats.requests)

    worker = bridge.worker()
    assert await worker.run_once() == GOOD + 1

    await assert_good_applied(bridge, memberships)
    bad = await inbox.get_event(bridge.store, "msg_hostile")
    assert bad is not None and bad.status in ("failed", "dead"), bad
    assert error in (bad.last_error or ""), bad.last_error
    assert len(bad.last_error or "") < 1000, "the error names the problem, it does not quote the payload"
    paths = [r.path for r in list(bridge.world.whop.stats.requests)[whop_paths_before:]]
    assert all(p.startswith("/api/v1/memberships/mem_") for p in paths), paths
    assert bridge.opportunity(victim.id)["whopMembershipStatus"] != "PAST_DUE"
    # A second pass does not hand the good ones out again, nor trip over the bad one.
    await worker.run_once()
    assert (await inbox.counts(bridge.store))["applied"] == GOOD


# Payload fields the bridge only takes as a hint: in doubt, it reads the record from Whop.
REREAD: dict[str, Hostile] = {
    "updated_at 1e300": _set("data.updated_at", 1e300),
    "updated_at of 20 digits": _set("data.updated_at", "12345678901234567890"),
    "canceled_at -1e300": _set("data.canceled_at", -1e300),
    "a price that is not money": _set("data.renewal_price", {"amount": "NaN", "currency": 7}),
    # Money Twenty cannot hold (CURRENCY amountMicros is a 64-bit integer) is never written.
    "an amount near 1E+54": _set("data.renewal_price.amount", "1E+54"),
    "an amount of 1E+400": _set("data.renewal_price.amount", "1E+400"),
    "an amount one cent over 64-bit micros": _set("data.renewal_price.amount", "9223372036854.78"),
}


@pytest.mark.parametrize("case", list(REREAD))
async def test_a_payload_the_bridge_cannot_read_is_read_again_from_whop(bridge: Bridge, case: str) -> None:
    memberships = await _ours(bridge)
    await deliver_good(bridge, memberships)
    victim = memberships[GOOD]
    bridge.world.whop.update_membership(victim.id, status="past_due")
    envelope = bridge.world.whop.event("membership.updated", victim.id, COMPANY, webhook_id="msg_hostile")
    REREAD[case](envelope)
    assert (await bridge.post(envelope)).status_code == 200

    assert await bridge.worker().run_once() == GOOD + 1

    await assert_good_applied(bridge, memberships)
    event = await inbox.get_event(bridge.store, "msg_hostile")
    assert event is not None and event.status == "applied", event
    assert bridge.opportunity(victim.id)["whopMembershipStatus"] == "PAST_DUE", "Whop's state, read again"


async def test_a_record_whop_refuses_fails_only_its_own_event(bridge: Bridge) -> None:
    memberships = await _ours(bridge)
    await deliver_good(bridge, memberships)
    foreign = next(m for m in bridge.world.whop.memberships.values() if m.company_id == OTHER_COMPANY)
    # Only an id: the worker reads the record from Whop, which refuses it (403).
    await bridge.deliver("membership.updated", {"id": foreign.id}, webhook_id="msg_refused")

    assert await bridge.worker().run_once() == GOOD + 1

    await assert_good_applied(bridge, memberships)
    refused = await inbox.get_event(bridge.store, "msg_refused")
    assert refused is not None and refused.status in ("failed", "dead")
    assert "403" in (refused.last_error or "")


async def test_a_whop_member_refused_while_linking_fails_nobody(bridge: Bridge) -> None:
    memberships = await _ours(bridge)
    await deliver_good(bridge, memberships)
    victim = memberships[GOOD]
    foreign_member = next(m for m in bridge.world.whop.members.values() if m.company_id == OTHER_COMPANY)
    bridge.world.whop.update_membership(victim.id, status="past_due")
    envelope = bridge.world.whop.event("membership.updated", victim.id, COMPANY, webhook_id="msg_member")
    data = copy.deepcopy(envelope["data"])
    data["member_id"] = foreign_member.id  # a person the bridge has not written: it asks Whop
    data["user_id"] = None
    envelope["data"] = data
    assert (await bridge.post(envelope)).status_code == 200

    assert await bridge.worker().run_once() == GOOD + 1

    await assert_good_applied(bridge, memberships)


async def test_money_whop_serves_beyond_what_twenty_holds_fails_that_event_alone_with_the_reason(
    bridge: Bridge,
) -> None:
    memberships = await _ours(bridge)
    await deliver_good(bridge, memberships)
    victim = memberships[GOOD]
    before = bridge.opportunity(victim.id)
    bridge.world.whop.update_membership(victim.id, status="past_due", renewal_price=Decimal("1E+20"))
    await bridge.deliver("membership.updated", {"id": victim.id}, webhook_id="msg_huge")

    assert await bridge.worker().run_once() == GOOD + 1

    await assert_good_applied(bridge, memberships)
    event = await inbox.get_event(bridge.store, "msg_huge")
    assert event is not None and event.status in ("failed", "dead"), event
    assert "beyond what Twenty can hold" in (event.last_error or ""), event.last_error
    assert bridge.opportunity(victim.id) == before, "never half-written"
