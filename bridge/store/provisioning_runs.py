"""Provisioning runs (`provisioning_runs`): one row per `provision`, with its plan and outcome."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import tables
from bridge.store.db import utcnow


async def start(engine: AsyncEngine, url: str, dry_run: bool) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.insert(tables.provisioning_runs)
            .values(twenty_url=url, dry_run=dry_run, status="running", started_at=utcnow())
            .returning(tables.provisioning_runs.c.id)
        )
        return int(result.scalar_one())


async def finish(
    engine: AsyncEngine,
    run_id: int,
    status: str,
    dialect: str | None,
    plan: dict[str, Any] | None,
    mutations: int,
    error: str | None,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(tables.provisioning_runs)
            .where(tables.provisioning_runs.c.id == run_id)
            .values(
                status=status,
                dialect=dialect,
                plan_json=json.dumps(plan) if plan is not None else None,
                mutations=mutations,
                error=error,
                finished_at=utcnow(),
            )
        )


async def last(engine: AsyncEngine) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(tables.provisioning_runs).order_by(tables.provisioning_runs.c.id.desc()).limit(1)
            )
        ).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data["plan"] = json.loads(data.pop("plan_json") or "null")
    return data
