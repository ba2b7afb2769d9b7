"""The record API client: what it sends each Twenty dialect, and how it reads Twenty's refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bridge import retry
from bridge.errors import FatalError, RateLimited, RetryableError
from bridge.twenty import responses
from bridge.twenty.data import PERSON, TASK, TwentyDataClient, WriteRules
from bridge.twenty.documents import Dialect
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from fakes.twenty import FakeTwenty

KEY = "data-test-key"
TEXTS = {"person": frozenset({"whopUsername", "whopMemberId", "jobTitle"})}


@pytest.mark.parametrize(
    ("dialect", "record", "sent"),
    [
        # 1.x: TEXT columns are NOT NULL, so "" is how a TEXT field is cleared.
        (Dialect.V1, {"whopUsername": None}, {"whopUsername": ""}),
        (Dialect.V1, {"whopUsername": "ann", "whopMemberId": None}, {"whopUsername": "ann", "whopMemberId": ""}),
        # Other types take null on 1.x too (observed 1.21); composites are left as they are.
        (
            Dialect.V1,
            {"whopJoinedAt": None, "whopMemberStatus": None},
            {"whopJoinedAt": None, "whopMemberStatus": None},
        ),
        (Dialect.V1, {"emails": {"primaryEmail": None}}, {"emails": {"primaryEmail": None}}),
        # A field the bridge has nothing to say about stays out of the record.
        (Dialect.V1, {"whopUserId": "user_1"}, {"whopUserId": "user_1"}),
        # 2.x takes null everywhere: clearing sends null.
        (Dialect.V2, {"whopUsername": None}, {"whopUsername": None}),
    ],
)
def test_write_rules_clear_text_with_an_empty_string_only_on_1x(
    dialect: Dialect, record: dict[str, Any], sent: dict[str, Any]
) -> None:
    assert WriteRules(dialect, TEXTS).prepare("person", record) == sent


def test_write_rules_leave_objects_they_do_not_know_alone() -> None:
    assert WriteRules(Dialect.V1, TEXTS).prepare("task", {"title": None}) == {"title": None}


@pytest.mark.parametrize("dialect", ["1.x", "2.x"])
async def test_the_text_fields_come_from_the_live_metadata_including_fields_added_later(dialect: str) -> None:
    """No list of names: a TEXT field an admin (or a later schema/) adds is covered too."""
    fake = FakeTwenty(dialect=dialect, api_key=KEY)
    transport = httpx.ASGITransport(app=fake)
    async with MetadataClient("http://twenty.test", KEY, transport=transport) as meta:
        await provision(meta, load_data_model(), "http://bridge.test")
        person = (await meta.list_objects())["person"]
        await meta.create_field(
            {"objectMetadataId": person.id, "type": "TEXT", "name": "whopNickname", "label": "Whop Nickname"}
        )
    async with TwentyDataClient("http://twenty.test", KEY, transport=transport, requests_per_minute=10_000) as twenty:
        rules = await twenty.write_rules()
        assert rules.dialect.value == dialect
        assert {"whopUsername", "whopMemberId", "whopNickname", "jobTitle"} <= rules.text_fields["person"]
        assert "whopJoinedAt" not in rules.text_fields["person"]
        answer = await twenty.upsert(PERSON, [{"whopUserId": "user_1", "whopUsername": None, "whopNickname": None}])
    assert [r["whopUserId"] for r in answer] == ["user_1"]
    (stored,) = [r for r in fake.records("people") if r.get("whopUserId") == "user_1"]
    assert not stored["whopUsername"] and not stored["whopNickname"]


def test_a_not_null_violation_fails_at_once_instead_of_being_retried() -> None:
    error = {
        "message": 'null value in column "whopUsername" of relation "person" violates not-null constraint',
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }
    classified = responses.classify(responses.from_errors(responses.Api.DATA, "upsert people", [error])).error
    assert isinstance(classified, FatalError) and not isinstance(classified, RetryableError)
    assert "whopUsername" in str(classified)


async def test_rules_read_before_provisioning_are_read_again_when_a_record_has_new_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that started on an empty workspace writes correctly once the admin provisions it."""
    monkeypatch.setattr("bridge.twenty.data.RULES_REFRESH_SECONDS", 0.0)
    fake = FakeTwenty(dialect="1.x", api_key=KEY)
    transport = httpx.ASGITransport(app=fake)
    async with TwentyDataClient("http://twenty.test", KEY, transport=transport, requests_per_minute=10_000) as twenty:
        assert "whopUsername" not in (await twenty.write_rules()).text_fields["person"]
        async with MetadataClient("http://twenty.test", KEY, transport=transport) as meta:
            await provision(meta, load_data_model(), "http://bridge.test")

        await twenty.upsert(PERSON, [{"whopUserId": "user_1", "whopUsername": None}])

    assert [r["whopUsername"] for r in fake.records("people") if r.get("whopUserId") == "user_1"] == [""]


class Budget:
    """A budget that lets every call through and records the pauses asked of it."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def acquire(self, tokens: float = 1) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


async def test_a_throttled_write_pauses_the_budget_longer_each_time_then_gives_up() -> None:
    """Twenty says no Retry-After: each refusal pauses everyone for one request's refill (0.6 s at
    100 a minute) plus the doubling backoff (its jitter fixed at half here), and the call never
    sleeps on its own. Before: a flat 1.2-2.2 s, so a workspace another integration drained
    failed the sync after ~15 s."""
    fake = FakeTwenty(api_key=KEY, rate_limit_per_minute=1, clock=lambda: 0.0)  # never refills
    budget, sleeps = Budget(), []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = retry.DEFAULT.replace(sleep=sleep, random=lambda: 0.5)
    transport = httpx.ASGITransport(app=fake)
    rules = WriteRules(Dialect.V2, {})
    async with TwentyDataClient(
        "http://twenty.test", KEY, transport=transport, limiter=budget, retry_policy=policy, rules=rules
    ) as twenty:
        await twenty.find(TASK, {})  # the one request the minute allows
        with pytest.raises(RateLimited):
            await twenty.upsert(TASK, [{"title": "Call Ann"}])
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60]
    assert budget.pauses == pytest.approx([0.6 + c / 2 for c in ceilings])
    assert sleeps == [] and twenty.stats.throttled == 8 and fake.stats.throttled == 8


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        # 1.x's refusal of null in a TEXT column, whatever the status: the batch is refused again.
        (
            httpx.Response(
                500,
                json={
                    "errors": [
                        {
                            "message": 'null value in column "whopUsername" violates not-null constraint',
                            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                        }
                    ]
                },
            ),
            "not-null",
        ),
        # A page that is not GraphQL: a wrong TWENTY_URL, not a blip.
        (httpx.Response(200, text="<!doctype html><title>Twenty</title>"), "is TWENTY_URL right?"),
    ],
)
async def test_an_answer_that_would_be_the_same_again_fails_at_once(answer: httpx.Response, words: str) -> None:
    calls: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with TwentyDataClient(
        "http://twenty.test", KEY, transport=httpx.MockTransport(reply), sleep=sleep, rules=WriteRules(Dialect.V2, {})
    ) as twenty:
        with pytest.raises(FatalError, match=words):
            await twenty.upsert(PERSON, [{"whopUserId": "user_1", "whopUsername": None}])
    assert len(calls) == 1 and sleeps == []


async def test_twentys_cache_flush_is_retried_once_and_the_write_goes_through() -> None:
    fake = FakeTwenty(api_key=KEY)
    fake.flush_cache()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    transport = httpx.ASGITransport(app=fake)
    async with TwentyDataClient(
        "http://twenty.test", KEY, transport=transport, sleep=sleep, rules=WriteRules(Dialect.V2, {})
    ) as twenty:
        answer = await twenty.upsert(TASK, [{"title": "Call Ann"}])
    assert [r["title"] for r in answer] == ["Call Ann"]
    assert len(sleeps) == 1 and twenty.stats.retries == 1


async def test_a_read_ahead_answers_later_keyed_reads_until_an_upsert_changes_their_records() -> None:
    fake = FakeTwenty(dialect="2.x", api_key=KEY)
    transport = httpx.ASGITransport(app=fake)
    async with MetadataClient("http://twenty.test", KEY, transport=transport) as meta:
        await provision(meta, load_data_model(), "http://bridge.test")
    async with TwentyDataClient("http://twenty.test", KEY, transport=transport, requests_per_minute=10_000) as twenty:
        await twenty.upsert(PERSON, [{"whopUserId": "user_old", "emails": {"primaryEmail": "ann@example.com"}}])
        fake.reset_stats()
        keys = [f"user_{i}" for i in range(10)]
        await twenty.read_ahead(PERSON, ["user_old", *keys], emails=["ann@example.com", "bob@example.com"])
        assert fake.stats.data_reads == 1

        first = await twenty.find_by_keys(PERSON, keys[:5], emails=["ann@example.com"])
        second = await twenty.find_by_keys(PERSON, keys[5:], emails=["bob@example.com"])
        assert fake.stats.data_reads == 1, "both answered from the read ahead"
        assert [r["whopUserId"] for r in first] == ["user_old"], "the e-mail's owner, as a read would find"
        assert second == []

        # The first batch is written, user_0 with ann's e-mail (2.x then re-keys ann's Person).
        await twenty.upsert(PERSON, [{"whopUserId": "user_0", "emails": {"primaryEmail": "ann@example.com"}}])
        again = await twenty.find_by_keys(PERSON, keys[5:], emails=["ann@example.com"])
        assert fake.stats.data_reads == 2, "an e-mail that upsert gave is read from Twenty again"
        assert [r["whopUserId"] for r in again] == ["user_0"], "what Twenty holds now"
        untouched = await twenty.find_by_keys(PERSON, keys[6:])
        assert untouched == [] and fake.stats.data_reads == 2, "keys the upsert did not touch are still known"

        twenty.forget_reads(PERSON)
        await twenty.find_by_keys(PERSON, keys[6:])
        assert fake.stats.data_reads == 3, "forgotten: read again"
