"""The fake 2.x workspace's views as a fresh Twenty workspace has them, and their side effects.
(1.x keeps its views as records of the workspace: view_records.py.)

* Standard list views ("All …", key INDEX) with Twenty's own columns, and a "By Stage" Kanban
  of opportunities with its card fields.
* 2.x record pages: a RECORD_PAGE page layout whose FIELDS widget shows a FIELDS_WIDGET view;
  that view's field groups are the page's sections, "System" last.
* 2.x side effects: a new field gets a view field in each FIELDS widget's view, in the last
  section (twenty-server `computeFlatViewFieldsFromFieldsWidgets`; observed: the Whop fields
  land under "System"), and a hidden one at the end of its object's list view (observed on
  2.21: the bridge's columns were there, hidden, before it added any); options added to a
  SELECT get a Kanban column in every view grouped by it, and removed options lose theirs
  (`recomputeViewGroupsOnFlatFieldMetadataOptionsUpdate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .workspace import Meta, Workspace

# Twenty's own columns of the standard list views and the fields on a "By Stage" card.
INDEX_COLUMNS = {
    "person": ["name", "emails", "company", "phones", "createdBy", "city", "jobTitle", "linkedinLink", "xLink"],
    "company": ["name", "domainName", "createdBy", "accountOwner", "employees", "linkedinLink", "address"],
    "opportunity": ["name", "amount", "createdBy", "closeDate", "company", "pointOfContact", "stage"],
}
BY_STAGE_CARDS = ["amount", "closeDate", "company", "pointOfContact", "createdBy"]

# 2.x record pages: sections and the fields in each, "System" last (where new fields go).
RECORD_PAGE_SECTIONS = {
    "person": [
        ("General", ["emails", "phones", "city", "avatarUrl"]),
        ("Work", ["company", "jobTitle"]),
        ("Social", ["linkedinLink", "xLink"]),
        ("System", ["createdAt", "updatedAt", "createdBy"]),
    ],
    "company": [
        ("General", ["domainName", "employees", "address", "annualRecurringRevenue", "idealCustomerProfile"]),
        ("Social", ["linkedinLink"]),
        ("Relations", ["accountOwner", "people", "opportunities"]),
        ("System", ["createdAt", "updatedAt", "createdBy"]),
    ],
    "opportunity": [
        ("General", ["amount", "closeDate", "stage"]),
        ("Relations", ["company", "pointOfContact", "owner"]),
        ("System", ["createdAt", "updatedAt", "createdBy"]),
    ],
}


def seed_standard_views(ws: Workspace) -> None:
    """Run after the standard objects and their index views exist."""
    for name, columns in INDEX_COLUMNS.items():
        obj = ws.object(name)
        index = next(v for v in ws.views if obj and v["objectMetadataId"] == obj["id"] and v["key"] == "INDEX")
        _show(ws, index, columns)
    opportunity = ws.object("opportunity")
    assert opportunity is not None
    stage = ws.field(opportunity, "stage")
    assert stage is not None
    board: dict[str, Any] = {"name": "By Stage", "objectMetadataId": opportunity["id"], "type": "KANBAN"}
    board |= {"icon": "IconLayoutKanban", "position": 1, "mainGroupByFieldMetadataId": stage["id"]}
    view = ws.create_view(board)
    view["isCustom"] = False
    _show(ws, view, BY_STAGE_CARDS)
    for name, sections in RECORD_PAGE_SECTIONS.items():
        _record_page(ws, name, sections)


def _show(ws: Workspace, view: Meta, names: list[str], group_id: str | None = None) -> None:
    obj = ws.require_object(view["objectMetadataId"])
    for name in names:
        found = ws.field(obj, name)
        if found is not None:
            position = len([f for f in ws.view_fields if f["viewId"] == view["id"]])
            data = {"viewId": view["id"], "fieldMetadataId": found["id"], "position": position, "size": 180}
            ws.create_view_field(data | ({"viewFieldGroupId": group_id} if group_id else {}))


def _record_page(ws: Workspace, name: str, sections: list[tuple[str, list[str]]]) -> None:
    obj = ws.object(name)
    assert obj is not None
    view = ws.create_view(
        {
            "name": f"{obj['labelSingular']} Record Page Fields",
            "objectMetadataId": obj["id"],
            "type": "FIELDS_WIDGET",
            "icon": "IconList",
        }
    )
    view["isCustom"] = False
    for position, (title, names) in enumerate(sections):
        group = ws.create_view_field_group({"viewId": view["id"], "name": title, "position": position})
        _show(ws, view, names, group["id"])
    ws.page_layouts.append(_layout(ws, obj, view))


def _layout(ws: Workspace, obj: Meta, view: Meta) -> Meta:
    from .workspace import new_id, now_iso

    stamp = now_iso()
    layout_id, tab_id = new_id(), new_id()
    common = {"universalIdentifier": new_id(), "applicationId": ws.application_id, "isSystemSideEffect": False}
    common |= {"createdAt": stamp, "updatedAt": stamp, "deletedAt": None}
    widget = {
        "id": new_id(),
        **common,
        "pageLayoutTabId": tab_id,
        "title": "Fields",
        "type": "FIELDS",
        "objectMetadataId": obj["id"],
        "position": None,
        "configuration": {
            "__typename": "FieldsConfiguration",
            "configurationType": "FIELDS",
            "viewId": view["id"],
            "newFieldDefaultVisibility": True,
            "shouldAllowUserToSeeHiddenFields": True,
        },
        "isActive": True,
    }
    tab = {"id": tab_id, **common, "title": "Home", "position": 10, "pageLayoutId": layout_id, "widgets": [widget]}
    tab |= {"icon": "IconHome", "layoutMode": "VERTICAL_LIST", "isActive": True}
    tabs = [tab]
    # Twenty's other standard tabs (TAB_PROPS), each one widget of its own kind.
    for position, title in ((20, "Timeline"), (30, "Tasks"), (40, "Notes"), (50, "Files"), (60, "Emails")):
        other_id = new_id()
        kind = title.upper()
        only = {"id": new_id(), **common, "pageLayoutTabId": other_id, "title": title, "type": kind}
        only |= {"objectMetadataId": None, "position": None, "isActive": True}
        only["configuration"] = {"__typename": f"{title}Configuration", "configurationType": kind}
        tabs.append(
            {"id": other_id, **common, "title": title, "position": position, "pageLayoutId": layout_id}
            | {"widgets": [only], "icon": None, "layoutMode": "CANVAS", "isActive": True}
        )
    return {
        "id": layout_id,
        **common,
        "name": f"Default {obj['labelSingular']} Layout",
        "type": "RECORD_PAGE",
        "objectMetadataId": obj["id"],
        "tabs": tabs,
        "defaultTabToFocusOnMobileAndSidePanelId": None,
        "isFirstTabPinned": False,
    }


def fields_widgets(ws: Workspace, object_id: str) -> list[Meta]:
    return [
        widget
        for layout in ws.page_layouts
        for tab in layout["tabs"]
        for widget in tab["widgets"]
        if widget["type"] == "FIELDS" and widget["objectMetadataId"] == object_id
    ]


def file_new_fields(ws: Workspace, fields: list[Meta]) -> None:
    """2.x: each new field gets a view field in the last section of each FIELDS widget's view,
    and a hidden column at the end of its object's standard list (twenty-server 2.21
    `computeFlatViewFieldsFromFieldsWidgets`: INDEX views get `isVisible: false`)."""
    if ws.dialect != "2.x":
        return
    for field in fields:
        for view in ws.views:
            if view["key"] == "INDEX" and view["objectMetadataId"] == field["objectMetadataId"]:
                last = max((f["position"] for f in ws.view_fields if f["viewId"] == view["id"]), default=-1)
                ws.create_view_field(
                    {"viewId": view["id"], "fieldMetadataId": field["id"], "position": last + 1}
                    | {"isVisible": False, "size": 180}
                )
    for field in fields:
        for widget in fields_widgets(ws, field["objectMetadataId"]):
            config = widget["configuration"]
            if not config.get("viewId") or config.get("newFieldDefaultVisibility") is None:
                continue
            view_id = config["viewId"]
            groups = [g for g in ws.view_field_groups if g["viewId"] == view_id and g["deletedAt"] is None]
            last = max(groups, key=lambda g: g["position"])["id"] if groups else None
            siblings = [
                f["position"] for f in ws.view_fields if f["viewId"] == view_id and f["viewFieldGroupId"] == last
            ]
            data: dict[str, Any] = {"viewId": view_id, "fieldMetadataId": field["id"], "viewFieldGroupId": last}
            data |= {"position": max(siblings, default=-1) + 1, "isVisible": config["newFieldDefaultVisibility"]}
            ws.create_view_field(data)


def list_new_fields(ws: Workspace, fields: list[Meta]) -> None:
    """2.x (observed on 2.21): each new field gets a view field at the end of its object's
    standard list view, hidden (`isVisible: false`), as Twenty made it: never updated since."""
    if ws.dialect != "2.x":
        return
    for field in fields:
        for view in ws.views:
            if view["objectMetadataId"] != field["objectMetadataId"] or view.get("key") != "INDEX":
                continue
            if any(f["viewId"] == view["id"] and f["fieldMetadataId"] == field["id"] for f in ws.view_fields):
                continue
            positions = [f["position"] for f in ws.view_fields if f["viewId"] == view["id"]]
            data = {"viewId": view["id"], "fieldMetadataId": field["id"], "isVisible": False}
            ws.create_view_field(data | {"position": max(positions, default=-1) + 1, "size": 180})


def recompute_columns(ws: Workspace, field: Meta, before: list[Meta]) -> None:
    """2.x: Kanbans grouped by `field` follow its options (compared by option id)."""
    if ws.dialect != "2.x":
        return
    old = {o["id"]: o for o in before}
    new = {o["id"]: o for o in field["options"] or []}
    for view in ws.views:
        if view.get("mainGroupByFieldMetadataId") != field["id"]:
            continue
        groups = [g for g in ws.view_groups if g["viewId"] == view["id"]]
        if not groups:
            continue
        gone = {old[i]["value"] for i in old if i not in new}
        renamed = {old[i]["value"]: new[i]["value"] for i in old if i in new and old[i]["value"] != new[i]["value"]}
        ws.view_groups = [g for g in ws.view_groups if g["viewId"] != view["id"] or g["fieldValue"] not in gone]
        for group in ws.view_groups:
            if group["viewId"] == view["id"] and group["fieldValue"] in renamed:
                group["fieldValue"] = renamed[group["fieldValue"]]
        top = max((g["position"] for g in groups), default=-1)
        added = [new[i] for i in new if i not in old]
        for index, option in enumerate(added):
            ws.create_view_group({"viewId": view["id"], "fieldValue": option["value"], "position": top + index + 1})
