"""Tasks the bridge opens in Twenty for what needs a person: here, a failed payment's Task.

A Task is written with its Person and Opportunity as targets (`sync/tasks.py`), once: one a
person closed stays closed (never updated again). Moments (set to cancel, a trial ending, an
invoice past due) are Tasks too, kept by `sync/moments.py`; disputes and cases by the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.shadows import Shadow, get_shadows
from bridge.sync import mapping
from bridge.sync.records import payment_time
from bridge.sync.tasks import has_task, upsert_task
from bridge.twenty.data import TwentyDataClient
from bridge.whop.models import Payment


def shadow_label(shadow: Shadow | None) -> str | None:
    """The display name the writer kept with a record (a Person's name)."""
    written = shadow.written if shadow else None
    return written.get("_label") if isinstance(written, dict) else None


async def payment_links(store: AsyncEngine, company_id: str, p: Payment) -> tuple[Shadow | None, Shadow | None]:
    """The Person and Opportunity shadows of a payment's buyer and membership."""
    payer = p.user_id or p.member_id or ""
    person = (await get_shadows(store, company_id, "person", [payer])).get(payer)
    mid = p.membership_id or ""
    opportunity = (await get_shadows(store, company_id, "opportunity", [mid])).get(mid)
    return person, opportunity


async def failed_payment_task(
    twenty: TwentyDataClient,
    store: AsyncEngine,
    company_id: str,
    p: Payment,
    *,
    product_title: str | None,
    first: Callable[[], Awaitable[str | None]] | None = None,
) -> bool:
    """A failed payment's Task, once (a retry or a later run never reopens one a person closed);
    True when it was made now. `first` runs before it when it is to be made (the worker writes
    the membership's Opportunity so the Task links it) and may name the product."""
    if await has_task(store, company_id, p.id):
        return False
    if first is not None:
        product_title = await first() or product_title
    person, opportunity = await payment_links(store, company_id, p)
    task = mapping.failed_payment_task(p, person_name=shadow_label(person), product_title=product_title)
    await upsert_task(
        twenty,
        store,
        company_id,
        p.id,
        task,
        person_id=person.twenty_id if person else None,
        opportunity_id=opportunity.twenty_id if opportunity else None,
        when=payment_time(p),
        update=False,
    )
    return True
