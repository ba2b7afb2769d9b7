"""Pending Connect Whop requests (`oauth_states`): the PKCE verifier and nonce of each, until used."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import as_utc, as_utc_or_none
from bridge.store.tables import oauth_states

# Old requests are useless after their expiry; a day is kept for the "expired" message.
KEPT_AFTER_EXPIRY = timedelta(days=1)


@dataclass(frozen=True)
class PendingState:
    session_id: str
    code_verifier_enc: str = field(repr=False)
    nonce: str | None
    expires_at: datetime
    used_at: datetime | None


async def add(
    engine: AsyncEngine,
    *,
    state: str,
    session_id: str,
    code_verifier_enc: str,
    nonce: str | None,
    now: datetime,
    ttl: timedelta,
) -> None:
    """Record a new request, dropping those long expired."""
    async with engine.begin() as conn:
        await conn.execute(sa.delete(oauth_states).where(oauth_states.c.expires_at < now - KEPT_AFTER_EXPIRY))
        await conn.execute(
            sa.insert(oauth_states).values(
                state=state,
                session_id=session_id,
                code_verifier_enc=code_verifier_enc,
                nonce=nonce,
                created_at=now,
                expires_at=now + ttl,
            )
        )


async def get(engine: AsyncEngine, state: str) -> PendingState | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(oauth_states).where(oauth_states.c.state == state))).first()
    if row is None:
        return None
    return PendingState(
        session_id=row.session_id,
        code_verifier_enc=row.code_verifier_enc,
        nonce=row.nonce,
        expires_at=as_utc(row.expires_at),
        used_at=as_utc_or_none(row.used_at),
    )


async def use(engine: AsyncEngine, state: str, now: datetime) -> bool:
    """Mark the request used; False when it already was (of two concurrent callbacks, one wins)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.update(oauth_states)
            .where(oauth_states.c.state == state, oauth_states.c.used_at.is_(None))
            .values(used_at=now)
        )
    return bool(result.rowcount == 1)
