from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.leases import acquire, holder, lease, release, renew


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


async def test_stealable_after_expiry(engine: AsyncEngine) -> None:
    assert await acquire(engine, "job", "a", 0.05)
    assert not await acquire(engine, "job", "b", 30)
    await asyncio.sleep(0.1)
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


async def test_context_manager(engine: AsyncEngine) -> None:
    async with lease(engine, "ctx", "a", 30) as held:
        assert held
        async with lease(engine, "ctx", "b", 30) as other:
            assert not other
        assert await holder(engine, "ctx") == "a"  # b's exit did not release a's lease
    assert await holder(engine, "ctx") is None

    # Released even when the body fails.
    try:
        async with lease(engine, "ctx", "a", 30) as held:
            assert held
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert await holder(engine, "ctx") is None


async def test_keepalive_outlives_the_ttl(engine: AsyncEngine) -> None:
    async with lease(engine, "long", "a", 0.15, keepalive=True) as held:
        assert held
        await asyncio.sleep(0.35)  # more than twice the TTL
        assert not await acquire(engine, "long", "b", 30)
    assert await acquire(engine, "long", "b", 30)
