"""The lines the bridge wrote on Twenty's timelines (`timeline_lines`), by company and line key:
what makes each Whop event a line once, whoever sees it (the worker, a sync) and however often."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import dialect_name, slices, to_db_time_or_none, upsert_stmt, utcnow
from bridge.store.rows import row_reader
from bridge.store.tables import timeline_lines


@dataclass(frozen=True, slots=True)
class HeldLine:
    """A line already on the timeline."""

    key: str
    subject: str
    kind: str
    happened_at: datetime | None
    observed_at: datetime | None
    activity_id: str | None


_line = row_reader(HeldLine, timeline_lines, columns={"key": "line_key"})


async def held_lines(engine: AsyncEngine, company_id: str, subjects: Sequence[str]) -> dict[str, list[HeldLine]]:
    """The lines written for each of these memberships or payments (subjects with none are absent)."""
    found: dict[str, list[HeldLine]] = {}
    async with engine.connect() as conn:
        for chunk in slices(list(dict.fromkeys(subjects))):
            stmt = sa.select(timeline_lines).where(
                timeline_lines.c.company_id == company_id, timeline_lines.c.subject.in_(chunk)
            )
            for row in (await conn.execute(stmt)).all():
                found.setdefault(row._mapping["subject"], []).append(_line(row))
    return found


async def record_lines(engine: AsyncEngine, company_id: str, lines: Sequence[HeldLine]) -> None:
    """Remember lines just written; one already held (another process wrote it) stays as it is."""
    if not lines:
        return
    now = utcnow()
    rows = {
        line.key: {
            "company_id": company_id,
            "line_key": line.key,
            "subject": line.subject,
            "kind": line.kind,
            "happened_at": to_db_time_or_none(line.happened_at),
            "observed_at": to_db_time_or_none(line.observed_at),
            "activity_id": line.activity_id,
            "written_at": now,
        }
        for line in lines
    }
    stmt = upsert_stmt(timeline_lines, None, ["company_id", "line_key"], [], dialect=dialect_name(engine))
    async with engine.begin() as conn:
        # In key order: two writers recording the same lines lock them in the same order, so
        # PostgreSQL never finds them waiting on each other.
        await conn.execute(stmt, [rows[key] for key in sorted(rows)])


async def count_lines(engine: AsyncEngine, company_id: str | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(timeline_lines)
    if company_id is not None:
        stmt = stmt.where(timeline_lines.c.company_id == company_id)
    async with engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())
