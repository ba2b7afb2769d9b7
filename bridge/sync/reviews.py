"""Reviews: a member's review of a product (stars, title, text, status) as a WhopReview record
linked to the Person who wrote it and the WhopProduct it is about, so both record pages list it.

Whop sends no webhook for reviews, so each sync and reconciliation reads them: `/reviews` lists
only published ones and its items do not name their product, so it is asked per product the bridge
wrote for the company; a review the bridge holds that is no longer listed is read on its own (now
pending or removed) or marked DELETED when Whop no longer has it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import NeedsReconnect, SkippableError
from bridge.store.shadows import all_shadows, get_shadows
from bridge.sync import mapping
from bridge.sync.objects.reviews import REVIEWS
from bridge.sync.objects.tasks import shadow_label
from bridge.sync.writer import Item, Problem, WriteReport, WriterFor, fixed
from bridge.twenty.data import WHOP_REVIEW
from bridge.whop.client import NotFound, WhopClient
from bridge.whop.models import Review

log = logging.getLogger(__name__)

MAX_TEXT = 10_000  # a review is short; a runaway one is cut rather than refused by Twenty


def review_name(r: Review, person_name: str | None) -> str:
    stars = max(0, min(5, r.stars or 0))
    title = _clean(r.title) or _clean(r.description)[:60] or "Review"
    who = _clean(person_name) or _clean(r.user_name) or r.user_id or "a member"
    return f"{'★' * stars}{'☆' * (5 - stars)} {title} {mapping.EN_DASH} {who}"


def review_record(
    r: Review,
    *,
    person_id: str | None,
    product_id: str | None,
    person_name: str | None,
    company: mapping.CompanyRef | None,
) -> dict[str, Any]:
    """A WhopReview record; the whole object is the bridge's. `person_id` and `product_id` are
    the Twenty ids of the Person and the WhopProduct (the relations' join columns)."""
    record: dict[str, Any] = {
        "whopReviewId": r.id,
        "name": review_name(r, person_name),
        "stars": r.stars,
        "reviewTitle": _clean(r.title) or None,
        "reviewText": (r.description or "").strip()[:MAX_TEXT] or None,
        "reviewStatus": mapping.status_value(r.status),
        "paidForProduct": r.paid_for_product,
        "publishedAt": mapping.iso_utc(r.published_at),
        "whopCreatedAt": mapping.iso_utc(r.created_at),
        "whopUpdatedAt": mapping.iso_utc(r.updated_at),
        **mapping.company_fields(company),
    }
    if person_id is not None:
        record["personId"] = person_id
    if product_id is not None:
        record["productId"] = product_id
    return record


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass
class Reviewed:
    report: WriteReport = field(default_factory=WriteReport)
    problems: list[Problem] = field(default_factory=list)


async def sync_reviews(
    *,
    whop: WhopClient,
    store: AsyncEngine,
    company: mapping.CompanyRef,
    writers: WriterFor,
    page_size: int = 100,
) -> Reviewed:
    """Write the company's reviews: those listed per product, and those held and no longer listed."""
    done = Reviewed()
    products = [s.whop_id for s in await all_shadows(store, company.id, "whopProduct") if s.gone_at is None]
    found = await _listed(whop, products, page_size, done)
    held = {s.whop_id for s in await all_shadows(store, company.id, WHOP_REVIEW.singular) if s.gone_at is None}
    gone = await _read_unlisted(whop, sorted(held - set(found)), company, found, done)
    items = await _items(store, company, list(found.values()))
    report = await writers(WHOP_REVIEW).write([*items, *(REVIEWS.deleted_item(k) for k in gone)])
    done.report.merge(report)
    return done


async def _listed(whop: WhopClient, products: list[str], page_size: int, done: Reviewed) -> dict[str, Review]:
    """The published reviews Whop lists for each product, each naming its product."""
    found: dict[str, Review] = {}
    for product_id in products:
        try:
            async for page in whop.list_reviews(product_id=product_id, page_size=page_size):
                for r in page.data:
                    found[r.id] = r if r.product_id else r.model_copy(update={"product_id": product_id})
        except NeedsReconnect:
            raise
        except SkippableError as exc:  # a product gone since: its reviews are read on their own below
            done.problems.append(Problem("whopReview", product_id, f"reviews of {product_id} not read: {exc}"))
    return found


async def _read_unlisted(
    whop: WhopClient, review_ids: list[str], company: mapping.CompanyRef, found: dict[str, Review], done: Reviewed
) -> list[str]:
    """Read each held review no longer listed on its own into `found` (pending or removed now);
    return those Whop no longer has."""
    gone: list[str] = []
    for review_id in review_ids:
        try:
            r = await whop.get_review(review_id)
        except NotFound:
            gone.append(review_id)
            continue
        except NeedsReconnect:
            raise
        except SkippableError as exc:
            done.problems.append(Problem("whopReview", review_id, f"review not read from Whop: {exc}"))
            continue
        if r.company_id and r.company_id != company.id:
            done.problems.append(Problem("whopReview", review_id, f"review belongs to {r.company_id}", kind="refused"))
            continue
        found[r.id] = r
    return gone


async def _items(store: AsyncEngine, company: mapping.CompanyRef, reviews: list[Review]) -> list[Item]:
    people = await get_shadows(store, company.id, "person", [r.user_id for r in reviews if r.user_id])
    products = await get_shadows(store, company.id, "whopProduct", [r.product_id for r in reviews if r.product_id])
    items = []
    for r in reviews:
        person = people.get(r.user_id or "")
        product = products.get(r.product_id or "")
        record = review_record(
            r,
            person_id=person.twenty_id if person else None,
            product_id=product.twenty_id if product else None,
            person_name=shadow_label(person),
            company=company,
        )
        items.append(Item(r.id, record, fixed(record), r.updated_at, label=record["name"]))
    return items
