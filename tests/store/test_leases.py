from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import leases as leases_module
from bridge.store.db import utcnow
from bridge.store.leases import LeaseBusy, Leases, acquire, holder, release, renew
from tests.store.conftest import one_engine


class LeaseClock:
    """The clock leases are stamped and judged by (Python's, not the database's): the test moves
    it, so a lease expires when the test says, however slow the machine."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> LeaseClock:
    clock = LeaseClock()
    monkeypatch.setattr(leases_module, "utcnow", clock)
    return clock


class Renewals:
    """The keepers' renewals, one at a time: each keeper waits after a renewal until the test
    lets it go on (`once`), so no renewal lands while the test judges the lease."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._made: asyncio.Queue[None] = asyncio.Queue()
        self._go_on = asyncio.Event()
        real = leases_module.renew

        async def renewing(*args: Any) -> bool:
            renewed = await real(*args)
            self._made.put_nowait(None)
            await self._go_on.wait()
            return renewed

        monkeypatch.setattr(leases_module, "renew", renewing)

    async def next(self) -> None:
        """Wait for the next renewal; its keeper then waits."""
        await asyncio.wait_for(self._made.get(), 30)

    def once(self) -> None:
        """Let a waiting keeper go on to its next renewal."""
        self._go_on.set()
        self._go_on.clear()


async def test_exclusive_between_owners(engine: AsyncEngine) -> None:
    assert await acquire(engine, "reconcile:biz_1", "replica-a", 30)
    assert not await acquire(engine, "reconcile:biz_1", "replica-b", 30)
    assert await acquire(engine, "reconcile:biz_1", "replica-a", 30)  # re-entrant: extends
    assert await holder(engine, "reconcile:biz_1") == "replica-a"
    # Other names are independent.
    assert await acquire(engine, "reconcile:biz_2", "replica-b", 30)

    assert not await release(engine, "reconcile:biz_1", "replica-b")  # not b's to release
    assert not await renew(engine, "reconcile:biz_1", "replica-b", 30)
    assert await renew(engine, "reconcile:biz_1", "replica-a", 30)
    assert await release(engine, "reconcile:biz_1", "replica-a")
    assert await holder(engine, "reconcile:biz_1") is None
    assert await acquire(engine, "reconcile:biz_1", "replica-b", 30)


async def test_stealable_after_expiry(engine: AsyncEngine, clock: LeaseClock) -> None:
    assert await acquire(engine, "job", "a", 5)
    assert not await acquire(engine, "job", "b", 30)
    clock.advance(6)
    assert await holder(engine, "job") is None
    assert await acquire(engine, "job", "b", 30)
    # The old owner learns it lost the lease and cannot free b's.
    assert not await renew(engine, "job", "a", 30)
    assert not await release(engine, "job", "a")
    assert await holder(engine, "job") == "b"


async def test_twenty_contenders_one_winner(engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]) -> None:
    # Two engines (pools) stand in for two replicas; each round is a fresh lease name.
    engines = [engine, make_engine()]
    for round_ in range(3):
        name = f"race-{round_}"
        results = await asyncio.gather(*(acquire(engines[i % 2], name, f"owner-{i}", 30) for i in range(20)))
        assert results.count(True) == 1
        winner = f"owner-{results.index(True)}"
        assert await holder(engine, name) == winner


async def test_twenty_contenders_for_an_expired_lease(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]
) -> None:
    engines = [engine, make_engine()]
    assert await acquire(engine, "stale", "dead-replica", 0.01)
    await asyncio.sleep(0.05)
    results = await asyncio.gather(*(acquire(engines[i % 2], "stale", f"owner-{i}", 30) for i in range(20)))
    assert results.count(True) == 1


async def test_a_held_lease_is_released_on_exit_even_when_the_body_fails(engine: AsyncEngine) -> None:
    helper = Leases(lambda: engine)
    async with helper.hold("ctx", ttl=30) as held:
        assert await holder(engine, "ctx") == held.owner
    assert await holder(engine, "ctx") is None
    with pytest.raises(RuntimeError, match="boom"):
        async with helper.hold("ctx", ttl=30):
            raise RuntimeError("boom")
    assert await holder(engine, "ctx") is None


async def test_the_keeper_renews_a_held_lease_past_its_ttl(
    engine: AsyncEngine, clock: LeaseClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    renewals = Renewals(monkeypatch)
    async with Leases(lambda: engine).hold("long", ttl=0.15):
        await renewals.next()
        clock.advance(0.35)  # more than twice the TTL
        renewals.once()
        await renewals.next()
        clock.advance(0.1)  # two thirds of the TTL since: the next renewal is due
        assert not await acquire(engine, "long", "b", 30)
    assert await acquire(engine, "long", "b", 30)


# The lease helper ----------------------------------------------------------------------------


class Waits(list[float]):
    """The sleeps the lease helper waited out (a keeper's sleep cancelled at the end is none):
    what the helper chose to wait, which a busy machine does not change."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        waits = self

        class Noting:
            def __getattr__(self, name: str) -> Any:
                return getattr(asyncio, name)

            @staticmethod
            async def sleep(seconds: float) -> None:
                await asyncio.sleep(seconds)
                waits.append(seconds)

        monkeypatch.setattr(leases_module, "asyncio", Noting())


def _in_thread_loop(coro_fn: Callable[[], Any]) -> threading.Thread:
    """Run `coro_fn()` on a fresh event loop in a thread, as `serve`'s worker thread does."""
    thread = threading.Thread(target=lambda: asyncio.run(coro_fn()), daemon=True)
    thread.start()
    return thread


def _per_loop(make_engine: Callable[[], AsyncEngine]) -> Callable[[], AsyncEngine]:
    """An engine for whichever event loop asks (an engine's pool belongs to one loop)."""
    engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
    lock = threading.Lock()

    def store() -> AsyncEngine:
        with lock:
            return engines.setdefault(asyncio.get_running_loop(), make_engine())

    return store


async def test_two_event_loops_of_one_process_take_one_lease_in_turn(make_engine: Callable[[], AsyncEngine]) -> None:
    """The web loop (admin sync) and the worker thread's loop write the same object."""
    helper = Leases(_per_loop(make_engine))
    spans: list[tuple[str, float, float]] = []

    async def write(who: str) -> None:
        for _ in range(3):
            async with helper.hold("write:biz_1:person", ttl=30, wait=30):
                start = time.monotonic()
                await asyncio.sleep(0.03)
                spans.append((who, start, time.monotonic()))

    errors: list[BaseException] = []

    async def in_thread() -> None:
        try:
            await write("worker")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = _in_thread_loop(in_thread)
    await write("web")
    await asyncio.to_thread(thread.join, 30)

    assert not errors and not thread.is_alive()
    assert sorted(who for who, _, _ in spans) == ["web"] * 3 + ["worker"] * 3
    ordered = sorted(spans, key=lambda s: s[1])
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(ordered)), "never held twice at once"


async def test_holders_in_one_process_are_served_in_the_order_they_asked(engine: AsyncEngine) -> None:
    helper = Leases(lambda: engine)
    order: list[int] = []

    async def take(i: int) -> None:
        async with helper.hold("fifo", ttl=30, wait=30):
            order.append(i)
            await asyncio.sleep(0.01)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0.005)  # each asks after the previous one
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_a_lease_held_longer_than_its_ttl_is_kept(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine], clock: LeaseClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    renewals = Renewals(monkeypatch)
    mine, other_process = Leases(lambda: engine), Leases(one_engine(make_engine))
    async with mine.hold("sync:biz_1", ttl=0.3) as held:
        await renewals.next()
        clock.advance(1.0)  # more than three TTLs
        renewals.once()
        await renewals.next()
        clock.advance(0.2)  # two thirds of the TTL since: the next renewal is due
        with pytest.raises(LeaseBusy) as busy:
            async with other_process.hold("sync:biz_1", ttl=0.3):
                pass
        assert busy.value.holder == held.owner
        assert not held.lost.is_set()
    async with other_process.hold("sync:biz_1", ttl=0.3):
        pass  # released on exit


async def test_a_bounded_wait_gives_up_naming_the_holder(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other_process = Leases(lambda: engine), Leases(one_engine(make_engine))
    async with mine.hold("oauth-refresh:biz_1", ttl=30) as held:
        waits = Waits(monkeypatch)
        start = time.monotonic()  # before the helper reads the clock for its deadline
        with pytest.raises(LeaseBusy) as busy:
            async with other_process.hold("oauth-refresh:biz_1", ttl=30, wait=0.3):
                pass
        assert time.monotonic() - start >= 0.25  # not before the wait was up (a slow machine only adds)
        assert sum(waits) <= 0.3  # and it waited no more than it was told to
        assert busy.value.holder == held.owner and "oauth-refresh:biz_1" in str(busy.value)


async def test_a_waiter_gets_the_lease_when_the_other_process_lets_go(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]
) -> None:
    mine, other_process = Leases(lambda: engine), Leases(one_engine(make_engine))

    taken = asyncio.Event()

    async def hold_briefly() -> None:
        async with mine.hold("reconcile:biz_1", ttl=30):
            taken.set()
            await asyncio.sleep(0.2)

    first = asyncio.create_task(hold_briefly())
    await taken.wait()  # the other process holds it now
    async with other_process.hold("reconcile:biz_1", ttl=30, wait=5):
        assert first.done()


async def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_at_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"{socket.gethostname()}:{2**22 + 12345}:deadbeef"  # a pid no process has
    assert await acquire(engine, "write:biz_1:opportunity", dead, 600)
    waits = Waits(monkeypatch)
    # No `wait`: a lease still held would fail at once with LeaseBusy; none of its 600 s is waited.
    async with Leases(lambda: engine).hold("write:biz_1:opportunity", ttl=30):
        assert waits == []
