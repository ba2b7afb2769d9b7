from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import ConfigError
from bridge.store.db import (
    Store,
    as_utc,
    create_engine,
    dialect_name,
    normalize_url,
    to_db_time,
    upsert_stmt,
    utcnow,
)
from bridge.store.tables import leases


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///bridge.db", ("sqlite+aiosqlite:///bridge.db", "sqlite:///bridge.db")),
        ("sqlite:////var/lib/b.db", ("sqlite+aiosqlite:////var/lib/b.db", "sqlite:////var/lib/b.db")),
        ("sqlite+aiosqlite:///x.db", ("sqlite+aiosqlite:///x.db", "sqlite:///x.db")),
        (
            "postgresql://u:p%40ss@db:5432/bridge",
            ("postgresql+psycopg://u:p%40ss@db:5432/bridge?connect_timeout=10",) * 2,
        ),
        ("postgres://u@db/bridge", ("postgresql+psycopg://u@db/bridge?connect_timeout=10",) * 2),
        (
            "postgresql+psycopg://u@db/bridge?sslmode=require",
            ("postgresql+psycopg://u@db/bridge?connect_timeout=10&sslmode=require",) * 2,
        ),
        # A hung server ends a connect after 10 s unless the URL asks for another timeout.
        (
            "postgresql://u@db/bridge?connect_timeout=3",
            ("postgresql+psycopg://u@db/bridge?connect_timeout=3",) * 2,
        ),
    ],
)
def test_normalize_url(url: str, expected: tuple[str, str]) -> None:
    assert normalize_url(url) == expected


def test_normalize_url_rejects_other_databases_without_echoing_the_url() -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(info.value)
    assert info.value.variable == "DATABASE_URL"


def test_time_helpers() -> None:
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    naive = datetime(2025, 1, 2, 3, 4, 5)
    assert as_utc(naive) == naive.replace(tzinfo=UTC)
    plus2 = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(plus2).hour == 3 and as_utc(plus2).tzinfo is UTC
    assert to_db_time(plus2) == plus2
    with pytest.raises(ValueError, match="naive"):
        to_db_time(naive)


def test_upsert_stmt_rejects_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        upsert_stmt(leases, {"name": "x"}, ["name"], ["owner"], dialect="mysql")


async def test_sqlite_engine_pragmas(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/p.db")
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        await engine.dispose()


async def test_memory_sqlite_shares_one_database() -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar() == 0
    finally:
        await engine.dispose()


async def test_store_holds_engine(db_url: str) -> None:
    async with Store.open(db_url) as store:
        assert store.dialect in {"sqlite", "postgresql"}
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.select(1))).scalar() == 1


async def test_timestamps_round_trip_as_aware_utc(engine: AsyncEngine) -> None:
    # Written with a non-UTC offset: must come back as the same instant, in UTC.
    when = datetime(2030, 6, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    async with engine.begin() as conn:
        await conn.execute(sa.insert(leases).values(name="n", owner="o", expires_at=to_db_time(when)))
    async with engine.connect() as conn:
        raw = (await conn.execute(sa.select(leases.c.expires_at))).scalar_one()
    assert as_utc(raw) == when
    assert as_utc(raw).tzinfo is UTC
    assert dialect_name(engine) in {"sqlite", "postgresql"}


async def test_database_errors_do_not_quote_the_values_they_were_given(tmp_path: object) -> None:
    """Error messages get logged; they must not carry webhook bodies or token ciphertexts."""
    import sqlalchemy as sa

    from bridge.store import tables
    from bridge.store.db import create_engine

    engine = create_engine(f"sqlite:///{tmp_path}/hidden.db")
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
    row = {
        "webhook_id": "msg_1",
        "body": '{"email":"jane.doe@example.com"}',
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": sa.func.now(),
        "received_at": sa.func.now(),
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(tables.webhook_inbox).values(row))
    with pytest.raises(sa.exc.IntegrityError) as info:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(tables.webhook_inbox).values(row))
    await engine.dispose()
    assert "jane.doe@example.com" not in str(info.value)
