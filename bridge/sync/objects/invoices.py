"""Whop invoices → a Task while one is past due, closed once it is paid (`sync/moments.py`).

Always read from Whop with the company's credentials (a payload names no membership anyway)."""

from __future__ import annotations

from bridge.sync.objects.base import SyncedObject
from bridge.twenty.data import TASK
from bridge.whop.models import Invoice

INVOICES = SyncedObject[Invoice](
    kind="invoice",
    twenty=TASK,
    id_prefix="inv_",
    events=("invoice",),
    get_one=lambda whop: whop.get_invoice,
)
