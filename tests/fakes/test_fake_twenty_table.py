"""The fake Twenty's indexes answer as a scan of every row would, whatever changed the rows.

`select` and an upsert's match look values up in `RecordTable` indexes; each test here changes
the rows in one of the ways the fake can (upserts that move a key, soft deletes and restores,
destroys, seeds, renamed and dropped fields) and compares the indexed answers with a plain scan.
"""

from __future__ import annotations

import copy
import pickle
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from fakes.twenty import FakeTwenty
from fakes.twenty.records import compile_filter, is_deleted, mentions_deleted_at, select
from fakes.twenty.table import RecordTable, json_copy
from tests.fakes.test_fake_twenty import add_field, client_for, data, meta, provision, upsert_people


@pytest.fixture
def fake2() -> FakeTwenty:
    return FakeTwenty(dialect="2.x", api_key="twenty-test-key")


def scanned(fake: FakeTwenty, obj_name: str, flt: Any) -> list[str]:
    """What `select` answered before it had indexes: every row, in insertion order, tested."""
    ws = fake.workspace
    obj = ws.object(obj_name)
    assert obj is not None
    predicate = compile_filter(ws, obj, flt)
    deleted = mentions_deleted_at(flt)
    return [r["id"] for r in ws.records_of(obj).values() if (deleted or not is_deleted(r)) and predicate(r)]


def selected(fake: FakeTwenty, obj_name: str, flt: Any) -> list[str]:
    obj = fake.workspace.object(obj_name)
    assert obj is not None
    return [r["id"] for r in select(fake.workspace, obj, flt)]


def filters(keys: list[str], emails: list[str]) -> list[Any]:
    return [
        {"whopUserId": {"in": keys}},
        {"whopUserId": {"eq": keys[0]}},
        {"emails": {"primaryEmail": {"in": emails}}},
        {"or": [{"whopUserId": {"in": keys}}, {"emails": {"primaryEmail": {"in": emails}}}]},
        {"and": [{"whopUserId": {"in": keys}}, {"jobTitle": {"eq": "Boss"}}]},
        {"whopUserId": {"in": keys}, "deletedAt": {"is": "NOT_NULL"}},
        {"whopUserId": {"in": [*keys, ""]}},  # "" is not indexed: a scan answers
        {"not": {"whopUserId": {"in": keys}}},
    ]


@pytest.mark.parametrize("dialect", ["1.x", "2.x"])
async def test_indexed_reads_and_matches_agree_with_a_scan_through_random_changes(dialect: str) -> None:
    fake = FakeTwenty(dialect=dialect, api_key="twenty-test-key")
    rng = random.Random(12)
    async with client_for(fake) as client:
        await provision(client, fake)
        for step in range(40):
            people = fake.records("person")
            action = rng.choice(["upsert", "upsert", "move", "soft_delete", "destroy", "seed"])
            if action == "upsert":
                # New and existing keys, and e-mails that several users may share (1.x allows it).
                batch = {f"user_{rng.randrange(30)}": f"p{rng.randrange(20)}@example.com" for _ in range(6)}
                await upsert_people(
                    client, [{"whopUserId": k, "emails": {"primaryEmail": e}} for k, e in batch.items()]
                )
            elif action == "move" and people:
                # An upsert by id that changes the record's key and e-mail: the old values must
                # leave the index.
                row = rng.choice(people)
                moved = {"id": row["id"], "whopUserId": f"user_{rng.randrange(30, 40)}"}
                await upsert_people(client, [{**moved, "emails": {"primaryEmail": f"m{step}@example.com"}}])
            elif action == "soft_delete" and people:
                fake.soft_delete("person", rng.choice(people)["id"])
            elif action == "destroy" and people:
                query = "mutation($id: UUID!) { destroyPerson(id: $id) { id } }"
                await data(client, query, {"id": rng.choice(people)["id"]})
            elif action == "seed":
                fake.add_record("person", {"whopUserId": f"seed_{step}", "jobTitle": "Boss"})
            keys = [f"user_{i}" for i in range(40)] + [f"seed_{i}" for i in range(step + 1)]
            emails = [f"p{i}@example.com" for i in range(20)] + [f"m{i}@example.com" for i in range(step + 1)]
            for flt in filters(keys, emails):
                assert selected(fake, "person", flt) == scanned(fake, "person", flt), (step, action, flt)


async def test_a_renamed_or_dropped_field_leaves_no_stale_index(fake2: FakeTwenty) -> None:
    async with client_for(fake2) as client:
        await provision(client, fake2)
        field = await add_field(client, fake2, "person", type="TEXT", name="nickname", label="Nickname")
        await upsert_people(client, [{"whopUserId": "user_1", "nickname": "ann"}])
        assert len(selected(fake2, "person", {"nickname": {"eq": "ann"}})) == 1  # builds the index
        rename = "mutation($input: UpdateOneFieldMetadataInput!) { updateOneField(input: $input) { id } }"
        body = await meta(client, rename, {"input": {"id": field["id"], "update": {"name": "alias"}}})
        assert "errors" not in body, body
        assert len(selected(fake2, "person", {"alias": {"eq": "ann"}})) == 1
        # A new field under the old name holds nothing yet, whatever the old index said.
        await add_field(client, fake2, "person", type="TEXT", name="nickname", label="Nickname again")
        assert selected(fake2, "person", {"nickname": {"eq": "ann"}}) == []


async def test_a_key_moved_away_is_free_and_a_key_taken_is_refused(fake2: FakeTwenty) -> None:
    async with client_for(fake2) as client:
        await provision(client, fake2)
        (ann,) = (await upsert_people(client, [{"whopUserId": "user_1"}]))["data"]["createPeople"]
        assert "errors" not in await upsert_people(client, [{"id": ann["id"], "whopUserId": "user_2"}])
        (bob,) = (await upsert_people(client, [{"whopUserId": "user_1"}]))["data"]["createPeople"]
        assert bob["id"] != ann["id"]  # user_1 no longer matches Ann
        body = await upsert_people(client, [{"id": ann["id"], "whopUserId": "user_1"}])
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"  # Bob holds it now


def test_record_table_keeps_its_indexes_through_every_dict_change() -> None:
    table = RecordTable()
    table["a"] = {"k": "x"}
    table.update({"b": {"k": "x"}}, c={"k": "y"})
    assert table.lookup(("k",), "x") == ["a", "b"]
    table["a"] = {"k": "y"}  # an update keeps its place in the order
    assert table.lookup(("k",), "y") == ["a", "c"] and table.lookup(("k",), "x") == ["b"]
    assert table.pop("b")["k"] == "x" and table.lookup(("k",), "x") == []
    del table["c"]
    table.setdefault("d", {"k": "y"})
    table |= {"e": {"k": ""}}  # empty values are not indexed
    assert table.lookup(("k",), "y") == ["a", "d"] and table.lookup(("k",), "") == []
    assert table.popitem()[0] == "e"
    table.clear()
    assert table.lookup(("k",), "y") == [] and not table


@pytest.mark.parametrize(
    "value",
    [
        {"name": {"firstName": "Ada", "lastName": ""}, "emails": {"additionalEmails": ["a@b.c"]}, "n": 1.5},
        [{"a": [1, [2, {"b": None}]]}, True, "x"],
        {"set": {1, 2}, "nested": {"when": datetime(2026, 12, 7, tzinfo=UTC)}},
    ],
)
def test_a_copied_record_equals_its_source_and_shares_nothing_mutable_with_it(value: Any) -> None:
    copied = json_copy(value)
    assert copied == value

    def containers(v: Any) -> list[Any]:
        if isinstance(v, dict):
            return [v, *(c for item in v.values() for c in containers(item))]
        if isinstance(v, list | set):
            return [v, *(c for item in v for c in containers(item))]
        return []

    shared = {id(c) for c in containers(value)} & {id(c) for c in containers(copied)}
    assert not shared


def test_a_table_copied_or_pickled_keeps_its_rows_their_order_and_its_lookups() -> None:
    table = RecordTable()
    for n in (3, 1, 2):
        table[f"id{n}"] = {"id": f"id{n}", "email": f"p{n}@x.io"}
    table.lookup(("email",), "p1@x.io")  # an index built before the copy
    for copied in (copy.deepcopy(table), pickle.loads(pickle.dumps(table))):  # noqa: S301
        assert list(copied) == ["id3", "id1", "id2"]
        assert copied.lookup(("email",), "p1@x.io") == ["id1"]
        copied["id0"] = {"id": "id0", "email": "p1@x.io"}
        assert copied.lookup(("email",), "p1@x.io") == ["id1", "id0"]
        assert "id0" not in table
