"""Connected Whop companies and their OAuth tokens (encrypted at rest with `TokenBox`)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.crypto import TokenBox, UndecryptableToken
from bridge.errors import FatalError
from bridge.store.db import (
    dialect_name,
    excluded,
    to_db_time,
    to_db_time_or_none,
    upsert_stmt,
    utcnow,
)
from bridge.store.rows import row_reader
from bridge.store.tables import connections

STATUS_CONNECTED = "connected"
STATUS_NEEDS_RECONNECT = "needs_reconnect"
STATUS_DISCONNECTED = "disconnected"
MODES = frozenset({"oauth", "api_key"})

log = logging.getLogger(__name__)


class ConnectionNotFound(FatalError, LookupError):
    def __init__(self, company_id: str) -> None:
        super().__init__(f"no Whop connection for company {company_id}")
        self.company_id = company_id


@dataclass(frozen=True, slots=True)
class Connection:
    id: int
    company_id: str
    company_title: str | None
    mode: str
    status: str
    token_expires_at: datetime | None
    scopes: str | None
    whop_user_id: str | None
    connected_at: datetime
    updated_at: datetime
    last_error: str | None
    whop_user_name: str | None = None  # who approved Connect Whop, as Whop names them
    webhook_id: str | None = None
    webhook_url: str | None = None
    webhook_health: dict[str, Any] | None = None  # Whop's last word on the webhook (see `WebhookHealth`)
    webhook_checked_at: datetime | None = None
    webhook_error: str | None = None
    replay_requested_at: datetime | None = None
    replay_sent_after: datetime | None = None  # what that replay asked for
    # Ciphertext only, and kept out of repr so a logged Connection shows nothing useful.
    access_token_enc: str | None = field(default=None, repr=False)
    refresh_token_enc: str | None = field(default=None, repr=False)
    webhook_secret_enc: str | None = field(default=None, repr=False)

    @property
    def has_tokens(self) -> bool:
        return self.access_token_enc is not None

    @property
    def scope_list(self) -> list[str]:
        return (self.scopes or "").split()

    def access_token(self, box: TokenBox) -> str | None:
        return None if self.access_token_enc is None else box.decrypt(self.access_token_enc)

    def refresh_token(self, box: TokenBox) -> str | None:
        return None if self.refresh_token_enc is None else box.decrypt(self.refresh_token_enc)

    def webhook_secret(self, box: TokenBox) -> str | None:
        return None if self.webhook_secret_enc is None else box.decrypt(self.webhook_secret_enc)

    @property
    def has_api_key(self) -> bool:
        """An API-key connection added by `connect` keeps its own key (in `access_token_enc`)."""
        return self.mode == "api_key" and self.access_token_enc is not None


_row_to_connection = row_reader(Connection, connections)


def _enc(box: TokenBox, value: str | None) -> str | None:
    return None if value is None else box.encrypt(value)


async def get_connection(engine: AsyncEngine, company_id: str) -> Connection | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(connections).where(connections.c.company_id == company_id))).first()
    return None if row is None else _row_to_connection(row)


async def list_connections(engine: AsyncEngine, *, status: str | None = None) -> list[Connection]:
    stmt = sa.select(connections).order_by(connections.c.id)
    if status is not None:
        stmt = stmt.where(connections.c.status == status)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [_row_to_connection(r) for r in rows]


def active(rows: list[Connection], *, api_key: bool) -> list[Connection]:
    """The active-connection rule, in one place: the connections the bridge syncs now, in the
    order it prefers them. An OAuth connection counts while connected and holding tokens (the
    most recently connected first); an API-key connection while it holds its own key (added by
    `connect`) or WHOP_API_KEY is set (`api_key`)."""
    live = [c for c in rows if c.status == STATUS_CONNECTED]
    oauth = sorted((c for c in live if c.mode == "oauth" and c.has_tokens), key=lambda c: (c.connected_at, c.id))
    keyed = [c for c in live if c.mode == "api_key" and (api_key or c.has_api_key)]
    return [*reversed(oauth), *keyed]


async def upsert_connection(
    engine: AsyncEngine,
    box: TokenBox,
    *,
    company_id: str,
    company_title: str | None,
    mode: str,
    access_token: str | None,
    refresh_token: str | None,
    expires_at: datetime | None,
    scopes: str | Sequence[str] | None,
    whop_user_id: str | None,
    whop_user_name: str | None = None,
) -> Connection:
    """Create the company's connection, or replace it on reconnect (status back to connected)."""
    if mode not in MODES:
        raise ValueError(f"unknown connection mode {mode!r}")
    if scopes is not None and not isinstance(scopes, str):
        scopes = " ".join(scopes)
    now = utcnow()
    values: dict[str, Any] = {
        "company_id": company_id,
        "company_title": company_title,
        "mode": mode,
        "status": STATUS_CONNECTED,
        "access_token_enc": _enc(box, access_token),
        "refresh_token_enc": _enc(box, refresh_token),
        "token_expires_at": to_db_time_or_none(expires_at),
        "scopes": scopes,
        "whop_user_id": whop_user_id,
        "whop_user_name": whop_user_name,
        "connected_at": now,
        "updated_at": now,
        "last_error": None,
    }
    new = excluded(connections)
    update: dict[str, Any] = {name: new.c[name] for name in values if name != "company_id"}
    # Keep a known title if the reconnect did not fetch one.
    update["company_title"] = sa.func.coalesce(new.c.company_title, connections.c.company_title)
    stmt = upsert_stmt(connections, values, ["company_id"], update, dialect=dialect_name(engine))
    async with engine.begin() as conn:
        await conn.execute(stmt)
        row = (await conn.execute(sa.select(connections).where(connections.c.company_id == company_id))).one()
    return _row_to_connection(row)


async def save_api_key(
    engine: AsyncEngine, box: TokenBox, company_id: str, title: str | None, key: str | None
) -> Connection:
    """A company connected by a Whop API key: the key itself (None: the process's WHOP_API_KEY,
    kept out of the database), and no refresh token, expiry, scopes or approving user."""
    return await upsert_connection(
        engine,
        box,
        company_id=company_id,
        company_title=title,
        mode="api_key",
        access_token=key,
        refresh_token=None,
        expires_at=None,
        scopes=None,
        whop_user_id=None,
    )


async def save_tokens(
    engine: AsyncEngine,
    box: TokenBox,
    company_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> bool:
    """Store a refreshed token pair in one UPDATE, so no reader ever sees half of it.

    Whop rotates the refresh token on every use: losing the new one means reconnecting, so
    both are written together or not at all. A disconnected connection is left alone (a
    refresh that raced a disconnect must not bring tokens back). Returns whether a row changed.
    """
    stmt = (
        sa.update(connections)
        .where(connections.c.company_id == company_id)
        .where(connections.c.status != STATUS_DISCONNECTED)
        .values(
            access_token_enc=box.encrypt(access_token),
            refresh_token_enc=_enc(box, refresh_token),
            token_expires_at=to_db_time_or_none(expires_at),
            updated_at=utcnow(),
        )
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def read_tokens(
    engine: AsyncEngine, box: TokenBox, company_id: str
) -> tuple[str | None, str | None, datetime | None]:
    """`(access_token, refresh_token, expires_at)`, decrypted; Nones after a disconnect."""
    found = await get_connection(engine, company_id)
    if found is None:
        raise ConnectionNotFound(company_id)
    return found.access_token(box), found.refresh_token(box), found.token_expires_at


async def mark_needs_reconnect(engine: AsyncEngine, company_id: str, error: str) -> bool:
    """The grant is gone (e.g. `invalid_grant`); `error` must name the problem, not carry a token."""
    stmt = (
        sa.update(connections)
        .where(connections.c.company_id == company_id)
        .where(connections.c.status != STATUS_DISCONNECTED)
        .values(status=STATUS_NEEDS_RECONNECT, last_error=error, updated_at=utcnow())
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def disconnect(engine: AsyncEngine, company_id: str) -> bool:
    """Forget the tokens and the webhook; the row stays so past sync runs keep their company."""
    stmt = (
        sa.update(connections)
        .where(connections.c.company_id == company_id)
        .values(
            status=STATUS_DISCONNECTED,
            access_token_enc=None,
            refresh_token_enc=None,
            token_expires_at=None,
            webhook_id=None,
            webhook_url=None,
            webhook_secret_enc=None,
            webhook_health_json=None,
            webhook_error=None,
            updated_at=utcnow(),
        )
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def _update(engine: AsyncEngine, company_id: str, **values: Any) -> bool:
    stmt = sa.update(connections).where(connections.c.company_id == company_id).values(**values)
    async with engine.begin() as conn:
        return (await conn.execute(stmt)).rowcount == 1


async def save_webhook(
    engine: AsyncEngine,
    box: TokenBox,
    company_id: str,
    *,
    webhook_id: str,
    url: str,
    secret: str | None,
    health: Mapping[str, Any] | None,
) -> bool:
    """Record the company's webhook at Whop. `secret` None keeps the stored one (a reused webhook)."""
    values: dict[str, Any] = {
        "webhook_id": webhook_id,
        "webhook_url": url,
        "webhook_error": None,
        "webhook_health_json": None if health is None else json.dumps(dict(health), sort_keys=True),
        "webhook_checked_at": utcnow(),
    }
    if secret is not None:
        values["webhook_secret_enc"] = box.encrypt(secret)
    return await _update(engine, company_id, **values)


async def save_webhook_health(engine: AsyncEngine, company_id: str, health: Mapping[str, Any]) -> bool:
    return await _update(
        engine,
        company_id,
        webhook_health_json=json.dumps(dict(health), sort_keys=True),
        webhook_checked_at=utcnow(),
    )


async def save_webhook_error(engine: AsyncEngine, company_id: str, error: str | None) -> bool:
    """Why the bridge cannot manage the company's webhook (shown on the page and by doctor)."""
    return await _update(engine, company_id, webhook_error=error, webhook_checked_at=utcnow())


async def forget_webhook(engine: AsyncEngine, company_id: str) -> bool:
    return await _update(
        engine,
        company_id,
        webhook_id=None,
        webhook_url=None,
        webhook_secret_enc=None,
        webhook_health_json=None,
    )


async def mark_replay_requested(engine: AsyncEngine, company_id: str, when: datetime, sent_after: datetime) -> bool:
    """Whop was asked at `when` to replay the company's deliveries sent after `sent_after`."""
    return await _update(
        engine, company_id, replay_requested_at=to_db_time(when), replay_sent_after=to_db_time(sent_after)
    )


async def webhook_secret_ciphertexts(engine: AsyncEngine) -> dict[str, str]:
    """Each connected company's own webhook secret, still encrypted (for verifying its deliveries)."""
    stmt = sa.select(connections.c.company_id, connections.c.webhook_secret_enc).where(
        connections.c.status != STATUS_DISCONNECTED, connections.c.webhook_secret_enc.is_not(None)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return {company: enc for company, enc in rows}


_SECRET_COLUMNS = ("access_token_enc", "refresh_token_enc", "webhook_secret_enc")


async def rotate_tokens(engine: AsyncEngine, box: TokenBox) -> int:
    """Re-encrypt every stored secret (tokens, API keys, webhook secrets) under the newest key;
    returns the number of rows changed.

    Each row is rewritten only if its ciphertext is still the one read (compare-and-set), so a
    token refresh running at the same time is never overwritten with an older pair.
    """
    cols = [connections.c[name] for name in _SECRET_COLUMNS]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(connections.c.id, *cols).where(sa.or_(*(c.is_not(None) for c in cols))))
        ).all()
    changed = 0
    for row_id, *old in rows:
        stmt = sa.update(connections).where(connections.c.id == row_id)
        for col, enc in zip(cols, old, strict=True):
            stmt = stmt.where(col.is_not_distinct_from(enc))
        stmt = stmt.values(
            {col.name: None if enc is None else box.rotate(enc) for col, enc in zip(cols, old, strict=True)}
        )
        async with engine.begin() as conn:
            changed += (await conn.execute(stmt)).rowcount
    return changed


class SecretCache:
    """Each company's webhook secret, as a process's webhook endpoint checks it.

    Deliveries arrive hundreds a second, so the endpoint does not query per request; the secrets
    are read at most once every `MAX_AGE` seconds while deliveries arrive. That age bounds how
    long a company disconnected by another process (or replica) is still accepted here: no
    message between processes is needed, on SQLite or PostgreSQL. A secret registered by another
    replica is picked up sooner, by the refresh a failed verification asks for (at most once per
    `REFRESH_SECONDS`).
    """

    MAX_AGE = 2.0
    REFRESH_SECONDS = 1.0

    def __init__(
        self,
        engine: Callable[[], AsyncEngine],
        box: Callable[[], TokenBox],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._box = box
        self.clock = clock
        self._secrets: dict[str, str] = {}
        self._plain: dict[str, str | None] = {}  # ciphertext → secret (None: undecryptable)
        self._loaded_at: float | None = None
        self._generation = 0  # counts `forget` calls
        self._lock = threading.Lock()
        # One read at a time per event loop: a burst arriving as the secrets expire waits for
        # that one read instead of each request making its own.
        self._loading: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _stale(self, fresh: bool) -> bool:
        with self._lock:
            if self._loaded_at is None:
                return True
            age = self.clock() - self._loaded_at
        return age >= self.MAX_AGE or (fresh and age >= self.REFRESH_SECONDS)

    async def get(self, company_id: str | None, *, fresh: bool = False) -> list[str]:
        """The secret of `company_id` (none for an envelope naming no company)."""
        if self._stale(fresh):
            loop = asyncio.get_running_loop()
            with self._lock:
                loading = self._loading.setdefault(loop, asyncio.Lock())
            async with loading:
                if self._stale(fresh):  # not read meanwhile by the request this one waited for
                    with self._lock:
                        started, generation = self.clock(), self._generation
                    loaded = self._decrypt(await webhook_secret_ciphertexts(self._engine()))
                    with self._lock:
                        self._secrets = loaded
                        # Aged from before the read, so a disconnect committed during it counts;
                        # a `forget` during it means the read may predate this process's change.
                        self._loaded_at = started if generation == self._generation else None
        with self._lock:
            secret = self._secrets.get(company_id) if company_id else None
        return [secret] if secret else []

    def _decrypt(self, ciphertexts: Mapping[str, str]) -> dict[str, str]:
        """Each company's secret; a ciphertext seen before is not decrypted again."""
        with self._lock:
            known, box = self._plain, None
            self._plain, secrets = {}, {}
            for company, enc in ciphertexts.items():
                if enc in known:
                    plain = known[enc]
                else:
                    box = box or self._box()
                    try:
                        plain = box.decrypt(enc)
                    except UndecryptableToken:
                        # Logged once; that company's deliveries are refused (and shown as
                        # rejected), and every other company's still verify.
                        log.error("the webhook secret of %s cannot be decrypted with BRIDGE_SECRET_KEY", company)
                        plain = None
                # Only current ciphertexts are kept: a disconnected company's secret goes.
                self._plain[enc] = plain
                if plain is not None:
                    secrets[company] = plain
            return secrets

    def forget(self) -> None:
        """Drop the cache (this process registered or removed a webhook)."""
        with self._lock:
            self._loaded_at = None
            self._generation += 1
