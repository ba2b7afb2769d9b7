"""Bring the store's schema up to date, programmatically (no alembic.ini at run time).

Safe to call on every start: it is idempotent, and several replicas starting at once take
turns (PostgreSQL: a session advisory lock; SQLite: the migration runs in a BEGIN IMMEDIATE
transaction, which holds SQLite's single write lock until it commits).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event

from bridge.store.db import SQLITE_BUSY_TIMEOUT_MS, normalize_url

if TYPE_CHECKING:
    # Alembic is imported only when a store is behind: every process starts by migrating, and a
    # store already at HEAD needs one SELECT, not Alembic's ~0.1 s of imports.
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

# Found beside this module so it works from a source checkout and from an installed wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary constant shared by every replica: "the bridge is migrating its store".
# (Two 32-bit halves of pg_advisory_lock's bigint key space; spells "whop2twt".)
ADVISORY_LOCK_KEY = 0x77686F7032747774

# The newest revision in migrations/versions (a test checks it against Alembic's own answer).
HEAD = "0010"

# The development revisions squashed into 0010 (see versions/0010_baseline.py): a database at
# one of them is taken as unmigrated, and 0010's upgrade adds what it lacks, keeping its rows.
RETIRED = frozenset(f"{n:04d}" for n in range(1, 10))

# How long a SQLite migrator waits for another one to finish (seconds).
_SQLITE_LOCK_WAIT = 60.0


def alembic_config(sync_url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if sync_url is not None:
        # ConfigParser interpolation: a literal % (URL-encoded password) must be doubled.
        config.set_main_option("sqlalchemy.url", sync_url.replace("%", "%%"))
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The revisions shipped with this code, read once per process (each read executes every
    revision file)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = _scripts().get_current_head()
    assert head is not None  # the package always ships at least 0001
    return head


def _sync_engine(sync_url: str) -> sa.Engine:
    if _backend(sync_url) != "sqlite":
        return sa.create_engine(sync_url, poolclass=sa.NullPool)
    engine = sa.create_engine(
        sync_url,
        poolclass=sa.NullPool,
        connect_args={"timeout": max(_SQLITE_LOCK_WAIT, SQLITE_BUSY_TIMEOUT_MS / 1000)},
    )

    # pysqlite's own transaction handling never BEGINs before DDL, so migrations would run
    # unprotected. Take over: no implicit transactions, and an explicit BEGIN IMMEDIATE that
    # grabs the write lock up front (a second migrator waits here, then sees the new version).
    @event.listens_for(engine, "connect")
    def _no_implicit_tx(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        enter_wal(dbapi_connection)
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def enter_wal(dbapi_connection: Any, wait: float = _SQLITE_LOCK_WAIT) -> None:
    """`PRAGMA journal_mode=WAL`, tried again while other migrators switch the same new file.
    Each switch needs the file to itself, and two at once can deadlock: SQLite then answers
    "database is locked" at once instead of waiting (seen once, four replicas starting on a new
    file). Once a file is in WAL the pragma only reads, so only a migrator meets this."""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (blocking; call from a thread in async code)."""
    _, sync_url = normalize_url(url)
    if revision in ("head", HEAD) and _read_revision(sync_url) == HEAD:
        return  # the usual start: nothing to lock, nothing to import
    config = alembic_config(sync_url)
    engine = _sync_engine(sync_url)
    try:
        with engine.connect() as conn:
            is_pg = conn.dialect.name == "postgresql"
            if is_pg:
                # Session-level lock: survives the commit below, freed by unlock or disconnect.
                conn.execute(sa.select(sa.func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
                conn.commit()
            try:
                # One transaction for the whole upgrade; Alembic sees it and does not open its own.
                with conn.begin():
                    _forget_retired(conn)
                    _run_upgrade(config, conn, revision)
            finally:
                if is_pg:
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
                    conn.commit()
    finally:
        engine.dispose()


def environment(conn: sa.Connection) -> dict[str, Any]:
    """How migrations run on `conn` (here and in `migrations/env.py`, for alembic by hand)."""
    from bridge.store.tables import metadata

    return {
        "connection": conn,
        "target_metadata": metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        "render_as_batch": conn.dialect.name == "sqlite",
        "compare_type": True,
    }


def _read_revision(sync_url: str) -> str | None:
    """The revision a store is at, read without a lock or Alembic; None when there is no store
    or no version table yet (the locked path then migrates). A database that cannot be reached
    raises here as it would there."""
    if _backend(sync_url) == "sqlite" and not _sqlite_file_exists(sync_url):
        return None  # a new store: created under the migrator's lock, not here
    engine = sa.create_engine(sync_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            try:
                rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            except sa.exc.DBAPIError:  # no version table: never migrated
                return None
    finally:
        engine.dispose()
    return rows[0] if len(rows) == 1 else None


def _sqlite_file_exists(sync_url: str) -> bool:
    database = sa.make_url(sync_url).database
    return database is not None and database not in ("", ":memory:") and Path(database).is_file()


def _run_upgrade(config: Config, conn: sa.Connection, revision: str) -> None:
    """What `alembic upgrade` does, with the revisions read once per process and no env.py to
    execute each time."""
    from alembic.runtime.environment import EnvironmentContext

    scripts = _scripts()

    def upgrade_steps(current: Any, _context: MigrationContext) -> Any:
        return scripts._upgrade_revs(revision, current)

    with EnvironmentContext(config, scripts, fn=upgrade_steps, destination_rev=revision) as env:
        env.configure(**environment(conn))
        with env.begin_transaction():
            env.run_migrations()


def _forget_retired(conn: sa.Connection) -> None:
    from alembic.runtime.migration import MigrationContext

    if MigrationContext.configure(conn).get_current_revision() in RETIRED:
        conn.execute(sa.text("DELETE FROM alembic_version"))


async def migrate(url: str, revision: str = "head") -> None:
    """`upgrade` without blocking the event loop."""
    await asyncio.to_thread(upgrade, url, revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated (a SQLite file that
    does not exist yet is not created by asking)."""
    return _read_revision(normalize_url(url)[1])
