"""The hourly reconciliation and the daily inbox clean-up (APScheduler 3, asyncio).

Whop retries a failed webhook only for about a minute, so this job is what keeps Twenty true.
Every replica runs the scheduler; a lease per company lets one of them run each reconciliation,
and a replica that ticks shortly after another one's run skips it. A reconciliation that finds a
manual sync running is skipped, and the skip is recorded with its reason.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bridge import metrics, registration
from bridge.errors import BridgeError
from bridge.runtime import Runtime
from bridge.services import SyncBusy, run_sync
from bridge.store import inbox
from bridge.store import runs as run_store
from bridge.store.db import utcnow
from bridge.store.leases import LeaseBusy

log = logging.getLogger(__name__)

RunSync = Callable[..., Awaitable[Any]]


class Reconciler:
    def __init__(self, runtime: Runtime, *, runner: RunSync = run_sync) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.runner = runner
        self.interval = timedelta(minutes=self.settings.reconcile_interval_minutes)
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        seconds = self.interval.total_seconds()
        scheduler = AsyncIOScheduler(timezone="UTC")
        # Jitter spreads replicas (and bridges sharing one Twenty) over the hour.
        scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=seconds, jitter=min(300, int(seconds / 10))),
            id="reconcile",
            max_instances=1,
            coalesce=True,
            next_run_time=utcnow() + timedelta(seconds=random.uniform(30, 90)),
        )
        scheduler.add_job(self.prune, IntervalTrigger(hours=24), id="prune-inbox", max_instances=1, coalesce=True)
        # Back after being down: ask Whop for what it could not deliver meanwhile (once, at start).
        scheduler.add_job(self.recover, id="recover-webhooks", next_run_time=utcnow())
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def tick(self) -> list[str]:
        """One scheduled pass: reconcile each connected company once across all replicas."""
        outcomes = []
        for company_id in await self.runtime.companies():
            try:
                outcomes.append(await self.reconcile(company_id))
            except BridgeError as exc:  # recorded on the run; the next tick tries again
                log.warning("scheduled reconciliation of %s failed: %s", company_id, exc)
                outcomes.append("failed")
        return outcomes

    async def reconcile(self, company_id: str) -> str:
        try:
            async with self.runtime.leases.hold(f"reconcile:{company_id}", ttl=300):
                return await self._reconcile(company_id)
        except LeaseBusy as exc:
            if exc.name != f"reconcile:{company_id}":
                raise
            return "another replica is running it"

    async def _reconcile(self, company_id: str) -> str:
        store = self.runtime.store
        recent = [
            r
            for r in await run_store.recent_runs(store, company_id, limit=20)
            if r.kind == "reconcile" and r.trigger == "schedule" and r.status != "skipped"
        ]
        if recent and recent[0].started_at > utcnow() - self.interval / 2:
            return "already ran this hour"
        try:
            result = await self.runner(self.runtime, kind="reconcile", trigger="schedule", company_id=company_id)
        except SyncBusy as exc:
            run_id = await run_store.start_run(
                store, company_id=company_id, kind="reconcile", trigger="schedule", dry_run=False
            )
            await run_store.finish_run(store, run_id, "skipped", {}, [], reason=str(exc))
            log.info("scheduled reconciliation of %s skipped: %s", company_id, exc)
            return "skipped"
        metrics.LAST_RECONCILE.labels(company_id).set(utcnow().timestamp())
        await registration.watch(self.runtime, company_id)
        return str(result.status)

    async def recover(self) -> dict[str, Any]:
        return await registration.recover_all(self.runtime)

    async def prune(self) -> int:
        removed = await inbox.prune(self.runtime.store, self.settings.inbox_retention_days)
        log.info("pruned %d webhook deliveries older than %d days", removed, self.settings.inbox_retention_days)
        return removed
