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
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

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


@contextlib.asynccontextmanager
async def lease(
    engine: AsyncEngine, name: str, owner: str, ttl: float, *, keepalive: bool = False
) -> AsyncIterator[bool]:
    """`async with lease(...) as held:` — run the body only `if held`; released on exit.

    With `keepalive`, a background task renews the lease every ttl/3 while the body runs, for
    work that may outlast the TTL. If a renewal finds the lease lost, it is logged; the body is
    not cancelled (the caller's own checks, e.g. `renew`, decide what to do).
    """
    held = await acquire(engine, name, owner, ttl)
    keeper: asyncio.Task[None] | None = None
    if held and keepalive:
        keeper = asyncio.create_task(_keep(engine, name, owner, ttl))
    try:
        yield held
    finally:
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if held:
            # Shielded so a cancelled body still frees the lease instead of leaving it to expire.
            await asyncio.shield(release(engine, name, owner))


async def _keep(engine: AsyncEngine, name: str, owner: str, ttl: float) -> None:
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            if not await renew(engine, name, owner, ttl):
                log.warning("lease %s was lost by %s", name, owner)
                return
        except Exception:  # a database hiccup must not kill the holder; try again next period
            log.exception("renewing lease %s failed", name)
