"""Dashboards and record-page tabs (Twenty 2.x page layouts): read, plan, make.

The bridge finds its own again by a stable name: a dashboard by its page layout's name (the
`key`; a person's dashboards are named by Twenty, "Dashboard Layout"), a record-page tab by
its title on the object's record page. It never changes or removes anything there. It adds a
widget schema/ declares only while the page is as the bridge left it: once anyone has changed
the page (Twenty stamps `updatedAt` on each change), it is theirs and is left alone.

A dashboard is a page layout of type DASHBOARD (one tab of widgets) plus a `dashboard` record
that names it (the Dashboards list shows the records); the record goes through the data API.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.twenty import documents as docs
from bridge.twenty.metadata import LiveObject, MetadataClient, NewViewField, parse_time
from bridge.twenty.schema import DataModel, relation_target
from bridge.twenty.widgets import FieldIds, PageSpec, WidgetSpec, filter_value, graph_configuration, grid_position

log = logging.getLogger(__name__)

SLACK_SECONDS = 2.0  # Twenty stamps createdAt and updatedAt apart when it makes an item
# A table widget's columns: the record's name wide enough to read (a payment's name is
# "2026-08-31 · $49.00 · Succeeded · Signals Pro"), the others narrow, so most fit a record tab.
TABLE_NAME_SIZE = 260
TABLE_COLUMN_SIZE = 130


# What the workspace has ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveWidget:
    id: str
    title: str
    type: str
    view_id: str | None


@dataclass(frozen=True)
class LiveTab:
    id: str
    title: str
    position: float
    layout_mode: str | None
    widgets: tuple[LiveWidget, ...]
    untouched: bool  # nobody changed the tab or a widget on it after the last was made
    deleted: bool


@dataclass(frozen=True)
class LivePage:
    id: str
    name: str
    type: str
    object_id: str | None
    tabs: tuple[LiveTab, ...]
    untouched: bool  # nobody changed the layout, a tab or a widget after the last was made


def parse_page(node: dict[str, Any]) -> LivePage:
    tabs = tuple(_parse_tab(t) for t in node.get("tabs") or [])
    nodes = [node, *(t for t in node.get("tabs") or []), *_widget_nodes(node)]
    return LivePage(
        id=node["id"],
        name=str(node.get("name") or ""),
        type=str(node.get("type") or ""),
        object_id=node.get("objectMetadataId"),
        tabs=tuple(sorted(tabs, key=lambda t: t.position)),
        untouched=_settled(nodes),
    )


def _widget_nodes(layout: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for t in layout.get("tabs") or [] for w in t.get("widgets") or []]


def _parse_tab(node: dict[str, Any]) -> LiveTab:
    widgets = tuple(
        LiveWidget(w["id"], str(w.get("title") or ""), str(w.get("type") or ""), _view_id(w))
        for w in node.get("widgets") or []
        if not _deleted(w)
    )
    return LiveTab(
        id=node["id"],
        title=str(node.get("title") or ""),
        position=float(node.get("position") or 0),
        layout_mode=node.get("layoutMode"),
        widgets=widgets,
        untouched=_settled([node, *(node.get("widgets") or [])]),
        deleted=_deleted(node),
    )


def _view_id(widget: dict[str, Any]) -> str | None:
    view_id = (widget.get("configuration") or {}).get("viewId")
    return str(view_id) if view_id else None


def _deleted(node: dict[str, Any]) -> bool:
    return bool(node.get("deletedAt")) or node.get("isActive") is False


def _settled(nodes: list[dict[str, Any]]) -> bool:
    """Nothing among these items changed after the last of them was made (the bridge makes a
    page's items in one run, seconds apart; a person's edit comes later and stamps updatedAt)."""
    made = [t for n in nodes if (t := parse_time(n.get("createdAt"))) is not None]
    changed = [t for n in nodes if (t := parse_time(n.get("updatedAt"))) is not None]
    if not made or not changed:
        return False
    return (max(changed) - max(made)).total_seconds() <= SLACK_SECONDS


class DashboardRecords(Protocol):
    """The `dashboard` records (data API) that name page layouts in the Dashboards list."""

    async def by_layout(self, layout_ids: list[str]) -> dict[str, str]:
        """layout id -> "live" or "deleted" (in the trash), for the layouts that have a record."""
        ...

    async def create(self, title: str, layout_id: str) -> None: ...


@dataclass
class LivePages:
    """The page layouts provisioning reads once: DASHBOARD ones, and each object's record page."""

    dashboards: list[LivePage] = field(default_factory=list)
    records: dict[str, str] = field(default_factory=dict)  # dashboard layout id -> live / deleted
    record_pages: dict[str, list[LivePage]] = field(default_factory=dict)  # by object name


# Planning (pure) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PagePlan:
    status: str  # create | present | manual | unsupported
    detail: str
    missing: tuple[str, ...] = ()  # widget titles to add
    make_page: bool = False  # the layout (dashboard) or the tab (record page) itself
    make_record: bool = False  # the dashboard record


def find_dashboard(spec: PageSpec, live: LivePages) -> LivePage | None:
    return next((p for p in live.dashboards if p.name == spec.key), None)


def find_tab(spec: PageSpec, live: LivePages) -> tuple[LivePage | None, LiveTab | None]:
    pages = live.record_pages.get(str(spec.object), [])
    for page in pages:
        for tab in page.tabs:
            if tab.title == spec.title:
                return page, tab
    return (pages[0] if pages else None), None


def plan_dashboard(spec: PageSpec, live: LivePages | None, unavailable: dict[str, str]) -> PagePlan:
    """`unavailable`: widget title -> why it cannot be made here (a field this workspace lacks)."""
    if live is None:
        return PagePlan("unsupported", "this Twenty version has no dashboards (2.x has them): nothing to do")
    titles = [w.title for w in spec.widgets if w.title not in unavailable]
    left_out = _left_out(unavailable)
    page = find_dashboard(spec, live)
    if page is None:
        return PagePlan(
            "create",
            _join(f"create the dashboard {spec.title!r} with {len(titles)} widget(s)", left_out),
            tuple(titles),
            make_page=True,
            make_record=True,
        )
    record = live.records.get(page.id)
    if record == "deleted":
        return PagePlan("present", "deleted in Twenty (it is in the trash): left as it is")
    have = {w.title for t in page.tabs for w in t.widgets}
    missing = tuple(t for t in titles if t not in have)
    if missing and not page.untouched:
        return PagePlan("present", _changed(missing))
    notes = [f"add widget(s): {', '.join(missing)}"] if missing else []
    notes += ["add its entry to the Dashboards list"] if record is None else []
    if not notes:
        return PagePlan("present", left_out)
    return PagePlan("create", _join("; ".join(notes), left_out), missing, make_record=record is None)


def plan_tab(spec: PageSpec, live: LivePages | None, unavailable: dict[str, str]) -> PagePlan:
    if live is None:
        return PagePlan(
            "unsupported",
            f"this Twenty version has no record-page tabs: the {spec.object} page shows the Whop "
            "fields and relations with the others; nothing to do",
        )
    titles = [w.title for w in spec.widgets if w.title not in unavailable]
    left_out = _left_out(unavailable)
    page, tab = find_tab(spec, live)
    if page is None:
        return PagePlan(
            "manual",
            f"the {spec.object} record page has no page layout to add a tab to; in Twenty, add a tab "
            f"{spec.title!r} with the related records as tables",
        )
    if tab is None and not page.untouched:
        # A person edited this record page (perhaps removing the bridge's tab): it is theirs.
        return PagePlan(
            "manual",
            f"the {spec.object} record page was changed in Twenty, so the bridge leaves it as it is; to have "
            f"the tab {spec.title!r}, add it in Twenty with {', '.join(titles)} as tables",
        )
    if tab is None:
        return PagePlan(
            "create",
            _join(f"add the tab {spec.title!r} with {', '.join(titles)}", left_out),
            tuple(titles),
            make_page=True,
        )
    if tab.deleted:
        return PagePlan("present", "deleted in Twenty: left as it is")
    have = {w.title for w in tab.widgets}
    missing = tuple(t for t in titles if t not in have)
    if missing and not tab.untouched:
        return PagePlan("present", _changed(missing))
    if missing:
        return PagePlan("create", _join(f"add widget(s): {', '.join(missing)}", left_out), missing)
    return PagePlan("present", left_out)


def _changed(missing: tuple[str, ...]) -> str:
    return f"changed in Twenty since the bridge made it, so it is left as it is (not added: {', '.join(missing)})"


def _left_out(unavailable: dict[str, str]) -> str:
    return "; ".join(f"{title} left out: {why}" for title, why in unavailable.items())


def _join(first: str, second: str) -> str:
    return "; ".join(p for p in (first, second) if p)


def unavailable_widgets(
    model: DataModel, page: PageSpec, live: dict[str, LiveObject], planned: dict[str, set[str]]
) -> dict[str, str]:
    """Widgets naming a field that neither the workspace has nor provisioning makes (a standard
    field this workspace lacks), with why: they are left out, the rest is made. `planned`: the
    fields provisioning creates, by object."""

    def has(obj: str, name: str) -> bool:
        found = live[obj].fields.get(name) if obj in live else None
        return (found is not None and found.is_active) or name in planned.get(obj, set())

    out: dict[str, str] = {}
    for w in page.widgets:
        needed = [(w.object, n) for n in w.field_names()]
        if w.chart == "RELATION_TABLE":
            relation = live[w.object].fields.get(str(w.relation)) if w.object in live else None
            target = relation_target(model, w.object, str(w.relation)) or (
                relation.relation_target if relation else None
            )
            if target:
                needed += [(target, n) for n in (*w.columns, *([w.sort[0]] if w.sort else []))]
        lacking = [f"{o}.{n}" for o, n in needed if not has(o, n)]
        if lacking:
            out[w.title] = "not in this workspace: " + ", ".join(dict.fromkeys(lacking))
    return out


# Making ------------------------------------------------------------------------------------


class PageMaker:
    """Makes dashboards and record-page tabs; `ids` maps every live field by object and name."""

    def __init__(
        self,
        meta: MetadataClient,
        ids: FieldIds,
        object_ids: dict[str, str],
        relations: dict[tuple[str, str], tuple[str, str]],
    ) -> None:
        self.meta = meta
        self.ids = ids
        self.object_ids = object_ids
        # (object, relation field) -> (target object, the target's field pointing back)
        self.relations = relations
        self._widget_input = meta.input_fields("CreatePageLayoutWidgetInput")

    async def dashboard(self, spec: PageSpec, live: LivePages, plan: PagePlan, records: DashboardRecords | None) -> int:
        """Make what `plan` says is missing; returns how many data-API writes it made."""
        page = find_dashboard(spec, live)
        layout_id = page.id if page else await self._create_layout(str(spec.key))
        tab_id = page.tabs[0].id if page and page.tabs else None
        if tab_id is None:
            tab_id = await self._create_tab(layout_id, spec.tab, 0, "GRID")
        for w in spec.widgets:
            if w.title in plan.missing:
                await self.widget(tab_id, w, "GRID", index=0)
        if plan.make_record and records is not None:
            await records.create(spec.title, layout_id)
            return 1
        return 0

    async def tab(self, spec: PageSpec, live: LivePages, plan: PagePlan) -> None:
        page, tab = find_tab(spec, live)
        if page is None:
            return
        tab_id = (
            tab.id
            if tab
            else await self._create_tab(page.id, spec.title, tab_position(page, spec.after), "VERTICAL_LIST")
        )
        index = len(tab.widgets) if tab else 0
        for w in spec.widgets:
            if w.title in plan.missing:
                await self.widget(tab_id, w, "VERTICAL_LIST", index=index)
                index += 1

    async def _create_layout(self, name: str) -> str:
        data = await self.meta.execute(
            docs.CREATE_PAGE_LAYOUT,
            {"input": {"name": name, "type": "DASHBOARD"}},
            operation=f"create the dashboard layout {name}",
        )
        return str(data["createPageLayout"]["id"])

    async def _create_tab(self, layout_id: str, title: str, position: float, mode: str) -> str:
        data = await self.meta.execute(
            docs.CREATE_PAGE_LAYOUT_TAB,
            {"input": {"pageLayoutId": layout_id, "title": title, "position": position, "layoutMode": mode}},
            operation=f"create the tab {title}",
        )
        return str(data["createPageLayoutTab"]["id"])

    async def widget(self, tab_id: str, w: WidgetSpec, mode: str, *, index: int) -> None:
        if w.chart == "TABLE":
            view_id = await self.table_view(w.object, w, current_record_field=None)
            config: dict[str, Any] = {"configurationType": "RECORD_TABLE", "viewId": view_id}
            object_id = self.object_ids[w.object]
        elif w.chart == "RELATION_TABLE":
            target, back = self.relations[(w.object, str(w.relation))]
            view_id = await self.table_view(target, w, current_record_field=back)
            config = {
                "configurationType": "FIELD",
                "fieldMetadataId": self.ids.id(w.object, str(w.relation)),
                "fieldDisplayMode": "TABLE",
                "viewId": view_id,
            }
            object_id = self.object_ids[w.object]
        else:
            config = graph_configuration(w, self.ids)
            object_id = self.object_ids[w.object]
        data: dict[str, Any] = {
            "pageLayoutTabId": tab_id,
            "title": w.title,
            "type": w.widget_type,
            "objectMetadataId": object_id,
            "configuration": config,
        }
        grid = grid_position(w)
        if "gridPosition" in self._widget_input:  # 2.21 requires it; later 2.x dropped it
            data["gridPosition"] = grid
        if "position" in self._widget_input:
            where = {"layoutMode": "GRID", **grid} if mode == "GRID" else {"layoutMode": mode, "index": index}
            data["position"] = where
        await self.meta.execute(docs.CREATE_PAGE_LAYOUT_WIDGET, {"input": data}, operation=f"add the widget {w.title}")

    async def table_view(self, obj: str, w: WidgetSpec, *, current_record_field: str | None) -> str:
        """A view of its own for a table widget (type TABLE_WIDGET: never among the object's
        views): the declared columns, sort and filters, and for a relation table only the
        records of the page's record."""
        data = await self.meta.execute(
            docs.CREATE_VIEW[self.meta.dialect],
            {
                "input": {
                    "name": w.title,
                    "objectMetadataId": self.object_ids[obj],
                    "type": "TABLE_WIDGET",
                    "icon": "IconTable",
                    "visibility": "WORKSPACE",
                }
            },
            operation=f"create the view of {w.title}",
        )
        view_id = str(data["createView"]["id"])
        fields = [
            NewViewField(
                self.ids.id(obj, name), float(i), size=TABLE_NAME_SIZE if name == "name" else TABLE_COLUMN_SIZE
            )
            for i, name in enumerate(w.columns)
            if self.ids.has(obj, name)
        ]
        await self.meta.create_view_fields(view_id, fields, name=f"the view of {w.title}")
        if current_record_field:
            value = json.dumps({"selectedRecordIds": [], "isCurrentRecordSelected": True})
            await self._filter(view_id, self.ids.id(obj, current_record_field), "IS", value, w.title)
        elif w.chart == "TABLE":
            for f in w.filters:
                field_id = self.ids.id(obj, f.field)
                await self._filter(view_id, field_id, f.op, filter_value(f, self.ids.types.get(field_id, "")), w.title)
        if w.sort:
            await self.meta.execute(
                docs.CREATE_VIEW_SORT,
                {"input": {"viewId": view_id, "fieldMetadataId": self.ids.id(obj, w.sort[0]), "direction": w.sort[1]}},
                operation=f"sort the view of {w.title}",
            )
        return view_id

    async def _filter(self, view_id: str, field_id: str, operand: str, value: str, title: str) -> None:
        await self.meta.execute(
            docs.CREATE_VIEW_FILTER,
            {"input": {"viewId": view_id, "fieldMetadataId": field_id, "operand": operand, "value": value}},
            operation=f"filter the view of {title}",
        )


def tab_position(page: LivePage, after: str | None) -> float:
    """Right after the tab titled `after` (before the next one); last when there is none."""
    tabs = [t for t in page.tabs if not t.deleted]
    anchor = next((t for t in tabs if t.title == after), None)
    if anchor is None:
        return max((t.position for t in tabs), default=-1.0) + 10
    later = [t.position for t in tabs if t.position > anchor.position]
    return (anchor.position + min(later)) / 2 if later else anchor.position + 10
