"""2.x page layouts in the fake: dashboards, record-page tabs and their widgets, as twenty-server
2.21 makes and checks them (page-layout*, page-layout-widget validators), plus the parts of a
table widget's view (sorts, filters) and a view's Kanban aggregate.

A dashboard is a DASHBOARD page layout named by a `dashboard` record (data API); a fresh
workspace has "My First Dashboard". Every item carries createdAt/updatedAt; an edit in the UI
(`updatePageLayoutWithTabsAndWidgets`) stamps the layout and whatever it changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TwentyError, not_found

if TYPE_CHECKING:
    from .workspace import Meta, Workspace

GRID_COLUMNS = 12
GRID_ROWS = 100
WIDGET_TYPES = {"GRAPH", "FIELD", "FIELDS", "RECORD_TABLE", "IFRAME", "STANDALONE_RICH_TEXT", "TIMELINE", "VIEW"}
GRAPH_NEEDS = {
    "AGGREGATE_CHART": ("aggregateFieldMetadataId", "aggregateOperation"),
    "BAR_CHART": ("aggregateFieldMetadataId", "aggregateOperation", "primaryAxisGroupByFieldMetadataId", "layout"),
    "LINE_CHART": ("aggregateFieldMetadataId", "aggregateOperation", "primaryAxisGroupByFieldMetadataId"),
    "PIE_CHART": ("aggregateFieldMetadataId", "aggregateOperation", "groupByFieldMetadataId"),
}
FIELD_IDS = (
    "aggregateFieldMetadataId",
    "primaryAxisGroupByFieldMetadataId",
    "secondaryAxisGroupByFieldMetadataId",
    "groupByFieldMetadataId",
)
TYPENAMES = {
    "AGGREGATE_CHART": "AggregateChartConfiguration",
    "BAR_CHART": "BarChartConfiguration",
    "LINE_CHART": "LineChartConfiguration",
    "PIE_CHART": "PieChartConfiguration",
    "RECORD_TABLE": "RecordTableConfiguration",
    "FIELD": "FieldConfiguration",
    "FIELDS": "FieldsConfiguration",
    "IFRAME": "IframeConfiguration",
    "STANDALONE_RICH_TEXT": "StandaloneRichTextConfiguration",
    "TIMELINE": "TimelineConfiguration",
}


def _invalid(message: str) -> TwentyError:
    return TwentyError(message, "BAD_USER_INPUT")


def _common(ws: Workspace) -> dict[str, Any]:
    from .workspace import new_id, now_iso

    stamp = now_iso()
    return {
        "universalIdentifier": new_id(),
        "applicationId": ws.application_id,
        "isSystemSideEffect": False,
        "createdAt": stamp,
        "updatedAt": stamp,
        "deletedAt": None,
        "isActive": True,
    }


def require_layout(ws: Workspace, layout_id: str) -> Meta:
    for layout in ws.page_layouts:
        if layout["id"] == layout_id and layout["deletedAt"] is None:
            return layout
    raise not_found(f"Page layout {layout_id} not found")


def _require_tab(ws: Workspace, tab_id: str) -> tuple[Meta, Meta]:
    for layout in ws.page_layouts:
        for tab in layout["tabs"]:
            if tab["id"] == tab_id and tab["deletedAt"] is None:
                return layout, tab
    raise not_found(f"Page layout tab {tab_id} not found")


def create_page_layout(ws: Workspace, data: dict[str, Any]) -> Meta:
    from .workspace import new_id

    name = str(data.get("name") or "").strip()
    if not name:
        raise _invalid("Page layout name is required")
    layout_type = data.get("type") or "RECORD_PAGE"
    object_id = data.get("objectMetadataId")
    if object_id is not None:
        ws.require_object(str(object_id))
    layout = {
        "id": new_id(),
        **_common(ws),
        "name": name,
        "type": layout_type,
        "objectMetadataId": object_id,
        "tabs": [],
        "defaultTabToFocusOnMobileAndSidePanelId": None,
        "isFirstTabPinned": False,
    }
    ws.page_layouts.append(layout)
    return layout


def create_tab(ws: Workspace, data: dict[str, Any]) -> Meta:
    from .workspace import new_id

    layout = require_layout(ws, str(data.get("pageLayoutId")))
    title = str(data.get("title") or "").strip()
    if not title:
        raise _invalid("Page layout tab title is required")
    position = data.get("position")
    if position is None:
        position = max((t["position"] for t in layout["tabs"]), default=-1) + 1
    tab = {
        "id": new_id(),
        **_common(ws),
        "title": title,
        "position": position,
        "pageLayoutId": layout["id"],
        "widgets": [],
        "icon": None,
        "layoutMode": data.get("layoutMode") or "GRID",
    }
    layout["tabs"].append(tab)
    return tab


def create_widget(ws: Workspace, data: dict[str, Any]) -> Meta:
    from .workspace import new_id

    _layout, tab = _require_tab(ws, str(data.get("pageLayoutTabId")))
    title = str(data.get("title") or "").strip()
    if not title:
        raise _invalid("Widget title is required")
    widget_type = data.get("type")
    if widget_type not in WIDGET_TYPES:
        raise _invalid(f"Widget type {widget_type} is not supported by the fake")
    object_id = data.get("objectMetadataId")
    if object_id is not None:
        ws.require_object(str(object_id))
    grid = data.get("gridPosition") or _grid_of(data.get("position"))
    if tab["layoutMode"] == "GRID":
        _check_grid(title, grid)
    config = dict(data.get("configuration") or {})
    _check_configuration(ws, widget_type, object_id, config)
    config["__typename"] = TYPENAMES.get(str(config.get("configurationType")), "TimelineConfiguration")
    widget = {
        "id": new_id(),
        **_common(ws),
        "pageLayoutTabId": tab["id"],
        "title": title,
        "type": widget_type,
        "objectMetadataId": object_id,
        "gridPosition": grid,
        "position": data.get("position"),
        "configuration": config,
        "conditionalDisplay": None,
        "conditionalAvailabilityExpression": None,
    }
    tab["widgets"].append(widget)
    return widget


def _grid_of(position: Any) -> dict[str, Any] | None:
    """2.43 takes the grid inside `position`; 2.21 takes `gridPosition` (Floats) as well."""
    if isinstance(position, dict) and position.get("layoutMode") == "GRID":
        return {k: position.get(k) for k in ("row", "column", "rowSpan", "columnSpan")}
    return None


def _check_grid(title: str, grid: Any) -> None:
    keys = ("row", "column", "rowSpan", "columnSpan")
    if not isinstance(grid, dict) or any(not isinstance(grid.get(k), int | float) for k in keys):
        raise _invalid(f"Widget {title}: a grid position (row, column, rowSpan, columnSpan) is required")
    if grid["column"] + grid["columnSpan"] > GRID_COLUMNS or grid["row"] >= GRID_ROWS:
        raise _invalid(f"Widget {title}: widget extends beyond grid width")


def _check_configuration(ws: Workspace, widget_type: str, object_id: Any, config: dict[str, Any]) -> None:
    kind = config.get("configurationType")
    if not kind:
        raise _invalid("Invalid configuration: missing configuration type")
    if widget_type == "GRAPH":
        needs = GRAPH_NEEDS.get(str(kind))
        if needs is None:
            raise _invalid(f"Invalid configuration type {kind} for a GRAPH widget")
        missing = [k for k in needs if config.get(k) in (None, "")]
        if missing:
            raise _invalid(f"Invalid configuration: {', '.join(missing)} should not be empty")
        for key in FIELD_IDS:
            if config.get(key) is not None:
                _field_of(ws, object_id, str(config[key]))
        ratio = config.get("ratioAggregateConfig")
        if ratio is not None:
            _field_of(ws, object_id, str(ratio.get("fieldMetadataId")))
        for flt in (config.get("filter") or {}).get("recordFilters") or []:
            _field_of(ws, object_id, str(flt.get("fieldMetadataId")))
            if not isinstance(flt.get("value"), str):
                raise _invalid("Invalid configuration: a filter's value is a string")
    elif widget_type == "FIELD":
        if kind != "FIELD" or not config.get("fieldMetadataId") or not config.get("fieldDisplayMode"):
            raise _invalid("Invalid configuration: fieldMetadataId and fieldDisplayMode are required")
        _field_of(ws, object_id, str(config["fieldMetadataId"]))
        if config.get("viewId") is not None:
            ws.require_view(str(config["viewId"]))
    elif widget_type == "RECORD_TABLE":
        if kind != "RECORD_TABLE" or not config.get("viewId"):
            raise _invalid("Invalid configuration: viewId is required")
        ws.require_view(str(config["viewId"]))


def _field_of(ws: Workspace, object_id: Any, field_id: str) -> Meta:
    field = ws.field_by_id(field_id)
    if field is None or field["objectMetadataId"] != object_id:
        raise _invalid(f"Field metadata {field_id} does not belong to the widget's object")
    return field


def update_with_tabs(ws: Workspace, layout_id: str, data: dict[str, Any]) -> Meta:
    """What the UI's Save sends: the whole layout. Tabs and widgets not listed are deleted; the
    layout and what changed are stamped (twenty-server PageLayoutUpdateService)."""
    from .workspace import now_iso

    layout = require_layout(ws, layout_id)
    stamp = now_iso()
    layout["name"] = data.get("name", layout["name"])
    layout["updatedAt"] = stamp
    listed = {t["id"]: t for t in data.get("tabs") or []}
    for tab in layout["tabs"]:
        wanted = listed.get(tab["id"])
        if wanted is None:
            tab["deletedAt"], tab["updatedAt"] = stamp, stamp
            continue
        if (wanted.get("title"), wanted.get("position")) != (tab["title"], tab["position"]):
            tab.update(title=wanted.get("title"), position=wanted.get("position"), updatedAt=stamp)
        widgets = {w["id"]: w for w in wanted.get("widgets") or []}
        for widget in tab["widgets"]:
            change = widgets.get(widget["id"])
            if change is None:
                widget["deletedAt"], widget["updatedAt"] = stamp, stamp
            elif change.get("title") != widget["title"] or change.get("position") != widget["position"]:
                widget.update(title=change.get("title"), position=change.get("position"), updatedAt=stamp)
    return layout


def create_view_sort(ws: Workspace, data: dict[str, Any]) -> Meta:
    from .workspace import new_id

    view = ws.require_view(str(data.get("viewId")))
    field = ws.require_field(str(data.get("fieldMetadataId")))
    if field["objectMetadataId"] != view["objectMetadataId"]:
        raise _invalid("The sort's field is not a field of the view's object")
    sort = {"id": new_id(), **_common(ws), "viewId": view["id"], "fieldMetadataId": field["id"]}
    sort |= {"direction": data.get("direction") or "ASC", "subFieldName": data.get("subFieldName")}
    ws.view_sorts.append(sort)
    return sort


def create_view_filter(ws: Workspace, data: dict[str, Any]) -> Meta:
    from .workspace import new_id

    view = ws.require_view(str(data.get("viewId")))
    field = ws.require_field(str(data.get("fieldMetadataId")))
    if field["objectMetadataId"] != view["objectMetadataId"]:
        raise _invalid("The filter's field is not a field of the view's object")
    view_filter = {"id": new_id(), **_common(ws), "viewId": view["id"], "fieldMetadataId": field["id"]}
    view_filter |= {"operand": data.get("operand") or "IS", "value": data.get("value")}
    view_filter |= {"viewFilterGroupId": data.get("viewFilterGroupId"), "subFieldName": data.get("subFieldName")}
    ws.view_filters.append(view_filter)
    return view_filter


def update_view(ws: Workspace, view_id: str, data: dict[str, Any]) -> Meta:
    from .workspace import now_iso

    view = ws.require_view(view_id)
    field_id = data.get("kanbanAggregateOperationFieldMetadataId")
    if field_id is not None:
        field = ws.require_field(str(field_id))
        if field["objectMetadataId"] != view["objectMetadataId"]:
            raise _invalid("The aggregate's field is not a field of the view's object")
    for key in ("name", "icon", "kanbanAggregateOperation", "kanbanAggregateOperationFieldMetadataId", "position"):
        if key in data:
            view[key] = data[key]
    view["updatedAt"] = now_iso()
    return view


def seed_first_dashboard(ws: Workspace) -> None:
    """A fresh 2.x workspace's "My First Dashboard": a layout named so, one tab, a chart, and
    the `dashboard` record that lists it."""
    from .workspace import new_id, now_iso

    layout = create_page_layout(ws, {"name": "My First Dashboard", "type": "DASHBOARD"})
    tab = create_tab(ws, {"pageLayoutId": layout["id"], "title": "Tab 1", "position": 0, "layoutMode": "GRID"})
    opportunity = ws.object("opportunity")
    assert opportunity is not None
    amount, stage = ws.field(opportunity, "amount"), ws.field(opportunity, "stage")
    assert amount is not None and stage is not None
    create_widget(
        ws,
        {
            "pageLayoutTabId": tab["id"],
            "title": "Pipeline Value by Stage",
            "type": "GRAPH",
            "objectMetadataId": opportunity["id"],
            "gridPosition": {"row": 6, "column": 0, "rowSpan": 6, "columnSpan": 6},
            "configuration": {
                "configurationType": "BAR_CHART",
                "aggregateFieldMetadataId": amount["id"],
                "aggregateOperation": "SUM",
                "primaryAxisGroupByFieldMetadataId": stage["id"],
                "layout": "VERTICAL",
            },
        },
    )
    dashboard = ws.object("dashboard")
    assert dashboard is not None
    record = ws.blank_record(dashboard)
    stamp = now_iso()
    record.update(id=new_id(), title="My First Dashboard", pageLayoutId=layout["id"], position=0)
    record.update(createdAt=stamp, updatedAt=stamp, deletedAt=None)
    record["createdBy"] = {"source": "SYSTEM", "workspaceMemberId": None, "name": "System", "context": {}}
    record["updatedBy"] = dict(record["createdBy"])
    ws.records_of(dashboard)[record["id"]] = record
