"""Whop payments → WhopPayment records (keyed `whopPaymentId`), linked to their Person and
Opportunity; and each membership's last payment, folded into its Opportunity's fields.

Refunds, disputes and cases name their payment, so their events rewrite it. The last payment is
no Twenty object: it is kept in the "payment" shadow keyed by membership (`records.LastPayment`)
and read when the Opportunity is built. A failed payment gets a Task (`objects/tasks.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.shadows import put_shadows
from bridge.sync.objects.base import SyncedObject
from bridge.sync.records import PAYMENT_SHADOW, CompanyItems, LastPayment, fold_payments, held_payments
from bridge.sync.writer import Item
from bridge.twenty.data import WHOP_PAYMENT
from bridge.whop.models import Payment


async def build(items: CompanyItems, payments: Sequence[Payment]) -> list[Item]:
    return await items.payments(payments)


PAYMENTS = SyncedObject[Payment](
    kind="payment",
    twenty=WHOP_PAYMENT,
    id_prefix="pay_",
    # Refunds, disputes and Resolution Center cases point at their payment.
    events=("payment", "refund", "dispute", "dispute_alert", "resolution_center_case"),
    hint=Payment,
    phase="payment_records",
    reads=("payments",),
    select_fields=("paymentStatus", "billingReason"),
    list_page=lambda whop: whop.list_payments,
    get_one=lambda whop: whop.get_payment,
    build=build,
    added_later="payment history",
)


async def fold(
    store: AsyncEngine, company_id: str, payments: Sequence[Payment], memo: dict[str, LastPayment] | None = None
) -> dict[str, LastPayment]:
    """The payments that become their membership's last payment (by membership id), weighed
    against the "payment" shadows, and kept: in the shadows, or in `memo` (a dry run stores
    nothing, so it remembers there, and weighs against it too)."""
    held = await held_payments(store, company_id, [p.membership_id for p in payments])
    changed = fold_payments(payments, held, *([memo] if memo is not None else []))
    if memo is not None:
        memo.update(changed)
    else:
        await put_shadows(store, company_id, PAYMENT_SHADOW, [last.shadow_row() for last in changed.values()])
    return changed
