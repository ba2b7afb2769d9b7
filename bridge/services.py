"""Entry points shared by the CLI, the web app and the scheduler: provision, sync.

Each takes the process's `Runtime` (bridge/runtime.py), which owns the store, the leases, the
Twenty budget and the clients, does one job and records it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from bridge.errors import BridgeError, RetryableError
from bridge.runtime import Credentials, Runtime
from bridge.store import provisioning_runs
from bridge.store import runs as run_store
from bridge.store.leases import LeaseBusy
from bridge.sync.engine import Progress, SyncEngine, SyncOptions, SyncResult
from bridge.sync.options import OptionGuard
from bridge.twenty.dashboard_records import DashboardRecordsApi
from bridge.twenty.provision import ApplyResult, provision
from bridge.twenty.schema import load_data_model
from bridge.twenty.view_records import ViewRecordsApi

log = logging.getLogger(__name__)


async def provision_workspace(runtime: Runtime, *, dry_run: bool = False) -> ApplyResult:
    settings = runtime.settings
    settings.require("TWENTY_URL", "TWENTY_API_KEY")
    assert settings.twenty_url is not None
    model = load_data_model(settings.bridge_schema_dir)
    if dry_run:  # a plan writes nothing, not even its own record (the store is not touched)
        async with runtime.metadata() as meta, _data_side(runtime) as (records, views):
            return await provision(
                meta, model, settings.bridge_public_url, dry_run=True, records=records, view_records=views
            )
    engine = runtime.store
    run_id = await provisioning_runs.start(engine, settings.twenty_url, dry_run)
    try:
        async with runtime.metadata() as meta, _data_side(runtime) as (records, views):
            result = await provision(
                meta, model, settings.bridge_public_url, dry_run=dry_run, records=records, view_records=views
            )
        status = "conflict" if result.plan.conflicts else "succeeded"
        await provisioning_runs.finish(
            engine, run_id, status, result.plan.dialect, result.plan.to_dict(), result.mutations, None
        )
        return result
    except BridgeError as exc:
        await provisioning_runs.finish(engine, run_id, "failed", None, None, 0, str(exc))
        raise


@contextlib.asynccontextmanager
async def _data_side(runtime: Runtime) -> AsyncIterator[tuple[DashboardRecordsApi, ViewRecordsApi]]:
    """The data-API side of provisioning: the records listing its dashboards (2.x), and the
    workspace's views (1.x's screens show those records)."""
    async with runtime.twenty_for_provisioning() as data:
        yield DashboardRecordsApi(data), ViewRecordsApi(data)


# Sync ------------------------------------------------------------------------------------------

# The sync lease is renewed while the run lasts, so any TTL works; a short one lets the next run
# take over soon after a process on another host died holding it.
SYNC_LOCK_TTL = 120.0


class SyncBusy(RetryableError):
    """Another process is syncing this company."""


async def run_sync(
    runtime: Runtime,
    *,
    kind: run_store.RunKind = "full",
    dry_run: bool = False,
    trigger: run_store.Trigger = "cli",
    progress: Progress | None = None,
    company_id: str | None = None,
) -> SyncResult:
    """Sync one company (None: the first active one) under its `sync:<company>` lease."""
    settings = runtime.settings
    settings.require("TWENTY_URL", "TWENTY_API_KEY")
    credentials = await runtime.credentials(company_id)
    company_id = credentials.company_id
    options = SyncOptions(
        kind=kind,
        dry_run=dry_run,
        batch_size=settings.twenty_batch_size,
        stage_policy=settings.stage_policy,
        trigger=trigger,
        restore_deleted=settings.restore_deleted,
        schema_dir=settings.bridge_schema_dir,
    )
    if dry_run:  # writes nothing, so it needs no lease
        return await _sync(runtime, credentials, options, progress)
    try:
        async with runtime.leases.hold(f"sync:{company_id}", ttl=SYNC_LOCK_TTL):
            for run in await run_store.recent_runs(runtime.store, company_id, limit=20):
                if run.status == "running":  # we hold the lease, so nobody is running it any more
                    await run_store.mark_interrupted(runtime.store, run.id, "its process stopped")
            return await _sync(runtime, credentials, options, progress)
    except LeaseBusy as exc:
        if exc.name != f"sync:{company_id}":  # a lease taken inside the run: not "busy"
            raise
        raise SyncBusy(f"a sync of {company_id} is already running ({exc.holder}); try again when it ends") from None


async def _sync(
    runtime: Runtime, credentials: Credentials, options: SyncOptions, progress: Progress | None
) -> SyncResult:
    async with (
        runtime.whop_client(credentials.tokens, credentials.company_id) as whop,
        runtime.twenty() as twenty,
        runtime.metadata() as meta,
    ):
        sync = SyncEngine(
            store=runtime.store,
            whop=whop,
            twenty=twenty,
            company_id=credentials.company_id,
            options=options,
            guard=OptionGuard(meta),
            progress=progress,
            connection_id=credentials.connection_id,
            leases=runtime.leases,
            plans=runtime.plans,
            deletions=runtime.deletions,
        )
        result = await sync.run()
        result.twenty_calls = twenty.stats.calls
        result.twenty_writes = twenty.stats.writes
        result.whop_calls = whop.stats["requests"]
        return result
