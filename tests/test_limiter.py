"""TokenBucket, on a fake clock: nothing here really sleeps."""

from __future__ import annotations

import asyncio

import pytest

from bridge.limiter import TokenBucket


class FakeTime:
    """A clock and a sleep. With `advance=True` each sleep moves the clock (one caller at a time);
    with `advance=False` sleeps are only recorded (concurrent callers all compute from t=now)."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def bucket(time: FakeTime, rate: float = 2.0, capacity: float = 2.0) -> TokenBucket:
    return TokenBucket(rate, capacity, clock=time.clock, sleep=time.sleep)


async def test_burst_up_to_capacity_then_steady_rate() -> None:
    time = FakeTime()
    limiter = bucket(time, rate=2.0, capacity=3.0)
    for _ in range(3):
        await limiter.acquire()
    assert time.sleeps == []  # the burst is free
    for _ in range(4):
        await limiter.acquire()
    assert time.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])


async def test_refills_while_idle_but_never_beyond_capacity() -> None:
    time = FakeTime()
    limiter = bucket(time, rate=1.0, capacity=2.0)
    await limiter.acquire()
    await limiter.acquire()
    time.now += 100  # a long idle spell refills only up to capacity
    assert limiter.available == pytest.approx(2.0)
    await limiter.acquire()
    await limiter.acquire()
    await limiter.acquire()
    assert time.sleeps == pytest.approx([1.0])


async def test_partial_refill_shortens_the_wait() -> None:
    time = FakeTime()
    limiter = bucket(time, rate=1.0, capacity=1.0)
    await limiter.acquire()
    time.now += 0.25
    await limiter.acquire()
    assert time.sleeps == pytest.approx([0.75])


async def test_acquire_several_tokens() -> None:
    time = FakeTime()
    limiter = bucket(time, rate=10.0, capacity=10.0)
    await limiter.acquire(10)
    await limiter.acquire(5)
    assert time.sleeps == pytest.approx([0.5])


async def test_concurrent_callers_are_served_in_order_and_spaced() -> None:
    time = FakeTime(advance=False)
    limiter = bucket(time, rate=4.0, capacity=1.0)
    order: list[int] = []

    async def call(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    await asyncio.gather(*(call(i) for i in range(5)))
    # Reservations are made in arrival order at t=now; the waits overlap and grow by 1/rate.
    assert sorted(time.sleeps) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert time.sleeps == sorted(time.sleeps)  # FIFO: nobody jumped the queue
    assert order == [0, 1, 2, 3, 4]


async def test_a_pause_holds_everyone_back() -> None:
    time = FakeTime()
    limiter = bucket(time, rate=10.0, capacity=10.0)
    await limiter.pause(5.0)
    await limiter.acquire()
    assert time.sleeps == pytest.approx([5.0])  # the first caller goes exactly when the pause ends
    await limiter.acquire()
    # ... and the saved-up burst is gone: the next one waits for a fresh token.
    assert time.sleeps == pytest.approx([5.0, 0.1])


async def test_a_pause_reaches_callers_already_waiting() -> None:
    time = FakeTime(advance=False)
    limiter = bucket(time, rate=1.0, capacity=1.0)
    await limiter.acquire()  # uses the only token
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        time.sleeps.append(seconds)
        started.set()
        await release.wait()

    limiter._sleep = slow_sleep  # the waiter below blocks in its first sleep
    waiter = asyncio.create_task(limiter.acquire())
    await started.wait()
    await limiter.pause(10.0)  # a 429 arrives while it sleeps
    release.set()
    await waiter
    assert time.sleeps[0] == pytest.approx(1.0)
    assert time.sleeps[1] == pytest.approx(9.0)  # extended to the end of the pause


async def test_a_shorter_pause_does_not_shorten_a_longer_one() -> None:
    time = FakeTime()
    limiter = bucket(time, rate=100.0, capacity=100.0)
    await limiter.pause(10.0)
    await limiter.pause(2.0)
    await limiter.pause(0)  # no-op
    await limiter.acquire()
    assert time.sleeps == pytest.approx([10.0])


async def test_per_minute_spreads_calls_evenly() -> None:
    time = FakeTime()
    limiter = TokenBucket.per_minute(100, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await limiter.acquire()
    assert time.sleeps == pytest.approx([0.6, 0.6])


async def test_fake_sleep_that_does_not_advance_cannot_hang() -> None:
    # The wait is computed once from the reservation, never re-polled from the clock.
    time = FakeTime(advance=False)
    limiter = bucket(time, rate=1.0, capacity=1.0)
    await limiter.pause(3.0)
    await asyncio.wait_for(limiter.acquire(), timeout=1)
    await asyncio.wait_for(limiter.acquire(), timeout=1)
    assert time.sleeps == pytest.approx([3.0, 4.0])


@pytest.mark.parametrize(
    ("rate", "capacity", "tokens"),
    [
        pytest.param(0, 1, 1, id="zero-rate"),
        pytest.param(1, 0, 1, id="zero-capacity"),
        pytest.param(1, 1, 0, id="zero-tokens"),
        pytest.param(-1, 1, 1, id="negative-rate"),
    ],
)
async def test_rejects_nonsense(rate: float, capacity: float, tokens: float) -> None:
    with pytest.raises(ValueError):
        limiter = TokenBucket(rate, capacity)
        await limiter.acquire(tokens)
