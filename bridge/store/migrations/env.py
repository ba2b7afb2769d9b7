"""Alembic environment for the bridge's store.

`bridge.store.migrate` builds the Alembic config in code and hands over an open connection
(`config.attributes["connection"]`), already inside a transaction and, on PostgreSQL, holding
the migration advisory lock. Running `alembic` by hand with `sqlalchemy.url` set also works.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from bridge.store.migrate import environment
from bridge.store.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(**environment(connection))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run migrations through bridge.store.migrate")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
