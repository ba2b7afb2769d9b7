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
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import metrics
from bridge.config import Settings
from bridge.errors import BridgeError
from bridge.services import SyncBusy, Transports, process_owner, run_sync
from bridge.store import connections, inbox, leases
from bridge.store import runs as run_store
from bridge.store.db import utcnow

log = logging.getLogger(__name__)

RunSync = Callable[..., Awaitable[Any]]


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        store: AsyncEngine,
        *,
        transports: Transports | None = None,
        runner: RunSync = run_sync,
    ) -> None:
        self.settings = settings
        self.store = store
        self.transports = transports or Transports()
        self.runner = runner
        self.owner = process_owner()
        self.interval = timedelta(minutes=settings.reconcile_interval_minutes)
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
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def companies(self) -> list[str]:
        connected = [c.company_id for c in await connections.list_connections(self.store, status="connected")]
        if not connected and self.settings.whop_api_key is not None and self.settings.whop_company_id:
            connected = [self.settings.whop_company_id]  # headless API-key install, not synced yet
        return connected

    async def tick(self) -> list[str]:
        """One scheduled pass: reconcile each connected company once across all replicas."""
        outcomes = []
        for company_id in await self.companies():
            try:
                outcomes.append(await self.reconcile(company_id))
            except BridgeError as exc:  # recorded on the run; the next tick tries again
                log.warning("scheduled reconciliation of %s failed: %s", company_id, exc)
                outcomes.append("failed")
        return outcomes

    async def reconcile(self, company_id: str) -> str:
        async with leases.lease(self.store, f"reconcile:{company_id}", self.owner, 300, keepalive=True) as held:
            if not held:
                return "another replica is running it"
            recent = [
                r
                for r in await run_store.recent_runs(self.store, company_id, limit=20)
                if r.kind == "reconcile" and r.trigger == "schedule" and r.status != "skipped"
            ]
            if recent and recent[0].started_at > utcnow() - self.interval / 2:
                return "already ran this hour"
            try:
                result = await self.runner(
                    self.settings, kind="reconcile", trigger="schedule", transports=self.transports, engine=self.store
                )
            except SyncBusy as exc:
                run_id = await run_store.start_run(
                    self.store, company_id=company_id, kind="reconcile", trigger="schedule", dry_run=False
                )
                await run_store.finish_run(self.store, run_id, "skipped", {}, [], reason=str(exc))
                log.info("scheduled reconciliation of %s skipped: %s", company_id, exc)
                return "skipped"
            metrics.LAST_RECONCILE.labels(company_id).set(utcnow().timestamp())
            return str(result.status)

    async def prune(self) -> int:
        removed = await inbox.prune(self.store, self.settings.inbox_retention_days)
        log.info("pruned %d webhook deliveries older than %d days", removed, self.settings.inbox_retention_days)
        return removed
