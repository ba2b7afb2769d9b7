"""The login backoff in the store: free checks, then doubling waits up to a bound; one turn per
wait however many replicas race for it; a refused attempt counts nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import throttle
from bridge.store.tables import login_throttle
from bridge.store.throttle import Backoff
from tests.store.conftest import one_engine

RULE = Backoff(free=3, first=1.0, longest=8.0, forget=100.0)
T0 = 1_800_000_000.0


async def attempts(engine: AsyncEngine, key: str) -> int | None:
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(login_throttle.c.attempts).where(login_throttle.c.key == key))).scalar()
    return None if found is None else int(found)


def test_the_waits_double_up_to_the_bound() -> None:
    assert [RULE.wait(n) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 8, 8]
    with pytest.raises(ValueError):
        Backoff(free=3, first=1.0, longest=120.0, forget=60.0)  # it would forget a key still waiting


async def test_the_sql_rule_is_the_python_rule(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        for n in range(0, 12):
            got = (await conn.execute(sa.select(RULE.wait_sql(sa.literal(n))))).scalar()
            assert float(got) == RULE.wait(n), n


async def test_free_checks_then_doubling_waits_that_stay_bounded(engine: AsyncEngine) -> None:
    keys = [("account", RULE)]
    now = T0
    waits = []
    for _ in range(12):
        wait = await throttle.take_turn(engine, keys, now)
        if wait:
            waits.append(wait)
            now += wait
            assert await throttle.take_turn(engine, keys, now) == 0.0
        now += 0.01
    assert waits[:4] == pytest.approx([0.99, 1.99, 3.99, 7.99], abs=0.02)
    assert max(waits) <= RULE.longest


async def test_a_refused_attempt_counts_nothing_and_does_not_lengthen_the_wait(engine: AsyncEngine) -> None:
    keys = [("account", RULE)]
    for _ in range(RULE.free):
        assert await throttle.take_turn(engine, keys, T0) == 0.0
    assert await attempts(engine, "account") == RULE.free
    for second in range(1, 150):  # someone hammers all through the wait
        if await throttle.take_turn(engine, keys, T0 + second / 100) == 0.0:
            break
    assert second / 100 == pytest.approx(RULE.wait(RULE.free), abs=0.011)
    assert await attempts(engine, "account") == RULE.free + 1


async def test_jitter_shortens_a_wait_but_never_lengthens_it(engine: AsyncEngine) -> None:
    keys = [("account", RULE)]
    now = T0
    for _ in range(RULE.free + 6):
        wait = await throttle.take_turn(engine, keys, now, jitter=0.75)
        now += wait
        if wait == 0.0:
            now += 0.001
        assert wait <= RULE.longest * 0.75 + 0.01


async def test_keys_are_taken_all_or_none(engine: AsyncEngine) -> None:
    for _ in range(RULE.free):
        await throttle.take_turn(engine, [("client:a", RULE)], T0)
    before = await attempts(engine, "account")
    wait = await throttle.take_turn(engine, [("account", RULE), ("client:a", RULE)], T0)
    assert wait == pytest.approx(RULE.wait(RULE.free))
    assert await attempts(engine, "account") == before  # the refused attempt left the account alone


async def test_a_key_left_alone_starts_again_and_prune_removes_it(engine: AsyncEngine) -> None:
    keys = [("client:b", RULE)]
    for _ in range(RULE.free):
        await throttle.take_turn(engine, keys, T0)
    later = T0 + RULE.forget + 1
    assert await throttle.take_turn(engine, keys, later) == 0.0
    assert await attempts(engine, "client:b") == 1
    assert await throttle.prune(engine, later + RULE.forget + 1, RULE.forget) == 1
    assert await attempts(engine, "client:b") is None


async def test_clear_starts_the_keys_afresh(engine: AsyncEngine) -> None:
    for _ in range(RULE.free):
        await throttle.take_turn(engine, [("account", RULE), ("client:c", RULE)], T0)
    assert await throttle.waiting(engine, "account", T0) > 0
    await throttle.clear(engine, ["account", "client:c"])
    assert await throttle.waiting(engine, "account", T0) == 0.0
    assert await throttle.take_turn(engine, [("account", RULE), ("client:c", RULE)], T0) == 0.0


async def test_replicas_racing_when_a_wait_ends_get_one_turn_between_them(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]
) -> None:
    keys = [("account", RULE), ("client:d", RULE)]
    for _ in range(RULE.free):
        await throttle.take_turn(engine, keys, T0)
    replicas = [one_engine(make_engine)() for _ in range(6)]
    ends = T0 + RULE.wait(RULE.free)
    results = await asyncio.gather(*(throttle.take_turn(r, keys, ends) for r in replicas for _ in range(3)))
    assert sorted(results)[0] == 0.0 and sum(1 for w in results if w == 0.0) == 1, results
    assert await attempts(engine, "account") == RULE.free + 1


async def test_a_parallel_burst_gets_no_more_free_checks_than_one_guess_after_another(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]
) -> None:
    keys = [("account", RULE)]
    replicas = [one_engine(make_engine)() for _ in range(4)]
    results = await asyncio.gather(*(throttle.take_turn(r, keys, T0) for r in replicas for _ in range(5)))
    assert sum(1 for w in results if w == 0.0) == RULE.free


def lanes_of(caller: str, within: int = RULE.free) -> throttle.Lanes:
    return throttle.Lanes(by=caller, within=within, new=("lane:new", RULE), held=("lane:held", RULE))


async def test_a_caller_past_its_free_checks_never_holds_back_a_new_caller(engine: AsyncEngine) -> None:
    """The account's lanes: however fast a caller that spent its free checks hammers, a new
    caller's check goes first, and the hammering caller keeps waiting on its own terms."""
    now = T0
    for _ in range(40):  # a guesser waiting out every wait, first to each turn
        wait = await throttle.take_turn(engine, [("client:g", RULE)], now, lanes=lanes_of("client:g"))
        now += wait if wait else 0.01
    while wait := await throttle.take_turn(engine, [("client:g", RULE)], now, lanes=lanes_of("client:g")):
        now += wait
    assert await throttle.waiting(engine, "lane:held", now) > 0  # the guesser just took the shared turn…
    # …and at that very moment a new caller's check runs.
    assert await throttle.take_turn(engine, [("client:admin", RULE)], now, lanes=lanes_of("client:admin")) == 0.0
    assert await attempts(engine, "client:admin") == 1
    assert await throttle.take_turn(engine, [("client:g", RULE)], now, lanes=lanes_of("client:g")) > 0


async def test_a_refused_lane_leaves_the_caller_s_count_alone(engine: AsyncEngine) -> None:
    """A new caller turned away by its lane stays new: it is not pushed into the other lane."""
    for n in range(RULE.free):  # new callers use up the new lane's free checks
        await throttle.take_turn(engine, [(f"client:{n}", RULE)], T0, lanes=lanes_of(f"client:{n}"))
    assert await throttle.take_turn(engine, [("client:late", RULE)], T0, lanes=lanes_of("client:late")) > 0
    assert not await attempts(engine, "client:late")
    assert await attempts(engine, "lane:held") is None


async def test_the_lane_is_chosen_by_the_caller_s_count_under_its_lock_in_a_parallel_burst(
    engine: AsyncEngine, make_engine: Callable[[], AsyncEngine]
) -> None:
    """A burst from one new caller across replicas: only as many checks as `within` take the new
    lane; a lane read before the claim would have let all of them in."""
    replicas = [one_engine(make_engine)() for _ in range(4)]
    lanes = lanes_of("client:burst", within=1)
    results = await asyncio.gather(
        *(throttle.take_turn(r, [("client:burst", RULE)], T0, lanes=lanes) for r in replicas for _ in range(5))
    )
    assert sum(1 for w in results if w == 0.0) == RULE.free
    assert await attempts(engine, "lane:new") == 1
    assert await attempts(engine, "lane:held") == RULE.free - 1
