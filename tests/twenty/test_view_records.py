"""A 1.x view record read as a LiveView: its columns in order, and a column sum only where someone chose one."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.twenty.view_records import parse_view

MADE = "2026-12-01T10:00:00.000Z"
LATER = "2026-12-02T10:00:00.000Z"


def record(**fields: Any) -> dict[str, Any]:
    return {"id": "v1", "name": "Deals", "type": "kanban", "createdAt": MADE, "updatedAt": MADE, **fields}


@pytest.mark.parametrize(
    ("fields", "aggregate"),
    [
        ({"kanbanAggregateOperation": "COUNT"}, None),  # as 1.x makes every view
        ({"kanbanAggregateOperation": "COUNT", "updatedAt": LATER}, "COUNT"),  # changed since
        ({"kanbanAggregateOperation": "COUNT", "kanbanAggregateOperationFieldMetadataId": "f-mrr"}, "COUNT"),
        ({"kanbanAggregateOperation": "SUM", "kanbanAggregateOperationFieldMetadataId": "f-mrr"}, "SUM"),
    ],
)
def test_a_kanbans_column_sum_reads_as_none_chosen_only_while_the_view_is_as_made(
    fields: dict[str, Any], aggregate: str | None
) -> None:
    assert parse_view(record(**fields)).kanban_aggregate == aggregate


def test_a_kanbans_columns_come_in_position_order_and_name_their_field() -> None:
    groups = [
        {"node": {"id": "g2", "fieldMetadataId": "f-stage", "fieldValue": "WON", "position": 2}},
        {"node": {"id": "g0", "fieldMetadataId": "f-stage", "fieldValue": None, "position": None}},
        {"node": {"id": "g1", "fieldMetadataId": "f-stage", "fieldValue": "OPEN", "position": 1}},
    ]
    live = parse_view(record(kanbanFieldMetadataId="", viewGroups={"edges": groups}, viewFields=None, position=3))
    assert (live.type, live.group_field_id, live.column_values) == ("KANBAN", "f-stage", ("", "OPEN", "WON"))
    assert (live.last_column_position, live.position, live.fields) == (2.0, 3.0, ())
