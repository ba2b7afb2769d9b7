"""The record API client: what it sends each Twenty dialect, and how it reads Twenty's refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bridge.errors import FatalError, RetryableError
from bridge.twenty.data import PERSON, TwentyDataClient, WriteRules, classify_error
from bridge.twenty.documents import Dialect
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from tests.fakes.twenty import FakeTwenty

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
    classified = classify_error(error, "upsert people")
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
