"""The hourly reconciliation runs once across replicas and never on top of a manual sync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.runtime import Runtime
from bridge.scheduler import Reconciler
from bridge.services import run_sync
from bridge.store import leases
from bridge.store import runs as run_store
from tests.sync.conftest import COMPANY, make_world


@pytest.mark.postgres
async def test_two_bridge_processes_run_the_hourly_job_once(tmp_path: Any, postgres_url: str) -> None:
    world = await make_world(tmp_path, "2.x", DATABASE_URL=postgres_url)
    await run_sync(world.runtime, kind="full")
    other_process = Runtime(world.settings, transports=world.transports)  # its own pool and leases
    a = Reconciler(world.runtime)
    b = Reconciler(other_process)

    outcomes = await asyncio.gather(a.tick(), b.tick())
    later = await b.tick()  # the other replica's timer fires a bit later

    scheduled = [r for r in await run_store.recent_runs(world.runtime.store, COMPANY) if r.trigger == "schedule"]
    assert len(scheduled) == 1 and scheduled[0].status == "succeeded"
    assert sorted(o[0] for o in outcomes) == ["another replica is running it", "succeeded"]
    assert later == ["already ran this hour"]
    await world.runtime.aclose()
    await other_process.aclose()


async def test_a_tick_during_a_manual_sync_is_skipped_with_the_reason_recorded(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x")
    store = world.runtime.store
    await run_sync(world.runtime, kind="full")
    manual = leases.owner_id()
    assert await leases.acquire(store, f"sync:{COMPANY}", manual, 120)  # an admin's "Sync now" is running

    assert await Reconciler(world.runtime).tick() == ["skipped"]

    skipped = (await run_store.recent_runs(store, COMPANY))[0]
    assert skipped.status == "skipped" and skipped.trigger == "schedule"
    assert "already running" in (skipped.reason or "")
    await leases.release(store, f"sync:{COMPANY}", manual)
