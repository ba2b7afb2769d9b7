"""Twenty 1.x's views: records of the workspace's `view` object, read and written through the
data API (`/graphql`), with their columns or card fields (`viewField` records) and a Kanban's
columns (`viewGroup` records).

Observed on 1.x (upstream `da560afb`, 2026-12-07): its screens show these records, and only
these. The metadata API's core views are another thing: a Kanban made with `createCoreView` was
answered as a TABLE keyed INDEX and never shown. So on 1.x provisioning reads and makes views
here, with the same operations `MetadataClient` offers for 2.x's views (`provision.Views`).

What the records say, turned into `LiveView`:
* `type` is lower case (`table`, `kanban`) and `kanbanFieldMetadataId` names a Kanban's SELECT
  ("" on a table);
* `kanbanAggregateOperation` is COUNT on every view nobody chose for (the field's default): a
  view still as it was made reads as "none chosen", so the declared column sums are set on the
  bridge's Kanban once, and a person's later choice stands;
* `createView` without `key` keys the view INDEX (the field's default), so the bridge's views are
  made with `key: null`: an INDEX view is the object's standard list.
"""

from __future__ import annotations

from typing import Any, Protocol

from bridge.twenty.data import ObjectApi, TwentyDataClient
from bridge.twenty.metadata import (
    COLUMN_SIZE,
    LiveView,
    LiveViewField,
    NewViewField,
    unchanged_since_made,
)

_VIEW_FIELDS = "id fieldMetadataId isVisible position size createdAt updatedAt"
_VIEW_GROUPS = "id fieldMetadataId fieldValue isVisible position"
# A view's columns and Kanban columns come with it (at most 200 of each: an object has fewer fields).
_SELECTION = (
    "id name type key icon position kanbanFieldMetadataId kanbanAggregateOperation"
    " kanbanAggregateOperationFieldMetadataId createdAt updatedAt"
    f" viewFields(first: 200) {{ edges {{ node {{ {_VIEW_FIELDS} }} }} }}"
    f" viewGroups(first: 200) {{ edges {{ node {{ {_VIEW_GROUPS} }} }} }}"
)
VIEW = ObjectApi("view", "views", "id", _SELECTION)

CREATE_VIEW = """
mutation CreateView($data: ViewCreateInput!) {
  createView(data: $data) { id name type key position }
}
"""
UPDATE_VIEW = """
mutation UpdateView($id: UUID!, $data: ViewUpdateInput!) {
  updateView(id: $id, data: $data) { id }
}
"""
CREATE_VIEW_FIELDS = """
mutation CreateViewFields($data: [ViewFieldCreateInput!]!) {
  createViewFields(data: $data) { id }
}
"""
UPDATE_VIEW_FIELD = """
mutation UpdateViewField($id: UUID!, $data: ViewFieldUpdateInput!) {
  updateViewField(id: $id, data: $data) { id }
}
"""
CREATE_VIEW_GROUPS = """
mutation CreateViewGroups($data: [ViewGroupCreateInput!]!) {
  createViewGroups(data: $data) { id }
}
"""

# The aggregate 1.x gives every view record until someone chooses another.
DEFAULT_AGGREGATE = "COUNT"


class Views(Protocol):
    """Where provisioning reads and makes views: the metadata API's on 2.x (`MetadataClient`),
    the workspace's view records on 1.x (`ViewRecordsApi`)."""

    @property
    def integer_positions(self) -> bool:
        """Whether a column's position must be a whole number (1.x core views)."""
        ...

    @property
    def files_new_fields_shown(self) -> bool:
        """Whether Twenty puts each new field, shown, at the end of its object's list (1.x), so
        the declared columns are there but past the first screen."""
        ...

    async def list_views(self, object_id: str) -> list[LiveView]: ...

    async def create_kanban_view(
        self, *, object_id: str, name: str, icon: str, group_field_id: str, group_values: list[str]
    ) -> dict[str, Any]: ...

    async def create_view_fields(self, view_id: str, fields: list[NewViewField], *, name: str) -> None: ...

    async def show_view_fields(self, fields: list[tuple[str, float]], *, name: str) -> None: ...

    async def show_view_field(self, view_field_id: str, position: float, *, name: str, size: int) -> None: ...

    async def resize_view_field(self, view_field_id: str, size: int, *, name: str) -> None: ...

    async def create_view_columns(
        self, view_id: str, group_field_id: str, values: list[tuple[str, float]], *, name: str
    ) -> None: ...

    async def set_kanban_aggregate(self, view_id: str, operation: str, field_id: str, *, name: str) -> None: ...


def parse_view(node: dict[str, Any]) -> LiveView:
    fields = _connected(node, "viewFields")
    groups = sorted(_connected(node, "viewGroups"), key=_position)
    aggregate_field = node.get("kanbanAggregateOperationFieldMetadataId")
    return LiveView(
        id=node["id"],
        name=node.get("name") or "",
        type=str(node.get("type") or "").upper(),
        key=node.get("key"),
        group_field_id=node.get("kanbanFieldMetadataId") or (groups[0]["fieldMetadataId"] if groups else None),
        fields=tuple(LiveViewField.from_node(f) for f in fields),
        column_values=tuple(str(g.get("fieldValue") or "") for g in groups),
        last_column_position=max((_position(g) for g in groups), default=-1.0),
        kanban_aggregate=_chosen_aggregate(node),
        kanban_aggregate_field_id=aggregate_field,
        position=_position(node),
    )


def _connected(node: dict[str, Any], connection: str) -> list[dict[str, Any]]:
    """The records of one of the view's connections (its columns or its Kanban columns)."""
    return [edge["node"] for edge in (node.get(connection) or {}).get("edges") or []]


def _position(record: dict[str, Any]) -> float:
    return float(record.get("position") or 0)


def _chosen_aggregate(node: dict[str, Any]) -> str | None:
    """The Kanban's aggregate, None while it is still the one 1.x gives every view it makes."""
    aggregate: str | None = node.get("kanbanAggregateOperation")
    chosen_field = node.get("kanbanAggregateOperationFieldMetadataId")
    if aggregate == DEFAULT_AGGREGATE and not chosen_field and unchanged_since_made(node, slack=0.0):
        return None  # nobody chose: as 1.x makes every view
    return aggregate


class ViewRecordsApi:
    """The workspace's views (1.x), as `provision.Views`. Writes count in `writes`."""

    # Positions are stored as floating-point numbers: a column can go between two others.
    integer_positions = False
    # createOneField shows the field at the end of its object's first view (observed).
    files_new_fields_shown = True

    def __init__(self, data: TwentyDataClient) -> None:
        self.data = data
        self.writes = 0

    async def list_views(self, object_id: str) -> list[LiveView]:
        """The object's views, oldest first, with their columns and Kanban columns."""
        found = await self.data.find(VIEW, {"objectMetadataId": {"eq": object_id}})
        return [parse_view(node) for node in found]

    async def _write(self, document: str, variables: dict[str, Any], operation: str) -> dict[str, Any]:
        self.writes += 1
        return await self.data.graphql(document, variables, operation=operation, write=True)

    async def create_kanban_view(
        self, *, object_id: str, name: str, icon: str, group_field_id: str, group_values: list[str]
    ) -> dict[str, Any]:
        """A Kanban after the object's other views, with a column per value ("" is the column of
        records with none), in that order. Its card fields are added apart (`create_view_fields`)."""
        others = await self.list_views(object_id)
        data = {
            "name": name,
            "objectMetadataId": object_id,
            "type": "kanban",
            "key": None,  # without it 1.x keys the view INDEX, as if it were the standard list
            "icon": icon,
            "kanbanFieldMetadataId": group_field_id,
            "position": max((v.position for v in others), default=-1.0) + 1,
        }
        answer = await self._write(CREATE_VIEW, {"data": data}, f"create view {name}")
        view = dict(answer["createView"])
        columns = [(value, float(position)) for position, value in enumerate(group_values)]
        await self.create_view_columns(view["id"], group_field_id, columns, name=name)
        return view

    async def create_view_fields(self, view_id: str, fields: list[NewViewField], *, name: str) -> None:
        if not fields:
            return
        data = [
            {
                "viewId": view_id,
                "fieldMetadataId": f.field_id,
                "isVisible": True,
                "position": f.position,
                "size": f.size or COLUMN_SIZE,
            }
            for f in fields
        ]
        await self._write(CREATE_VIEW_FIELDS, {"data": data}, f"add fields to {name}")

    async def show_view_fields(self, fields: list[tuple[str, float]], *, name: str) -> None:
        for view_field_id, position in fields:
            update = {"isVisible": True, "position": position, "size": COLUMN_SIZE}
            await self._write(UPDATE_VIEW_FIELD, {"id": view_field_id, "data": update}, f"show a field in {name}")

    async def show_view_field(self, view_field_id: str, position: float, *, name: str, size: int) -> None:
        update = {"isVisible": True, "position": position, "size": size}
        await self._write(UPDATE_VIEW_FIELD, {"id": view_field_id, "data": update}, f"show {name}")

    async def resize_view_field(self, view_field_id: str, size: int, *, name: str) -> None:
        await self._write(UPDATE_VIEW_FIELD, {"id": view_field_id, "data": {"size": size}}, f"widen {name}")

    async def create_view_columns(
        self, view_id: str, group_field_id: str, values: list[tuple[str, float]], *, name: str
    ) -> None:
        if not values:
            return
        data = [
            {"viewId": view_id, "fieldMetadataId": group_field_id, "fieldValue": value, "isVisible": True}
            | {"position": position}
            for value, position in values
        ]
        await self._write(CREATE_VIEW_GROUPS, {"data": data}, f"add columns to {name}")

    async def set_kanban_aggregate(self, view_id: str, operation: str, field_id: str, *, name: str) -> None:
        data = {"kanbanAggregateOperation": operation, "kanbanAggregateOperationFieldMetadataId": field_id}
        await self._write(UPDATE_VIEW, {"id": view_id, "data": data}, f"set the column sums of {name}")
