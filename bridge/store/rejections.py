"""Webhook deliveries the endpoint refused, kept briefly so the admin page can show them.

A wrong `WHOP_WEBHOOK_SECRET` otherwise shows nowhere: Whop's deliveries are answered 401 and
never reach the inbox. Refused requests are unauthenticated, so recording them must stay cheap
whatever arrives: `RejectionLog` stores a few per second per process and counts the rest into
the next stored row (`repeats`), and the table keeps only its newest `KEEP` rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import tables
from bridge.store.db import utcnow
from bridge.store.rows import row_reader

__all__ = ["KEEP", "WINDOW", "Rejection", "RejectionLog", "latest", "recent", "record", "summary"]

log = logging.getLogger(__name__)

KEEP = 500
WINDOW = timedelta(hours=24)  # how far back the admin page counts refusals
_T = tables.webhook_rejections


@dataclass(frozen=True)
class Rejection:
    id: int
    reason: str
    webhook_id: str | None  # as the request claimed it
    company_id: str | None  # as the unverified body claimed it
    received_at: datetime
    repeats: int  # similar refusals in the same moment, not stored one by one


def _clip(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    text = "".join(ch for ch in value if ch.isprintable())[:limit]
    return text or None


async def record(
    engine: AsyncEngine,
    reason: str,
    *,
    webhook_id: str | None = None,
    company_id: str | None = None,
    repeats: int = 0,
    at: datetime | None = None,
) -> None:
    """Store one refusal and drop rows beyond the newest `KEEP`."""
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.insert(_T)
            .values(
                reason=reason[:64],
                webhook_id=_clip(webhook_id, 128),
                company_id=_clip(company_id, 64),
                received_at=at or utcnow(),
                repeats=repeats,
            )
            .returning(_T.c.id)
        )
        newest = int(result.scalar_one())
        await conn.execute(sa.delete(_T).where(_T.c.id <= newest - KEEP))


_row = row_reader(Rejection, _T)


async def recent(engine: AsyncEngine, *, limit: int = 50) -> list[Rejection]:
    """Newest first."""
    query = sa.select(_T).order_by(_T.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        return [_row(r) for r in (await conn.execute(query)).all()]


async def latest(engine: AsyncEngine) -> Rejection | None:
    found = await recent(engine, limit=1)
    return found[0] if found else None


async def summary(engine: AsyncEngine, *, since: datetime) -> dict[str, int]:
    """Refusals per reason since `since`, repeats included."""
    total = sa.func.sum(_T.c.repeats + 1)
    query = sa.select(_T.c.reason, total).where(_T.c.received_at >= since).group_by(_T.c.reason)
    async with engine.connect() as conn:
        return {reason: int(n) for reason, n in (await conn.execute(query)).all()}


class RejectionLog:
    """Records refusals for the endpoint: at most `per_second` rows a second (a burst of `burst`),
    the others added to the next row's `repeats`. A store failure is logged, never raised: the
    sender is refused either way."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        per_second: float = 2.0,
        burst: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._at = clock()
        self._skipped = 0

    def _take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def note(self, reason: str, *, webhook_id: str | None = None, company_id: str | None = None) -> None:
        if not self._take():
            self._skipped += 1
            return
        repeats, self._skipped = self._skipped, 0
        try:
            await record(self.engine, reason, webhook_id=webhook_id, company_id=company_id, repeats=repeats)
        except Exception:
            log.exception("could not record a refused webhook delivery")
