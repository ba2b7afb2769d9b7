"""`Runtime`: what one bridge process shares, built once and handed to everything else.

The CLI, the web app, the inbox worker, the scheduler and `doctor` receive the runtime instead
of passing settings, engines and transports around. It owns:

- the store: one engine per event loop (a pool's connections belong to the loop that opened
  them; `serve` runs the worker on a second loop in a thread);
- the lease helper (`leases`), through which every lease is taken;
- the Twenty request budget, shared with every other process on the same database, because
  Twenty limits requests per workspace, not per process;
- the client factories (Twenty data and metadata, Whop per company), built over the injected
  transports in tests;
- the rule that says which Whop companies are active and with which credentials.

Locks and limits are safe across event loops by construction (database rows plus an
in-process FIFO that wakes each waiter on its own loop), rather than by funnelling all Twenty
work onto one loop: replicas need the cross-process mechanism anyway, and it then covers a
second loop in the same process for free.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings
from bridge.crypto import TokenBox
from bridge.errors import ConfigError, NeedsReconnect
from bridge.limiter import Limiter
from bridge.store import connections
from bridge.store.budget import SharedBucket
from bridge.store.db import create_engine, utcnow
from bridge.store.leases import Leases, owner_id
from bridge.store.migrate import migrate
from bridge.sync.deletions import DeletionWatch
from bridge.sync.records import PlanBook
from bridge.tokens import OAuthTokens
from bridge.twenty.data import OBJECTS, TwentyDataClient
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.schema import load_data_model
from bridge.twenty.values import read_selection
from bridge.whop.auth import StaticToken, TokenProvider
from bridge.whop.client import WhopClient
from bridge.whop.oauth import WhopOAuth

BURST_SHARE = 0.95


@dataclass
class Transports:
    """Injected HTTP transports (tests); None means the network."""

    twenty: httpx.AsyncBaseTransport | None = None
    whop: httpx.AsyncBaseTransport | None = None


@dataclass(frozen=True)
class Credentials:
    """How to reach one Whop company: its token provider and connection row."""

    tokens: TokenProvider
    company_id: str
    connection_id: int | None


class Runtime:
    def __init__(
        self, settings: Settings, *, transports: Transports | None = None, store: AsyncEngine | None = None
    ) -> None:
        self.settings = settings
        self.transports = transports or Transports()
        self.owner = owner_id()  # this process, e.g. as the inbox worker's claim owner
        # Since when this process has been up: a replay another one asked for after this is
        # enough for it at start (`registration.recover`).
        self.started_at = utcnow()
        self.leases = Leases(lambda: self.store)
        # Each company's webhook secret, cached for the webhook endpoint.
        self.webhook_secrets = connections.SecretCache(lambda: self.store, self.box)
        # Whop plans, shared by every sync and the worker of this process.
        self.plans = PlanBook()
        # When this process last read what people deleted in Twenty (a person's deletion wins).
        self.deletions = DeletionWatch()
        self._given_store = store
        self._stores: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
        self._mutex = threading.Lock()
        self._budget: Limiter | None = None
        self._prepared = store is not None  # whoever made the engine has migrated it

    @classmethod
    async def open(cls, settings: Settings, *, transports: Transports | None = None) -> Runtime:
        runtime = cls(settings, transports=transports)
        await runtime.prepare()
        return runtime

    async def prepare(self) -> None:
        """Migrate the store once (idempotent, safe with several replicas)."""
        if not self._prepared:
            await migrate(self.settings.database_url)
            self._prepared = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # The store -------------------------------------------------------------------------------

    @property
    def store(self) -> AsyncEngine:
        """The engine of the running event loop (created on first use there)."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            engine = self._stores.get(loop)
            if engine is None:
                given = self._given_store
                engine = given if given is not None and given not in self._stores.values() else None
                engine = engine or create_engine(self.settings.database_url)
                self._stores[loop] = engine
        return engine

    async def close_loop(self) -> None:
        """Dispose of the running loop's engine (a thread's loop calls this before it ends)."""
        with self._mutex:
            engine = self._stores.pop(asyncio.get_running_loop(), None)
        if engine is not None and engine is not self._given_store:
            await engine.dispose()

    async def aclose(self) -> None:
        await self.close_loop()

    # Twenty ----------------------------------------------------------------------------------

    def _twenty_config(self) -> tuple[str, str]:
        self.settings.require("TWENTY_URL", "TWENTY_API_KEY")
        assert self.settings.twenty_url is not None and self.settings.twenty_api_key is not None
        return self.settings.twenty_url, self.settings.twenty_api_key.get_secret_value()

    @property
    def twenty_budget(self) -> Limiter:
        """Twenty's per-workspace request limit, shared by every process on this database."""
        if self._budget is None:
            url, key = self._twenty_config()
            # Named after the workspace (its URL and key, hashed: the key must not be stored).
            workspace = hashlib.sha256(f"{url.rstrip('/')}\0{key}".encode()).hexdigest()[:16]
            per_minute = self.settings.twenty_requests_per_minute
            # The burst is 5% short of Twenty's: slack for calls that reach it out of step.
            self._budget = SharedBucket(
                lambda: self.store, f"twenty:{workspace}", per_minute, capacity=max(1.0, per_minute * BURST_SHARE)
            )
        return self._budget

    def twenty(self) -> TwentyDataClient:
        url, key = self._twenty_config()
        return TwentyDataClient(
            url,
            key,
            requests_per_minute=self.settings.twenty_requests_per_minute,
            transport=self.transports.twenty,
            timeout=self.settings.twenty_timeout_seconds,
            limiter=self.twenty_budget,
            selections=self.read_selections,
        )

    def twenty_for_provisioning(self) -> TwentyDataClient:
        """A data client with a bucket of its own, for provisioning's records (the one listing
        its dashboard on 2.x; on 1.x the views, which are records there: a few dozen calls): it
        never opens the store, which a dry run must not."""
        url, key = self._twenty_config()
        return TwentyDataClient(
            url, key, transport=self.transports.twenty, timeout=self.settings.twenty_timeout_seconds
        )

    @functools.cached_property
    def read_selections(self) -> dict[str, str]:
        """Keyed reads select every field the bridge owns (from `schema/`), so the writer can
        tell a record Twenty already holds as it would send it (after a crash, a lost database)."""
        model = load_data_model(self.settings.bridge_schema_dir)
        return {name: read_selection(model, name, obj.selection) for name, obj in OBJECTS.items()}

    def metadata(self) -> MetadataClient:
        url, key = self._twenty_config()
        return MetadataClient(
            url,
            key,
            transport=self.transports.twenty,
            timeout=self.settings.twenty_timeout_seconds,
            requests_per_minute=self.settings.twenty_requests_per_minute,
        )

    # Whop ------------------------------------------------------------------------------------

    def box(self) -> TokenBox:
        # API-key mode stores no tokens, so it must not require BRIDGE_SECRET_KEY.
        if self.settings.bridge_secret_key is None:
            return TokenBox(MultiFernet([Fernet(Fernet.generate_key())]))
        return TokenBox(self.settings.fernet)

    def whop_client(self, tokens: TokenProvider, company_id: str) -> WhopClient:
        return WhopClient(
            self.settings.whop_api_url,
            tokens,
            company_id,
            transport=self.transports.whop,
            requests_per_second=self.settings.whop_requests_per_second,
        )

    async def companies(self) -> list[str]:
        """The Whop companies the bridge syncs now (`connections.active`), plus WHOP_COMPANY_ID
        with WHOP_API_KEY before its first sync has recorded it."""
        api_key = self.settings.whop_api_key is not None
        rows = await connections.list_connections(self.store)
        active = [c.company_id for c in connections.active(rows, api_key=api_key)]
        configured = self.settings.whop_company_id
        # `disconnect` of the configured company holds until it is connected again.
        dropped = {c.company_id for c in rows if c.status == connections.STATUS_DISCONNECTED}
        if api_key and configured and configured not in active and configured not in dropped:
            active.append(configured)
        return list(dict.fromkeys(active))

    async def credentials(self, company_id: str | None = None) -> Credentials:
        """How to reach `company_id` (None: the first active company, or the API key's own)."""
        if company_id is None:
            active = await self.companies()
            if active:
                company_id = active[0]
            else:
                await self._no_company()
                company_id = await self._api_key_company()
        row = await connections.get_connection(self.store, company_id)
        if row is not None and row.mode == "oauth" and row.status == connections.STATUS_CONNECTED and row.has_tokens:
            tokens = OAuthTokens(
                self.store,
                TokenBox(self.settings.fernet),
                WhopOAuth.from_settings(self.settings, transport=self.transports.whop),
                company_id,
                leases=self.leases,
            )
            return Credentials(tokens, company_id, row.id)
        if row is not None and row.has_api_key and row.status == connections.STATUS_CONNECTED:
            # A company added by `connect` with its own key.
            key = row.access_token(TokenBox(self.settings.fernet))
            assert key is not None
            return Credentials(StaticToken(key), company_id, row.id)
        if self.settings.whop_api_key is None:
            raise ConfigError("WHOP_API_KEY", f"is not set and Whop company {company_id} is not connected")
        if row is not None and row.mode == "api_key" and row.status == connections.STATUS_CONNECTED:
            # Recorded already: no write on every webhook group.
            return Credentials(StaticToken(self.settings.whop_api_key.get_secret_value()), company_id, row.id)
        return await self._api_key_credentials(company_id, None)

    async def whop(self, company_id: str) -> WhopClient | None:
        """A Whop client for an active company, or None (events of other companies are ignored)."""
        if company_id not in await self.companies():
            return None
        found = await self.credentials(company_id)
        return self.whop_client(found.tokens, found.company_id)

    async def _no_company(self) -> None:
        """Nothing active: say why, unless the API key can name its own company."""
        if self.settings.whop_api_key is not None:
            return
        stuck = [
            c
            for c in await connections.list_connections(self.store, status=connections.STATUS_NEEDS_RECONNECT)
            if c.mode == "oauth"
        ]
        if stuck:
            company = stuck[-1].company_id
            raise NeedsReconnect(
                f"the Whop connection of {company} needs to be reconnected (open the admin page, Reconnect)"
            )
        raise ConfigError("WHOP_API_KEY", "is not set and no Whop company is connected (use Connect Whop)")

    async def _api_key_company(self) -> str:
        assert self.settings.whop_api_key is not None
        tokens = StaticToken(self.settings.whop_api_key.get_secret_value())
        async with self.whop_client(tokens, "biz_pending") as probe:
            account = await probe.get_account_me()
        company_id = str(account["id"])
        await self._api_key_credentials(company_id, account.get("title"))
        return company_id

    async def _api_key_credentials(self, company_id: str, title: str | None) -> Credentials:
        assert self.settings.whop_api_key is not None
        connection = await connections.save_api_key(self.store, self.box(), company_id, title, None)
        return Credentials(StaticToken(self.settings.whop_api_key.get_secret_value()), company_id, connection.id)
