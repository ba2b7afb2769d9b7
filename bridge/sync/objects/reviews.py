"""Whop reviews → WhopReview records (keyed `whopReviewId`), linked to their Person and product.

Whop sends no webhook for reviews: every sync reads them per product (`sync/reviews.py`), and one
held but no longer listed, and gone when read, is marked deleted.
"""

from __future__ import annotations

from bridge.sync.objects.base import SyncedObject
from bridge.twenty.data import WHOP_REVIEW
from bridge.whop.models import Review

REVIEWS = SyncedObject[Review](
    kind="review",
    twenty=WHOP_REVIEW,
    deleted=(("reviewStatus", "DELETED"),),
    get_one=lambda whop: whop.get_review,
    added_later="reviews",
)
