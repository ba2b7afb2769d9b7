"""Store fixtures: every test runs on SQLite (a temp file) and on the local PostgreSQL.

PostgreSQL tests get a database of their own (`bridge_test_<random>`), created for the
session and dropped at the end, so parallel runs and other suites never collide. Tests that
need an empty, unmigrated database get yet another one (`fresh_url`). If the server cannot
be reached the PostgreSQL half fails loudly rather than skipping: CI has the server.
Run `pytest -m "not postgres"` to leave it out on purpose.
"""

from __future__ import annotations

import secrets
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


class PgDatabases:
    """Creates throw-away databases on the test server and drops them at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> str:
        name = f"bridge_test_{secrets.token_hex(6)}"
        with _admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.created:
            return
        with _admin() as conn:
            for name in self.created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_migrated_url(pg_databases: PgDatabases) -> str:
    """One migrated PostgreSQL database for the session; tests empty it rather than recreate it."""
    url = pg_databases.create()
    upgrade(url)
    return url


def _truncate_all(url: str) -> None:
    names = sql.SQL(", ").join(sql.Identifier(t.name) for t in metadata.sorted_tables)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty, never-migrated database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    pg: PgDatabases = request.getfixturevalue("pg_databases")
    return pg.create()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'bridge.db'}"
        upgrade(url)
        return url
    url = str(request.getfixturevalue("pg_migrated_url"))
    _truncate_all(url)
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
