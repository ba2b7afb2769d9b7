"""The metadata schema is built once per distinct introspection answer, and a document refused
against it never reaches Twenty."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query, graphql_sync, parse

from bridge.errors import FatalError
from bridge.twenty import introspection
from bridge.twenty.metadata import MetadataClient
from fakes.twenty import FakeTwenty
from fakes.twenty.metadata_api import metadata_schema
from tests.twenty.conftest import TWENTY_KEY


def _answer(dialect: str) -> dict[str, Any]:
    result = graphql_sync(metadata_schema(dialect), get_introspection_query())
    assert result.data is not None
    return result.data


def test_the_same_answer_gives_the_same_schema_and_a_changed_one_a_new_schema() -> None:
    answer = _answer("2.x")
    first = introspection.client_schema(answer)
    assert introspection.client_schema(copy.deepcopy(answer)) is first
    upgraded = copy.deepcopy(answer)
    upgraded["__schema"]["types"].append(
        {"kind": "SCALAR", "name": "AddedByAnUpgrade", "description": None, "specifiedByURL": None}
    )
    changed = introspection.client_schema(upgraded)
    assert changed is not first and "AddedByAnUpgrade" in changed.type_map
    assert "AddedByAnUpgrade" not in first.type_map


def test_each_dialect_keeps_its_own_schema() -> None:
    v2, v1 = introspection.client_schema(_answer("2.x")), introspection.client_schema(_answer("1.x"))
    assert v2 is not v1
    assert "createView" in v2.mutation_type.fields  # type: ignore[union-attr]
    assert "createCoreView" in v1.mutation_type.fields  # type: ignore[union-attr]


def test_a_valid_document_stays_valid_and_an_invalid_one_is_refused_every_time() -> None:
    schema = introspection.client_schema(_answer("2.x"))
    good = "query { objects(paging: {first: 1}) { edges { node { id } } } }"
    bad = "query { noSuchField }"
    for _ in range(2):
        assert introspection.document_errors(schema, parse(good), good) == []
        errors = introspection.document_errors(schema, parse(bad), bad)
        assert errors and "noSuchField" in errors[0].message


@pytest.mark.parametrize("dialect", ["2.x", "1.x"])
async def test_a_document_the_schema_refuses_is_not_sent_to_twenty(dialect: str) -> None:
    twenty = FakeTwenty(dialect=dialect, api_key=TWENTY_KEY)
    transport = httpx.ASGITransport(app=twenty)
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport) as meta:
        sent = twenty.stats.metadata_queries  # the introspection
        with pytest.raises(FatalError, match=r"list nothing failed: .*noSuchField"):
            await meta.execute("query { noSuchField }", operation="list nothing")
        assert twenty.stats.metadata_queries == sent
        objects = await meta.list_objects()
        assert objects and twenty.stats.metadata_queries > sent


def test_an_introspection_answer_received_again_is_not_decoded_again_and_nothing_else_is_kept() -> None:
    body = json.dumps(_answer_body("1.x"), separators=(",", ":")).encode()
    first = introspection.decode(body)
    assert introspection.decode(bytes(body)) is first
    assert introspection.client_schema(first["data"]) is introspection.client_schema(introspection.decode(body)["data"])
    other = b'{"data":{"objects":{"edges":[]}}}'
    assert introspection.decode(other) == {"data": {"objects": {"edges": []}}}
    assert introspection.decode(other) is not introspection.decode(other)


def _answer_body(dialect: str) -> dict[str, Any]:
    return {"data": _answer(dialect)}
