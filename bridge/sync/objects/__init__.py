"""A module per synced object (`base.SyncedObject`): adding a Whop object is adding a module here
(and its `schema/` entry), then listing it below.

The tables the sync, the worker and the option guard read are derived from the declarations.
"""

from __future__ import annotations

from typing import Any

from bridge.sync.objects.base import SyncedObject
from bridge.sync.objects.invoices import INVOICES
from bridge.sync.objects.memberships import MEMBERSHIPS
from bridge.sync.objects.payments import PAYMENTS
from bridge.sync.objects.people import PEOPLE
from bridge.sync.objects.products import PRODUCTS
from bridge.sync.objects.revenue import REVENUE
from bridge.sync.objects.reviews import REVIEWS
from bridge.sync.objects.waitlist import WAITLIST

OBJECTS: tuple[SyncedObject[Any], ...] = (PRODUCTS, PEOPLE, MEMBERSHIPS, PAYMENTS, REVENUE, REVIEWS, WAITLIST, INVOICES)

# The objects webhook events name, by kind; the kind of each event prefix.
BY_KIND: dict[str, SyncedObject[Any]] = {o.kind: o for o in OBJECTS if o.events}
EVENT_KINDS: dict[str, str] = {prefix: o.kind for o in BY_KIND.values() for prefix in o.events}
# The Twenty object each sync phase's Whop records become (for reporting a record by its object).
PHASE_OBJECTS: dict[str, str] = {phase: o.twenty.singular for o in OBJECTS for phase in o.phases}


def _select_fields() -> dict[str, tuple[str, ...]]:
    fields: dict[str, tuple[str, ...]] = {}
    for o in OBJECTS:
        if o.select_fields:
            fields[o.twenty.singular] = fields.get(o.twenty.singular, ()) + o.select_fields
    return fields


# SELECT fields whose values come from Whop enums, per Twenty object: an unknown value adds an option.
SELECT_FIELDS = _select_fields()


def event_kind(event_type: str | None) -> str:
    """The kind of record an event is about ("" for an event type the bridge does not sync)."""
    return EVENT_KINDS.get((event_type or "").split(".", 1)[0], "")


__all__ = [
    "BY_KIND",
    "INVOICES",
    "MEMBERSHIPS",
    "OBJECTS",
    "PAYMENTS",
    "PEOPLE",
    "PHASE_OBJECTS",
    "PRODUCTS",
    "REVENUE",
    "REVIEWS",
    "SELECT_FIELDS",
    "WAITLIST",
    "SyncedObject",
    "event_kind",
]
