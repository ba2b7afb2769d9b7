"""One Twenty request budget for every process on the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.budget import SPACING, SharedBucket, grant
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
    # 60 a minute together: the first 60 go at once, the next 30 a token's time apart (and a
    # tenth: slack), whichever replica asked. Two private buckets would have let 120 through at once.
    assert len(t.waits) == 30
    assert sorted(t.waits) == [round(i * SPACING, 6) for i in range(1, 31)]


async def test_the_budget_refills_with_time(engine: AsyncEngine) -> None:
    t = FrozenTime()
    bucket = SharedBucket(lambda: engine, "twenty:refill", 60, capacity=2, clock=t.clock, sleep=t.sleep)
    for _ in range(2):
        await bucket.acquire()
    assert t.waits == [] and await bucket.available() == 0
    t.now += 1.5
    assert await bucket.available() == 1, "whole tokens only, as Twenty counts"
    await bucket.acquire()
    await bucket.acquire()
    assert t.waits == [SPACING], "the half token earned before the third call is lost, as at Twenty"


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


# Twenty 2.21 at 60 a minute (one token a second), a bucket of 3: (balance after the previous
# call, when it went, when the next asks) -> (when that one goes, the balance after it).
GRANTS = [
    pytest.param(3, 0.0, 0.0, (0.0, 2), id="a full bucket: at once"),
    pytest.param(0, 0.0, 0.5, (SPACING, 0), id="half a token earned: wait for a whole one, with slack"),
    pytest.param(0, 0.0, 1.0, (1.0, 0), id="a whole token earned: at once"),
    pytest.param(0, 0.0, 2.5, (2.5, 1), id="two and a half earned: two kept, the half lost"),
    pytest.param(2, 0.0, 10.0, (10.0, 2), id="never more than the bucket holds"),
    pytest.param(0, 5.0, 1.0, (5.0 + SPACING, 0), id="behind callers already waiting: after the last"),
    pytest.param(1, 5.0, 1.0, (5.0, 0), id="a token left at the last caller's time: then"),
]


@pytest.mark.parametrize(("tokens", "last", "now", "expected"), GRANTS)
def test_grant_counts_whole_tokens_as_twenty_does(tokens: float, last: float, now: float, expected: object) -> None:
    assert grant(tokens, last, now, rate=1.0, capacity=3) == expected


async def test_calls_closer_than_a_token_apart_earn_nothing(engine: AsyncEngine) -> None:
    # Twenty 2.21 restarts its refill clock at each accepted call: a client that counted the
    # fractions sent a call its bucket had no token for (HTTP 429 on the real server).
    t = FrozenTime()
    bucket = SharedBucket(lambda: engine, "twenty:fractions", 60, capacity=1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    for _ in range(3):
        t.now += 0.6
        await bucket.acquire()
        t.now += t.waits[-1] if t.waits else 0.0
    assert t.waits == [0.5, 0.5, 0.5], "each goes a token-time and a tenth after the previous one"
