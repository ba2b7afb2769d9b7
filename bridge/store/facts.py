"""Each company's member row for a person (`member_facts`), so a Person's totals span companies."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.facts import MemberFact
from bridge.money import Money
from bridge.store.db import dialect_name, slices, to_db_time_or_none, upsert_stmt, utcnow
from bridge.store.rows import row_reader
from bridge.store.tables import member_facts

# Whop's `usd_total_spent` is in US dollars; the currency is stored with the amount anyway.
_SEP = " "


def _money_text(money: Money | None) -> str | None:
    if money is None or not money.amount.is_finite():
        return None
    text = f"{money.amount}{_SEP}{money.currency or ''}".strip()
    return text if len(text) <= 40 else None  # an absurd amount is not a total worth keeping


def _money(text: str | None) -> Money | None:
    if not text:
        return None
    amount, _, currency = text.partition(_SEP)
    try:
        return Money(amount=Decimal(amount), currency=currency or None)
    except (InvalidOperation, ValueError):
        return None


async def put_facts(engine: AsyncEngine, user_facts: Sequence[tuple[str, MemberFact]]) -> None:
    """Store `(person key, fact)` pairs; a company's newer row replaces its older one."""
    if not user_facts:
        return
    now = utcnow()
    rows = {
        (key, f.company_id): {
            "whop_user_id": key,
            "company_id": f.company_id,
            "member_id": f.member_id,
            "total_spent": _money_text(f.total_spent),
            "joined_at": to_db_time_or_none(f.joined_at),
            "status": f.status,
            "updated_at": now,
        }
        for key, f in user_facts
    }
    update = ["member_id", "total_spent", "joined_at", "status", "updated_at"]
    stmt = upsert_stmt(member_facts, None, ["whop_user_id", "company_id"], update, dialect=dialect_name(engine))
    async with engine.begin() as conn:
        await conn.execute(stmt, list(rows.values()))


_fact = row_reader(MemberFact, member_facts, convert={"total_spent": _money})


async def get_facts(engine: AsyncEngine, keys: Sequence[str]) -> dict[str, list[MemberFact]]:
    """Every company's fact for each person key (keys with none are absent)."""
    found: dict[str, list[MemberFact]] = {}
    async with engine.connect() as conn:
        for chunk in slices(list(dict.fromkeys(keys))):
            rows = await conn.execute(sa.select(member_facts).where(member_facts.c.whop_user_id.in_(chunk)))
            for r in rows:
                found.setdefault(r._mapping["whop_user_id"], []).append(_fact(r))
    return found
