"""The durable webhook inbox: verified deliveries wait here until the worker has applied them.

Life of a row (`status`):

    pending ──claim──► processing ──► applied | ignored
       ▲                   │
       │                   ├──mark_failed──► failed ──(due again)──► processing …
       │                   │                    └── after max_attempts ──► dead
       │                   └──release / claim expired──► pending or failed (no attempt spent)
       └──────────── replay (failed, dead, or any chosen rows) ◄─────────┘

`attempts` counts the attempts that were the event's own: a claim counts as one until its
worker gives it back with `release` (the cause was elsewhere: Twenty was down). A worker owns a
claimed row until `claimed_until` and `extend`s that while its pass runs; a claim that runs out
means the worker stopped, and the next `claim` puts the row back in the queue, due from then on
(behind what was due before), counting a lost claim rather than an attempt. An event that keeps
stopping its worker is dead-lettered after `max_lost_claims` of those.

One code path serves SQLite and PostgreSQL; the only difference is how the claim is isolated
(see `claim`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Update

from bridge.store import db, tables
from bridge.store.db import update_in_slices
from bridge.store.rows import row_reader

__all__ = [
    "STATUSES",
    "InboxEvent",
    "claim",
    "counts",
    "extend",
    "list_events",
    "mark_applied",
    "mark_failed",
    "mark_ignored",
    "oldest_pending_age",
    "prune",
    "release",
    "replay",
    "store",
]

STATUSES = ("pending", "processing", "applied", "ignored", "failed", "dead")
_DUE = ("pending", "failed")
_WAITING = ("pending", "processing", "failed")  # not yet applied, not given up on
_FINISHED = ("applied", "ignored")
_ERROR_MAX = 4000  # an error message, not a whole traceback

_T = tables.webhook_inbox
_SYSTEM_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class InboxEvent:
    webhook_id: str
    event_type: str | None
    company_id: str | None
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None


_EVENT_COLUMNS = (
    _T.c.webhook_id,
    _T.c.event_type,
    _T.c.company_id,
    _T.c.body,
    _T.c.status,
    _T.c.attempts,
    _T.c.next_attempt_at,
    _T.c.last_error,
    _T.c.received_at,
    _T.c.processed_at,
)


_event = row_reader(InboxEvent, _T)


def _now(now: datetime | None) -> datetime:
    return db.utcnow() if now is None else db.to_db_time(now)


def _error_text(error: str) -> str:
    # PostgreSQL text cannot hold NUL; exception messages can (they may quote a payload).
    return error.replace("\x00", "\ufffd")[:_ERROR_MAX]


async def store(
    engine: AsyncEngine,
    *,
    webhook_id: str,
    event_type: str | None,
    company_id: str | None,
    body: str,
    received_at: datetime,
) -> bool:
    """Insert a verified delivery; False when `webhook_id` is already stored (nothing changes).

    A single INSERT … ON CONFLICT DO NOTHING: the webhook endpoint's only query.
    """
    when = db.to_db_time(received_at)
    stmt = db.upsert_stmt(
        _T,
        {
            "webhook_id": webhook_id,
            "event_type": event_type,
            "company_id": company_id,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": when,
            "received_at": when,
        },
        ["webhook_id"],
        [],
        dialect=db.dialect_name(engine),
    )
    # RETURNING rather than rowcount: SQLAlchemy reports -1 as the rowcount of a psycopg INSERT.
    async with engine.begin() as conn:
        inserted = (await conn.execute(stmt.returning(_T.c.webhook_id))).first()
    return inserted is not None


async def store_many(engine: AsyncEngine, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert several verified deliveries in one transaction; returns the ids that were new.

    Each row has webhook_id, event_type, company_id, body and received_at. One statement for a
    whole group of concurrent deliveries (see `webhooks.InboxWriter`): a duplicate id, in the
    table or earlier in `rows`, is simply not inserted.
    """
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(str(row["webhook_id"]), row)
    if not unique:
        return set()
    values = []
    for webhook_id, row in unique.items():
        when = db.to_db_time(row["received_at"])
        values.append(
            {
                "webhook_id": webhook_id,
                "event_type": row.get("event_type"),
                "company_id": row.get("company_id"),
                "body": row["body"],
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": when,
                "received_at": when,
            }
        )
    # One statement for any number of rows, compiled once and cached; SQLAlchemy sends the rows
    # as a multi-row INSERT … RETURNING ("insertmanyvalues") on both SQLite and PostgreSQL.
    stmt = db.upsert_stmt(_T, None, ["webhook_id"], [], dialect=db.dialect_name(engine))
    async with engine.begin() as conn:
        result = await conn.execute(stmt.returning(_T.c.webhook_id, sort_by_parameter_order=True), values)
        inserted = result.scalars().all()
    return {str(i) for i in inserted if i is not None}


async def finish_many(
    engine: AsyncEngine,
    worker_id: str,
    *,
    applied: Sequence[str] = (),
    ignored: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> int:
    """Mark events this worker still holds as applied or ignored (with their reasons), in one
    transaction: a burst of deliveries should not cost one write transaction per event."""
    at = _now(now)
    by_reason: dict[str, list[str]] = {}
    for webhook_id, reason in (ignored or {}).items():
        by_reason.setdefault(_error_text(reason) or "", []).append(webhook_id)
    groups: list[tuple[str, str | None, list[str]]] = [("applied", None, list(applied))]
    groups += [("ignored", reason, ids) for reason, ids in by_reason.items()]
    done = 0
    async with engine.begin() as conn:
        for status, error, ids in groups:
            if not ids:
                continue
            stmt = (
                sa.update(_T)
                .where(_T.c.webhook_id.in_(ids), _T.c.claimed_by == worker_id, _T.c.status == "processing")
                .values(status=status, last_error=error, processed_at=at, claimed_by=None, claimed_until=None)
            )
            done += int((await conn.execute(stmt)).rowcount)
    return done


async def claim(
    engine: AsyncEngine,
    worker_id: str,
    *,
    limit: int = 20,
    lease_seconds: float = 60,
    now: datetime | None = None,
    max_lost_claims: int = 8,
) -> list[InboxEvent]:
    """Take up to `limit` due events for `worker_id`, oldest due first, and mark them processing.

    Due means pending or failed with `next_attempt_at` reached. Each claim counts as an attempt.
    First, claims whose lease ran out (their worker stopped) go back in the queue, due now, so
    they queue behind everything that was due before them instead of in front of it; the lost
    claim is taken back off `attempts`. The `max_lost_claims`-th lost claim dead-letters the
    event instead.

    Isolation: on PostgreSQL the candidate rows are selected `FOR UPDATE SKIP LOCKED`, so two
    bridge processes claiming at once lock disjoint rows and neither waits for the other. SQLite
    has no row locks (SQLAlchemy renders no FOR UPDATE there), and needs none: an UPDATE is
    the transaction's first statement, so SQLite takes its single database-wide write lock
    before evaluating the subquery, and a second claimer waits (busy_timeout) until the first has
    committed, then sees those rows as processing.
    """
    at = _now(now)
    until = at + timedelta(seconds=lease_seconds)
    expired = (
        sa.select(_T.c.webhook_id)
        .where(_T.c.status == "processing", _T.c.claimed_until < at)
        .with_for_update(skip_locked=True)
        .cte("expired")
    )
    lost = _T.c.lost_claims + 1
    dead = lost >= max_lost_claims
    give_back = (
        sa.update(_T)
        .where(_T.c.webhook_id.in_(sa.select(expired.c.webhook_id)))
        .values(
            status=sa.case((dead, "dead"), (_T.c.attempts > 1, "failed"), else_="pending"),
            attempts=sa.case((_T.c.attempts > 0, _T.c.attempts - 1), else_=0),
            lost_claims=lost,
            next_attempt_at=at,
            claimed_by=None,
            claimed_until=None,
            processed_at=sa.case((dead, at), else_=_T.c.processed_at),
            # Keep the last real error, if any, in front of why the bridge gave up.
            last_error=sa.case(
                (
                    dead,
                    sa.func.coalesce(_T.c.last_error + "; ", "")
                    + sa.literal(f"its worker stopped (claim expired) {max_lost_claims} times"),
                ),
                else_=_T.c.last_error,
            ),
        )
    )
    due = (
        sa.select(_T.c.webhook_id)
        .where(_T.c.status.in_(_DUE), _T.c.next_attempt_at <= at)
        .order_by(_T.c.next_attempt_at, _T.c.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        # A CTE is evaluated once, so the locked set is exactly the set updated.
        .cte("due")
    )
    take = (
        sa.update(_T)
        .where(_T.c.webhook_id.in_(sa.select(due.c.webhook_id)))
        .values(status="processing", claimed_by=worker_id, claimed_until=until, attempts=_T.c.attempts + 1)
        .returning(*_EVENT_COLUMNS)
    )
    async with engine.begin() as conn:
        await conn.execute(give_back)
        rows = (await conn.execute(take)).all()
    # UPDATE … RETURNING gives no order guarantee.
    events = [_event(r) for r in rows]
    events.sort(key=lambda e: (e.next_attempt_at, e.received_at, e.webhook_id))
    return events


async def extend(
    engine: AsyncEngine,
    worker_id: str,
    webhook_ids: Sequence[str],
    *,
    lease_seconds: float = 60,
    now: datetime | None = None,
) -> int:
    """Keep `worker_id`'s claims on these events for `lease_seconds` from now (its pass is still
    running); returns how many it still holds."""
    until = _now(now) + timedelta(seconds=lease_seconds)
    async with engine.begin() as conn:
        return await update_in_slices(conn, webhook_ids, lambda ids: _held(ids, worker_id).values(claimed_until=until))


async def release(engine: AsyncEngine, worker_id: str, webhook_ids: Sequence[str], reason: str) -> int:
    """Give back events `worker_id` holds without spending an attempt: the cause was not the
    event (Twenty was down). They keep their due time, hence their place in the queue, and
    `reason` as their last error so a person can see why they wait. Returns how many."""
    values = {
        "status": sa.case((_T.c.attempts > 1, "failed"), else_="pending"),
        "attempts": sa.case((_T.c.attempts > 0, _T.c.attempts - 1), else_=0),
        "last_error": _error_text(reason),
        "claimed_by": None,
        "claimed_until": None,
    }
    async with engine.begin() as conn:
        return await update_in_slices(conn, webhook_ids, lambda ids: _held(ids, worker_id).values(values))


def _held(webhook_ids: Sequence[str], worker_id: str) -> Update:
    """The events among `webhook_ids` that `worker_id` holds."""
    return sa.update(_T).where(
        _T.c.webhook_id.in_(webhook_ids), _T.c.claimed_by == worker_id, _T.c.status == "processing"
    )


def _owned(webhook_id: str, worker_id: str) -> sa.ColumnElement[bool]:
    # A worker whose lease ran out (and whose event another worker took) must not overwrite it.
    return sa.and_(_T.c.webhook_id == webhook_id, _T.c.status == "processing", _T.c.claimed_by == worker_id)


async def _finish(
    engine: AsyncEngine, webhook_id: str, worker_id: str, status: str, error: str | None, at: datetime
) -> bool:
    stmt = (
        sa.update(_T)
        .where(_owned(webhook_id, worker_id))
        .values(status=status, last_error=error, processed_at=at, claimed_by=None, claimed_until=None)
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return bool(result.rowcount == 1)


async def mark_applied(engine: AsyncEngine, webhook_id: str, worker_id: str, *, now: datetime | None = None) -> bool:
    """The event's change is in Twenty. False if `worker_id` no longer holds the event."""
    return await _finish(engine, webhook_id, worker_id, "applied", None, _now(now))


async def mark_ignored(
    engine: AsyncEngine, webhook_id: str, worker_id: str, reason: str, *, now: datetime | None = None
) -> bool:
    """Nothing to do for this event (unknown type, other company, stale…); `reason` is kept."""
    return await _finish(engine, webhook_id, worker_id, "ignored", _error_text(reason), _now(now))


def backoff_delay(attempts: int, *, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_delay, base_delay·2^(attempts-1))]."""
    ceiling = min(max_delay, base_delay * 2 ** min(max(attempts - 1, 0), 62))
    return rng.uniform(0, ceiling)


async def mark_failed(
    engine: AsyncEngine,
    webhook_id: str,
    worker_id: str,
    error: str,
    *,
    now: datetime | None = None,
    max_attempts: int = 8,
    base_delay: float = 30,
    max_delay: float = 6 * 3600,
    rng: random.Random | None = None,
    permanent: bool = False,
) -> str | None:
    """Record a failed attempt: `failed` with a backoff, or `dead` once attempts are used up.

    `permanent=True` dead-letters at once (an error retrying cannot fix). Returns the new status,
    or None if `worker_id` no longer holds the event.
    """
    at = _now(now)
    # The write comes first: on SQLite a transaction that reads before it writes can lose its
    # snapshot to another writer (SQLITE_BUSY_SNAPSHOT); a leading UPDATE takes the lock at once.
    dead = sa.true() if permanent else _T.c.attempts >= max_attempts
    first = (
        sa.update(_T)
        .where(_owned(webhook_id, worker_id))
        .values(
            status=sa.case((dead, "dead"), else_="failed"),
            last_error=_error_text(error),
            claimed_by=None,
            claimed_until=None,
        )
        .returning(_T.c.status, _T.c.attempts)
    )
    async with engine.begin() as conn:
        row = (await conn.execute(first)).first()
        if row is None:
            return None
        status, attempts = str(row[0]), int(row[1])
        if status == "dead":
            values: dict[str, Any] = {"processed_at": at}
        else:
            delay = backoff_delay(attempts, base_delay=base_delay, max_delay=max_delay, rng=rng or _SYSTEM_RNG)
            values = {"next_attempt_at": at + timedelta(seconds=delay)}
        await conn.execute(sa.update(_T).where(_T.c.webhook_id == webhook_id).values(**values))
    return status


async def list_events(
    engine: AsyncEngine, *, status: str | None = None, failed_only: bool = False, limit: int = 100
) -> list[InboxEvent]:
    """Newest first. `failed_only` means failed or dead."""
    query = sa.select(*_EVENT_COLUMNS).order_by(_T.c.received_at.desc(), _T.c.webhook_id).limit(limit)
    if status is not None:
        query = query.where(_T.c.status == status)
    if failed_only:
        query = query.where(_T.c.status.in_(("failed", "dead")))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_event(r) for r in rows]


async def get_event(engine: AsyncEngine, webhook_id: str) -> InboxEvent | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(*_EVENT_COLUMNS).where(_T.c.webhook_id == webhook_id))).first()
    return None if row is None else _event(row)


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per status; every known status is present (0 when empty), for metrics."""
    result = dict.fromkeys(STATUSES, 0)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(_T.c.status, sa.func.count()).group_by(_T.c.status))).all()
    for status, n in rows:
        result[status] = int(n)
    return result


async def replay(
    engine: AsyncEngine,
    ids: Sequence[str] | None = None,
    *,
    failed_only: bool = False,
    now: datetime | None = None,
) -> int:
    """Make events due again (pending, attempts 0, due now); returns how many.

    `ids` picks events, `failed_only` narrows to failed and dead; with neither, every event is
    replayed (applying is idempotent). Events a live worker holds are left alone.
    """
    at = _now(now)
    live = sa.and_(_T.c.status == "processing", _T.c.claimed_until >= at)
    base = (
        sa.update(_T)
        .where(sa.not_(live))
        .values(
            status="pending",
            attempts=0,
            lost_claims=0,
            next_attempt_at=at,
            last_error=None,
            processed_at=None,
            claimed_by=None,
            claimed_until=None,
        )
    )
    if failed_only:
        base = base.where(_T.c.status.in_(("failed", "dead")))
    total = 0
    async with engine.begin() as conn:
        if ids is None:
            total = (await conn.execute(base)).rowcount
        else:
            total = await update_in_slices(conn, ids, lambda chunk: base.where(_T.c.webhook_id.in_(chunk)))
    return int(total)


async def prune(engine: AsyncEngine, older_than_days: int, *, now: datetime | None = None) -> int:
    """Delete applied and ignored events received more than N days ago; dead ones stay.

    Kept rows double as the `webhook-id` dedupe window, so N should be well over Whop's retry
    window and the reconcile interval.
    """
    cutoff = _now(now) - timedelta(days=older_than_days)
    stmt = sa.delete(_T).where(_T.c.status.in_(_FINISHED), _T.c.received_at < cutoff)
    async with engine.begin() as conn:
        return int((await conn.execute(stmt)).rowcount)


async def oldest_pending_age(engine: AsyncEngine, *, now: datetime | None = None) -> float | None:
    """Seconds since the oldest not-yet-applied event (pending, processing or failed) arrived.

    None when there is none. Dead events are excluded: they wait for a person, not the worker.
    """
    async with engine.connect() as conn:
        oldest = (
            await conn.execute(sa.select(sa.func.min(_T.c.received_at)).where(_T.c.status.in_(_WAITING)))
        ).scalar_one_or_none()
    if oldest is None:
        return None
    return max(0.0, (_now(now) - db.as_utc(oldest)).total_seconds())


async def last_received(engine: AsyncEngine, company_id: str) -> datetime | None:
    """When the newest delivery of this company reached the inbox."""
    stmt = sa.select(sa.func.max(_T.c.received_at)).where(_T.c.company_id == company_id)
    async with engine.connect() as conn:
        return db.as_utc_or_none((await conn.execute(stmt)).scalar())
