"""One Twenty request budget for every process on the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.budget import SharedBucket
from tests.store.conftest import one_engine


class FrozenTime:
    """A clock that stands still and a sleep that only records: waits are computed, not slept."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))


async def test_two_processes_draw_from_one_budget(engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]) -> None:
    t = FrozenTime()
    replicas = [
        SharedBucket(lambda: engine, "twenty:ws", 60, clock=t.clock, sleep=t.sleep),
        SharedBucket(one_engine(make_engine), "twenty:ws", 60, clock=t.clock, sleep=t.sleep),
    ]
    await asyncio.gather(*(replicas[i % 2].acquire() for i in range(90)))
    # 60 a minute together: the first 60 go at once, the next 30 one second apart, whichever
    # replica asked. Two private buckets would have let 120 through at once.
    assert len(t.waits) == 30
    assert sorted(t.waits) == [float(i) for i in range(1, 31)]


async def test_the_budget_refills_with_time(engine: AsyncEngine) -> None:
    t = FrozenTime()
    bucket = SharedBucket(lambda: engine, "twenty:refill", 60, capacity=2, clock=t.clock, sleep=t.sleep)
    for _ in range(2):
        await bucket.acquire()
    assert t.waits == [] and await bucket.available() == 0
    t.now += 1.5
    assert abs(await bucket.available() - 1.5) < 1e-6
    await bucket.acquire()
    await bucket.acquire()
    assert t.waits == [0.5], "the fourth call waits for the token still refilling"


async def test_a_pause_after_a_429_holds_every_process_back(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]
) -> None:
    t = FrozenTime()
    one = SharedBucket(lambda: engine, "twenty:paused", 600, clock=t.clock, sleep=t.sleep)
    two = SharedBucket(one_engine(make_engine), "twenty:paused", 600, clock=t.clock, sleep=t.sleep)
    await one.acquire()
    await one.pause(10)
    await two.acquire()
    assert t.waits and t.waits[0] >= 10, "the other replica waits out the pause too"
