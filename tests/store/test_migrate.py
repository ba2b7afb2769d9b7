from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge.store.db import normalize_url
from bridge.store.migrate import (
    ADVISORY_LOCK_KEY,
    HEAD,
    MIGRATIONS_DIR,
    current_revision,
    enter_wal,
    head_revision,
    migrate,
    upgrade,
)
from bridge.store.tables import metadata


def _diffs(url: str, target: sa.MetaData) -> list[object]:
    engine = sa.create_engine(normalize_url(url)[1], poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return list(compare_metadata(ctx, target))
    finally:
        engine.dispose()


def test_migrations_ship_beside_the_module() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert head_revision() == "0010"


def test_the_head_the_bridge_checks_at_start_is_the_newest_shipped_revision() -> None:
    assert head_revision() == HEAD


def _holding_the_migrators_lock(url: str) -> tuple[sa.Engine, sa.Connection]:
    """Another replica in the middle of a migration: it holds what a migrator waits for."""
    engine = sa.create_engine(normalize_url(url)[1], poolclass=sa.NullPool)
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite's one write lock
    else:
        conn.execute(sa.select(sa.func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
    return engine, conn


def _starting(url: str, errors: list[BaseException]) -> threading.Thread:
    """A replica starting (migrating its store) in a thread of its own; what it raised goes to `errors`."""

    def start() -> None:
        try:
            upgrade(url)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread


def test_a_start_on_an_up_to_date_store_does_not_wait_for_a_replica_that_is_migrating(fresh_url: str) -> None:
    upgrade(fresh_url)
    engine, holder = _holding_the_migrators_lock(fresh_url)
    errors: list[BaseException] = []
    try:
        start = _starting(fresh_url, errors)
        # The lock is held until after this wait: a start that queued for it could not end in it
        # (SQLite's migrator waits 60 s, PostgreSQL's for ever).
        start.join(timeout=30)
        assert not start.is_alive(), "the start queued behind the migrating replica"
    finally:
        holder.close()
        engine.dispose()
    assert errors == []


def test_upgrade_is_idempotent(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    upgrade(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    upgrade(fresh_url)  # second start: nothing to do, no error
    assert current_revision(fresh_url) == head_revision()


def test_migrated_schema_matches_tables(fresh_url: str) -> None:
    upgrade(fresh_url)
    assert _diffs(fresh_url, metadata) == []

    # The comparison is live: a column the database lacks is reported.
    changed = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["leases"].append_column(sa.Column("extra", sa.Integer, nullable=True))
    assert _diffs(fresh_url, changed) != []


def test_every_table_and_index_exists(fresh_url: str) -> None:
    upgrade(fresh_url)
    engine = sa.create_engine(normalize_url(fresh_url)[1], poolclass=sa.NullPool)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == set(metadata.tables) | {"alembic_version"}
        assert {i["name"] for i in inspector.get_indexes("sync_runs")} == {"ix_sync_runs_company_started"}
        assert {i["name"] for i in inspector.get_indexes("webhook_inbox")} == {"ix_webhook_inbox_due"}
    finally:
        engine.dispose()


def test_replicas_starting_together_do_not_race(fresh_url: str) -> None:
    errors: list[BaseException] = []
    threads = [_starting(fresh_url, errors) for _ in range(4)]
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert current_revision(fresh_url) == head_revision()


async def test_async_migrate(fresh_url: str) -> None:
    await migrate(fresh_url)
    assert current_revision(fresh_url) == head_revision()


FIXTURES = Path(__file__).parent / "fixtures"


def _load_retired_store(url: str, revision: str) -> None:
    """A store exactly as a squashed development revision left it, with a connection and an event."""
    sync_url = normalize_url(url)[1]
    engine = sa.create_engine(sync_url, poolclass=sa.NullPool)
    script = (FIXTURES / f"store-0001-0009.{engine.dialect.name}.sql").read_text()
    script = script.split(f"-- Running upgrade {revision} -> ")[0]  # the store as `revision` left it
    try:
        raw = engine.raw_connection()
        try:
            if engine.dialect.name == "sqlite":
                raw.driver_connection.executescript(script)  # type: ignore[union-attr]
            else:
                raw.cursor().execute(script)
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO connections (company_id, mode, status, access_token_enc, connected_at, updated_at)"
                    " VALUES ('biz_kept', 'oauth', 'connected', 'ciphertext', :t, :t)"
                ),
                {"t": datetime(2026, 12, 5, tzinfo=UTC)},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO webhook_inbox (webhook_id, body, status, attempts, next_attempt_at, received_at)"
                    " VALUES ('msg_kept', '{}', 'failed', 2, :t, :t)"
                ),
                {"t": datetime(2026, 12, 5, tzinfo=UTC)},
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", ["0001", "0009"])
def test_a_store_made_by_a_squashed_revision_is_brought_up_to_date_keeping_its_rows(
    fresh_url: str, revision: str
) -> None:
    _load_retired_store(fresh_url, revision)
    assert current_revision(fresh_url) == revision

    upgrade(fresh_url)

    assert current_revision(fresh_url) == head_revision()
    assert _diffs(fresh_url, metadata) == []  # the same tables, columns and indexes as a new store
    engine = sa.create_engine(normalize_url(fresh_url)[1], poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT company_id, access_token_enc, webhook_id FROM connections")).all()
            event = conn.execute(sa.text("SELECT webhook_id, attempts, lost_claims FROM webhook_inbox")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in kept] == [("biz_kept", "ciphertext", None)]
    assert [tuple(r) for r in event] == [("msg_kept", 2, 0)]
    upgrade(fresh_url)  # and the next start has nothing to do
    assert current_revision(fresh_url) == head_revision()


class _SwitchingAtOnce:
    """A connection whose WAL switch meets another migrator's, as SQLite reports it."""

    def __init__(self, locked_times: int, error: str = "database is locked") -> None:
        self.left, self.error, self.tries = locked_times, error, 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.tries += 1
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError(self.error)


def test_a_wal_switch_that_meets_another_migrators_is_tried_again() -> None:
    connection = _SwitchingAtOnce(locked_times=3)
    enter_wal(connection)
    assert connection.tries == 4


def test_a_wal_switch_gives_up_after_its_wait_and_other_errors_are_not_retried() -> None:
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enter_wal(_SwitchingAtOnce(locked_times=1000), wait=0.05)
    disk = _SwitchingAtOnce(locked_times=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        enter_wal(disk)
    assert disk.tries == 1
