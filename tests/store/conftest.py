"""Store fixtures: every test runs on SQLite (a temp file) and on the local PostgreSQL.

PostgreSQL tests get a database of their own (`bridge_store_test_<time>_<random>`), created for the
session and dropped at the end, so parallel runs and other suites never collide. Inside it,
the migrated store is one schema emptied before each test; tests that need an empty,
unmigrated database (`fresh_url`) get a new schema each. If the server cannot
be reached the PostgreSQL half fails loudly rather than skipping: CI has the server.
Run `pytest -m "not postgres"` to leave it out on purpose.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import create_engine
from bridge.store.migrate import upgrade
from bridge.store.tables import metadata
from tests.conftest import POSTGRES_URL

# A test database older than this was left by a killed session and is dropped.
LEFTOVER_AGE = 6 * 3600

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc}); start it, set "
            "BRIDGE_TEST_POSTGRES_URL, or deselect with -m 'not postgres'",
            pytrace=False,
        )


class PgServer:
    """One throw-away database for the session; every test database is a schema inside it.

    A schema (selected through the connection's search_path) is as good as a database for the
    store and far cheaper to create and drop than CREATE DATABASE.
    """

    PREFIX = "bridge_store_test_"

    def __init__(self) -> None:
        # The creation time in the name lets a later session drop what a killed one left behind.
        self.database = f"{self.PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
        with _admin() as conn:
            self._drop_leftovers(conn)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self.base_url = sa.make_url(POSTGRES_URL).set(database=self.database)

    def _drop_leftovers(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        cutoff = time.time() - LEFTOVER_AGE
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (self.PREFIX.replace("_", r"\_") + "%",)
        ).fetchall()
        for (name,) in rows:
            stamp = str(name).removeprefix(self.PREFIX).split("_", 1)[0]
            if stamp.isdigit() and int(stamp) < cutoff:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))

    def create_schema(self) -> str:
        name = f"s_{secrets.token_hex(6)}"
        with psycopg.connect(self.base_url.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        url = self.base_url.update_query_dict({"options": f"-csearch_path={name}"})
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with _admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.drop()


@pytest.fixture(scope="session")
def pg_migrated_url(pg_server: PgServer) -> str:
    """One migrated PostgreSQL schema for the session; tests empty it rather than recreate it."""
    url = pg_server.create_schema()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test instead of migrating every time."""
    path = tmp_path_factory.mktemp("template") / "bridge.db"
    upgrade(f"sqlite:///{path}")  # the engine is disposed: WAL checkpointed into the main file
    return path


def _empty_all(url: str) -> None:
    # DELETE, not TRUNCATE: on tables this small it avoids TRUNCATE's new files and fsyncs.
    with psycopg.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty, never-migrated database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_schema()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database."""
    if backend == "sqlite":
        path = tmp_path / "bridge.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = str(request.getfixturevalue("pg_migrated_url"))
    _empty_all(url)
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def make_engine(db_url: str) -> AsyncIterator[Callable[[], AsyncEngine]]:
    """More engines on the same database: stand-ins for other replicas."""
    made: list[AsyncEngine] = []

    def factory() -> AsyncEngine:
        eng = create_engine(db_url)
        made.append(eng)
        return eng

    yield factory
    for eng in made:
        await eng.dispose()


def one_engine(make_engine: Callable[[], AsyncEngine]) -> Callable[[], AsyncEngine]:
    """Another process's store: one engine (its own pool), made on first use."""
    made: list[AsyncEngine] = []

    def store() -> AsyncEngine:
        if not made:
            made.append(make_engine())
        return made[0]

    return store
