"""Fixtures shared by every test. Module-specific fixtures live beside their tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("BRIDGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Keep a developer's real environment and .env file out of the tests."""
    for name in list(os.environ):
        if name.startswith(("TWENTY_", "WHOP_", "BRIDGE_", "DATABASE_URL")) and not name.startswith(
            ("TWENTY_LIVE_", "BRIDGE_TEST_")
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def throwaway_database(prefix: str) -> Iterator[str]:
    """A fresh, empty database on the local PostgreSQL, dropped afterwards.

    The PostgreSQL path is part of what the project promises: an unreachable server fails the
    test with a clear message (deselect with `-m "not postgres"`), it is never skipped silently.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the local PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """One throwaway database for a whole test module."""
    yield from throwaway_database("bridge_test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway database for one test."""
    yield from throwaway_database("bridge_test")


async def open_store(settings: Any) -> Any:
    """A migrated engine for `settings.database_url`, as a process's runtime would open it."""
    from bridge.store.db import create_engine
    from bridge.store.migrate import migrate

    await migrate(settings.database_url)
    return create_engine(settings.database_url)
