"""Fixtures shared by every test. Module-specific fixtures live beside their tests."""

from __future__ import annotations

import os

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
