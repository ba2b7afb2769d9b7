"""Attribution (bridge/sync/attribution.py) on both Twenty dialects: the promo code, affiliate and
source behind a membership on its Opportunity, a buyer's sources and Whop's own figures on the
Person, written by syncs and reconciliations and never undone by a webhook's payload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from bridge.services import run_sync
from bridge.sync.attribution import Seen, opportunity_fields, source_text
from bridge.whop.models import Source
from tests.sync.conftest import COMPANY, make_world
from tests.test_worker import Bridge, _bridge, _memberships


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ({"type": "referrer", "domain": "google.com"}, "referrer:google.com"),
        ({"type": "utm", "utm_source": "newsletter"}, "utm:newsletter"),
        (
            {"type": "ad_click", "campaign": {"id": "c1", "name": "Spring"}, "ad_group": {"id": "g1"}, "ad": None},
            "whop:Spring:g1",
        ),
        ({"type": "external_ad_click", "platform": "meta", "campaign": {"id": "c9"}}, "ext:meta:c9"),
        ({"type": "lead_form", "campaign": {"id": "c2", "name": "Webinar"}}, "lead_form:Webinar"),
        ({"type": "direct"}, "direct"),
    ],
)
def test_sources_read_as_whops_vocabulary(source: dict[str, Any], text: str) -> None:
    assert source_text(Source.model_validate(source)) == text


@pytest.mark.parametrize(
    ("seen", "first", "expected"),
    [
        (Seen("mem_1", "user_1", "promo_1", "user_aff"), "referrer", ("AFFILIATE", "affy")),
        (Seen("mem_1", "user_1", "promo_1", None), "referrer", ("REFERRER", "referrer:x.com")),
        (Seen("mem_1", "user_1", "promo_1", None), None, ("PROMO_CODE", "SPRING20")),
        (Seen("mem_1", "user_1", None, None), None, (None, None)),
    ],
)
def test_a_memberships_source_is_its_affiliate_else_its_buyers_first_source_else_its_code(
    seen: Seen, first: str | None, expected: tuple[str | None, str | None]
) -> None:
    source = Source(type=first, domain="x.com") if first else None
    fields = opportunity_fields(seen, promo_code="SPRING20", affiliate="affy", first_source=source)
    assert (fields["whopSourceType"], fields["whopSource"]) == expected


@pytest.fixture(params=["2.x", "1.x"])
async def b(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Bridge]:
    async for bridge in _bridge(tmp_path, dialect=request.param, members=6, memberships=8):
        yield bridge


async def test_promo_codes_affiliates_and_sources_reach_twenty_and_stay(b: Bridge) -> None:
    whop = b.world.whop
    live = [m for m in await _memberships(b) if m.user_id]
    coded, referred = live[0], next(m for m in live if m.user_id != live[0].user_id)
    promo = whop.add_promo_code(COMPANY, "SPRING20")
    whop.update_membership(coded.id, promo_code_id=promo.id)
    affiliate = whop.add_user(username="affy", name="Affy Liate")
    whop.update_membership(referred.id, affiliate_id="aff_AFFY00000001", affiliate_user_id=affiliate.id)
    whop.set_sources(
        COMPANY,
        str(coded.user_id),
        first={"type": "referrer", "domain": "google.com"},
        last={"type": "utm", "utm_source": "newsletter"},
    )

    await run_sync(b.world.runtime, kind="reconcile")

    opp = b.opportunity(coded.id)
    assert (opp["whopPromoCodeName"], opp["whopSourceType"], opp["whopSource"]) == (
        "SPRING20",
        "REFERRER",
        "referrer:google.com",
    )
    assert (b.opportunity(referred.id)["whopAffiliate"], b.opportunity(referred.id)["whopSourceType"]) == (
        "affy",
        "AFFILIATE",
    )
    person = next(p for p in b.world.people() if p.get("whopUserId") == coded.user_id)
    assert (person["whopFirstSourceType"], person["whopFirstSource"], person["whopLastSource"]) == (
        "REFERRER",
        "referrer:google.com",
        "utm:newsletter",
    )
    profile = next(p for p in whop.people.values() if p.user_id == coded.user_id and p.company_id == COMPANY)
    assert person["whopReportedLtv"]["amountMicros"] == int(profile.ltv * Decimal(1_000_000))
    assert person["whopPurchaseCount"] == profile.purchase_count
    assert person["name"]["firstName"], "the Person's own fields stay as they were"

    b.world.twenty.reset_stats()
    await run_sync(b.world.runtime, kind="reconcile")
    assert b.world.twenty.stats["data_writes"] == 0, "unchanged attribution costs no write"

    # A webhook's membership has no affiliate (Whop never sends one): the Opportunity keeps it.
    whop.update_membership(referred.id, status="past_due")
    await b.deliver("membership.updated", referred.id, webhook_id="msg_aff_1")
    await b.worker().run_once()
    after = b.opportunity(referred.id)
    assert (after["whopMembershipStatus"], after["whopAffiliate"]) == ("PAST_DUE", "affy")


async def test_a_new_membership_delivered_by_webhook_says_where_it_came_from(b: Bridge) -> None:
    whop = b.world.whop
    plan = next(p for p in whop.plans.values() if p.company_id == COMPANY)
    member = whop.add_member(COMPANY, name="Nina New")
    promo = whop.add_promo_code(COMPANY, "WELCOME")
    affiliate = whop.add_user(username="referrer1")
    fresh = whop.add_membership(
        member.id, plan.id, promo_code_id=promo.id, affiliate_id="aff_NEW000000001", affiliate_user_id=affiliate.id
    )
    whop.add_payment(fresh.id)
    whop.set_sources(COMPANY, str(member.user_id), first={"type": "utm", "utm_source": "podcast"})

    await b.deliver("membership.activated", fresh.id, webhook_id="msg_new_attr")
    await b.worker().run_once()

    opp = b.opportunity(fresh.id)
    assert (opp["whopPromoCodeName"], opp["whopAffiliate"], opp["whopSourceType"]) == (
        "WELCOME",
        "referrer1",
        "AFFILIATE",
    )
    person = next(p for p in b.world.people() if p.get("whopUserId") == member.user_id)
    assert (person["whopFirstSourceType"], person["whopFirstSource"]) == ("UTM", "utm:podcast")


@pytest.mark.parametrize("dialect", ["2.x", "1.x"])
async def test_a_backfill_writes_each_person_and_opportunity_once_with_its_attribution(
    tmp_path: Any, dialect: str
) -> None:
    world = await make_world(tmp_path, dialect, members=6, memberships=8)
    try:
        whop = world.whop
        buyers = {p.user_id for p in whop.people.values() if p.company_id == COMPANY and p.purchase_count}
        memberships = [m for m in (await world.whop_lists())["memberships"] if m.user_id in buyers]
        assert len(memberships) >= 3
        promo = whop.add_promo_code(COMPANY, "LAUNCH")
        for ms in memberships:
            whop.update_membership(ms.id, promo_code_id=promo.id)
            whop.set_sources(COMPANY, str(ms.user_id), first={"type": "referrer", "domain": "x.com"})

        result = await run_sync(world.runtime, kind="full")

        for obj in ("personAttribution", "opportunityAttribution"):
            written = {k: v for k, v in result.counts.get(obj, {}).items() if k in ("created", "updated")}
            assert written == {}, f"{obj}: a second write of records the backfill had just created"
        people = {p["whopUserId"]: p for p in world.people() if p.get("whopUserId")}
        opps = {o["whopMembershipId"]: o for o in world.twenty.records("opportunity") if o.get("whopMembershipId")}
        for ms in memberships:
            assert people[ms.user_id]["whopFirstSource"] == "referrer:x.com"
            assert (opps[ms.id]["whopPromoCodeName"], opps[ms.id]["whopSource"]) == ("LAUNCH", "referrer:x.com")
        upserts = world.twenty.stats["operations"]
        assert upserts["createPeople"] == 1 and upserts["createOpportunities"] == 1, upserts

        world.twenty.reset_stats()
        await run_sync(world.runtime, kind="reconcile")
        assert world.twenty.stats["data_writes"] == 0
    finally:
        await world.runtime.aclose()
