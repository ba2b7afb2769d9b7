"""Fixtures shared by every test. Module-specific fixtures live beside their tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

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


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database on the local server, dropped afterwards."""
    name = f"bridge_worker_{uuid.uuid4().hex[:10]}"
    from bridge.store.db import create_engine

    admin = create_engine(POSTGRES_URL)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()
