"""The steps of `ObjectWriter._write_batch`, against a stub Twenty (no HTTP, no database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import RecordConflict, SkippableError
from bridge.store.shadows import Shadow, ShadowWrite
from bridge.sync import writer as writer_module
from bridge.sync.mapping import record_hash
from bridge.sync.options import OptionGuard
from bridge.sync.writer import Item, ObjectWriter, WriteReport, Writers
from bridge.twenty.data import OPPORTUNITY, PERSON, ObjectApi, TwentyDataClient, WriteRules
from bridge.twenty.documents import Dialect


class StubTwenty:
    """Keeps records in a list; refuses upserts that contain a key in `refuse`."""

    def __init__(
        self,
        rows: list[dict[str, Any]] | None = None,
        *,
        refuse: dict[str, SkippableError] | None = None,
        answer_limit: int | None = None,
        drop: Sequence[str] = (),
    ) -> None:
        self.rows = rows or []
        self.refuse = refuse or {}
        self.answer_limit = answer_limit  # 1.x answers only the first N records
        self.drop = set(drop)  # keys an upsert silently does not store (soft-deleted rows)
        self.finds: list[tuple[list[str], list[str]]] = []
        self.upserts: list[list[str]] = []
        self.dialect = Dialect.V1  # the dialect on which every batch is read first

    async def write_rules(self) -> WriteRules:
        return WriteRules(self.dialect, {})

    async def find_by_keys(
        self, obj: ObjectApi, keys: Sequence[str], *, emails: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        self.finds.append((list(keys), list(emails)))
        found = []
        for row in self.rows:
            email = ((row.get("emails") or {}).get("primaryEmail") or "").lower()
            if row.get(obj.key) in keys or (email and email in emails):
                found.append(row)
        return found

    async def upsert(self, obj: ObjectApi, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        self.upserts.append([r[obj.key] for r in records])
        for record in records:
            if record[obj.key] in self.refuse:
                raise self.refuse[record[obj.key]]
        answer = []
        for record in records:
            if record[obj.key] in self.drop:
                continue
            row = next((r for r in self.rows if r.get(obj.key) == record[obj.key]), None)
            if row is None:
                row = {"id": f"id-{record[obj.key]}"}
                self.rows.append(row)
            row.update(record)
            answer.append(dict(row))
        return answer[: self.answer_limit] if self.answer_limit is not None else answer


def person_item(key: str, email: str | None = None, **basis: Any) -> Item:
    def build(current: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any]:
        record: dict[str, Any] = {PERSON.key: key, "jobTitle": basis.get("title", "")}
        if email:
            record["emails"] = {"primaryEmail": email}
        if current is None:
            record["name"] = {"firstName": key, "lastName": ""}
        return record

    return Item(key=key, basis={"key": key, "email": email, **basis}, build=build, email=email)


def make_writer(
    twenty: StubTwenty, obj: ObjectApi = PERSON, *, dry_run: bool = False, before_write: Any = None
) -> ObjectWriter:
    writers = Writers(
        store=cast(AsyncEngine, None),
        twenty=cast(TwentyDataClient, twenty),
        company_id="biz_test",
        guard=OptionGuard(None),
        batch_size=60,
        dry_run=dry_run,
        run_id=7,
    )
    writer = writers(obj)
    writer.before_write = before_write
    return writer


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> list[ShadowWrite]:
    rows: list[ShadowWrite] = []

    async def put_shadows(
        engine: Any, company_id: str, obj: str, writes: Sequence[ShadowWrite], *, run_id: int | None
    ) -> None:
        assert (company_id, obj, run_id) == ("biz_test", "person", 7)
        rows.extend(writes)

    monkeypatch.setattr(writer_module, "put_shadows", put_shadows)
    return rows


def shadow(key: str, written: dict[str, Any]) -> Shadow:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Shadow("biz_test", "person", key, f"id-{key}", "h", None, written, now, None, None)


# Step 1: read what Twenty has -------------------------------------------------------------------


async def test_read_current_makes_one_read_by_key_and_by_lowercased_email() -> None:
    twenty = StubTwenty(
        [
            {"id": "a", PERSON.key: "user_a", "emails": {"primaryEmail": "  Ann@Example.com "}},
            {"id": "b", PERSON.key: None, "emails": {"primaryEmail": "ann@example.com"}},
            {"id": "c", PERSON.key: "user_c", "emails": None},
        ]
    )
    batch = [person_item("user_a", "ann@example.com"), person_item("user_c"), person_item("user_z", "z@example.com")]
    by_key, by_email = await make_writer(twenty)._read_current(batch)
    assert twenty.finds == [(["user_a", "user_c", "user_z"], ["ann@example.com", "z@example.com"])]
    assert {k: r["id"] for k, r in by_key.items()} == {"user_a": "a", "user_c": "c"}
    assert {e: [r["id"] for r in rs] for e, rs in by_email.items()} == {"ann@example.com": ["a", "b"]}


# Step 2: settle e-mail ownership --------------------------------------------------------------


def settle(
    item: Item, existing: dict[str, Any] | None, owners: list[dict[str, Any]], claimed: set[str] | None = None
) -> tuple[dict[str, Any] | None, bool, WriteReport, set[str]]:
    report = WriteReport()
    claimed = set() if claimed is None else claimed
    by_email = {item.email: owners} if item.email else {}
    result, drop = make_writer(StubTwenty())._settle_email(item, existing, by_email, claimed, report)
    return result, drop, report, claimed


def test_no_email_leaves_the_record_as_found() -> None:
    existing = {"id": "x"}
    assert settle(person_item("user_a"), existing, [])[:2] == (existing, False)


def test_an_unkeyed_person_with_the_email_is_linked_not_duplicated() -> None:
    crm = {"id": "crm", "emails": {"primaryEmail": "ann@example.com"}}
    found, drop, report, claimed = settle(person_item("user_a", "ann@example.com"), None, [crm])
    assert found is crm and not drop
    assert report.problems == [] and claimed == {"ann@example.com"}


def test_an_email_of_another_whop_user_is_reported_and_dropped() -> None:
    other = {"id": "o", PERSON.key: "user_b"}
    found, drop, report, _ = settle(person_item("user_a", "ann@example.com"), None, [other])
    assert found is None and drop
    assert report.counts["conflicts"] == 1
    [problem] = report.problems
    assert (problem.key, problem.kind) == ("user_a", "conflict")
    assert problem.reason == "e-mail ann@example.com already belongs to user_b; written without it"


def test_several_unkeyed_holders_are_ambiguous() -> None:
    owners = [{"id": "p"}, {"id": "q"}]
    found, drop, report, _ = settle(person_item("user_a", "ann@example.com"), None, owners)
    assert found is None and drop
    assert "already belongs to 2 existing records" in report.problems[0].reason


def test_a_keyed_record_whose_email_another_record_holds_keeps_its_own_record() -> None:
    mine = {"id": "m", PERSON.key: "user_a"}
    found, drop, report, _ = settle(person_item("user_a", "ann@example.com"), mine, [mine, {"id": "p"}])
    assert found is mine and drop
    assert "already belongs to 1 existing records" in report.problems[0].reason


def test_an_email_an_earlier_record_of_the_batch_claimed_is_dropped() -> None:
    found, drop, report, _ = settle(person_item("user_b", "ann@example.com"), None, [], {"ann@example.com"})
    assert found is None and drop
    assert "already belongs to another record in this sync" in report.problems[0].reason
    crm = {"id": "crm"}
    found, drop, report, _ = settle(person_item("user_b", "ann@example.com"), None, [crm], {"ann@example.com"})
    assert found is None and drop
    assert "already belongs to 1 existing records" in report.problems[0].reason


# Step 3: build each record ---------------------------------------------------------------------


def test_build_record_drops_a_contested_email_and_resends_curated_composites() -> None:
    existing = {
        "id": "a",
        "name": {"firstName": "Curated", "lastName": "Name"},
        "emails": {"primaryEmail": "old@example.com"},
        "phones": {"primaryPhoneNumber": "", "additionalPhones": []},  # empty: not sent
    }
    writer = make_writer(StubTwenty())
    item = person_item("user_a", "ann@example.com", title="CTO")
    record = writer._build_record(item, existing, None, drop_email=True)
    assert record == {
        PERSON.key: "user_a",
        "jobTitle": "CTO",
        "name": {"firstName": "Curated", "lastName": "Name"},
        "emails": {"primaryEmail": "old@example.com"},  # Twenty's own value, not the contested one
    }
    assert writer._build_record(item, None, None, drop_email=True) == {
        PERSON.key: "user_a",
        "jobTitle": "CTO",
        "name": {"firstName": "user_a", "lastName": ""},
    }


def test_build_record_passes_the_last_written_values_to_the_builder() -> None:
    seen: list[Any] = []

    def build(current: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any]:
        seen.append((current, last))
        return {OPPORTUNITY.key: "mem_1"}

    item = Item(key="mem_1", basis={}, build=build)
    existing = {"id": "o", "amount": {"amountMicros": 5, "currencyCode": "USD"}}
    record = make_writer(StubTwenty(), OPPORTUNITY)._build_record(
        item, existing, shadow("mem_1", {"name": "x"}), drop_email=False
    )
    assert seen == [(existing, {"name": "x"})]
    assert record == {OPPORTUNITY.key: "mem_1", "amount": {"amountMicros": 5, "currencyCode": "USD"}}


# Step 4: dry run --------------------------------------------------------------------------------


async def test_a_dry_run_reports_what_it_would_do_and_sends_nothing() -> None:
    twenty = StubTwenty([{"id": "a", PERSON.key: "user_a"}])
    called: list[Any] = []
    writer = make_writer(twenty, dry_run=True, before_write=called.append)
    report = await writer._write_batch([person_item("user_a"), person_item("user_b")], {})
    assert report.planned == {"updated": ["user_a"], "created": ["user_b"]}
    assert report.counts == {"updated": 1, "created": 1}
    assert report.twenty_ids == {"user_a": "a"}
    assert twenty.upserts == [] and called == []


# Steps 5-7: upsert, learn missing ids, store shadows ----------------------------------------------


async def test_a_batch_is_written_once_and_its_shadows_stored(stored: list[ShadowWrite]) -> None:
    twenty = StubTwenty([{"id": "a", PERSON.key: "user_a", "name": {"firstName": "Ann", "lastName": "A"}}])
    before: list[list[dict[str, Any]]] = []

    async def before_write(records: list[dict[str, Any]]) -> None:
        before.append(records)

    items = [person_item("user_a", title="CEO"), person_item("user_b")]
    items[1].label = "Bob"
    report = await make_writer(twenty, before_write=before_write)._write_batch(items, {})
    assert twenty.upserts == [["user_a", "user_b"]]
    assert [[r[PERSON.key] for r in batch] for batch in before] == [["user_a", "user_b"]]
    assert report.counts == {"updated": 1, "created": 1}
    assert report.twenty_ids == {"user_a": "a", "user_b": "id-user_b"}
    assert [(s.whop_id, s.twenty_id, s.hash) for s in stored] == [
        ("user_a", "a", record_hash(items[0].basis)),
        ("user_b", "id-user_b", record_hash(items[1].basis)),
    ]
    assert stored[0].written == {
        PERSON.key: "user_a",
        "jobTitle": "CEO",
        "name": {"firstName": "Ann", "lastName": "A"},
    }
    assert stored[1].written["_label"] == "Bob"


async def test_a_refused_record_is_isolated_and_the_rest_written(stored: list[ShadowWrite]) -> None:
    twenty = StubTwenty(refuse={"user_c": RecordConflict("matches two people"), "user_e": SkippableError("bad")})
    items = [person_item(f"user_{c}") for c in "abcde"]
    report = await make_writer(twenty)._write_batch(items, {})
    assert twenty.upserts[0] == ["user_a", "user_b", "user_c", "user_d", "user_e"]
    assert [s.whop_id for s in stored] == ["user_a", "user_b", "user_d"]
    assert [(p.key, p.kind, p.reason) for p in report.problems] == [
        ("user_c", "conflict", "matches two people"),
        ("user_e", "failed", "bad"),
    ]
    assert report.counts == {"created": 3, "failed": 2}


async def test_a_short_answer_is_completed_by_a_read_and_a_silent_drop_is_reported(
    stored: list[ShadowWrite],
) -> None:
    twenty = StubTwenty(answer_limit=1, drop=["user_c"])
    items = [person_item("user_a"), person_item("user_b"), person_item("user_c")]
    report = await make_writer(twenty)._write_batch(items, {})
    assert twenty.finds[-1] == (["user_b", "user_c"], [])
    assert report.twenty_ids == {"user_a": "id-user_a", "user_b": "id-user_b"}
    assert [s.whop_id for s in stored] == ["user_a", "user_b"]
    [problem] = report.problems
    assert (problem.key, problem.kind) == ("user_c", "skipped")
    assert "probably deleted in Twenty" in problem.reason
    assert report.counts == {"created": 2, "skipped": 1}


async def test_an_empty_batch_calls_nothing() -> None:
    twenty = StubTwenty()
    report = await make_writer(twenty)._write_batch([], {})
    assert report == WriteReport() and twenty.finds == [] and twenty.upserts == []


# Company ownership ------------------------------------------------------------------------------


def opportunity_item(key: str, company: str, amount: int) -> Item:
    record = {OPPORTUNITY.key: key, "whopCompanyId": company, "amount": {"amountMicros": amount}}
    return Item(key=key, basis=record, build=lambda _current, _last: dict(record))


async def test_a_record_twenty_holds_for_another_company_is_never_overwritten() -> None:
    # No shadow (a lost database, or a record the bridge never wrote for this company): the
    # keyed read shows whose it is.
    theirs = {"id": "b", OPPORTUNITY.key: "mem_theirs", "whopCompanyId": "biz_other", "amount": {"amountMicros": 49}}
    twenty = StubTwenty([dict(theirs), {"id": "o", OPPORTUNITY.key: "mem_ours", "whopCompanyId": "biz_test"}])
    items = [
        opportunity_item("mem_theirs", "biz_test", 99_999),
        opportunity_item("mem_ours", "biz_test", 10),
        opportunity_item("mem_new", "biz_test", 20),
    ]

    report = await make_writer(twenty, OPPORTUNITY, dry_run=True)._write_batch(items, {})

    assert report.planned == {"updated": ["mem_ours"], "created": ["mem_new"]}
    assert [(p.key, p.kind) for p in report.problems] == [("mem_theirs", "refused")]
    assert "biz_other" in report.problems[0].reason and report.counts["refused"] == 1
    assert twenty.rows[0] == theirs


# The one writer factory -----------------------------------------------------------------------


async def test_every_writer_the_factory_makes_writes_through_the_option_guard(stored: list[ShadowWrite]) -> None:
    class Guard:
        def __init__(self) -> None:
            self.seen: list[tuple[str, list[dict[str, Any]]]] = []

        async def ensure(self, obj: str, records: list[dict[str, Any]]) -> None:
            self.seen.append((obj, records))

    guard = Guard()
    twenty = StubTwenty()
    writers = Writers(
        store=cast(AsyncEngine, None),
        twenty=cast(TwentyDataClient, twenty),
        company_id="biz_test",
        guard=guard,
        batch_size=60,
        restore_deleted=True,
        run_id=7,
    )
    people, revenue = writers(PERSON), writers(PERSON, "personRevenue")
    assert (people.shadow_name, revenue.shadow_name) == ("person", "personRevenue")
    assert (people.company_id, people.batch_size, people.run_id, people.dry_run) == ("biz_test", 60, 7, False)
    assert people.restore_deleted and people.obj is PERSON
    await people._write_batch([person_item("user_a")], {})
    opportunities = writers(OPPORTUNITY)
    assert opportunities.before_write is not None
    await opportunities.before_write([{"stage": "NEW"}])
    assert [(obj, len(records)) for obj, records in guard.seen] == [("person", 1), ("opportunity", 1)]
