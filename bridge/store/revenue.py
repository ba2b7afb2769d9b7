"""Each company's payments and memberships by person (`payment_facts`, `membership_facts`), from
which a Person's revenue is folded across memberships and companies (by `mapping.person_revenue`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.facts import MembershipFact, PaymentFact
from bridge.money import Money
from bridge.store.db import as_utc_or_none, dialect_name, slices, to_db_time_or_none, upsert_stmt
from bridge.store.tables import membership_facts, payment_facts


def _amount(money: Money | None) -> str | None:
    if money is None or not money.amount.is_finite():
        return None
    text = str(money.amount)
    return text if len(text) <= 40 else None


def _money(amount: str | None, currency: str | None) -> Money | None:
    if amount is None:
        return None
    try:
        return Money(amount=Decimal(amount), currency=currency)
    except (InvalidOperation, ValueError):
        return None


async def _put(
    engine: AsyncEngine, table: sa.Table, id_col: str, company_id: str, rows: list[dict[str, Any]]
) -> set[str]:
    """Upsert `rows`; the person keys whose rows are new or differ (their revenue may move)."""
    if not rows:
        return set()
    cols = [c for c in rows[0] if c not in ("company_id", id_col)]
    changed: set[str] = set()
    async with engine.begin() as conn:
        for chunk in slices(rows):
            held = {
                r._mapping[id_col]: r._mapping
                for r in await conn.execute(
                    sa.select(table).where(
                        table.c.company_id == company_id, table.c[id_col].in_([r[id_col] for r in chunk])
                    )
                )
            }
            for row in chunk:
                old = held.get(row[id_col])
                if old is None or any(_differs(old[c], row[c]) for c in cols):
                    changed.add(row["person_key"])
                    if old is not None:
                        changed.add(old["person_key"])
            stmt = upsert_stmt(table, None, ["company_id", id_col], cols, dialect=dialect_name(engine))
            await conn.execute(stmt, chunk)
    return changed


def _differs(a: Any, b: Any) -> bool:
    if hasattr(a, "tzinfo") or hasattr(b, "tzinfo"):
        return as_utc_or_none(a) != as_utc_or_none(b)
    return bool(a != b)


async def put_payments(engine: AsyncEngine, company_id: str, rows: Sequence[tuple[str, str, PaymentFact]]) -> set[str]:
    """Store `(payment id, person key, fact)`s; returns the person keys whose revenue may move."""
    return await _put(
        engine,
        payment_facts,
        "payment_id",
        company_id,
        [
            {
                "company_id": company_id,
                "payment_id": pid,
                "person_key": key,
                "net": _amount(f.net),
                "currency": f.net.currency if f.net else None,
                "paid_at": to_db_time_or_none(f.paid_at),
            }
            for pid, key, f in {r[0]: r for r in rows}.values()
        ],
    )


async def put_memberships(
    engine: AsyncEngine, company_id: str, rows: Sequence[tuple[str, str, MembershipFact]]
) -> set[str]:
    """Store `(membership id, person key, fact)`s; returns the person keys whose revenue may move."""
    return await _put(
        engine,
        membership_facts,
        "membership_id",
        company_id,
        [
            {
                "company_id": company_id,
                "membership_id": mid,
                "person_key": key,
                "active": f.active,
                "ended_at": to_db_time_or_none(f.ended_at),
            }
            for mid, key, f in {r[0]: r for r in rows}.values()
        ],
    )


async def person_facts(
    engine: AsyncEngine, keys: Sequence[str]
) -> dict[str, tuple[list[PaymentFact], list[MembershipFact]]]:
    """Each person key's payment and membership facts, across every company (keys with none:
    absent); `mapping.person_revenue` folds them."""
    pays: dict[str, list[PaymentFact]] = {}
    mems: dict[str, list[MembershipFact]] = {}
    unique = list(dict.fromkeys(k for k in keys if k))
    async with engine.connect() as conn:
        for chunk in slices(unique):
            for r in await conn.execute(sa.select(payment_facts).where(payment_facts.c.person_key.in_(chunk))):
                m = r._mapping
                fact = PaymentFact(_money(m["net"], m["currency"]), as_utc_or_none(m["paid_at"]))
                pays.setdefault(m["person_key"], []).append(fact)
            for r in await conn.execute(sa.select(membership_facts).where(membership_facts.c.person_key.in_(chunk))):
                m = r._mapping
                mems.setdefault(m["person_key"], []).append(MembershipFact(m["active"], as_utc_or_none(m["ended_at"])))
    return {k: (pays.get(k, []), mems.get(k, [])) for k in unique if k in pays or k in mems}


async def membership_ends(
    engine: AsyncEngine, company_id: str, keys: Sequence[str]
) -> dict[str, list[tuple[str, datetime]]]:
    """`(membership id, when it ended)` of each person key's ended memberships at this company
    (what tells a new membership of theirs apart as a return)."""
    found: dict[str, list[tuple[str, datetime]]] = {}
    unique = list(dict.fromkeys(k for k in keys if k))
    async with engine.connect() as conn:
        for chunk in slices(unique):
            stmt = sa.select(membership_facts).where(
                membership_facts.c.company_id == company_id,
                membership_facts.c.person_key.in_(chunk),
                membership_facts.c.ended_at.is_not(None),
            )
            for r in await conn.execute(stmt):
                m = r._mapping
                ended = as_utc_or_none(m["ended_at"])
                if ended is not None:
                    found.setdefault(m["person_key"], []).append((m["membership_id"], ended))
    return found
