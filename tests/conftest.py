"""Fixtures shared by every test. Module-specific fixtures live beside their tests."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scheduling import deal

POSTGRES_URL = os.environ.get("BRIDGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MEMORY_TMP = Path("/dev/shm")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Test files in memory where the machine has a tmpfs: the stores the tests open sync every
    commit to disk (`synchronous=FULL`, as users run them), which on a disk is most of what a
    store-heavy test waits for. Each run gets a folder of its own (runs side by side, in one
    checkout or several, never share one), removed after a run that passed; a failed run's stays
    for a look until the next run starts (a run still going keeps its own). `--basetemp` wins."""
    if config.option.basetemp or hasattr(config, "workerinput") or not os.access(MEMORY_TMP, os.W_OK):
        return
    mine = MEMORY_TMP / f"pytest-of-{getpass.getuser()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    for old in mine.glob("whop-twenty-bridge-*"):
        pid = old.name.split("-")[3]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    chosen = Path(tempfile.mkdtemp(prefix=f"whop-twenty-bridge-{os.getpid()}-", dir=mine))
    config.option.basetemp = str(chosen)
    config.stash[_chosen_basetemp] = chosen


_chosen_basetemp = pytest.StashKey[Path]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `slow` and `browser` tests spread over the processes, each starting its share with
    them (tests/scheduling.py): the longest ones start at once, none ends the run alone."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    items[:] = deal(items, workers, lambda item: any(item.get_closest_marker(m) for m in ("slow", "browser")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    chosen = session.config.stash.get(_chosen_basetemp, None)
    if chosen is not None and exitstatus == 0:
        shutil.rmtree(chosen, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Keep a developer's real environment and .env file out of the tests."""
    for name in list(os.environ):
        if name.startswith(("TWENTY_", "WHOP_", "BRIDGE_", "DATABASE_URL")) and not name.startswith(
            ("TWENTY_LIVE_", "BRIDGE_TEST_")
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
async def _close_worlds() -> AsyncIterator[None]:
    """Close what `make_world` opened, on the test's own event loop, before that loop closes."""
    yield
    from tests.sync.conftest import close_worlds

    await close_worlds()


@pytest.fixture
async def sqlite_threads_joined() -> AsyncIterator[None]:
    """For a test whose SQLite file cannot be opened: aiosqlite stops the thread of a connection
    that failed by a call whose answer goes to the test's event loop. Waited for here, on that
    loop; otherwise a busy machine could close the loop first, and the thread would die with
    "Event loop is closed" during a later test."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 30)


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
