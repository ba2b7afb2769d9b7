"""Whop waitlist entries → lead Opportunities, kept under their own shadow keyed by entry id; an
approved signup's lead becomes its membership's Opportunity (`sync/waitlist.py`)."""

from __future__ import annotations

from bridge.sync.objects.base import SyncedObject
from bridge.twenty.data import OPPORTUNITY
from bridge.whop.models import WaitlistEntry

WAITLIST_SHADOW = "waitlistEntry"  # a signup's Opportunity, keyed by its entry id

WAITLIST = SyncedObject[WaitlistEntry](
    kind="entry",
    twenty=OPPORTUNITY,
    shadow=WAITLIST_SHADOW,
    id_prefix="entry_",
    events=("entry",),
    deleted=(("whopWaitlistStatus", "DELETED"),),
    list_page=lambda whop: whop.list_waitlist_entries,
)
