"""Record shadows: what the bridge last wrote to Twenty for each Whop record.

A sync compares the hash of the values it would write with the shadow's hash and skips
unchanged records; a reconcile marks every record it sees, and whatever stays unseen has
disappeared at Whop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Update

from bridge.store.db import (
    dialect_name,
    excluded,
    slices,
    to_db_time_or_none,
    update_in_slices,
    upsert_stmt,
    utcnow,
)
from bridge.store.rows import row_reader
from bridge.store.tables import record_shadows, sync_runs


@dataclass(frozen=True, slots=True)
class Shadow:
    company_id: str
    object: str
    whop_id: str
    twenty_id: str | None
    hash: str
    whop_updated_at: datetime | None
    written: Any  # the JSON values last written, or None
    written_at: datetime
    seen_run_id: int | None
    gone_at: datetime | None


@dataclass(frozen=True, slots=True)
class ShadowWrite:
    """One record just written to Twenty. `twenty_id=None` keeps the id already known."""

    whop_id: str
    hash: str
    twenty_id: str | None = None
    whop_updated_at: datetime | None = None
    written: Any = None


_row_to_shadow = row_reader(Shadow, record_shadows)


def _key(company_id: str, object: str) -> sa.ColumnElement[bool]:
    return sa.and_(record_shadows.c.company_id == company_id, record_shadows.c.object == object)


def _update(company_id: str, object: str, whop_ids: Sequence[str]) -> Update:
    return sa.update(record_shadows).where(_key(company_id, object), record_shadows.c.whop_id.in_(whop_ids))


async def get_shadows(engine: AsyncEngine, company_id: str, object: str, whop_ids: Sequence[str]) -> dict[str, Shadow]:
    """Shadows for `whop_ids` (missing ones are simply absent from the result)."""
    ids = list(dict.fromkeys(whop_ids))
    found: dict[str, Shadow] = {}
    if not ids:
        return found
    async with engine.connect() as conn:
        for chunk in slices(ids):
            stmt = sa.select(record_shadows).where(_key(company_id, object), record_shadows.c.whop_id.in_(chunk))
            for row in (await conn.execute(stmt)).all():
                shadow = _row_to_shadow(row)
                found[shadow.whop_id] = shadow
    return found


async def all_shadows(engine: AsyncEngine, company_id: str, object: str, *, suffix: str = "") -> list[Shadow]:
    """Every shadow of `object` for a company whose key ends with `suffix` (for small objects
    such as the bridge's moments; a large one is read by key)."""
    stmt = sa.select(record_shadows).where(_key(company_id, object))
    if suffix:
        stmt = stmt.where(record_shadows.c.whop_id.like(f"%{suffix}"))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(record_shadows.c.whop_id))).all()
    return [_row_to_shadow(r) for r in rows]


async def put_shadows(
    engine: AsyncEngine,
    company_id: str,
    object: str,
    rows: Sequence[ShadowWrite],
    *,
    run_id: int | None = None,
) -> None:
    """Upsert shadows for records just written, all in one transaction.

    Writing a record proves it exists at Whop, so `gone_at` is cleared; with `run_id` the rows
    also count as seen by that reconcile.
    """
    if not rows:
        return
    now = utcnow()
    # Last write wins within a batch; PostgreSQL refuses to upsert the same key twice in one INSERT.
    by_id = {r.whop_id: r for r in rows}
    values = [
        {
            "company_id": company_id,
            "object": object,
            "whop_id": r.whop_id,
            "twenty_id": r.twenty_id,
            "hash": r.hash,
            "whop_updated_at": to_db_time_or_none(r.whop_updated_at),
            "written_json": None if r.written is None else json.dumps(r.written, sort_keys=True, default=str),
            "written_at": now,
            "seen_run_id": run_id,
            "gone_at": None,
        }
        for r in by_id.values()
    ]
    new = excluded(record_shadows)
    update: dict[str, Any] = {
        "twenty_id": sa.func.coalesce(new.c.twenty_id, record_shadows.c.twenty_id),
        "hash": new.c.hash,
        "whop_updated_at": new.c.whop_updated_at,
        "written_json": new.c.written_json,
        "written_at": new.c.written_at,
        "gone_at": None,
    }
    if run_id is not None:
        update["seen_run_id"] = new.c.seen_run_id
    stmt = upsert_stmt(record_shadows, None, ["company_id", "object", "whop_id"], update, dialect=dialect_name(engine))
    async with engine.begin() as conn:
        # executemany of one cached statement: far cheaper than compiling multi-row VALUES.
        await conn.execute(stmt, values)


async def mark_seen(engine: AsyncEngine, company_id: str, object: str, whop_ids: Sequence[str], run_id: int) -> int:
    """A reconcile saw these records at Whop (and so they are not gone). Returns rows touched."""
    async with engine.begin() as conn:
        return await update_in_slices(
            conn, whop_ids, lambda ids: _update(company_id, object, ids).values(seen_run_id=run_id, gone_at=None)
        )


async def unseen_since(engine: AsyncEngine, company_id: str, object: str, run_id: int) -> list[Shadow]:
    """Live shadows the reconcile `run_id` did not see: the records disappeared at Whop.

    A shadow seen by a later run is not gone either. Shadows written after the run started are
    left out: a webhook may have created the record after the reconcile walked past the page it
    would have been on.
    """
    run_started = sa.select(sync_runs.c.started_at).where(sync_runs.c.id == run_id).scalar_subquery()
    stmt = (
        sa.select(record_shadows)
        .where(
            _key(company_id, object),
            record_shadows.c.gone_at.is_(None),
            sa.or_(record_shadows.c.seen_run_id.is_(None), record_shadows.c.seen_run_id < run_id),
            record_shadows.c.written_at < sa.func.coalesce(run_started, record_shadows.c.written_at),
        )
        .order_by(record_shadows.c.whop_id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [_row_to_shadow(r) for r in rows]


async def mark_gone(
    engine: AsyncEngine, company_id: str, object: str, whop_ids: Sequence[str], *, at: datetime | None = None
) -> int:
    """Record that these records no longer exist at Whop. Returns rows touched."""
    when = to_db_time_or_none(at) or utcnow()
    async with engine.begin() as conn:
        return await update_in_slices(conn, whop_ids, lambda ids: _update(company_id, object, ids).values(gone_at=when))


async def count_shadows(
    engine: AsyncEngine,
    company_id: str | None = None,
    object: str | None = None,
    *,
    include_gone: bool = True,
) -> int:
    stmt = sa.select(sa.func.count()).select_from(record_shadows)
    if company_id is not None:
        stmt = stmt.where(record_shadows.c.company_id == company_id)
    if object is not None:
        stmt = stmt.where(record_shadows.c.object == object)
    if not include_gone:
        stmt = stmt.where(record_shadows.c.gone_at.is_(None))
    async with engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def written_records(engine: AsyncEngine, company_id: str, object: str) -> list[tuple[str, str, dict[str, Any]]]:
    """`(whop id, twenty id, values last written)` of every record of `object` the bridge wrote
    for `company_id` and still holds live (what a deep check compares Twenty with)."""
    stmt = sa.select(record_shadows.c.whop_id, record_shadows.c.twenty_id, record_shadows.c.written_json).where(
        _key(company_id, object),
        record_shadows.c.gone_at.is_(None),
        record_shadows.c.twenty_id.is_not(None),
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [(whop_id, str(twenty_id), _loads(written)) for whop_id, twenty_id, written in rows]


async def forget_hashes(engine: AsyncEngine, company_id: str, object: str, whop_ids: Sequence[str]) -> None:
    """Forget these records' hashes, so the next walk writes them again."""
    if not whop_ids:
        return
    async with engine.begin() as conn:
        await update_in_slices(conn, whop_ids, lambda ids: _update(company_id, object, ids).values(hash=""))


def _loads(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
