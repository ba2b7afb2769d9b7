"""A request budget shared by every process on the database: a token bucket stored as one row.

Twenty limits requests per workspace (100 a minute by default, then HTTP 429 without a
Retry-After), not per process: the web app, the worker and every replica must draw from one
budget. The row counts as Twenty 2.21's own bucket does (its ThrottlerService, read in its source
and seen on the server): an accepted call adds the *whole* tokens earned since the previous one
and restarts the refill clock, so calls closer than a token's time apart earn nothing. A bucket
that refilled continuously let two calls in flight at once drain Twenty's and meet 429s.

Each call takes its turn in one short transaction: an UPDATE that locks the row (SQLite takes its
write lock at once, PostgreSQL locks the row), a SELECT, then an UPDATE with the caller's send
time and the balance after it. Concurrent callers, in any process or event loop, are serialized
by the database; each sleeps outside the transaction until its send time. A caller that finds
the bucket empty goes `SPACING` token-times after the previous call, not one: slack for calls
that reach Twenty a little out of step.

Time is Unix time (every replica's clock, kept by NTP), so the bucket means the same to all.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import upsert_stmt
from bridge.store.tables import rate_budgets as _T

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

# An empty bucket's next call waits this many token-times (1.1: ~60 ms of slack at 100 a minute).
SPACING = 1.1


def balance(tokens: float, last: float, at: float, *, rate: float, capacity: float) -> float:
    """The whole tokens held at `at`, given the balance `tokens` right after a call at `last`."""
    if at <= last:
        return float(tokens)
    return float(min(capacity, tokens + math.floor((at - last) * rate + 1e-9)))


def grant(tokens: float, last: float, now: float, *, rate: float, capacity: float) -> tuple[float, float]:
    """When a call asked for at `now` may go, and the balance right after it, given the balance
    `tokens` right after the previous call, sent at `last` (as Twenty counts: whole tokens only)."""
    at = max(now, last)
    available = balance(tokens, last, at, rate=rate, capacity=capacity)
    if available >= 1:
        return at, available - 1
    return last + SPACING / rate, 0.0


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
        """Wait until a call may be sent; callers are served in the order the database saw them."""
        if tokens != 1:
            raise ValueError("Twenty counts one token a call")
        now = self._clock()
        await self._create(now)
        row = _T.c.name == self.name
        async with self._store().begin() as conn:
            await conn.execute(sa.update(_T).where(row).values(name=_T.c.name))  # lock the row first
            held = (await conn.execute(sa.select(_T.c.tokens, _T.c.updated_at).where(row))).one()
            at, left = grant(float(held.tokens), float(held.updated_at), now, rate=self.rate, capacity=self.capacity)
            await conn.execute(sa.update(_T).where(row).values(tokens=left, updated_at=at))
        if at > now:
            await self._sleep(at - now)
        await self._wait_out_pause(at)

    async def pause(self, seconds: float) -> None:
        """Hold everyone back for `seconds` from now (Twenty answered 429): the refill clock moves
        past the pause and any saved-up burst beyond one call is dropped, so traffic resumes gently."""
        if seconds <= 0:
            return
        now = self._clock()
        until = now + seconds
        await self._create(now)
        row = _T.c.name == self.name
        async with self._store().begin() as conn:
            await conn.execute(sa.update(_T).where(row).values(name=_T.c.name))
            held = (await conn.execute(sa.select(_T.c.tokens, _T.c.updated_at, _T.c.paused_until).where(row))).one()
            if float(held.updated_at) < until:
                await conn.execute(
                    sa.update(_T)
                    .where(row)
                    .values(
                        tokens=min(1.0, self._balance(held.tokens, held.updated_at, now)),
                        updated_at=until,
                        paused_until=max(until, float(held.paused_until)),
                    )
                )

    async def available(self) -> float:
        """Whole tokens available now (0 while callers wait their turn); for metrics and tests."""
        async with self._store().connect() as conn:
            held = (await conn.execute(sa.select(_T.c.tokens, _T.c.updated_at).where(_T.c.name == self.name))).first()
        if held is None:
            return self.capacity
        return self._balance(held.tokens, held.updated_at, self._clock())

    def _balance(self, tokens: float, last: float, now: float) -> float:
        return balance(float(tokens), float(last), now, rate=self.rate, capacity=self.capacity)

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
