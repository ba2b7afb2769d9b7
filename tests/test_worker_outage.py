"""A long Twenty outage costs events no attempts and no place in the queue (issue 13).

While Twenty fails, the worker puts the events it holds back without counting an attempt and
probes Twenty instead of claiming more; a claim stays the worker's for as long as its pass runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bridge.store import inbox
from bridge.store.db import utcnow
from tests.test_worker import Bridge, _bridge


@pytest.fixture
async def bridge(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path):
        yield b


class Clock:
    """The breaker's clock: the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _deliver_changes(b: Bridge, n: int) -> list[str]:
    memberships = (await b.world.whop_lists())["memberships"][:n]
    for i, ms in enumerate(memberships):
        b.world.whop.update_membership(ms.id, status="past_due" if ms.status != "past_due" else "active")
        await b.deliver("membership.updated", ms.id, webhook_id=f"msg_out_{i}")
    return [ms.id for ms in memberships]


class HeldTwenty(httpx.AsyncBaseTransport):
    """Twenty's data API, answering nothing until `answer` is set: a call as slow as the test
    needs, however slow the machine."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.answer = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.answer.wait()
        return await self.inner.handle_async_request(request)


async def test_a_claim_stays_the_workers_while_one_twenty_call_takes_longer_than_the_lease(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A three-second claim, and a Twenty call that is answered only after four renewals: the
    # pass outlives the claim. The claims are stamped and judged on a clock the test moves, two
    # seconds before each renewal: just before it, when the claim is at its oldest, another
    # worker asks for due events; the last time is past the first expiry. However late a busy
    # machine makes a renewal, no claim runs out on its own.
    lease = 3.0
    clock = [utcnow()]
    real_claim, renew = inbox.claim, inbox.extend

    async def claim(*args: Any, **kwargs: Any) -> Any:
        return await real_claim(*args, **{**kwargs, "lease_seconds": lease, "now": clock[0]})

    monkeypatch.setattr(inbox, "claim", claim)
    await _deliver_changes(bridge, 1)
    clock[0] = utcnow() + timedelta(seconds=1)  # the delivered event is due
    held = HeldTwenty(bridge.world.transports.twenty)  # type: ignore[arg-type]
    bridge.world.transports.twenty, real = held, bridge.world.transports.twenty
    slow = bridge.worker()
    bridge.world.transports.twenty = real
    other = bridge.worker()
    slow.lease_seconds = other.lease_seconds = lease
    stolen: list[Any] = []
    renewals = asyncio.Queue[None]()

    async def extend(*args: Any, **kwargs: Any) -> Any:
        clock[0] += timedelta(seconds=2)
        stolen.extend(await claim(bridge.store, other.worker_id, limit=10))
        renewed = await renew(*args, **{**kwargs, "now": clock[0]})
        renewals.put_nowait(None)
        return renewed

    monkeypatch.setattr(inbox, "extend", extend)
    running = asyncio.create_task(slow.run_once())
    for _ in range(4):
        await asyncio.wait_for(renewals.get(), 60)  # the claim is renewed while the call is out
    held.answer.set()
    handled = await running

    assert (handled, len(stolen)) == (1, 0), "nobody else took the event while its pass ran"
    event = await inbox.get_event(bridge.store, "msg_out_0")
    assert event is not None and (event.status, event.attempts) == ("applied", 1)
    assert slow.applied + other.applied == 1


async def test_passes_during_a_twenty_outage_spend_no_attempts_and_only_probe_twenty(bridge: Bridge) -> None:
    ids = await _deliver_changes(bridge, 3)
    bridge.world.twenty.down = True
    worker = bridge.worker()
    clock = Clock()
    worker.clock = clock

    assert await worker.run_once() == 3
    for event in await inbox.list_events(bridge.store):
        assert (event.status, event.attempts) == ("pending", 0), event
        assert "503" in (event.last_error or ""), "the wait is explained"

    # Twenty stays down for a simulated half hour; the worker keeps polling.
    bridge.world.twenty.reset_stats()
    for _ in range(1800):
        assert await worker.run_once() == 0
        clock.now += 1
    probes = bridge.world.twenty.stats.data_calls
    assert 0 < probes <= 1800 / 15 + 5, f"{probes} calls in 30 minutes: probes, not retries"
    assert {e.attempts for e in await inbox.list_events(bridge.store)} == {0}

    bridge.world.twenty.down = False
    clock.now += 60
    assert await worker.run_once() == 3
    assert {e.status for e in await inbox.list_events(bridge.store)} == {"applied"}
    assert {bridge.opportunity(i)["whopMembershipStatus"] for i in ids} <= {"PAST_DUE", "ACTIVE"}


class Unreachable(httpx.AsyncBaseTransport):
    """Twenty's address refuses connections while `down` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path != "/metadata":
            refused = ConnectionRefusedError(111, "Connection refused")
            raise httpx.ConnectError(str(refused), request=request) from refused
        return await self.inner.handle_async_request(request)


async def test_a_twenty_that_refuses_connections_is_an_outage_like_a_503(bridge: Bridge) -> None:
    await _deliver_changes(bridge, 2)
    wrapped = Unreachable(bridge.world.transports.twenty)  # type: ignore[arg-type]
    bridge.world.transports.twenty = wrapped
    wrapped.down = True
    worker = bridge.worker()
    clock = Clock()
    worker.clock = clock

    assert await worker.run_once() == 2
    for event in await inbox.list_events(bridge.store):
        assert (event.status, event.attempts) == ("pending", 0), event
        assert "connection refused" in (event.last_error or "")

    wrapped.down = False
    clock.now += 3600
    assert await worker.run_once() == 2
    assert {e.status for e in await inbox.list_events(bridge.store)} == {"applied"}
