"""The durable webhook inbox, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import db, inbox, tables

T0 = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)


# Databases ---------------------------------------------------------------------------------------


# `engine` and `db_url` come from tests/store/conftest.py: a migrated, empty database on
# SQLite and on the local PostgreSQL.


async def put(engine: AsyncEngine, webhook_id: str, at: datetime = T0, event_type: str = "member.updated") -> None:
    assert await inbox.store(
        engine, webhook_id=webhook_id, event_type=event_type, company_id="biz_1", body="{}", received_at=at
    )


async def get(engine: AsyncEngine, webhook_id: str) -> inbox.InboxEvent:
    event = await inbox.get_event(engine, webhook_id)
    assert event is not None
    return event


async def raw_row(engine: AsyncEngine, webhook_id: str) -> dict[str, object]:
    t = tables.webhook_inbox
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(t).where(t.c.webhook_id == webhook_id))).one()
    return dict(row._mapping)


class TopOfRange(random.Random):
    """Full jitter at its ceiling, so the backoff schedule is exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


# store -------------------------------------------------------------------------------------------


async def test_store_is_keyed_by_webhook_id(engine: AsyncEngine) -> None:
    first = await inbox.store(
        engine,
        webhook_id="msg_1",
        event_type="membership.activated",
        company_id="biz_1",
        body='{"a":1}',
        received_at=T0,
    )
    again = await inbox.store(
        engine,
        webhook_id="msg_1",
        event_type="other",
        company_id="biz_2",
        body='{"b":2}',
        received_at=T0 + timedelta(minutes=1),
    )
    assert (first, again) == (True, False)
    event = await get(engine, "msg_1")
    assert event == inbox.InboxEvent(
        webhook_id="msg_1",
        event_type="membership.activated",
        company_id="biz_1",
        body='{"a":1}',
        status="pending",
        attempts=0,
        next_attempt_at=T0,
        last_error=None,
        received_at=T0,
        processed_at=None,
    )
    assert (await inbox.counts(engine))["pending"] == 1


async def test_store_rejects_naive_datetimes(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="naive"):
        await inbox.store(
            engine,
            webhook_id="x",
            event_type=None,
            company_id=None,
            body="",
            received_at=datetime(2026, 1, 1),
        )


# claim -------------------------------------------------------------------------------------------


async def test_claim_takes_due_events_oldest_first(engine: AsyncEngine) -> None:
    for i in range(3):
        await put(engine, f"msg_{i}", T0 + timedelta(seconds=i))
    await put(engine, "msg_future", T0 + timedelta(hours=1))

    first = await inbox.claim(engine, "w1", limit=2, now=T0 + timedelta(minutes=1))
    assert [e.webhook_id for e in first] == ["msg_0", "msg_1"]
    assert all(e.status == "processing" and e.attempts == 1 for e in first)
    row = await raw_row(engine, "msg_0")
    assert row["claimed_by"] == "w1"
    assert db.as_utc(row["claimed_until"]) == T0 + timedelta(minutes=2)  # type: ignore[arg-type]

    second = await inbox.claim(engine, "w2", limit=10, now=T0 + timedelta(minutes=1))
    assert [e.webhook_id for e in second] == ["msg_2"]
    assert await inbox.claim(engine, "w3", now=T0 + timedelta(minutes=1)) == []
    for event in [*first, *second]:
        assert await inbox.mark_applied(engine, event.webhook_id, "w1" if event in first else "w2")
    # Once its time has come, the future one is due too.
    later = await inbox.claim(engine, "w3", now=T0 + timedelta(hours=1))
    assert [e.webhook_id for e in later] == ["msg_future"]


async def test_two_workers_never_share_an_event(db_url: str, engine: AsyncEngine) -> None:
    ids = {f"msg_{i:04d}" for i in range(240)}
    for webhook_id in sorted(ids):
        await put(engine, webhook_id)
    # Two engines = two independent connection pools, as two bridge processes would have.
    other = db.create_engine(db_url)
    claimed: dict[str, list[str]] = {}

    async def worker(name: str, eng: AsyncEngine) -> None:
        mine = claimed.setdefault(name, [])
        while True:
            batch = await inbox.claim(eng, name, limit=7, now=T0 + timedelta(seconds=1))
            if not batch:
                return
            for event in batch:
                mine.append(event.webhook_id)
                assert await inbox.mark_applied(eng, event.webhook_id, name)

    try:
        await asyncio.gather(worker("a1", engine), worker("b1", other), worker("a2", engine), worker("b2", other))
    finally:
        await other.dispose()

    every = [webhook_id for batch in claimed.values() for webhook_id in batch]
    assert len(every) == len(set(every)), "an event was handed to two workers"
    assert set(every) == ids
    assert (await inbox.counts(engine))["applied"] == len(ids)


@pytest.mark.postgres
async def test_postgres_claim_skips_locked_rows_without_waiting(pg_database: str) -> None:
    holder, claimer = db.create_engine(pg_database), db.create_engine(pg_database)
    try:
        async with holder.begin() as conn:
            await conn.run_sync(tables.metadata.drop_all)
            await conn.run_sync(tables.metadata.create_all)
        for i in range(6):
            await put(holder, f"msg_{i}", T0 + timedelta(seconds=i))
        t = tables.webhook_inbox
        async with holder.connect() as conn, conn.begin() as tx:
            # Another process is in the middle of claiming the three oldest rows.
            await conn.execute(
                sa.select(t.c.webhook_id).where(t.c.webhook_id.in_(["msg_0", "msg_1", "msg_2"])).with_for_update()
            )
            got = await asyncio.wait_for(inbox.claim(claimer, "b", now=T0 + timedelta(minutes=1)), timeout=5)
            assert [e.webhook_id for e in got] == ["msg_3", "msg_4", "msg_5"]
            await tx.rollback()
        rest = await inbox.claim(claimer, "b", now=T0 + timedelta(minutes=1))
        assert [e.webhook_id for e in rest] == ["msg_0", "msg_1", "msg_2"]
    finally:
        await holder.dispose()
        await claimer.dispose()


async def test_crashed_workers_events_come_back_without_spending_an_attempt(engine: AsyncEngine) -> None:
    await put(engine, "msg_1")
    [taken] = await inbox.claim(engine, "crashed", lease_seconds=60, now=T0)
    assert taken.attempts == 1
    # Still leased: nobody else gets it.
    assert await inbox.claim(engine, "w2", now=T0 + timedelta(seconds=59)) == []
    # The lease ran out: it is handed out again, and the lost claim was not an attempt.
    [again] = await inbox.claim(engine, "w2", now=T0 + timedelta(seconds=61))
    assert (again.webhook_id, again.attempts) == ("msg_1", 1)
    # The crashed worker wakes up late; it no longer owns the event and changes nothing.
    assert not await inbox.mark_applied(engine, "msg_1", "crashed")
    assert await inbox.mark_failed(engine, "msg_1", "crashed", "late") is None
    assert not await inbox.extend(engine, "crashed", ["msg_1"], lease_seconds=600)
    assert (await get(engine, "msg_1")).status == "processing"
    assert await inbox.mark_applied(engine, "msg_1", "w2", now=T0 + timedelta(seconds=62))
    done = await get(engine, "msg_1")
    assert (done.status, done.processed_at) == ("applied", T0 + timedelta(seconds=62))
    row = await raw_row(engine, "msg_1")
    assert (row["claimed_by"], row["claimed_until"]) == (None, None)


async def test_an_event_that_keeps_killing_its_worker_is_dead_lettered(engine: AsyncEngine) -> None:
    await put(engine, "msg_poison")
    now = T0
    for n in (1, 2, 3):
        [event] = await inbox.claim(engine, f"w{n}", lease_seconds=60, now=now, max_lost_claims=3)
        assert event.attempts == 1, "lost claims are not attempts"
        now += timedelta(seconds=61)
    assert await inbox.claim(engine, "w4", now=now, max_lost_claims=3) == []
    dead = await get(engine, "msg_poison")
    assert dead.status == "dead"
    assert dead.last_error == "its worker stopped (claim expired) 3 times"


async def test_a_claim_kept_alive_is_not_taken_by_another_worker(engine: AsyncEngine) -> None:
    await put(engine, "msg_long")
    await inbox.claim(engine, "busy", lease_seconds=60, now=T0)
    # The pass is still running: its worker extends the claim before it runs out.
    assert await inbox.extend(
        engine, "busy", ["msg_long", "msg_unknown"], lease_seconds=60, now=T0 + timedelta(seconds=40)
    )
    assert await inbox.claim(engine, "other", now=T0 + timedelta(seconds=90)) == []
    assert await inbox.mark_applied(engine, "msg_long", "busy")
    assert not await inbox.extend(engine, "busy", ["msg_long"], lease_seconds=60), "a finished event stays finished"


async def test_expired_claims_go_behind_events_that_were_due_before_they_came_back(engine: AsyncEngine) -> None:
    # A worker died holding 100 events; newer deliveries arrived meanwhile.
    for i in range(100):
        await put(engine, f"stale_{i:03d}", T0)
    assert len(await inbox.claim(engine, "died", limit=100, lease_seconds=60, now=T0)) == 100
    for i in range(5):
        await put(engine, f"new_{i}", T0 + timedelta(seconds=30 + i))

    first = await inbox.claim(engine, "w", limit=100, now=T0 + timedelta(seconds=61))

    taken = [e.webhook_id for e in first]
    assert taken[:5] == [f"new_{i}" for i in range(5)], "the newer events were due first"
    assert len(taken) == 100 and all(e.attempts == 1 for e in first)
    left = await inbox.claim(engine, "w2", limit=100, now=T0 + timedelta(seconds=62))
    assert len(left) == 5 and all(e.webhook_id.startswith("stale_") for e in left)


async def test_release_puts_an_event_back_without_an_attempt(engine: AsyncEngine) -> None:
    await put(engine, "msg_wait")
    await put(engine, "msg_retry")
    await inbox.claim(engine, "w", now=T0)
    assert await inbox.mark_failed(engine, "msg_retry", "w", "boom", now=T0, rng=TopOfRange()) == "failed"
    [retry] = await inbox.claim(engine, "w", now=T0 + timedelta(seconds=30))  # its backoff is over
    assert retry.attempts == 2

    released = await inbox.release(engine, "w", ["msg_wait", "msg_retry"], "Twenty is unavailable (HTTP 503)")

    assert released == 2
    wait, again = await get(engine, "msg_wait"), await get(engine, "msg_retry")
    assert (wait.status, wait.attempts, wait.next_attempt_at) == ("pending", 0, T0)
    assert (again.status, again.attempts) == ("failed", 1)
    assert wait.last_error == again.last_error == "Twenty is unavailable (HTTP 503)"
    assert await inbox.release(engine, "w", ["msg_wait"], "again") == 0, "only what the worker holds"
    [first] = await inbox.claim(engine, "w", limit=1, now=T0 + timedelta(seconds=40))
    assert first.webhook_id == "msg_wait", "its place in the queue is kept"


# mark_* ------------------------------------------------------------------------------------------


async def test_mark_failed_backs_off_exponentially_then_dead_letters(engine: AsyncEngine) -> None:
    await put(engine, "msg_1")
    now = T0
    delays = []
    for attempt in range(1, 8):
        [event] = await inbox.claim(engine, "w", now=now)
        assert event.attempts == attempt
        status = await inbox.mark_failed(
            engine,
            "msg_1",
            "w",
            f"boom {attempt}",
            now=now,
            base_delay=30,
            max_delay=1000,
            rng=TopOfRange(),
        )
        assert status == "failed"
        failed = await get(engine, "msg_1")
        assert failed.last_error == f"boom {attempt}"
        delay = failed.next_attempt_at - now
        delays.append(delay.total_seconds())
        # Not due before its time.
        assert await inbox.claim(engine, "w", now=failed.next_attempt_at - timedelta(seconds=1)) == []
        now = failed.next_attempt_at
    assert delays == [30, 60, 120, 240, 480, 960, 1000]  # doubling, capped at max_delay

    [event] = await inbox.claim(engine, "w", now=now)
    assert event.attempts == 8
    assert await inbox.mark_failed(engine, "msg_1", "w", "boom 8", now=now, rng=TopOfRange()) == "dead"
    dead = await get(engine, "msg_1")
    assert (dead.status, dead.last_error, dead.processed_at) == ("dead", "boom 8", now)
    assert await inbox.claim(engine, "w", now=now + timedelta(days=30)) == []


async def test_backoff_uses_full_jitter() -> None:
    rng = random.Random(7)
    for attempts in range(1, 12):
        ceiling = min(6 * 3600, 30 * 2 ** (attempts - 1))
        samples = [inbox.backoff_delay(attempts, base_delay=30, max_delay=6 * 3600, rng=rng) for _ in range(50)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling / 2 > min(samples)  # spread over the whole range


async def test_permanent_failure_and_ignored_events(engine: AsyncEngine) -> None:
    await put(engine, "msg_bad")
    await put(engine, "msg_other")
    await inbox.claim(engine, "w", now=T0)
    assert await inbox.mark_failed(engine, "msg_bad", "w", "schema conflict", now=T0, permanent=True) == "dead"
    assert await inbox.mark_ignored(engine, "msg_other", "w", "unknown event type", now=T0)
    ignored = await get(engine, "msg_other")
    assert (ignored.status, ignored.last_error, ignored.processed_at) == ("ignored", "unknown event type", T0)
    assert (await get(engine, "msg_bad")).status == "dead"


async def test_error_text_with_nul_is_storable(engine: AsyncEngine) -> None:
    await put(engine, "msg_1")
    await inbox.claim(engine, "w", now=T0)
    await inbox.mark_failed(engine, "msg_1", "w", "bad byte \x00 in " + "x" * 10_000, now=T0)
    error = (await get(engine, "msg_1")).last_error
    assert error is not None and "\x00" not in error and len(error) <= 4000


# replay, prune, reporting ------------------------------------------------------------------------


async def _event_in(engine: AsyncEngine, webhook_id: str, status: str, at: datetime = T0) -> None:
    """An event already in `status` (set directly: the claim path is tested above)."""
    await put(engine, webhook_id, at)
    values: dict[str, object] = {"status": status, "attempts": 0 if status == "pending" else 1}
    if status in ("applied", "ignored", "dead"):
        values["processed_at"] = at + timedelta(seconds=5)
    if status in ("failed", "dead"):
        values["last_error"] = "twenty down"
    if status == "failed":
        values["next_attempt_at"] = at + timedelta(hours=1)
    t = tables.webhook_inbox
    async with engine.begin() as conn:
        await conn.execute(sa.update(t).where(t.c.webhook_id == webhook_id).values(**values))


async def test_replay(engine: AsyncEngine) -> None:
    await put(engine, "msg_live")
    await inbox.claim(engine, "busy", now=T0 + timedelta(days=2), lease_seconds=600)
    for status in ("applied", "failed", "dead"):
        await _event_in(engine, f"msg_{status}", status)
    now = T0 + timedelta(days=2, seconds=1)

    assert await inbox.replay(engine, failed_only=True, now=now) == 2
    for webhook_id in ("msg_failed", "msg_dead"):
        event = await get(engine, webhook_id)
        assert (event.status, event.attempts, event.next_attempt_at, event.last_error) == (
            "pending",
            0,
            now,
            None,
        )
    assert (await get(engine, "msg_applied")).status == "applied"

    assert await inbox.replay(engine, ["msg_applied", "msg_missing", "msg_applied"], now=now) == 1
    assert (await get(engine, "msg_applied")).status == "pending"
    # An event a live worker holds is not pulled from under it.
    assert await inbox.replay(engine, ["msg_live"], now=now) == 0
    assert (await get(engine, "msg_live")).status == "processing"

    claimed = await inbox.claim(engine, "w", now=now)
    assert {e.webhook_id for e in claimed} == {"msg_failed", "msg_dead", "msg_applied"}
    assert all(e.attempts == 1 for e in claimed)


async def test_prune_deletes_finished_events_only(engine: AsyncEngine) -> None:
    old = T0 - timedelta(days=40)
    for status in ("applied", "ignored", "dead", "failed", "pending"):
        await _event_in(engine, f"old_{status}", status, old)
    await _event_in(engine, "new_applied", "applied", T0 - timedelta(days=1))

    assert await inbox.prune(engine, 30, now=T0) == 2
    left = {e.webhook_id for e in await inbox.list_events(engine)}
    assert left == {"old_dead", "old_failed", "old_pending", "new_applied"}


async def test_list_counts_and_oldest_pending_age(engine: AsyncEngine) -> None:
    assert await inbox.oldest_pending_age(engine, now=T0) is None
    await _event_in(engine, "a_dead", "dead", T0 - timedelta(hours=5))
    await _event_in(engine, "b_failed", "failed", T0 - timedelta(hours=2))
    await _event_in(engine, "c_applied", "applied", T0 - timedelta(hours=3))
    await put(engine, "d_pending", T0 - timedelta(minutes=1))

    assert await inbox.counts(engine) == {
        "pending": 1,
        "processing": 0,
        "applied": 1,
        "ignored": 0,
        "failed": 1,
        "dead": 1,
    }
    assert [e.webhook_id for e in await inbox.list_events(engine)] == [
        "d_pending",
        "b_failed",
        "c_applied",
        "a_dead",
    ]
    assert [e.webhook_id for e in await inbox.list_events(engine, failed_only=True)] == ["b_failed", "a_dead"]
    assert [e.webhook_id for e in await inbox.list_events(engine, status="applied")] == ["c_applied"]
    assert len(await inbox.list_events(engine, limit=2)) == 2
    # Dead events wait for a person, not for the worker: the failed one is the oldest waiting.
    assert await inbox.oldest_pending_age(engine, now=T0) == 2 * 3600
