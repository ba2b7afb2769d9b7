"""Refused webhook deliveries: kept for the admin page, cheaply, however many arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import rejections
from bridge.store.db import create_engine, utcnow
from bridge.store.migrate import migrate


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{tmp_path}/bridge.db"
    await migrate(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_flood_is_stored_a_few_rows_at_a_time_and_counted_in_full(engine: AsyncEngine) -> None:
    clock = Clock()
    log = rejections.RejectionLog(engine, per_second=2, burst=5, clock=clock)
    for i in range(100):
        await log.note("signature mismatch", webhook_id=f"msg_{i}")
    assert len(await rejections.recent(engine, limit=1000)) == 5  # the burst, then nothing more this second

    clock.now += 1  # two more rows may be written; the first carries the 95 not stored one by one
    await log.note("signature mismatch", webhook_id="msg_after")
    newest = await rejections.latest(engine)
    assert newest is not None and newest.webhook_id == "msg_after" and newest.repeats == 95
    assert await rejections.summary(engine, since=utcnow() - timedelta(minutes=1)) == {"signature mismatch": 101}


async def test_only_the_newest_rows_are_kept(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rejections, "KEEP", 3)
    for i in range(7):
        await rejections.record(engine, "signature mismatch", webhook_id=f"msg_{i}")
    assert [r.webhook_id for r in await rejections.recent(engine)] == ["msg_6", "msg_5", "msg_4"]


async def test_claimed_values_are_cut_to_their_columns_and_stripped_of_control_characters(engine: AsyncEngine) -> None:
    await rejections.record(
        engine, "signature mismatch", webhook_id="msg_\x00\x1b[31m" + "x" * 500, company_id="b" * 99
    )
    (row,) = await rejections.recent(engine)
    assert row.webhook_id is not None and len(row.webhook_id) == 128 and "\x1b" not in row.webhook_id
    assert row.company_id == "b" * 64


@pytest.mark.usefixtures("sqlite_threads_joined")
async def test_a_store_that_fails_does_not_fail_the_refusal(engine: AsyncEngine) -> None:
    await engine.dispose()
    broken = create_engine("sqlite:////nonexistent-directory/for/sure/bridge.db")
    await rejections.RejectionLog(broken).note("signature mismatch")  # logged, not raised
    await broken.dispose()
