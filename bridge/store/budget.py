"""A request budget shared by every process on the database: a token bucket stored as one row.

Twenty limits requests per workspace (100 a minute by default, then HTTP 429 without a
Retry-After), not per process: the web app, the worker and every replica must draw from one
budget. Each call takes its token in one short transaction: an UPDATE that refills the row from
the clock and takes the token, possibly driving the balance negative (a debt, i.e. a
reservation), then a SELECT of the result; the caller sleeps outside the transaction until its
debt is paid. The UPDATE comes first so SQLite takes its write lock at once and PostgreSQL locks
the row: concurrent callers, in any process or event loop, are serialized by the database.

Time is Unix time (every replica's clock, kept by NTP), so the bucket means the same to all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import upsert_stmt
from bridge.store.tables import rate_budgets as _T

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class SharedBucket:
    """`per_minute` tokens a minute, up to `capacity` saved up; the same interface as
    `bridge.limiter.TokenBucket` (`acquire`, `pause`)."""

    def __init__(
        self,
        store: Callable[[], AsyncEngine],
        name: str,
        per_minute: float,
        *,
        capacity: float | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._store = store
        self.name = name
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else per_minute)
        self._clock = clock
        self._sleep = sleep
        self._created = False

    async def acquire(self, tokens: float = 1) -> None:
        """Wait until `tokens` may be spent; callers are served in the order the database saw them."""
        if tokens <= 0:
            raise ValueError("tokens must be positive")
        now = self._clock()
        await self._create(now)
        async with self._store().begin() as conn:
            await conn.execute(self._take(now, tokens))
            row = (await conn.execute(sa.select(_T.c.tokens, _T.c.updated_at).where(_T.c.name == self.name))).one()
        ready_at = float(row.updated_at) + max(0.0, -float(row.tokens)) / self.rate
        if ready_at > now:
            await self._sleep(ready_at - now)
        await self._wait_out_pause(ready_at)

    async def pause(self, seconds: float) -> None:
        """Hold everyone back for `seconds` from now (Twenty answered 429): the time base moves
        past the pause and any saved-up burst beyond one call is dropped, so traffic resumes gently."""
        if seconds <= 0:
            return
        now = self._clock()
        until = now + seconds
        refilled = self._refilled(now)
        await self._create(now)
        async with self._store().begin() as conn:
            await conn.execute(
                sa.update(_T)
                .where(_T.c.name == self.name)
                .values(
                    tokens=sa.case((refilled > 1.0, 1.0), else_=refilled),
                    updated_at=sa.case((_T.c.updated_at < until, until), else_=_T.c.updated_at),
                    paused_until=sa.case((_T.c.paused_until < until, until), else_=_T.c.paused_until),
                )
            )

    async def available(self) -> float:
        """Tokens available now (negative while callers wait); for metrics and tests."""
        async with self._store().connect() as conn:
            row = (await conn.execute(sa.select(_T.c.tokens, _T.c.updated_at).where(_T.c.name == self.name))).first()
        if row is None:
            return self.capacity
        elapsed = max(0.0, self._clock() - float(row.updated_at))
        return min(self.capacity, float(row.tokens) + elapsed * self.rate)

    def _refilled(self, now: float) -> sa.ColumnElement[float]:
        """The row's balance at `now`, as SQL over its stored values."""
        gained = sa.case((_T.c.updated_at < now, (now - _T.c.updated_at) * self.rate), else_=0.0)
        total = _T.c.tokens + gained
        return sa.case((total > self.capacity, self.capacity), else_=total)

    def _take(self, now: float, tokens: float) -> sa.Update:
        return (
            sa.update(_T)
            .where(_T.c.name == self.name)
            .values(
                tokens=self._refilled(now) - tokens,
                updated_at=sa.case((_T.c.updated_at < now, now), else_=_T.c.updated_at),
            )
        )

    async def _create(self, now: float) -> None:
        """Make the row once (committed before any caller updates it; a no-op if it exists)."""
        if self._created:
            return
        # A new budget starts full, as Twenty's own bucket does.
        values = {"name": self.name, "tokens": self.capacity, "updated_at": now, "paused_until": 0.0}
        async with self._store().begin() as conn:
            await conn.execute(upsert_stmt(_T, values, ["name"], [], dialect=conn.dialect.name))
        self._created = True

    async def _wait_out_pause(self, ready_at: float) -> None:
        """A pause that began while this caller slept still applies to it."""
        for _ in range(5):  # bounded: a fake clock must not make this spin
            async with self._store().connect() as conn:
                until = (await conn.execute(sa.select(_T.c.paused_until).where(_T.c.name == self.name))).scalar()
            if until is None or float(until) <= ready_at:
                return
            await self._sleep(float(until) - ready_at)
            ready_at = float(until)
