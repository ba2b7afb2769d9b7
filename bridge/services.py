"""Entry points shared by the CLI, the web app and the scheduler.

Each function opens what it needs (the state store, the Twenty and Whop clients), does one job
and records it. Transports can be injected so tests run the same code against in-process fakes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings
from bridge.crypto import TokenBox
from bridge.errors import BridgeError, ConfigError, RetryableError
from bridge.limiter import TokenBucket
from bridge.store import connections, leases, tables
from bridge.store import runs as run_store
from bridge.store.db import create_engine, utcnow
from bridge.store.migrate import migrate
from bridge.sync.engine import OptionGuard, Progress, SyncEngine, SyncOptions, SyncResult
from bridge.twenty.data import TwentyDataClient
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import ApplyResult, provision
from bridge.twenty.schema import load_data_model
from bridge.whop.auth import StaticToken, TokenProvider
from bridge.whop.client import WhopClient

log = logging.getLogger(__name__)


async def open_store(settings: Settings) -> AsyncEngine:
    """Migrate (idempotent, safe with several replicas) and return the engine."""
    await migrate(settings.database_url)
    return create_engine(settings.database_url)


async def provision_workspace(
    settings: Settings,
    *,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    engine: AsyncEngine | None = None,
) -> ApplyResult:
    settings.require("TWENTY_URL", "TWENTY_API_KEY")
    assert settings.twenty_url is not None and settings.twenty_api_key is not None
    model = load_data_model(settings.bridge_schema_dir)
    own_engine = engine is None
    engine = engine or await open_store(settings)
    run_id = await _start_provisioning(engine, settings.twenty_url, dry_run)
    try:
        async with MetadataClient(
            settings.twenty_url,
            settings.twenty_api_key.get_secret_value(),
            transport=transport,
            timeout=settings.twenty_timeout_seconds,
        ) as meta:
            result = await provision(meta, model, settings.bridge_public_url, dry_run=dry_run)
        status = "conflict" if result.plan.conflicts else "succeeded"
        await _finish_provisioning(
            engine, run_id, status, result.plan.dialect, result.plan.to_dict(), result.mutations, None
        )
        return result
    except BridgeError as exc:
        await _finish_provisioning(engine, run_id, "failed", None, None, 0, str(exc))
        raise
    finally:
        if own_engine:
            await engine.dispose()


async def _start_provisioning(engine: AsyncEngine, url: str, dry_run: bool) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.insert(tables.provisioning_runs)
            .values(twenty_url=url, dry_run=dry_run, status="running", started_at=utcnow())
            .returning(tables.provisioning_runs.c.id)
        )
        return int(result.scalar_one())


async def _finish_provisioning(
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


async def last_provisioning(engine: AsyncEngine) -> dict[str, Any] | None:
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


# Sync ------------------------------------------------------------------------------------------

SYNC_LOCK_TTL = 120.0


@dataclass
class Transports:
    """Injected HTTP transports (tests); None means the network."""

    twenty: httpx.AsyncBaseTransport | None = None
    whop: httpx.AsyncBaseTransport | None = None


def process_owner() -> str:
    return leases.owner_id()


async def take_sync_lock(engine: AsyncEngine, company_id: str, owner: str) -> bool:
    return await leases.acquire_or_reclaim(engine, f"sync:{company_id}", owner, SYNC_LOCK_TTL)


async def whop_credentials(
    settings: Settings, engine: AsyncEngine, transports: Transports
) -> tuple[TokenProvider, str, int | None]:
    """The token provider and company to sync: an OAuth connection, else the API key."""
    from bridge.whop.oauth_tokens import connected_provider

    connected = await connected_provider(settings, engine, transport=transports.whop)
    if connected is not None:
        return connected
    if settings.whop_api_key is None:
        raise ConfigError("WHOP_API_KEY", "is not set and no Whop company is connected (use Connect Whop)")
    tokens = StaticToken(settings.whop_api_key.get_secret_value())
    company_id = settings.whop_company_id
    title = None
    if not company_id:
        async with _whop_client(settings, tokens, "biz_pending", transports) as probe:
            account = await probe.get_account_me()
        company_id, title = str(account["id"]), account.get("title")
    connection = await connections.upsert_connection(
        engine,
        _box(settings),
        company_id=company_id,
        company_title=title,
        mode="api_key",
        access_token=None,
        refresh_token=None,
        expires_at=None,
        scopes=None,
        whop_user_id=None,
    )
    return tokens, company_id, connection.id


def _box(settings: Settings) -> TokenBox:
    # API-key mode stores no tokens, so it must not require BRIDGE_SECRET_KEY.
    if settings.bridge_secret_key is None:
        return TokenBox(MultiFernet([Fernet(Fernet.generate_key())]))
    return TokenBox(settings.fernet)


def _whop_client(settings: Settings, tokens: TokenProvider, company_id: str, transports: Transports) -> WhopClient:
    return WhopClient(
        settings.whop_api_url,
        tokens,
        company_id,
        transport=transports.whop,
        requests_per_second=settings.whop_requests_per_second,
    )


# Twenty limits requests per workspace: every client of one process (sync, webhook worker,
# admin jobs) draws from one bucket. Keyed by event loop because an asyncio lock binds to one.
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], TokenBucket]] = (
    weakref.WeakKeyDictionary()
)


def twenty_limiter(url: str, requests_per_minute: int) -> TokenBucket:
    per_loop = _LIMITERS.setdefault(asyncio.get_running_loop(), {})
    key = (url, requests_per_minute)
    if key not in per_loop:
        per_loop[key] = TokenBucket(requests_per_minute / 60.0, float(requests_per_minute))
    return per_loop[key]


def twenty_data_client(settings: Settings, transports: Transports) -> TwentyDataClient:
    settings.require("TWENTY_URL", "TWENTY_API_KEY")
    assert settings.twenty_url is not None and settings.twenty_api_key is not None
    return TwentyDataClient(
        settings.twenty_url,
        settings.twenty_api_key.get_secret_value(),
        requests_per_minute=settings.twenty_requests_per_minute,
        transport=transports.twenty,
        timeout=settings.twenty_timeout_seconds,
        limiter=twenty_limiter(settings.twenty_url, settings.twenty_requests_per_minute),
    )


async def run_sync(
    settings: Settings,
    *,
    kind: str = "full",
    dry_run: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
    transports: Transports | None = None,
    engine: AsyncEngine | None = None,
) -> SyncResult:
    transports = transports or Transports()
    settings.require("TWENTY_URL", "TWENTY_API_KEY")
    assert settings.twenty_url is not None and settings.twenty_api_key is not None
    own_engine = engine is None
    engine = engine or await open_store(settings)
    owner = process_owner()
    try:
        tokens, company_id, connection_id = await whop_credentials(settings, engine, transports)
        if not dry_run:
            if not await take_sync_lock(engine, company_id, owner):
                holder = await leases.holder(engine, f"sync:{company_id}")
                raise SyncBusy(f"a sync of {company_id} is already running ({holder}); try again when it ends")
            for run in await run_store.recent_runs(engine, company_id, limit=20):
                if run.status == "running":  # we hold the lock, so nobody is running it any more
                    await run_store.mark_interrupted(engine, run.id, "its process stopped")
        try:
            async with (
                _whop_client(settings, tokens, company_id, transports) as whop,
                twenty_data_client(settings, transports) as twenty,
                MetadataClient(
                    settings.twenty_url,
                    settings.twenty_api_key.get_secret_value(),
                    transport=transports.twenty,
                ) as meta,
            ):
                sync = SyncEngine(
                    store=engine,
                    whop=whop,
                    twenty=twenty,
                    company_id=company_id,
                    options=SyncOptions(
                        kind=kind,
                        dry_run=dry_run,
                        batch_size=settings.twenty_batch_size,
                        stage_policy=settings.stage_policy,
                        trigger=trigger,
                        restore_deleted=settings.restore_deleted,
                        schema_dir=settings.bridge_schema_dir,
                    ),
                    guard=OptionGuard(meta),
                    progress=progress,
                    connection_id=connection_id,
                )
                result = await sync.run()
                result.twenty_calls = twenty.stats.calls
                result.twenty_writes = twenty.stats.writes
                result.whop_calls = whop.stats["requests"]
                return result
        finally:
            if not dry_run:
                await asyncio.shield(leases.release(engine, f"sync:{company_id}", owner))
    finally:
        if own_engine:
            await engine.dispose()


class SyncBusy(RetryableError):
    """Another process is syncing this company."""


def whop_client_factory(
    settings: Settings, engine: AsyncEngine, transports: Transports | None = None
) -> Callable[[str], Awaitable[WhopClient | None]]:
    """For the worker: a Whop client for a company, from its OAuth connection or the API key."""
    transports = transports or Transports()

    async def client_for(company_id: str) -> WhopClient | None:
        from bridge.whop.oauth_tokens import connected_provider

        connected = await connected_provider(settings, engine, transport=transports.whop)
        if connected is not None and connected[1] == company_id:
            return _whop_client(settings, connected[0], company_id, transports)
        connection = await connections.get_connection(engine, company_id)
        if settings.whop_api_key is not None and connection is not None and connection.mode == "api_key":
            return _whop_client(settings, StaticToken(settings.whop_api_key.get_secret_value()), company_id, transports)
        return None

    return client_for
