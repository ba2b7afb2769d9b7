"""The hourly reconciliation runs once across replicas and never on top of a manual sync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.scheduler import Reconciler
from bridge.services import open_store, process_owner, run_sync, take_sync_lock
from bridge.store import leases
from bridge.store import runs as run_store
from bridge.store.db import create_engine
from tests.sync.conftest import COMPANY, make_world


@pytest.mark.postgres
async def test_two_bridge_processes_run_the_hourly_job_once(tmp_path: Any, postgres_url: str) -> None:
    world = await make_world(tmp_path, "2.x", DATABASE_URL=postgres_url)
    store_a = await open_store(world.settings)
    await run_sync(world.settings, kind="full", transports=world.transports, engine=store_a)
    store_b = create_engine(postgres_url)  # the second process's own pool
    a = Reconciler(world.settings, store_a, transports=world.transports)
    b = Reconciler(world.settings, store_b, transports=world.transports)

    outcomes = await asyncio.gather(a.tick(), b.tick())
    later = await b.tick()  # the other replica's timer fires a bit later

    scheduled = [r for r in await run_store.recent_runs(store_a, COMPANY) if r.trigger == "schedule"]
    assert len(scheduled) == 1 and scheduled[0].status == "succeeded"
    assert sorted(o[0] for o in outcomes) == ["another replica is running it", "succeeded"]
    assert later == ["already ran this hour"]
    await store_a.dispose()
    await store_b.dispose()


async def test_a_tick_during_a_manual_sync_is_skipped_with_the_reason_recorded(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    store = await open_store(world.settings)
    await run_sync(world.settings, kind="full", transports=world.transports, engine=store)
    manual = process_owner()
    assert await take_sync_lock(store, COMPANY, manual)  # an admin's "Sync now" is running

    assert await Reconciler(world.settings, store, transports=world.transports).tick() == ["skipped"]

    skipped = (await run_store.recent_runs(store, COMPANY))[0]
    assert skipped.status == "skipped" and skipped.trigger == "schedule"
    assert "already running" in (skipped.reason or "")
    await leases.release(store, f"sync:{COMPANY}", manual)
    await store.dispose()
