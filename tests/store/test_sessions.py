"""Admin sessions in the store: alive until ended, idle, expired or bound to another password;
every replica sees the same; pruning removes what no request can revive."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import sessions
from bridge.store.db import as_utc
from bridge.store.tables import admin_sessions

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)
TOUCH = timedelta(minutes=1)
FP = "f" * 64


async def alive(engine: AsyncEngine, id_hash: str, at: datetime, fp: str = FP) -> bool:
    return await sessions.check(engine, id_hash, fp, at, IDLE, TOUCH)


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(admin_sessions))).scalar_one())


async def test_a_used_session_lives_until_its_absolute_limit(engine: AsyncEngine) -> None:
    await sessions.start(engine, "a" * 64, FP, T0, LIFETIME)
    at = T0
    while at + IDLE / 2 < T0 + LIFETIME:
        at += IDLE / 2
        assert await alive(engine, "a" * 64, at), at
    assert not await alive(engine, "a" * 64, T0 + LIFETIME)
    assert await rows(engine) == 0  # a dead session's row goes at once


async def test_an_unused_session_ends_after_the_idle_timeout(engine: AsyncEngine) -> None:
    await sessions.start(engine, "b" * 64, FP, T0, LIFETIME)
    assert await alive(engine, "b" * 64, T0 + IDLE - timedelta(seconds=1))
    assert not await alive(engine, "b" * 64, T0 + 2 * IDLE)


async def test_use_is_written_at_most_once_a_touch_interval(engine: AsyncEngine) -> None:
    await sessions.start(engine, "c" * 64, FP, T0, LIFETIME)
    for seconds in (10, 20, 30):
        assert await alive(engine, "c" * 64, T0 + timedelta(seconds=seconds))
    async with engine.connect() as conn:
        seen = (await conn.execute(sa.select(admin_sessions.c.last_seen_at))).scalar_one()
    assert as_utc(seen) == T0  # three uses inside a minute: no write
    assert await alive(engine, "c" * 64, T0 + TOUCH + timedelta(seconds=1))
    # The write moved the idle clock: still alive an idle period after that use.
    assert await alive(engine, "c" * 64, T0 + TOUCH + IDLE)


async def test_another_password_ends_the_session(engine: AsyncEngine) -> None:
    await sessions.start(engine, "d" * 64, FP, T0, LIFETIME)
    assert not await alive(engine, "d" * 64, T0, fp="0" * 64)
    assert not await alive(engine, "d" * 64, T0)  # gone, even for the old password


async def test_end_and_end_all_reach_every_replica(engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]) -> None:
    other = make_engine()
    for ch in "efg":
        await sessions.start(engine, ch * 64, FP, T0, LIFETIME)
    assert await alive(other, "e" * 64, T0)
    await sessions.end(engine, "e" * 64)
    assert not await alive(other, "e" * 64, T0)
    assert await alive(other, "f" * 64, T0)
    assert await sessions.end_all(other) == 2
    assert not await alive(engine, "f" * 64, T0) and not await alive(engine, "g" * 64, T0)


async def test_prune_removes_only_what_no_request_can_revive(engine: AsyncEngine) -> None:
    await sessions.start(engine, "h" * 64, FP, T0, LIFETIME)  # idle too long by then
    await sessions.start(engine, "i" * 64, FP, T0 + LIFETIME - IDLE / 2, LIFETIME)  # fresh
    await sessions.start(engine, "j" * 64, "0" * 64, T0 + LIFETIME - IDLE / 2, LIFETIME)  # old password
    assert await sessions.prune(engine, FP, T0 + LIFETIME, IDLE) == 2
    assert await rows(engine) == 1
    assert await alive(engine, "i" * 64, T0 + LIFETIME)
