"""Named leases: at most one holder at a time across every process sharing the database.

A lease is one row (name, owner, expires_at). Acquiring is a single atomic upsert that only
takes the row over when it has expired or already belongs to the caller, so it behaves the
same on SQLite (>= 3.24, ON CONFLICT … DO UPDATE … WHERE) and PostgreSQL. Expiry uses each
process's clock: replicas are expected to run NTP; keep TTLs well above any clock skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import RetryableError
from bridge.store.db import as_utc, dialect_name, excluded, upsert_stmt, utcnow
from bridge.store.tables import leases

log = logging.getLogger(__name__)


def owner_id() -> str:
    """A lease owner: `host:pid:random`, so a holder that died on this host can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` names a process on this host that no longer exists (killed, crashed)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def acquire_or_reclaim(engine: AsyncEngine, name: str, owner: str, ttl_seconds: float) -> bool:
    """`acquire`, and when the holder is a dead process on this host, take the lease over at once
    instead of waiting for its TTL (a `kill -9` leaves the row behind)."""
    if await acquire(engine, name, owner, ttl_seconds):
        return True
    current = await holder(engine, name)
    if current and owner_is_dead(current):
        log.warning("lease %s was held by a process that died (%s); taking it over", name, current)
        await release(engine, name, current)
        return await acquire(engine, name, owner, ttl_seconds)
    return False


async def acquire(engine: AsyncEngine, name: str, owner: str, ttl_seconds: float) -> bool:
    """Take (or extend) the lease `name` for `owner`; False when someone else holds it."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = utcnow()
    new = excluded(leases)
    stmt = upsert_stmt(
        leases,
        {"name": name, "owner": owner, "expires_at": now + timedelta(seconds=ttl_seconds)},
        ["name"],
        {"owner": new.c.owner, "expires_at": new.c.expires_at},
        dialect=dialect_name(engine),
        where=sa.or_(leases.c.expires_at < now, leases.c.owner == owner),
    )
    # Inserted or updated: 1 row; conflict with a live lease of another owner: 0 rows.
    # (RETURNING would need SQLite >= 3.35; an INSERT's rowcount must be asked for explicitly.)
    async with engine.begin() as conn:
        result = await conn.execute(stmt.execution_options(preserve_rowcount=True))
    return result.rowcount == 1


async def renew(engine: AsyncEngine, name: str, owner: str, ttl_seconds: float) -> bool:
    """Push the expiry out; False when the lease was lost (stolen after expiry, or released)."""
    stmt = (
        sa.update(leases)
        .where(leases.c.name == name, leases.c.owner == owner)
        .values(expires_at=utcnow() + timedelta(seconds=ttl_seconds))
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def release(engine: AsyncEngine, name: str, owner: str) -> bool:
    """Give the lease up; only its owner can. False when it was not held by `owner`."""
    stmt = sa.delete(leases).where(leases.c.name == name, leases.c.owner == owner)
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def holder(engine: AsyncEngine, name: str) -> str | None:
    """The current (unexpired) owner of `name`, if any."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(leases.c.owner, leases.c.expires_at).where(leases.c.name == name))).first()
    if row is None or as_utc(row.expires_at) <= utcnow():
        return None
    return str(row.owner)


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep(engine: AsyncEngine, name: str, owner: str, ttl: float, lost: asyncio.Event | None = None) -> None:
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            if not await renew(engine, name, owner, ttl):
                log.error("lease %s was lost by %s", name, owner)
                if lost is not None:
                    lost.set()
                return
        except Exception:  # a database hiccup must not kill the holder; try again next period
            log.exception("renewing lease %s failed", name)


class LeaseBusy(RetryableError):
    """Someone else holds the lease (and the caller chose not to wait, or waited long enough)."""

    def __init__(self, name: str, holder: str | None) -> None:
        super().__init__(f"{name} is held by {holder or 'another process'}")
        self.name = name
        self.holder = holder


@dataclass
class Held:
    """A lease being held: its name, the unique owner token, and whether a renewal found it lost."""

    name: str
    owner: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class _LocalQueue:
    """FIFO hand-over between the holders of one name inside this process, whatever event loop
    each runs on (the web app's, the worker thread's). A `threading.Lock` guards the state, and
    the next waiter is woken on its own loop with `call_soon_threadsafe`. Without it, holders in
    one process would poll the database against each other, and a busy one would starve the rest.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self, wait: float | None) -> bool:
        """Wait for the turn (forever with None); False when `wait` seconds passed first."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            if wait is not None and wait <= 0:
                return False
            loop = asyncio.get_running_loop()
            turn: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, turn))
        try:
            await asyncio.wait_for(turn, wait)
            return True
        except TimeoutError:
            self._withdraw(loop, turn)
            return False
        except BaseException:
            self._withdraw(loop, turn)
            raise

    def _withdraw(self, loop: asyncio.AbstractEventLoop, turn: asyncio.Future[None]) -> None:
        with self._mutex, contextlib.suppress(ValueError):
            self._waiters.remove((loop, turn))
            return
        # Already handed the turn: pass it on, or the name stays taken forever.
        if turn.done() and not turn.cancelled():
            self.release()

    def release(self) -> None:
        with self._mutex:
            while self._waiters:
                loop, turn = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._hand_over, turn)
                    return
                except RuntimeError:  # that loop has closed: skip its waiter
                    continue
            self._held = False

    def _hand_over(self, turn: asyncio.Future[None]) -> None:
        if turn.done():  # its waiter gave up (cancelled, timed out) meanwhile: next one
            self.release()
        else:
            turn.set_result(None)


class Leases:
    """The one lease helper: every lease of the bridge (sync, per-object write, OAuth refresh,
    reconciliation) is taken through `hold`.

    - across processes: one row per name (`acquire`), owned by a token unique to this holding,
      so two holders in one process (two event loops) exclude each other like two replicas;
    - a row left by a process that died on this host is reclaimed at once;
    - while held, a keeper renews it every ttl/3, so work that outlasts the TTL keeps it;
    - `wait`: None fails at once with `LeaseBusy` when taken, a number waits that many seconds.
    """

    def __init__(self, store: Callable[[], AsyncEngine]) -> None:
        self._store = store
        self._queues: dict[str, _LocalQueue] = {}
        self._queues_mutex = threading.Lock()

    def _queue(self, name: str) -> _LocalQueue:
        with self._queues_mutex:
            return self._queues.setdefault(name, _LocalQueue())

    @contextlib.asynccontextmanager
    async def hold(self, name: str, *, ttl: float, wait: float | None = None) -> AsyncIterator[Held]:
        deadline = time.monotonic() + (wait or 0.0)
        queue = self._queue(name)
        if not await queue.acquire(wait if wait is not None else 0.0):
            raise LeaseBusy(name, "another task of this process")
        try:
            held = Held(name, owner_id())
            await self._take(held, ttl, deadline, waiting=wait is not None)
            keeper = asyncio.create_task(_keep(self._store(), name, held.owner, ttl, held.lost))
            try:
                yield held
            finally:
                await _stop(keeper)
                await asyncio.shield(release(self._store(), name, held.owner))
        finally:
            queue.release()

    async def _take(self, held: Held, ttl: float, deadline: float, *, waiting: bool) -> None:
        delay = 0.02
        while not await acquire_or_reclaim(self._store(), held.name, held.owner, ttl):
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                raise LeaseBusy(held.name, await holder(self._store(), held.name))
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)

    async def holder(self, name: str) -> str | None:
        return await holder(self._store(), name)
