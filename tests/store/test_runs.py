from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.crypto import TokenBox, generate_key
from bridge.store import runs
from bridge.store.connections import upsert_connection
from bridge.store.db import utcnow
from bridge.store.tables import sync_runs

NOW_STALE = timedelta(0)  # "any heartbeat is already stale": stands in for a killed process


async def start(engine: AsyncEngine, company_id: str = "biz_1", kind: str = "full", **kw: object) -> int:
    args: dict[str, object] = {"company_id": company_id, "kind": kind, "trigger": "cli", "dry_run": False}
    args.update(kw)
    return await runs.start_run(engine, **args)  # type: ignore[arg-type]


async def test_lifecycle(engine: AsyncEngine) -> None:
    box = TokenBox(MultiFernet([Fernet(generate_key())]))
    conn = await upsert_connection(
        engine,
        box,
        company_id="biz_1",
        company_title=None,
        mode="api_key",
        access_token=None,
        refresh_token=None,
        expires_at=None,
        scopes=None,
        whop_user_id=None,
    )
    run_id = await start(engine, connection_id=conn.id, trigger="schedule")
    run = await runs.get_run(engine, run_id)
    assert run is not None
    assert (run.status, run.kind, run.trigger, run.dry_run) == ("running", "full", "schedule", False)
    assert run.connection_id == conn.id and run.counts == {} and run.errors == [] and run.checkpoint is None
    assert run.heartbeat_at is not None and run.started_at.tzinfo is not None and not run.is_finished

    before = run.heartbeat_at
    await asyncio.sleep(0.01)
    await runs.save_checkpoint(engine, run_id, {"object": "memberships", "after": "cur_9"}, {"people": 3})
    run = await runs.get_run(engine, run_id)
    assert run is not None and run.checkpoint == {"object": "memberships", "after": "cur_9"}
    assert run.counts == {"people": 3} and run.heartbeat_at is not None and run.heartbeat_at > before

    errors = [{"key": "mem_1", "error": "skipped"}]
    await runs.finish_run(engine, run_id, "succeeded", {"people": 5}, errors)
    run = await runs.get_run(engine, run_id)
    assert run is not None and run.status == "succeeded" and run.is_finished
    assert run.counts == {"people": 5} and run.errors == errors and run.checkpoint is None
    assert await runs.get_run(engine, 999_999) is None


async def test_validation(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="kind"):
        await start(engine, kind="partial")
    with pytest.raises(ValueError, match="trigger"):
        await start(engine, trigger="cron")
    run_id = await start(engine)
    with pytest.raises(ValueError, match="final"):
        await runs.finish_run(engine, run_id, "running", {}, [])


async def test_connection_id_is_a_foreign_key(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await start(engine, connection_id=12345)


async def test_recent_runs(engine: AsyncEngine) -> None:
    ids = [await start(engine, company_id="biz_1" if i % 2 else "biz_2") for i in range(5)]
    assert [r.id for r in await runs.recent_runs(engine)] == ids[::-1]
    assert [r.id for r in await runs.recent_runs(engine, "biz_1")] == [ids[3], ids[1]]
    assert len(await runs.recent_runs(engine, limit=2)) == 2


async def test_resumable_run_lookup(engine: AsyncEngine) -> None:
    run_id = await start(engine)
    await runs.save_checkpoint(engine, run_id, {"after": "c1"}, {})
    # Alive (fresh heartbeat): not for resuming.
    assert await runs.find_resumable_run(engine, "biz_1", "full") is None
    # Its process died: the heartbeat went stale.
    found = await runs.find_resumable_run(engine, "biz_1", "full", stale_after=NOW_STALE)
    assert found is not None and found.id == run_id and found.checkpoint == {"after": "c1"}
    # Other company, kind or dry-run flag: nothing.
    assert await runs.find_resumable_run(engine, "biz_2", "full", stale_after=NOW_STALE) is None
    assert await runs.find_resumable_run(engine, "biz_1", "reconcile", stale_after=NOW_STALE) is None
    assert await runs.find_resumable_run(engine, "biz_1", "full", dry_run=True, stale_after=NOW_STALE) is None

    # Stopped cleanly (shutdown): resumable right away.
    assert await runs.mark_interrupted(engine, run_id, reason="shutdown")
    assert not await runs.mark_interrupted(engine, run_id)  # only a running run
    found = await runs.find_resumable_run(engine, "biz_1", "full")
    assert found is not None and found.status == "interrupted" and found.reason == "shutdown"

    # Two processes race to resume it: one wins.
    results = await asyncio.gather(*(runs.resume_run(engine, run_id) for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    resumed = await runs.get_run(engine, run_id)
    assert resumed is not None and resumed.status == "running" and resumed.checkpoint == {"after": "c1"}

    # The newest matching run is chosen.
    await runs.mark_interrupted(engine, run_id)
    newer = await start(engine)
    await runs.mark_interrupted(engine, newer)
    found = await runs.find_resumable_run(engine, "biz_1", "full")
    assert found is not None and found.id == newer

    # A later successful run supersedes both.
    done = await start(engine)
    await runs.finish_run(engine, done, "succeeded", {}, [])
    assert await runs.find_resumable_run(engine, "biz_1", "full", stale_after=NOW_STALE) is None


async def test_running_without_heartbeat_counts_from_start(engine: AsyncEngine) -> None:
    run_id = await start(engine)
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(sync_runs)
            .where(sync_runs.c.id == run_id)
            .values(heartbeat_at=None, started_at=utcnow() - timedelta(hours=1))
        )
    found = await runs.find_resumable_run(engine, "biz_1", "full")
    assert found is not None and found.id == run_id
