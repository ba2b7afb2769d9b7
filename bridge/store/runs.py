"""Sync runs: one row per full/reconcile/deep sync, with a checkpoint so a killed run resumes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import utcnow
from bridge.store.rows import row_reader
from bridge.store.tables import sync_runs

RunKind = Literal["full", "reconcile", "deep"]
Trigger = Literal["cli", "admin", "schedule", "connect"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted", "skipped"]
KINDS: frozenset[str] = frozenset(get_args(RunKind))
TRIGGERS: frozenset[str] = frozenset(get_args(Trigger))
RUNNING: RunStatus = "running"
INTERRUPTED: RunStatus = "interrupted"
SUCCEEDED: RunStatus = "succeeded"
FINISHED_STATUSES: frozenset[str] = frozenset({SUCCEEDED, "failed", INTERRUPTED, "skipped"})

# A running run whose heartbeat is older than this is presumed dead (its process was killed).
# Runs heartbeat at every checkpoint, i.e. every page, which is far more often than this.
STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SyncRun:
    id: int
    connection_id: int | None
    company_id: str
    kind: str
    trigger: str
    dry_run: bool
    status: str
    counts: dict[str, Any]
    errors: list[Any]
    checkpoint: dict[str, Any] | None
    reason: str | None
    started_at: datetime
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


def _dumps(value: Any) -> str:
    # default=str: datetimes and Decimals in counts/errors become readable text, not a crash.
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


_row_to_run = row_reader(SyncRun, sync_runs)


async def start_run(
    engine: AsyncEngine,
    *,
    company_id: str,
    kind: str,
    trigger: str,
    dry_run: bool,
    connection_id: int | None = None,
) -> int:
    if kind not in KINDS:
        raise ValueError(f"unknown sync kind {kind!r}")
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown sync trigger {trigger!r}")
    now = utcnow()
    stmt = sa.insert(sync_runs).values(
        connection_id=connection_id,
        company_id=company_id,
        kind=kind,
        trigger=trigger,
        dry_run=dry_run,
        status=RUNNING,
        counts_json="{}",
        errors_json="[]",
        started_at=now,
        heartbeat_at=now,
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


async def save_checkpoint(
    engine: AsyncEngine, run_id: int, checkpoint: Mapping[str, Any], counts: Mapping[str, Any]
) -> None:
    """Record progress; doubles as the heartbeat that tells a live run from a dead one."""
    stmt = (
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(checkpoint_json=_dumps(dict(checkpoint)), counts_json=_dumps(dict(counts)), heartbeat_at=utcnow())
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)


async def finish_run(
    engine: AsyncEngine,
    run_id: int,
    status: str,
    counts: Mapping[str, Any],
    errors: Sequence[Any],
    reason: str | None = None,
) -> None:
    if status not in FINISHED_STATUSES:
        raise ValueError(f"{status!r} is not a final sync status")
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "counts_json": _dumps(dict(counts)),
        "errors_json": _dumps(list(errors)),
        "reason": reason,
        "heartbeat_at": now,
        "finished_at": now,
    }
    if status == SUCCEEDED:
        values["checkpoint_json"] = None  # nothing left to resume
    async with engine.begin() as conn:
        await conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run_id).values(**values))


async def get_run(engine: AsyncEngine, run_id: int) -> SyncRun | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(sync_runs).where(sync_runs.c.id == run_id))).first()
    return None if row is None else _row_to_run(row)


async def recent_runs(engine: AsyncEngine, company_id: str | None = None, limit: int = 20) -> list[SyncRun]:
    stmt = sa.select(sync_runs).order_by(sync_runs.c.started_at.desc(), sync_runs.c.id.desc()).limit(limit)
    if company_id is not None:
        stmt = stmt.where(sync_runs.c.company_id == company_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [_row_to_run(r) for r in rows]


def _resumable_condition(now: datetime, stale_after: timedelta) -> sa.ColumnElement[bool]:
    stale_before = now - stale_after
    last_sign_of_life = sa.func.coalesce(sync_runs.c.heartbeat_at, sync_runs.c.started_at)
    return sa.or_(
        sync_runs.c.status == INTERRUPTED,
        sa.and_(sync_runs.c.status == RUNNING, last_sign_of_life < stale_before),
    )


async def find_resumable_run(
    engine: AsyncEngine,
    company_id: str,
    kind: str,
    *,
    dry_run: bool = False,
    stale_after: timedelta = STALE_AFTER,
) -> SyncRun | None:
    """The newest interrupted (or silently dead) run of this kind, if nothing newer succeeded.

    A run superseded by a later successful one is not worth resuming. Dry and real runs never
    resume each other: a dry run's checkpoint covers pages that were not actually written.
    """
    later = sync_runs.alias("later")
    newer_success = sa.exists().where(
        later.c.company_id == sync_runs.c.company_id,
        later.c.kind == sync_runs.c.kind,
        later.c.dry_run == sync_runs.c.dry_run,
        later.c.status == SUCCEEDED,
        later.c.id > sync_runs.c.id,
    )
    stmt = (
        sa.select(sync_runs)
        .where(
            sync_runs.c.company_id == company_id,
            sync_runs.c.kind == kind,
            sync_runs.c.dry_run == dry_run,
            _resumable_condition(utcnow(), stale_after),
            ~newer_success,
        )
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else _row_to_run(row)


async def resume_run(engine: AsyncEngine, run_id: int, *, stale_after: timedelta = STALE_AFTER) -> bool:
    """Take over a resumable run (status back to running, fresh heartbeat).

    Conditional on the run still being resumable, so of two processes racing to resume the
    same run only one gets True.
    """
    now = utcnow()
    stmt = (
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id, _resumable_condition(now, stale_after))
        .values(status=RUNNING, heartbeat_at=now, finished_at=None)
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def mark_interrupted(engine: AsyncEngine, run_id: int, reason: str | None = None) -> bool:
    """A running run was stopped (shutdown, crash detected); keep its checkpoint for resuming."""
    values: dict[str, Any] = {"status": INTERRUPTED, "heartbeat_at": utcnow()}
    if reason is not None:
        values["reason"] = reason
    stmt = sa.update(sync_runs).where(sync_runs.c.id == run_id, sync_runs.c.status == RUNNING).values(**values)
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1
