"""Reviews (bridge/sync/reviews.py) on both Twenty dialects: a member's review is a WhopReview
linked to the Person who wrote it and the product, read by every sync and reconciliation (Whop
sends no webhook for them), and one no longer published says so."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.services import run_sync
from tests.sync.conftest import COMPANY, World, make_world


@pytest.fixture(params=["2.x", "1.x"])
async def world(request: pytest.FixtureRequest, tmp_path: Any) -> World:
    return await make_world(tmp_path, request.param, members=6, memberships=8)


def reviews(world: World) -> dict[str, dict[str, Any]]:
    return {r["whopReviewId"]: r for r in world.twenty.records("whopReviews") if not r.get("deletedAt")}


async def test_reviews_land_on_the_person_and_the_product_and_follow_whop(world: World) -> None:
    whop = world.whop
    member = next(m for m in whop.members.values() if m.company_id == COMPANY and m.user_id)
    product = next(p for p in whop.products.values() if p.company_id == COMPANY)
    kept = whop.add_review(member.id, product.id, stars=4, title="Solid calls", description="Worth it.")
    removed = whop.add_review(member.id, product.id, stars=1, title="Meh")
    deleted = whop.add_review(member.id, product.id, stars=2, title="Gone soon")
    theirs = next(m for m in whop.members.values() if m.company_id != COMPANY and m.user_id)
    other = whop.add_review(theirs.id, next(p for p in whop.products.values() if p.company_id != COMPANY).id)

    result = await run_sync(world.runtime, kind="full")

    assert result.status == "succeeded", result.problems
    held = reviews(world)
    assert set(held) == {kept.id, removed.id, deleted.id}, "only this company's reviews"
    review = held[kept.id]
    assert (review["stars"], review["reviewTitle"], review["reviewText"], review["reviewStatus"]) == (
        4,
        "Solid calls",
        "Worth it.",
        "PUBLISHED",
    )
    assert review["name"].startswith("★★★★☆ Solid calls")
    person = next(p for p in world.people() if p.get("whopUserId") == member.user_id)
    twenty_product = next(p for p in world.products() if p.get("whopProductId") == product.id)
    assert (review["personId"], review["productId"]) == (person["id"], twenty_product["id"])
    assert other.id not in held

    world.twenty.reset_stats()
    await run_sync(world.runtime, kind="reconcile")
    assert world.twenty.stats["data_writes"] == 0, "unchanged reviews cost no write"

    whop.update_review(removed.id, status="removed")
    whop.delete_review(deleted.id)
    whop.update_review(kept.id, stars=5)
    await run_sync(world.runtime, kind="reconcile")

    held = reviews(world)
    assert held[removed.id]["reviewStatus"] == "REMOVED"
    assert held[deleted.id]["reviewStatus"] == "DELETED"
    assert held[kept.id]["stars"] == 5 and held[kept.id]["name"].startswith("★★★★★")
