"""Whop memberships → Opportunities (keyed `whopMembershipId`), linked to the Person and the
WhopProduct written before them, with their last payment folded in.

Items are built by `records.MembershipItems` (it reads the links and the last payments, and
fetches the People still missing through `people.fetch_missing_people`). The sync pages
memberships twice: once for the buyers' revenue facts (`membership_facts`, before the People are
written), once to write the Opportunities (`memberships`); one no longer listed, and gone when
read, is marked deleted.
"""

from __future__ import annotations

from bridge.sync.objects.base import SyncedObject
from bridge.twenty.data import OPPORTUNITY
from bridge.whop.models import Membership

MEMBERSHIPS = SyncedObject[Membership](
    kind="membership",
    twenty=OPPORTUNITY,
    id_prefix="mem_",
    events=("membership",),
    hint=Membership,
    phase="memberships",
    reads=("membership_facts",),
    # `stage` too: CHURNED is the bridge's own stage, added if a workspace lacks it.
    select_fields=("whopMembershipStatus", "whopLastPaymentStatus", "whopPlanType", "whopMostRecentAction", "stage"),
    deleted=(("whopMembershipStatus", "DELETED"),),
    list_page=lambda whop: whop.list_memberships,
    get_one=lambda whop: whop.get_membership,
)
