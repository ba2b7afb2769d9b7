"""Connected Whop companies and their OAuth tokens (encrypted at rest with `TokenBox`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.crypto import TokenBox
from bridge.errors import FatalError
from bridge.store.db import (
    as_utc,
    as_utc_or_none,
    dialect_name,
    excluded,
    to_db_time_or_none,
    upsert_stmt,
    utcnow,
)
from bridge.store.tables import connections

STATUS_CONNECTED = "connected"
STATUS_NEEDS_RECONNECT = "needs_reconnect"
STATUS_DISCONNECTED = "disconnected"
MODES = frozenset({"oauth", "api_key"})


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
    # Ciphertext only, and kept out of repr so a logged Connection shows nothing useful.
    access_token_enc: str | None = field(default=None, repr=False)
    refresh_token_enc: str | None = field(default=None, repr=False)

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


def _row_to_connection(row: sa.Row[Any]) -> Connection:
    m = row._mapping
    return Connection(
        id=m["id"],
        company_id=m["company_id"],
        company_title=m["company_title"],
        mode=m["mode"],
        status=m["status"],
        token_expires_at=as_utc_or_none(m["token_expires_at"]),
        scopes=m["scopes"],
        whop_user_id=m["whop_user_id"],
        connected_at=as_utc(m["connected_at"]),
        updated_at=as_utc(m["updated_at"]),
        last_error=m["last_error"],
        whop_user_name=m["whop_user_name"],
        access_token_enc=m["access_token_enc"],
        refresh_token_enc=m["refresh_token_enc"],
    )


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
    most recently connected first); an API-key connection while WHOP_API_KEY is set (`api_key`)."""
    live = [c for c in rows if c.status == STATUS_CONNECTED]
    oauth = sorted((c for c in live if c.mode == "oauth" and c.has_tokens), key=lambda c: (c.connected_at, c.id))
    keyed = [c for c in live if c.mode == "api_key" and api_key]
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
    """Forget the tokens; the row stays so past sync runs keep their company."""
    stmt = (
        sa.update(connections)
        .where(connections.c.company_id == company_id)
        .values(
            status=STATUS_DISCONNECTED,
            access_token_enc=None,
            refresh_token_enc=None,
            token_expires_at=None,
            updated_at=utcnow(),
        )
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount == 1


async def rotate_tokens(engine: AsyncEngine, box: TokenBox) -> int:
    """Re-encrypt every stored token under the newest key; returns the number of rows changed.

    Each row is rewritten only if its ciphertext is still the one read (compare-and-set), so a
    token refresh running at the same time is never overwritten with an older pair.
    """
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(connections.c.id, connections.c.access_token_enc, connections.c.refresh_token_enc).where(
                    sa.or_(
                        connections.c.access_token_enc.is_not(None),
                        connections.c.refresh_token_enc.is_not(None),
                    )
                )
            )
        ).all()
    changed = 0
    for row_id, access_enc, refresh_enc in rows:
        stmt = (
            sa.update(connections)
            .where(connections.c.id == row_id)
            .where(connections.c.access_token_enc.is_not_distinct_from(access_enc))
            .where(connections.c.refresh_token_enc.is_not_distinct_from(refresh_enc))
            .values(
                access_token_enc=None if access_enc is None else box.rotate(access_enc),
                refresh_token_enc=None if refresh_enc is None else box.rotate(refresh_enc),
            )
        )
        async with engine.begin() as conn:
            changed += (await conn.execute(stmt)).rowcount
    return changed
