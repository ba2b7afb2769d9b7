"""Twenty 1.x: the views a person sees are records of the workspace's `view` object.

Observed on 1.x (upstream `da560afb`, 2026-12-07), and read in its twenty-server source:

* A fresh workspace's lists ("All People", …, key INDEX, type `table`) and the "By Stage" Kanban
  (type `kanban`, `kanbanFieldMetadataId` = stage) are records of the system objects `view`,
  `viewField` (a column, or a card field) and `viewGroup` (a Kanban column), served by the data
  API (`/graphql` `views`, `createView`, `createViewFields`, `createViewGroups`, …). The
  metadata API's core views (`getCoreViews`) list none of them, and the screens show only these.
* `createView` without `key` gets key INDEX (the field's default); `key: null` keeps it null.
  `type` is free text (the front knows `table` and `kanban`); an unset aggregate is COUNT.
* A `viewField` for a field the view already has is refused: "A duplicate entry was detected.
  The combination of Field Metadata Id, View must be unique." Positions may be fractions.
* `createOneObject`: an "All …" view (table, INDEX, IconList) showing the new object's fields
  (`ObjectMetadataRelatedRecordsService`).
* `createOneField`: a view field at the end of the object's *first* view, shown while that view
  has fewer than 30 fields (`settings.maxVisibleViewFields`), size 180
  (`FieldMetadataRelatedRecordsService.createViewAndViewFields`). After provisioning, "All
  Opportunities" showed the first 24 Whop fields and had the rest hidden.
* `updateOneField` with options, on a SELECT: every view with a view group for the field gets a
  group for each new option at (its highest position, counted from 0) + i, loses those of removed
  options, and renamed ones follow; then a nullable field's view gets a "no value" group (`''`)
  at the highest position + 1 if it has none (`updateRelatedViewGroups`, `syncNoValueViewGroup`).
  Observed: "By Stage" got CHURNED at 4, beside CUSTOMER at 4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .workspace import Meta, Record, Workspace

MAX_VISIBLE_VIEW_FIELDS = 30
AGGREGATES = [
    "AVG",
    "COUNT",
    "MAX",
    "MIN",
    "SUM",
    "COUNT_EMPTY",
    "COUNT_NOT_EMPTY",
    "COUNT_UNIQUE_VALUES",
    "PERCENTAGE_EMPTY",
    "PERCENTAGE_NOT_EMPTY",
    "COUNT_TRUE",
    "COUNT_FALSE",
]
DUPLICATE_VIEW_FIELD = "A duplicate entry was detected. The combination of Field Metadata Id, View must be unique."

# The lists and the board of a fresh 1.x workspace, as observed (columns in position order).
INDEX_COLUMNS = {
    "person": ["name", "emails", "createdBy", "company", "phones", "createdAt", "city", "jobTitle", "linkedinLink"],
    "company": ["name", "domainName", "createdBy", "accountOwner", "createdAt", "employees", "linkedinLink"],
    "opportunity": ["name", "amount", "createdBy", "closeDate", "company", "pointOfContact"],
}
BY_STAGE_CARDS = ["name", "amount", "createdBy", "closeDate", "company", "pointOfContact"]


def _options(values: list[str]) -> list[dict[str, Any]]:
    from .workspace import new_id

    return [{"id": new_id(), "value": v, "label": v, "color": "gray", "position": i} for i, v in enumerate(values)]


def seed_view_objects(ws: Workspace) -> None:
    """The system objects `view`, `viewField` and `viewGroup`, trimmed to what the bridge uses."""
    std: dict[str, Any] = {"custom": False}
    view = ws._new_object("view", "views", "View", "Views", icon="IconLayoutCollage", system=True)
    name = ws.field(view, "name")
    assert name is not None
    name.update(isNullable=False, defaultValue="''")
    ws._new_field(view, "objectMetadataId", "UUID", "Object Metadata Id", nullable=False, **std)
    ws._new_field(view, "type", "TEXT", "Type", default="'table'", nullable=False, **std)
    ws._new_field(view, "key", "SELECT", "Key", default="'INDEX'", options=_options(["INDEX"]), **std)
    ws._new_field(view, "icon", "TEXT", "Icon", default="''", nullable=False, **std)
    ws._new_field(view, "kanbanFieldMetadataId", "TEXT", "kanbanfieldMetadataId", default="''", **std)
    ws._new_field(view, "isCompact", "BOOLEAN", "Compact View", default=False, nullable=False, **std)
    open_in = _options(["SIDE_PANEL", "RECORD_PAGE"])
    ws._new_field(view, "openRecordIn", "SELECT", "Open Record In", default="'SIDE_PANEL'", options=open_in, **std)
    aggregates = _options(AGGREGATES)
    ws._new_field(
        view, "kanbanAggregateOperation", "SELECT", "Aggregate operation", default="'COUNT'", options=aggregates, **std
    )
    ws._new_field(view, "kanbanAggregateOperationFieldMetadataId", "UUID", "Field metadata used for aggregate", **std)
    ws._new_field(view, "anyFieldFilterValue", "TEXT", "Any field filter value", default="''", **std)

    view_field = ws._new_object(
        "viewField", "viewFields", "View Field", "View Fields", icon="IconTag", system=True, name_field=None
    )
    ws._new_field(view_field, "fieldMetadataId", "UUID", "Field Metadata Id", nullable=False, **std)
    ws._new_field(view_field, "isVisible", "BOOLEAN", "Visible", default=True, nullable=False, **std)
    ws._new_field(view_field, "size", "NUMBER", "Size", default=0, nullable=False, **std)
    ws._new_field(
        view_field, "aggregateOperation", "SELECT", "Aggregate operation", options=_options(AGGREGATES), **std
    )

    view_group = ws._new_object(
        "viewGroup", "viewGroups", "View Group", "View Groups", icon="IconTag", system=True, name_field=None
    )
    ws._new_field(view_group, "fieldMetadataId", "UUID", "Field Metadata Id", nullable=False, **std)
    ws._new_field(view_group, "isVisible", "BOOLEAN", "Visible", default=True, nullable=False, **std)
    ws._new_field(view_group, "fieldValue", "TEXT", "Field Value", default="''", nullable=False, **std)

    for obj in (view, view_field, view_group):
        # These objects have no author, and their items' positions are plain numbers.
        obj["fieldsList"] = [f for f in obj["fieldsList"] if f["name"] != "createdBy"]
        position = ws.field(obj, "position")
        assert position is not None
        position["type"] = "POSITION" if obj is view else "NUMBER"
    ws._new_relation(view_field, "view", "View", view, "viewFields", "View Fields", icon="IconLayoutCollage")
    ws._new_relation(view_group, "view", "View", view, "viewGroups", "View Groups", icon="IconLayoutCollage")
    ws.unique_together[view_field["id"]] = [(("fieldMetadataId", "viewId"), DUPLICATE_VIEW_FIELD)]


def _insert(ws: Workspace, name: str, values: dict[str, Any]) -> Record:
    """A record made by Twenty itself (a seed, a side effect): stored as the API would store it."""
    from .records import InputChecker, stamp_insert

    obj = ws.object(name)
    assert obj is not None
    checked = InputChecker(ws, obj, operation="Create").check(values)
    record = stamp_insert(ws, obj, ws.blank_record(obj), checked)
    record.pop("createdBy", None)
    ws.records_of(obj)[record["id"]] = record
    return record


def add_view(ws: Workspace, obj: Meta, name: str, **values: Any) -> Record:
    data = {"name": name, "objectMetadataId": obj["id"], "type": "table", "key": None, "icon": "IconList"}
    data |= {"position": 0}
    return _insert(ws, "view", data | values)


def add_view_field(
    ws: Workspace, view: Record, field: Meta, position: float, *, visible: bool = True, size: int = 180
) -> Record:
    data = {"viewId": view["id"], "fieldMetadataId": field["id"], "position": position, "size": size}
    return _insert(ws, "viewField", data | {"isVisible": visible})


def add_view_group(ws: Workspace, view: Record, field: Meta, value: str, position: float) -> Record:
    data = {"viewId": view["id"], "fieldMetadataId": field["id"], "fieldValue": value, "position": position}
    return _insert(ws, "viewGroup", data | {"isVisible": True})


def views_of(ws: Workspace, object_id: str) -> list[Record]:
    """The object's live view records, oldest first (the order 1.x's ORM finds them in)."""
    table = ws.object("view")
    if table is None:
        return []
    rows = ws.records_of(table).values()
    return [v for v in rows if v["objectMetadataId"] == object_id and v.get("deletedAt") is None]


def fields_of(ws: Workspace, view_id: str) -> list[Record]:
    table = ws.object("viewField")
    assert table is not None
    rows = ws.records_of(table).values()
    return [f for f in rows if f.get("viewId") == view_id and f.get("deletedAt") is None]


def groups_of(ws: Workspace, view_id: str) -> list[Record]:
    table = ws.object("viewGroup")
    assert table is not None
    rows = ws.records_of(table).values()
    return [g for g in rows if g.get("viewId") == view_id and g.get("deletedAt") is None]


def seed_view_records(ws: Workspace) -> None:
    """A fresh 1.x workspace's lists ("All …") and its "By Stage" board."""
    for obj in ws.objects:
        if obj["isSystem"]:
            continue
        index = add_view(ws, obj, f"All {obj['labelPlural']}", key="INDEX")
        names = INDEX_COLUMNS.get(obj["nameSingular"], ["name"])
        for position, field in enumerate(f for f in (ws.field(obj, n) for n in names) if f is not None):
            add_view_field(ws, index, field, position, size=150)
    opportunity = ws.object("opportunity")
    assert opportunity is not None
    stage = ws.field(opportunity, "stage")
    assert stage is not None
    amount = ws.field(opportunity, "amount")
    assert amount is not None
    board = add_view(
        ws,
        opportunity,
        "By Stage",
        type="kanban",
        icon="IconLayoutKanban",
        position=2,
        kanbanFieldMetadataId=stage["id"],
        kanbanAggregateOperation="MIN",
        kanbanAggregateOperationFieldMetadataId=amount["id"],
    )
    for position, field in enumerate(f for f in (ws.field(opportunity, n) for n in BY_STAGE_CARDS) if f is not None):
        add_view_field(ws, board, field, position, size=150)
    for option in sorted(stage["options"], key=lambda o: o["position"]):
        add_view_group(ws, board, stage, option["value"], option["position"])


def list_new_object(ws: Workspace, obj: Meta) -> None:
    """createOneObject: its "All …" list, showing the fields the object was made with."""
    if ws.dialect != "1.x":
        return
    index = add_view(ws, obj, f"All {obj['labelPlural']}", key="INDEX")
    made = [f for f in obj["fieldsList"] if f["type"] != "RELATION" and f["name"] not in ("id", "deletedAt")]
    made.sort(key=lambda f: f["name"] != "name")
    for position, field in enumerate(made):
        add_view_field(ws, index, field, position)


def list_new_fields(ws: Workspace, fields: list[Meta]) -> None:
    """createOneField: each field at the end of its object's first view, shown while that view
    has fewer than 30 fields."""
    if ws.dialect != "1.x":
        return
    for field in fields:
        views = views_of(ws, field["objectMetadataId"])
        if not views:
            continue
        existing = fields_of(ws, views[0]["id"])
        if any(f["fieldMetadataId"] == field["id"] for f in existing):
            continue
        last = max((f["position"] for f in existing), default=-1)
        add_view_field(ws, views[0], field, last + 1, visible=len(existing) < MAX_VISIBLE_VIEW_FIELDS)


def follow_options(ws: Workspace, field: Meta, before: list[Meta]) -> None:
    """updateOneField on a SELECT's options: the Kanban columns of every view grouped by it."""
    if ws.dialect != "1.x" or field["type"] != "SELECT":
        return
    old = {o["id"]: o for o in before}
    new = {o["id"]: o for o in field["options"] or []}
    created = [o for i, o in new.items() if i not in old]
    deleted = {o["value"] for i, o in old.items() if i not in new}
    renamed = {old[i]["value"]: o["value"] for i, o in new.items() if i in old and old[i]["value"] != o["value"]}
    table, views = ws.object("viewGroup"), ws.object("view")
    assert table is not None and views is not None
    rows = ws.records_of(table)
    grouped = {g["viewId"] for g in rows.values() if g["fieldMetadataId"] == field["id"]}
    for view in [v for v in ws.records_of(views).values() if v["id"] in grouped]:
        groups = groups_of(ws, view["id"])  # as read before any change, as Twenty does
        top = max([0.0, *(g["position"] for g in groups)])
        rows.forget_indexes()  # values change in place
        for group in groups:
            if group["fieldValue"] in deleted:
                del rows[group["id"]]
            elif group["fieldValue"] in renamed:
                group["fieldValue"] = renamed[group["fieldValue"]]
        for index, option in enumerate(created):
            add_view_group(ws, view, field, option["value"], top + index)
        no_value = next((g for g in groups if g["fieldValue"] == ""), None)
        if field["isNullable"] and no_value is None:
            add_view_group(ws, view, field, "", top + 1)
        elif not field["isNullable"] and no_value is not None:
            del rows[no_value["id"]]


def forget_object(ws: Workspace, obj: Meta) -> None:
    """deleteOneObject: its views go with it."""
    if ws.dialect != "1.x":
        return
    table = ws.object("view")
    if table is None:
        return
    rows = ws.records_of(table)
    for view in [v for v in rows.values() if v["objectMetadataId"] == obj["id"]]:
        del rows[view["id"]]


def workspace_views(ws: Workspace, object_id: str) -> list[dict[str, Any]]:
    """For tests: the object's view records, each with its `viewFields` and `viewGroups` by
    position."""
    out = []
    for view in views_of(ws, object_id):
        found = dict(view)
        found["viewFields"] = sorted(fields_of(ws, view["id"]), key=lambda f: f["position"])
        found["viewGroups"] = sorted(groups_of(ws, view["id"]), key=lambda g: g["position"])
        out.append(found)
    return out
