from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import runs
from bridge.store.shadows import (
    ShadowWrite,
    count_shadows,
    get_shadows,
    mark_gone,
    mark_seen,
    put_shadows,
    unseen_since,
)

CO = "biz_1"
UPDATED = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def writes(n: int, *, prefix: str = "mem_", hash_: str = "h1") -> list[ShadowWrite]:
    return [
        ShadowWrite(
            whop_id=f"{prefix}{i:05d}",
            hash=hash_,
            twenty_id=f"tw-{i}",
            whop_updated_at=UPDATED + timedelta(seconds=i),
            written={"n": i, "name": f"Person {i}"},
        )
        for i in range(n)
    ]


async def test_bulk_put_and_get_2000(engine: AsyncEngine) -> None:
    rows = writes(2000)
    await put_shadows(engine, CO, "opportunity", rows)
    assert await count_shadows(engine, CO, "opportunity") == 2000
    assert await count_shadows(engine, CO, "person") == 0

    ids = [r.whop_id for r in rows] + ["mem_missing"]
    got = await get_shadows(engine, CO, "opportunity", ids)
    assert len(got) == 2000 and "mem_missing" not in got
    s = got["mem_01234"]
    assert (s.twenty_id, s.hash, s.written) == ("tw-1234", "h1", {"n": 1234, "name": "Person 1234"})
    assert s.whop_updated_at == UPDATED + timedelta(seconds=1234) and s.written_at.tzinfo is UTC
    assert s.gone_at is None and s.seen_run_id is None
    # Scoped by company and object.
    assert await get_shadows(engine, "biz_2", "opportunity", ids) == {}
    assert await get_shadows(engine, CO, "opportunity", []) == {}

    # Re-put a slice with a new hash; an unknown twenty_id keeps the one on file.
    update = [ShadowWrite(whop_id=f"mem_{i:05d}", hash="h2") for i in range(0, 2000, 2)]
    await put_shadows(engine, CO, "opportunity", update)
    got = await get_shadows(engine, CO, "opportunity", ["mem_00000", "mem_00001"])
    assert (got["mem_00000"].hash, got["mem_00000"].twenty_id) == ("h2", "tw-0")
    assert got["mem_00000"].written is None
    assert got["mem_00001"].hash == "h1"
    assert await count_shadows(engine) == 2000


async def test_duplicate_keys_in_one_batch_last_wins(engine: AsyncEngine) -> None:
    await put_shadows(
        engine, CO, "person", [ShadowWrite("user_1", "a"), ShadowWrite("user_2", "b"), ShadowWrite("user_1", "c")]
    )
    got = await get_shadows(engine, CO, "person", ["user_1", "user_2"])
    assert {k: v.hash for k, v in got.items()} == {"user_1": "c", "user_2": "b"}
    await put_shadows(engine, CO, "person", [])


async def test_reconcile_finds_the_disappeared(engine: AsyncEngine) -> None:
    await put_shadows(engine, CO, "person", writes(10, prefix="user_"))
    await put_shadows(engine, "biz_2", "person", writes(3, prefix="user_"))
    await asyncio.sleep(0.01)  # the reconcile starts strictly after those writes
    run_id = await runs.start_run(engine, company_id=CO, kind="reconcile", trigger="schedule", dry_run=False)

    seen = [f"user_{i:05d}" for i in range(10) if i not in (3, 7)]
    assert await mark_seen(engine, CO, "person", [*seen, "user_unknown"], run_id) == 8
    # A record created by a webhook during the reconcile was never seen, but is not gone.
    await put_shadows(engine, CO, "person", [ShadowWrite("user_new", "h")])
    # A record rewritten by the reconcile itself counts as seen.
    await put_shadows(engine, CO, "person", [ShadowWrite("user_00008", "h9")], run_id=run_id)

    missing = await unseen_since(engine, CO, "person", run_id)
    assert [s.whop_id for s in missing] == ["user_00003", "user_00007"]

    assert await mark_gone(engine, CO, "person", [s.whop_id for s in missing]) == 2
    assert await unseen_since(engine, CO, "person", run_id) == []
    gone = await get_shadows(engine, CO, "person", ["user_00003"])
    assert gone["user_00003"].gone_at is not None
    assert await count_shadows(engine, CO, "person") == 11
    assert await count_shadows(engine, CO, "person", include_gone=False) == 9

    # It comes back at Whop: seeing (or writing) it again clears gone_at.
    await mark_seen(engine, CO, "person", ["user_00003"], run_id)
    await put_shadows(engine, CO, "person", [ShadowWrite("user_00007", "h")])
    assert await count_shadows(engine, CO, "person", include_gone=False) == 11

    # Unknown run: nothing is declared gone.
    assert await unseen_since(engine, CO, "person", 999_999) == []


async def test_large_id_lists_are_chunked(engine: AsyncEngine) -> None:
    await put_shadows(engine, CO, "opportunity", writes(1200))
    run_id = await runs.start_run(engine, company_id=CO, kind="reconcile", trigger="cli", dry_run=False)
    ids = [f"mem_{i:05d}" for i in range(1200)]
    assert await mark_seen(engine, CO, "opportunity", ids + ids[:10], run_id) == 1200
    assert await mark_gone(engine, CO, "opportunity", ids[:1100]) == 1100
    assert await count_shadows(engine, CO, "opportunity", include_gone=False) == 100
