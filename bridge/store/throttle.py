"""Login backoff shared by every replica through the store.

Each key (the admin account, a client address, a known browser) is one row: the password
checks made since the last success and the time the next may run. Taking a turn is one short
transaction: per key, make the row if missing, then an UPDATE that counts the check and sets the
next wait, guarded by `blocked_until <= now`. The row lock (PostgreSQL) or the write lock
(SQLite) serialises rival requests, so when a wait ends exactly one of them gets the turn,
whichever process it reached. A refused request counts nothing and moves no wait, so hammering
during a wait does not lengthen it: after at most `longest` seconds the next check runs.

A turn is counted before the password is checked, as if it would fail; a success clears the
keys. So a burst of parallel guesses gets no more turns than one guess after another.

A limit shared by everyone (the admin account) is split into `Lanes`: whose lane a check takes is
read from the caller's own key in the same transaction, after counting it there. So a caller that
has spent its free checks queues only behind others like it, and cannot hold back one that has
not (the admin at a new address), however fast it hammers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from bridge.store.db import upsert_stmt
from bridge.store.tables import login_throttle as _T


@dataclass(frozen=True)
class Backoff:
    """`free` checks back to back, then waits that double from `first` up to `longest` seconds;
    a key left alone for `forget` seconds starts again."""

    free: int = 10
    first: float = 1.0
    longest: float = 60.0
    forget: float = 3600.0

    def __post_init__(self) -> None:
        if self.free < 1 or self.first <= 0 or self.longest < self.first or self.forget < self.longest:
            raise ValueError("a backoff needs free >= 1 and 0 < first <= longest <= forget")

    def wait(self, checks: int) -> float:
        """The wait after the `checks`-th check in a row (before jitter)."""
        if checks < self.free:
            return 0.0
        return min(self.longest, self.first * 2.0 ** min(checks - self.free, 64))

    def wait_sql(self, checks: sa.ColumnElement[int]) -> sa.ColumnElement[float]:
        """`wait` as SQL: a CASE over the few doubling steps (SQLite has no POWER by default)."""
        steps: list[tuple[sa.ColumnElement[bool], float]] = [(checks < self.free, 0.0)]
        n = self.free
        while self.wait(n) < self.longest:
            steps.append((checks == n, self.wait(n)))
            n += 1
        return sa.case(*steps, else_=self.longest)


@dataclass(frozen=True)
class Lanes:
    """A shared limit in two lanes: a check whose caller's key `by` has counted at most `within`
    checks (this one included) takes `new`; any other takes `held`. Neither lane's key may be
    among the caller's own keys, and every claim on them names its own keys first (the lock order)."""

    by: str
    within: int
    new: tuple[str, Backoff]
    held: tuple[str, Backoff]


async def take_turn(
    engine: AsyncEngine,
    keys: Sequence[tuple[str, Backoff]],
    now: float,
    jitter: float = 1.0,
    lanes: Lanes | None = None,
) -> float:
    """Count one check against every key (and then one lane of `lanes`), or against none: 0.0
    when the check may run, else the seconds until it may. `jitter` (at most 1) scales the wait
    this check sets."""
    if not keys and lanes is None:
        return 0.0
    ordered = sorted(keys, key=lambda item: item[0])  # one lock order for every caller: no deadlock between two claims
    async with engine.connect() as conn:
        tx = await conn.begin()
        try:
            for key, rule in ordered:
                if not await _count(conn, key, rule, now, jitter):
                    return await _refused(conn, tx, [k for k, _ in ordered], now)
            if lanes is not None:
                # The caller's row is ours (counted above, under its lock): its count is this check's.
                spent = (await conn.execute(sa.select(_T.c.attempts).where(_T.c.key == lanes.by))).scalar()
                key, rule = lanes.new if int(spent or 0) <= lanes.within else lanes.held
                if not await _count(conn, key, rule, now, jitter):
                    return await _refused(conn, tx, [key], now)
            await tx.commit()
        except BaseException:
            if tx.is_active:
                await tx.rollback()
            raise
    return 0.0


async def _count(conn: AsyncConnection, key: str, rule: Backoff, now: float, jitter: float) -> bool:
    """Count a check against `key` unless it is waiting; whether it was counted."""
    fresh = {"key": key, "attempts": 0, "blocked_until": 0.0, "updated_at": now}
    await conn.execute(upsert_stmt(_T, fresh, ["key"], [], dialect=conn.dialect.name))
    checks = sa.case((_T.c.updated_at < now - rule.forget, 1), else_=_T.c.attempts + 1)
    taken = await conn.execute(
        sa.update(_T)
        .where(_T.c.key == key, _T.c.blocked_until <= now)
        .values(attempts=checks, blocked_until=now + rule.wait_sql(checks) * jitter, updated_at=now)
    )
    return taken.rowcount == 1


async def _refused(conn: AsyncConnection, tx: AsyncTransaction, names: list[str], now: float) -> float:
    """Undo what this check counted; the seconds until the longest wait among `names` ends."""
    until = (await conn.execute(sa.select(sa.func.max(_T.c.blocked_until)).where(_T.c.key.in_(names)))).scalar()
    await tx.rollback()
    return max(float(until or now) - now, 0.001)


async def clear(engine: AsyncEngine, keys: Sequence[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.delete(_T).where(_T.c.key.in_(list(keys))))


async def prune(engine: AsyncEngine, now: float, older_than: float) -> int:
    """Delete keys left alone for `older_than` seconds and not waiting (they would start again)."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(_T).where(_T.c.updated_at < now - older_than, _T.c.blocked_until <= now))
    return int(result.rowcount)


async def waiting(engine: AsyncEngine, key: str, now: float) -> float:
    """Seconds until `key` may check again (0.0 when it may now); for pages and tests."""
    async with engine.connect() as conn:
        until = (await conn.execute(sa.select(_T.c.blocked_until).where(_T.c.key == key))).scalar()
    return max(0.0, float(until or 0.0) - now)
