"""`WritePipeline`: the next batch is read while the previous one is written, and the outcome is
what batches written one at a time would give (keys, e-mail ownership, shadows, checkpoints,
the per-object lease). Runs against the in-process fake Twenty (2.x) and a real SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bridge.errors import FatalError
from bridge.store.leases import LeaseBusy, Leases
from bridge.store.shadows import get_shadows
from bridge.sync import writer as writer_module
from bridge.sync.options import OptionGuard
from bridge.sync.writer import Item, ObjectWriter, WriteReport, Writers
from bridge.twenty.data import PERSON, TwentyDataClient

from .conftest import COMPANY, World, make_world


class HeldUpserts(httpx.AsyncBaseTransport):
    """A Twenty whose upserts take effect only at the end of the call, as a database transaction
    commits at its end, and which the test holds open: once armed, upsert n is answered only
    after read n + 1 is. A read made meanwhile sees the state before the upsert. A pipeline that
    waited for an upsert before reading the next batch would never be answered: after
    `STARVED_AFTER` seconds the upsert is let go and noted in `starved`, so the test fails on
    what happened rather than on how long it took."""

    STARVED_AFTER = 30.0

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.events: list[str] = []  # "read", "upsert", "upserted", in the order they happened
        self.starved: list[int] = []  # upserts that waited in vain for the next read
        self.most_at_once = 0  # upserts in flight together, at most
        self._held = 0  # how many upserts from arming on are held
        self._reads = self._upserts = self._in_flight = 0
        self._changed = asyncio.Condition()

    def arm(self, upserts: int) -> None:
        """Hold each of the next `upserts` upserts until the read after its own batch's."""
        self._held, self._reads, self._upserts = upserts, 0, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/graphql":
            return await self.inner.handle_async_request(request)
        if not json.loads(request.content)["query"].lstrip().startswith("mutation"):
            response = await self.inner.handle_async_request(request)
            async with self._changed:
                self.events.append("read")
                self._reads += 1
                self._changed.notify_all()
            return response
        self._upserts += 1
        number = self._upserts
        self.events.append("upsert")
        self._in_flight += 1
        self.most_at_once = max(self.most_at_once, self._in_flight)
        try:
            if number <= self._held:
                async with self._changed:
                    try:
                        await asyncio.wait_for(self._changed.wait_for(lambda: self._reads > number), self.STARVED_AFTER)
                    except TimeoutError:
                        self.starved.append(number)
            response = await self.inner.handle_async_request(request)
        finally:
            self._in_flight -= 1
        self.events.append("upserted")
        return response


class SlowWrites(httpx.AsyncBaseTransport):
    """A Twenty whose upserts take effect only at the end of a long call, as a database
    transaction commits at its end: a read made meanwhile sees the state before it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/graphql" and json.loads(request.content)["query"].lstrip().startswith("mutation"):
            await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)


class Asking:
    """The lease helper, noting when a holder has asked for a lease: by the time the test sees
    `asked`, the holder is queued for it (asking queues before it first waits)."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.asked = asyncio.Event()

    @contextlib.asynccontextmanager
    async def hold(self, name: str, **options: Any) -> AsyncIterator[Any]:
        self.asked.set()
        async with self.leases.hold(name, **options) as held:
            yield held


def person(key: str, email: str | None = None, title: str = "") -> Item:
    def build(current: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any]:
        record: dict[str, Any] = {PERSON.key: key, "jobTitle": title}
        if email:
            record["emails"] = {"primaryEmail": email}
        if current is None:
            record["name"] = {"firstName": key, "lastName": ""}
        return record

    return Item(key=key, basis={"key": key, "email": email, "title": title}, build=build, email=email)


@pytest.fixture
async def world(tmp_path: Any) -> AsyncIterator[World]:
    world = await make_world(tmp_path, "2.x", members=20, memberships=1)
    world.twenty.latency = 0.02  # calls take long enough to overlap
    yield world
    await world.runtime.aclose()


def transport(world: World) -> httpx.AsyncBaseTransport:
    assert world.transports.twenty is not None
    return world.transports.twenty


def writer_for(world: World, twenty: Any = None) -> ObjectWriter:
    writers = Writers(
        store=world.runtime.store,
        twenty=twenty or world.runtime.twenty(),
        company_id=COMPANY,
        guard=OptionGuard(None),
        batch_size=2,
        leases=world.runtime.leases,
    )
    return writers(PERSON)


def people(world: World) -> dict[str, dict[str, Any]]:
    return {p["whopUserId"]: p for p in world.people() if p.get("whopUserId")}


async def write_in_pipeline(writer: ObjectWriter, batches: list[list[Item]]) -> list[WriteReport]:
    reports: list[WriteReport] = []
    async with writer.pipeline() as pipeline:
        for batch in batches:
            await pipeline.submit(batch, reports.append)
    return reports


async def test_the_next_batch_is_read_while_the_previous_one_is_written_and_upserts_never_overlap(
    world: World,
) -> None:
    held = HeldUpserts(transport(world))
    twenty = TwentyDataClient("http://twenty.test", "twenty-test-key", transport=held, requests_per_minute=10_000)
    batches = [[person(f"user_{i}a"), person(f"user_{i}b")] for i in range(4)]
    held.arm(upserts=3)  # each upsert but the last waits for the next batch's read

    reports = await write_in_pipeline(writer_for(world, twenty), batches)

    assert sum(r.counts["created"] for r in reports) == 8 and len(people(world)) == 8
    assert held.events.count("read") == held.events.count("upsert") == 4, "one read and one upsert a batch"
    assert held.most_at_once == 1, "one upsert at a time"
    assert not held.starved, "each next batch was read while the upsert before it was in flight"
    in_flight, overlapped = 0, 0
    for event in held.events:
        in_flight += {"upsert": 1, "upserted": -1}.get(event, 0)
        overlapped += event == "read" and in_flight == 1
    assert overlapped == 3, "every read after the first was made during the previous upsert"
    await twenty.aclose()


async def test_an_email_the_batch_in_flight_gives_is_settled_as_one_batch_at_a_time_would(world: World) -> None:
    shared = "shared@example.com"
    batches = [[person("user_a", shared), person("user_x")], [person("user_b", shared), person("user_y")]]
    slow = TwentyDataClient("http://twenty.test", "twenty-test-key", transport=SlowWrites(transport(world), 0.3))

    reports = await write_in_pipeline(writer_for(world, slow), batches)
    await slow.aclose()

    rows = people(world)
    assert rows["user_a"]["emails"]["primaryEmail"] == shared, "the first Whop user keeps the e-mail"
    assert rows["user_b"]["emails"]["primaryEmail"] == "", "the second is written without it"
    (problem,) = [p for r in reports for p in r.problems]
    assert problem.key == "user_b" and "user_a" in problem.reason and problem.kind == "conflict"


async def test_a_read_that_saw_a_record_the_batch_in_flight_changes_is_made_again(world: World) -> None:
    held = HeldUpserts(transport(world))
    twenty = TwentyDataClient("http://twenty.test", "twenty-test-key", transport=held)
    writer = writer_for(world, twenty)
    await writer.write([person("user_a", "old@example.com")])
    reads_before = world.twenty.stats.data_reads
    # user_a moves to a new address; user_b takes the old one in the next batch. One batch at a
    # time, user_b finds it free: so must the pipeline, though it read while user_a still had it
    # (the first upsert is answered only after the second batch's read).
    batches = [
        [person("user_a", "new@example.com"), person("user_x")],
        [person("user_b", "old@example.com"), person("user_y")],
    ]
    held.arm(upserts=1)

    reports = await write_in_pipeline(writer, batches)

    assert not held.starved, "the second batch was read while the first was being written"
    rows = people(world)
    assert rows["user_a"]["emails"]["primaryEmail"] == "new@example.com"
    assert rows["user_b"]["emails"]["primaryEmail"] == "old@example.com"
    assert not [p for r in reports for p in r.problems]
    assert world.twenty.stats.data_reads - reads_before == 3, "the second batch was read again, once"
    await twenty.aclose()


async def test_a_key_in_the_batch_in_flight_waits_for_it_and_the_later_state_wins(world: World) -> None:
    batches = [[person("user_a", title="first"), person("user_x")], [person("user_a", title="second")]]

    await write_in_pipeline(writer_for(world), batches)

    rows = [p for p in world.people() if p.get("whopUserId") == "user_a"]
    assert len(rows) == 1 and rows[0]["jobTitle"] == "second"
    shadows = await get_shadows(world.runtime.store, COMPANY, "person", ["user_a"])
    assert shadows["user_a"].written["jobTitle"] == "second"


async def test_steps_queued_with_then_run_after_the_batches_before_them_are_stored(world: World) -> None:
    seen: list[set[str]] = []

    async def checkpoint() -> None:
        shadows = await get_shadows(world.runtime.store, COMPANY, "person", ["user_a", "user_b", "user_c"])
        seen.append(set(shadows))

    async with writer_for(world).pipeline() as pipeline:
        await pipeline.submit([person("user_a"), person("user_b")])
        await pipeline.then(checkpoint)
        await pipeline.submit([person("user_c")])
        await pipeline.then(checkpoint)

    assert seen == [{"user_a", "user_b"}, {"user_a", "user_b", "user_c"}]


async def test_a_failed_batch_stops_the_pipeline_reports_nothing_after_it_and_frees_the_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = ObjectWriter._send

    async def send(self: ObjectWriter, prepared: Any) -> Any:
        if any(item.key == "user_c" for item in prepared.batch):
            raise FatalError("Twenty refused the batch")
        return await real_send(self, prepared)

    monkeypatch.setattr(ObjectWriter, "_send", send)
    reports: list[WriteReport] = []
    with pytest.raises(FatalError):
        async with writer_for(world).pipeline() as pipeline:
            for batch in ([person("user_a"), person("user_b")], [person("user_c")], [person("user_d")], [person("e")]):
                await pipeline.submit(batch, reports.append)

    assert [sorted(r.twenty_ids) for r in reports] == [["user_a", "user_b"]]
    assert "user_d" not in people(world) and "e" not in people(world), "nothing is written past a failure"
    async with world.runtime.leases.hold(f"write:{COMPANY}:person", ttl=5, wait=None):
        pass  # free again


async def test_the_lease_is_handed_over_between_batches(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "LEASE_TURN_SECONDS", 0.0)
    asking = Asking(world.runtime.leases)
    other = writer_for(world)
    other.leases = asking  # type: ignore[assignment]  # duck-typed: only `hold` is used
    done_when: list[str] = []

    async def webhook() -> None:
        await other.write([person("user_webhook")])
        done_when.append("webhook")

    async with writer_for(world).pipeline() as pipeline:
        await pipeline.submit([person("user_a"), person("user_b")])
        waiting = asyncio.create_task(webhook())
        await asyncio.wait_for(asking.asked.wait(), 30)  # it queues for the object's lease
        for i in range(3):
            await pipeline.submit([person(f"user_{i}c"), person(f"user_{i}d")], lambda _r: done_when.append("batch"))
        await waiting

    assert done_when.index("webhook") < len(done_when) - 1, "the webhook did not wait for the whole stream"
    assert "user_webhook" in people(world)


async def test_the_lease_is_given_back_when_nothing_more_is_waiting(world: World) -> None:
    name = f"write:{COMPANY}:person"
    async with writer_for(world).pipeline() as pipeline:
        await pipeline.submit([person("user_a"), person("user_b")])
        with pytest.raises(LeaseBusy):
            async with world.runtime.leases.hold(name, ttl=5, wait=None):
                pass
        await pipeline.flush()
        async with world.runtime.leases.hold(name, ttl=5, wait=None):
            pass  # between batches with nothing pending, a webhook's write need not wait
