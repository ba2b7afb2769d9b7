"""Engine set-up shared by SQLite (embedded default) and PostgreSQL (several replicas).

Everything above this module is written once against SQLAlchemy Core; the only place that
knows which database it talks to is `upsert_stmt`, which picks the dialect's ON CONFLICT form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert, Update

from bridge.errors import ConfigError, FatalError

SQLITE_BUSY_TIMEOUT_MS = 5000

# libpq waits forever for a server that accepts the connection and then says nothing (hung,
# or a firewall that drops packets); a URL's own `connect_timeout` wins.
PG_CONNECT_TIMEOUT_SECONDS = 10

# How long SQLAlchemy waits for a pooled connection before giving up (seconds).
_POOL_TIMEOUT = 30


def normalize_url(url: str) -> tuple[str, str]:
    """Return `(async_url, sync_url)` for a user-facing database URL.

    Users write `sqlite:///path` or `postgresql://…` (or Heroku-style `postgres://…`); the
    async engine needs aiosqlite/psycopg drivers, Alembic the sync ones. psycopg 3 serves both.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError("DATABASE_URL", "is not a valid database URL") from None
    backend = parsed.drivername.split("+", 1)[0]
    if backend == "sqlite":
        async_url = parsed.set(drivername="sqlite+aiosqlite")
        sync_url = parsed.set(drivername="sqlite")
    elif backend in {"postgresql", "postgres"}:
        async_url = sync_url = parsed.set(drivername="postgresql+psycopg")
        if "connect_timeout" not in parsed.query:
            async_url = sync_url = async_url.update_query_dict({"connect_timeout": str(PG_CONNECT_TIMEOUT_SECONDS)})
    else:
        raise ConfigError("DATABASE_URL", "must be a sqlite:/// or postgresql:// URL")
    # hide_password=False: these strings feed engines, they are never logged.
    return (
        async_url.render_as_string(hide_password=False),
        sync_url.render_as_string(hide_password=False),
    )


class StoreUnavailable(FatalError):
    """The database cannot be opened or reached; the message says where and what to check."""


def store_unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    """One line for a database error: which database (never its password), the driver's reason,
    and what to check."""
    parsed = make_url(url)
    reason = _driver_reason(exc, parsed.password)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").resolve()
        return StoreUnavailable(
            f"database unavailable: SQLite file {path}: {reason}. Check DATABASE_URL, and that "
            f"the directory {path.parent} exists and is writable by this user."
        )
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
    return StoreUnavailable(
        f"database unavailable: PostgreSQL at {where}: {reason}. Check DATABASE_URL, that the "
        "server is running and reachable from here, and the user, password and database name."
    )


def _driver_reason(exc: BaseException, password: str | None) -> str:
    # The driver's own first line (SQLAlchemy's adds the statement and a link), without a
    # password in case a driver ever echoes one.
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    # psycopg: "connection failed: connection to server at "h", port p failed: <the reason>".
    reason = " ".join(reason.rsplit(" failed: ", 1)[-1].split())
    if password:
        reason = reason.replace(password, "***")
    return reason[:300].rstrip(".")


def _is_memory_sqlite(url: sa.URL) -> bool:
    return url.database in (None, "", ":memory:") or (url.query.get("mode") == "memory")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes a second writer wait
    # instead of failing with "database is locked"; foreign keys are off by default in SQLite.
    # synchronous=FULL syncs the WAL at every commit: NORMAL under WAL survives a crash of the
    # process but not of the machine, and the inbox acknowledges a delivery once it is committed.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for `url` (any form `normalize_url` accepts)."""
    async_url, _ = normalize_url(url)
    parsed = make_url(async_url)
    # Errors would otherwise quote the statement's parameters (webhook bodies with customer
    # e-mails, token ciphertexts), and errors get logged.
    options: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        if _is_memory_sqlite(parsed):
            # One shared connection, or every checkout would see its own empty database.
            engine = create_async_engine(async_url, **options, poolclass=sa.StaticPool)
        else:
            # SQLite has one writer at a time; a handful of connections is plenty and bounds the
            # number of threads aiosqlite starts.
            engine = create_async_engine(
                async_url,
                **options,
                poolclass=sa.AsyncAdaptedQueuePool,
                pool_size=5,
                max_overflow=10,
                pool_timeout=_POOL_TIMEOUT,
            )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: PostgreSQL restarts and idle timeouts would otherwise surface as errors mid-sync.
    return create_async_engine(
        async_url,
        **options,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=_POOL_TIMEOUT,
        pool_recycle=1800,
    )


def dialect_name(engine: AsyncEngine | sa.Engine | sa.Connection) -> str:
    """`"sqlite"` or `"postgresql"`."""
    return engine.dialect.name


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind the store writes)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC for a value read back from either database.

    SQLite keeps no zone (it stores the UTC wall clock we wrote), PostgreSQL returns the
    session's zone; both become UTC here.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def to_db_time(value: datetime) -> datetime:
    """Normalize before writing: SQLite drops the zone, so what we store must already be UTC."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use an aware UTC datetime")
    return value.astimezone(UTC)


def to_db_time_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else to_db_time(value)


def excluded(table: sa.Table) -> sa.FromClause:
    """The `excluded` pseudo-table of an upsert (same name in SQLite and PostgreSQL).

    Lets callers build SET values and WHERE clauses before the dialect is chosen.
    """
    return table.alias("excluded")


def upsert_stmt(
    table: sa.Table,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    index_elements: Sequence[str],
    update_cols: Sequence[str] | Mapping[str, Any],
    *,
    dialect: str,
    where: sa.ColumnElement[bool] | None = None,
) -> Insert:
    """INSERT … ON CONFLICT (index_elements) DO UPDATE for `dialect`.

    `values`: one row, several rows (one multi-row INSERT), or None to leave them to
    `conn.execute(stmt, [rows…])` (executemany: compiled once, cached, fastest for bulk).
    `update_cols` lists columns taken from the proposed row (`excluded.col`), or maps column
    names to SQL expressions (use `excluded(table)` to refer to the proposed row). Empty means
    DO NOTHING. `where` limits which conflicting rows are updated.
    """
    insert_fn: Any
    if dialect == "postgresql":
        insert_fn = postgresql.insert
    elif dialect == "sqlite":
        insert_fn = sqlite.insert
    else:
        raise ValueError(f"unsupported database dialect {dialect!r}")
    stmt = insert_fn(table)
    if values is not None:
        stmt = stmt.values(values if isinstance(values, Mapping) else list(values))
    if isinstance(update_cols, Mapping):
        set_: dict[str, Any] = dict(update_cols)
    else:
        set_ = {name: stmt.excluded[name] for name in update_cols}
    if not set_:
        result: Insert = stmt.on_conflict_do_nothing(index_elements=list(index_elements))
        return result
    result = stmt.on_conflict_do_update(index_elements=list(index_elements), set_=set_, where=where)
    return result


class Store:
    """Holds the engine for the process; repositories take `store.engine`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, echo: bool = False) -> Store:
        return cls(create_engine(url, echo=echo))

    @property
    def dialect(self) -> str:
        return dialect_name(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database; raises what the driver raises when it cannot answer."""
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


# Keys in one `IN (...)`: far below every database's bound-parameter limit.
CHUNK = 500
_K = TypeVar("_K")


def slices(items: Sequence[_K], size: int = CHUNK) -> Iterator[Sequence[_K]]:
    """`items` in slices of `size`, for statements that name each one."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def update_in_slices(
    conn: AsyncConnection, keys: Sequence[str], statement: Callable[[Sequence[str]], Update]
) -> int:
    """`statement(slice)` for each slice of the distinct `keys`; the rows it touched in all."""
    touched = 0
    for chunk in slices(list(dict.fromkeys(keys))):
        touched += int((await conn.execute(statement(chunk))).rowcount)
    return touched
