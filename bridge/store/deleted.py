"""What people deleted in Twenty (`twenty_deleted`): the bridge leaves those records deleted."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import dialect_name, upsert_stmt, utcnow
from bridge.store.tables import twenty_deleted


async def replace(engine: AsyncEngine, obj: str, found: Sequence[tuple[str, str]]) -> list[str]:
    """Make `found` ((key, Twenty id) of every record of `obj` deleted in Twenty now) the set;
    returns the keys not reported yet, and marks them reported. A record no longer deleted (a
    person restored it) leaves the set."""
    now = utcnow()
    keys = {key: tid for key, tid in found if key}
    async with engine.begin() as conn:
        held = {
            row.whop_key: row.reported_at
            for row in await conn.execute(
                sa.select(twenty_deleted.c.whop_key, twenty_deleted.c.reported_at).where(twenty_deleted.c.object == obj)
            )
        }
        gone = [k for k in held if k not in keys]
        for start in range(0, len(gone), 500):
            await conn.execute(
                sa.delete(twenty_deleted).where(
                    twenty_deleted.c.object == obj, twenty_deleted.c.whop_key.in_(gone[start : start + 500])
                )
            )
        if keys:
            rows = [
                {"object": obj, "whop_key": k, "twenty_id": tid, "seen_at": now, "reported_at": held.get(k) or now}
                for k, tid in keys.items()
            ]
            stmt = upsert_stmt(
                twenty_deleted, None, ["object", "whop_key"], ["twenty_id", "seen_at"], dialect=dialect_name(engine)
            )
            await conn.execute(stmt, rows)
    return sorted(k for k in keys if held.get(k) is None)


async def held(engine: AsyncEngine, obj: str, keys: Sequence[str]) -> set[str]:
    """Which of `keys` a person deleted in Twenty."""
    found: set[str] = set()
    unique = list(dict.fromkeys(keys))
    async with engine.connect() as conn:
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = await conn.execute(
                sa.select(twenty_deleted.c.whop_key).where(
                    twenty_deleted.c.object == obj, twenty_deleted.c.whop_key.in_(chunk)
                )
            )
            found.update(r.whop_key for r in rows)
    return found
