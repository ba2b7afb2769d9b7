"""A buyer's revenue (lifetime value, purchases, active memberships, churn) → the Person's revenue
fields, written apart from its member fields under their own shadows, keyed by person key.

No Whop object of its own: the facts are kept from payments and memberships as they are read
(`CompanyItems.record_payments`, `record_memberships`), and the buyers whose facts moved are
written. A sync folds the revenue into the Person it writes; the worker writes it after a pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.sync.objects.base import SyncedObject
from bridge.sync.records import REVENUE_SHADOW, CompanyItems
from bridge.sync.writer import Item
from bridge.twenty.data import PERSON


async def build(items: CompanyItems, keys: Sequence[str]) -> list[Item]:
    return await items.revenue_items(keys)


REVENUE = SyncedObject[str](kind="revenue", twenty=PERSON, shadow=REVENUE_SHADOW, build=build)
