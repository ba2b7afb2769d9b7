"""A delivery routed to a connected company writes only that company's records (issue 13).

The envelope names the company the event is for; the object inside may say otherwise, or lie.
The worker then reads the record again from Whop with the company's own credentials, and refuses
a record that belongs to another company. Ids are checked against Whop's shapes before any of
them becomes part of a URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.store import inbox
from tests.sync.conftest import COMPANY
from tests.test_worker import Bridge, _bridge

OTHER_COMPANY = "biz_othercompany"  # seeded by make_world; its records are not ours to write


@pytest.fixture
async def bridge(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path):
        yield b


def _foreign(records: dict[str, Any]) -> Any:
    return next(r for r in records.values() if r.company_id == OTHER_COMPANY)


def _opportunities_for(b: Bridge, membership_id: str) -> list[dict[str, Any]]:
    return [o for o in b.world.opportunities() if o.get("whopMembershipId") == membership_id]


async def test_another_companys_membership_in_a_delivery_to_this_company_is_never_written(bridge: Bridge) -> None:
    foreign = _foreign(bridge.world.whop.memberships)
    payload = bridge.world.whop.render(foreign.id)  # the other company's record, its own account named
    payload.update(member_id=None, user_id=None)  # nobody to look up: only the company is wrong
    await bridge.deliver("membership.activated", payload, webhook_id="msg_foreign")

    await bridge.worker().run_once()

    assert _opportunities_for(bridge, foreign.id) == []
    event = await inbox.get_event(bridge.store, "msg_foreign")
    assert event is not None and event.status in ("failed", "dead")
    assert "403" in (event.last_error or ""), "Whop refused this company's credentials the record"


async def test_a_payload_that_claims_this_company_for_anothers_membership_is_read_again(bridge: Bridge) -> None:
    foreign = _foreign(bridge.world.whop.memberships)
    payload = bridge.world.whop.render(foreign.id)
    payload.update(member_id=None, user_id=None)
    payload["account"] = {"id": COMPANY, "title": "Sync Test Co"}  # says it is ours; the bridge never wrote it
    await bridge.deliver("membership.activated", payload, webhook_id="msg_forged")
    before = bridge.world.whop.stats.api_calls

    await bridge.worker().run_once()

    assert bridge.world.whop.stats.api_calls > before, "a record the bridge never wrote for this company is read again"
    assert _opportunities_for(bridge, foreign.id) == []
    event = await inbox.get_event(bridge.store, "msg_forged")
    assert event is not None and event.status in ("failed", "dead")


async def test_a_record_whop_shows_to_this_company_but_that_belongs_to_another_is_refused(bridge: Bridge) -> None:
    # Whop lets anyone read a visible product, whoever sells it.
    foreign = _foreign(bridge.world.whop.products)
    assert foreign.visibility == "visible"
    await bridge.deliver("product.updated", {"id": foreign.id}, webhook_id="msg_public")

    await bridge.worker().run_once()

    assert not [p for p in bridge.world.products() if p.get("whopProductId") == foreign.id]
    event = await inbox.get_event(bridge.store, "msg_public")
    assert event is not None and event.status == "dead", "retrying cannot change whose product it is"
    assert f"belongs to {OTHER_COMPANY}, not {COMPANY}" in (event.last_error or "")


@pytest.mark.parametrize(
    ("event_type", "bad_id"),
    [
        ("product.updated", "."),
        ("product.updated", ".."),
        ("membership.updated", ".."),
        ("payment.succeeded", "."),
        ("member.updated", ".."),
    ],
)
async def test_dot_ids_never_become_path_segments_at_whop(bridge: Bridge, event_type: str, bad_id: str) -> None:
    await bridge.deliver(event_type, {"id": bad_id}, webhook_id="msg_dots")
    before = len(bridge.world.whop.stats.requests)

    await bridge.worker().run_once()

    assert list(bridge.world.whop.stats.requests)[before:] == [], "Whop was not asked anything"
    event = await inbox.get_event(bridge.store, "msg_dots")
    assert event is not None and event.status == "dead"
    assert "not a Whop" in (event.last_error or "")
