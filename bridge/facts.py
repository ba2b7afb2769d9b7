"""What the bridge keeps of each company's Whop records to fold a Person across companies:
plain values, shared by the mapping (which folds them) and the store (which keeps them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge.money import Money


@dataclass(frozen=True)
class MemberFact:
    """What one company's member row says about a person; a Person folds every company's."""

    company_id: str
    member_id: str
    total_spent: Money | None
    joined_at: datetime | None
    status: str | None


@dataclass(frozen=True)
class PaymentFact:
    """What one payment adds to its buyer's revenue: its net (0 unless paid) and when it was paid."""

    net: Money | None
    paid_at: datetime | None


@dataclass(frozen=True)
class MembershipFact:
    """Whether one membership grants access now, and when it ended if it did."""

    active: bool
    ended_at: datetime | None
