"""Admin sessions kept in the store, so that ending one ends it for every copy of its cookie.

The cookie carries a random id; a row holds only its SHA-256 (`id_hash`), so reading the
database yields no session anyone can use. A session is alive while its row exists, its
password fingerprint is the configured password's, its absolute expiry is ahead and it was
used within the idle timeout. Every replica on the database sees the same sessions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import as_utc, to_db_time
from bridge.store.tables import admin_sessions as _T


async def start(engine: AsyncEngine, id_hash: str, password_fp: str, now: datetime, lifetime: timedelta) -> None:
    at = to_db_time(now)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(_T).values(
                id_hash=id_hash, password_fp=password_fp, created_at=at, last_seen_at=at, expires_at=at + lifetime
            )
        )


async def check(
    engine: AsyncEngine,
    id_hash: str,
    password_fp: str,
    now: datetime,
    idle: timedelta,
    touch_after: timedelta,
) -> bool:
    """True while the session is alive; its last use is moved to `now` when older than
    `touch_after` (not on every request: the status poll would write once a second). A dead
    session's row is deleted on the spot."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(_T).where(_T.c.id_hash == id_hash))).first()
    if row is None:
        return False
    last_seen = as_utc(row.last_seen_at)
    alive = row.password_fp == password_fp and as_utc(row.expires_at) > now and last_seen > now - idle
    async with engine.begin() as conn:
        if not alive:
            await conn.execute(sa.delete(_T).where(_T.c.id_hash == id_hash))
        elif last_seen <= now - touch_after:
            await conn.execute(
                sa.update(_T)
                .where(_T.c.id_hash == id_hash, _T.c.last_seen_at < to_db_time(now))
                .values(last_seen_at=to_db_time(now))
            )
    return alive


async def end(engine: AsyncEngine, id_hash: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.delete(_T).where(_T.c.id_hash == id_hash))


async def end_all(engine: AsyncEngine) -> int:
    """Every session, on every replica; how many were alive or not yet pruned."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(_T))
    return int(result.rowcount)


async def prune(engine: AsyncEngine, password_fp: str, now: datetime, idle: timedelta) -> int:
    """Delete the rows no request can revive: expired, idle too long, or of another password."""
    at = to_db_time(now)
    stale = sa.or_(_T.c.expires_at <= at, _T.c.last_seen_at <= at - idle, _T.c.password_fp != password_fp)
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(_T).where(stale))
    return int(result.rowcount)
