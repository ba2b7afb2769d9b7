from __future__ import annotations

import threading

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge.store.db import normalize_url
from bridge.store.migrate import MIGRATIONS_DIR, current_revision, head_revision, migrate, upgrade
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

    def run() -> None:
        try:
            upgrade(fresh_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert current_revision(fresh_url) == head_revision()


async def test_async_migrate(fresh_url: str) -> None:
    await migrate(fresh_url)
    assert current_revision(fresh_url) == head_revision()
