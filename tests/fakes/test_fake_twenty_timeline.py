"""The fake Twenty keeps timeline activities as the real servers do (docs/twenty-observed.md,
"Twenty 2.21.0 … timeline"; the 1.x line's `timelineActivity` entity): a system object written
through the data API, pointing at its record by `personId`… on 1.x and by the morph relation's
join columns `targetPersonId`… on 2.x, dated by a `createdAt` the writer may give."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from bridge.twenty.data import WriteRules
from bridge.twenty.metadata import MetadataClient
from fakes.twenty import FakeTwenty
from tests.fakes.test_fake_twenty import BASE, client_for, data, meta

KEY = "twenty-test-key"

UPSERT = """
mutation Upsert($data: [TimelineActivityCreateInput!]!) {
  createTimelineActivities(data: $data, upsert: true) { id }
}"""
FIND = """
query Find($filter: TimelineActivityFilterInput) {
  timelineActivities(filter: $filter, orderBy: [{createdAt: DescNullsFirst}]) {
    edges { node { id name createdAt happensAt linkedRecordCachedName linkedRecordId linkedObjectMetadataId
                   properties %s } }
  }
}"""


def target(dialect: str, obj: str) -> str:
    return f"target{obj[:1].upper()}{obj[1:]}Id" if dialect == "2.x" else f"{obj}Id"


@pytest.fixture(params=["1.x", "2.x"])
def fake(request: pytest.FixtureRequest) -> FakeTwenty:
    return FakeTwenty(dialect=request.param, api_key=KEY)


def add_person(fake: FakeTwenty) -> str:
    person = fake.add_record("person", {"name": {"firstName": "Ann", "lastName": "Lee"}})
    return str(person["id"])


async def test_a_timeline_activity_is_a_system_object_with_its_targets_per_dialect(fake: FakeTwenty) -> None:
    obj = fake.object_by_name("timelineActivity")
    assert obj["isSystem"] is True and obj["namePlural"] == "timelineActivities"
    names = {f["name"] for f in obj["fieldsList"]}
    assert {"happensAt", "name", "properties", "linkedRecordCachedName", "linkedRecordId"} <= names
    assert {"linkedObjectMetadataId", "workspaceMember"} <= names
    if fake.workspace.dialect == "2.x":
        assert {"targetPerson", "targetOpportunity"} <= names and "person" not in names
    else:
        assert {"person", "opportunity"} <= names and "targetPerson" not in names
    people = fake.object_by_name("person")
    assert "timelineActivities" in {f["name"] for f in people["fieldsList"]}


async def test_the_metadata_api_lists_the_morph_target_once_as_2_21_does(fake: FakeTwenty) -> None:
    # Observed on 2.21: `fieldsList` names the morph relation once ("target"), `fields` each of its
    # sides ("targetPerson", MORPH_RELATION); the data API takes `targetPersonId`…
    async with client_for(fake) as c:
        listed = await meta(
            c, "{ objects(paging: {first: 100}) { edges { node { nameSingular fieldsList { name type } } } } }"
        )
        each = await meta(
            c,
            "{ objects(paging: {first: 100}) { edges { node { nameSingular"
            " fields(paging: {first: 1000}) { edges { node { name type } } } } } } }",
        )
    listed_by = {e["node"]["nameSingular"]: e["node"]["fieldsList"] for e in listed["data"]["objects"]["edges"]}
    each_by = {e["node"]["nameSingular"]: e["node"]["fields"]["edges"] for e in each["data"]["objects"]["edges"]}
    relations = {(f["name"], f["type"]) for f in listed_by["timelineActivity"] if "RELATION" in f["type"]}
    sides = {
        (e["node"]["name"], e["node"]["type"]) for e in each_by["timelineActivity"] if "RELATION" in e["node"]["type"]
    }
    if fake.workspace.dialect == "2.x":
        assert relations == {("workspaceMember", "RELATION"), ("target", "MORPH_RELATION")}
        assert {("targetPerson", "MORPH_RELATION"), ("targetOpportunity", "MORPH_RELATION")} <= sides
    else:
        assert {("person", "RELATION"), ("opportunity", "RELATION")} <= relations == sides
    async with MetadataClient(BASE, KEY, transport=httpx.ASGITransport(app=fake)) as client:
        rules = WriteRules.from_live(client.dialect, await client.list_objects())
    known = rules.known_fields["timelineActivity"]
    assert {target(fake.workspace.dialect, "person"), target(fake.workspace.dialect, "opportunity")} <= known


async def test_an_activity_written_through_the_data_api_keeps_its_date_and_links(fake: FakeTwenty) -> None:
    dialect = fake.workspace.dialect
    person_id = add_person(fake)
    payment_object = fake.object_by_name("task")["id"]  # any object's metadata id links a record
    activity = {
        "id": str(uuid.uuid4()),
        "name": "whopPayment.paid",
        "createdAt": "2025-03-01T10:00:00.000Z",
        "happensAt": "2025-03-01T10:00:00.000Z",
        "linkedRecordCachedName": "Paid · $49.00 · Pro Signals",
        "linkedRecordId": str(uuid.uuid4()),
        "linkedObjectMetadataId": payment_object,
        "properties": {"whop": {"payment": "pay_1"}},
        target(dialect, "person"): person_id,
    }
    async with client_for(fake) as c:
        first = await data(c, UPSERT, {"data": [activity]})
        again = await data(c, UPSERT, {"data": [activity]})  # upserted by id: still one
        assert "errors" not in first and "errors" not in again, (first, again)
        no_date = {**activity, "id": str(uuid.uuid4())}
        del no_date["createdAt"], no_date["happensAt"]
        assert "errors" not in await data(c, UPSERT, {"data": [no_date]})
        found = await data(
            c, FIND % target(dialect, "person"), {"filter": {target(dialect, "person"): {"eq": person_id}}}
        )
    nodes: list[dict[str, Any]] = [e["node"] for e in found["data"]["timelineActivities"]["edges"]]
    assert len(nodes) == 2
    dated = next(n for n in nodes if n["id"] == activity["id"])
    assert dated["createdAt"] == "2025-03-01T10:00:00.000Z", "the writer's date is kept"
    assert dated["linkedRecordCachedName"] == activity["linkedRecordCachedName"]
    assert dated["properties"] == {"whop": {"payment": "pay_1"}}
    undated = next(n for n in nodes if n["id"] == no_date["id"])
    assert undated["happensAt"] and undated["createdAt"] > dated["createdAt"], "happensAt defaults to now"
    assert nodes[0]["id"] == no_date["id"], "newest first, by createdAt"


async def test_the_other_dialects_target_column_is_refused(fake: FakeTwenty) -> None:
    other = "2.x" if fake.workspace.dialect == "1.x" else "1.x"
    activity = {"name": "whopPayment.paid", target(other, "person"): add_person(fake)}
    async with client_for(fake) as c:
        body = await data(c, UPSERT, {"data": [activity]})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_twenty_writes_its_own_created_entry_for_each_record_an_api_creates_not_for_updates(
    fake: FakeTwenty,
) -> None:
    # Observed on the real 1.x and 2.21 (2026-12-07): "person.created", "opportunity.created"…
    # beside whatever an API writes; a test that looks for an API's own lines must leave them out.
    create = """mutation($data: [PersonCreateInput!]!) { createPeople(data: $data, upsert: true) { id } }"""
    people = [{"name": {"firstName": "Ann", "lastName": "Lee"}}, {"name": {"firstName": "Bo", "lastName": "Ray"}}]
    async with client_for(fake) as c:
        created = await data(c, create, {"data": people})
        ids = [p["id"] for p in created["data"]["createPeople"]]
        again = [{"id": ids[0], "name": {"firstName": "Ann", "lastName": "Lee-Ray"}}]
        await data(c, create, {"data": again})
        column = target(fake.workspace.dialect, "person")
        found = await data(c, FIND % column, {"filter": {"name": {"like": "person.%"}}})
    entries = [e["node"] for e in found["data"]["timelineActivities"]["edges"]]
    assert sorted((e["name"], e[column]) for e in entries) == sorted(("person.created", i) for i in ids)
    assert all(e["linkedRecordId"] is None for e in entries), "Twenty's own entries link no other record"
