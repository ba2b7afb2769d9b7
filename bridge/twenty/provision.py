"""Compare schema/ with a live Twenty workspace, print a plan, apply it.

Rules: never delete, never retype. A field that exists with another type (or lost its unique
flag, or was deactivated) is a *conflict*; a conflict blocks every pending change to its object
and to anything that depends on that object, so no object is left half-provisioned. Everything
else is created in dependency order (custom objects, fields, relations, views, links). When a
create answers "already exists" (another process won the race), the workspace is listed again
and the item counts as present if it now matches.

How the data reads (`schema/views.toml`) is only ever added to, never taken away: a Kanban's
card fields and a list's columns are added when missing, Kanban columns for new options, and
on 2.x a record-page section for the bridge's fields (`layout.py` says what is missing). A
standard field declared `standard = true` (Opportunity `stage`) only gets the options it lacks.

Views live in the metadata API on 2.x, and on 1.x in the workspace's view records (data API,
`view_records.py`): 1.x's screens show those, not its core views.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bridge.twenty import labels, layout, pages
from bridge.twenty.data import WriteRules, timeline_unsupported
from bridge.twenty.documents import Dialect
from bridge.twenty.layout import Wanted
from bridge.twenty.metadata import (
    AlreadyExists,
    LiveField,
    LiveObject,
    LiveView,
    LiveViewField,
    MetadataClient,
    NewViewField,
)
from bridge.twenty.pages import DashboardRecords, LivePages, PageMaker
from bridge.twenty.schema import (
    ColumnsSpec,
    DataModel,
    FieldSpec,
    LinkSpec,
    ObjectSpec,
    SectionSpec,
    ViewSpec,
    section_fields,
)
from bridge.twenty.view_records import ViewRecordsApi, Views
from bridge.twenty.widgets import FieldIds, PageSpec

log = logging.getLogger(__name__)

# A list column the bridge adds is this wide, so People and Opportunities show the bridge's
# columns on the first screen of a 1440-px display (Twenty's own default is 180).
LIST_COLUMN_SIZE = 150

# "unsupported": this Twenty version has no such thing (1.x record-page sections, dashboards);
# nothing to do. "update": labels to shorten, a Kanban's column sums to set.
Status = Literal["create", "add_options", "update", "present", "conflict", "blocked", "manual", "unsupported"]
PENDING = ("create", "add_options", "update")
# view_fields: a Kanban's card fields or a list's columns; view_groups: a Kanban's columns;
# section: a record-page section; labels: an object's field labels; view_settings: a Kanban's
# column sums; tab: a record-page tab; dashboard: a dashboard.
Kind = Literal[
    "object",
    "field",
    "labels",
    "view",
    "view_groups",
    "view_fields",
    "view_settings",
    "section",
    "tab",
    "dashboard",
    "link",
    "timeline",
]


@dataclass
class PlanItem:
    kind: Kind
    name: str  # "whopProduct", "person.whopUserId", "view Whop memberships", "link Whop bridge"
    status: Status
    detail: str = ""
    object: str | None = None  # the object this item belongs to (for blocking)
    depends_on: tuple[str, ...] = ()  # other objects this item needs
    new_options: tuple[str, ...] = ()


@dataclass
class Plan:
    dialect: str
    items: list[PlanItem] = field(default_factory=list)

    @property
    def conflicts(self) -> list[PlanItem]:
        return [i for i in self.items if i.status == "conflict"]

    @property
    def pending(self) -> list[PlanItem]:
        return [i for i in self.items if i.status in PENDING]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.conflicts

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "items": [asdict(i) for i in self.items]}


@dataclass
class ApplyResult:
    plan: Plan
    mutations: int  # writes to Twenty: metadata mutations, and the records of dashboards and 1.x views
    applied: list[str] = field(default_factory=list)


def _field_key(obj: str, name: str) -> str:
    return f"{obj}.{name}"


@dataclass
class LiveLayout:
    """The workspace's views as provisioning reads them."""

    views: dict[str, list[LiveView]] = field(default_factory=dict)  # by object name
    # Why the views could not be read (1.x without its view records): their items are by hand.
    views_unreadable: str | None = None
    # Twenty shows each new field at the end of its object's list (1.x), rather than hidden.
    files_new_fields_shown: bool = False
    # The views behind each object's record-page FIELDS widgets; None where Twenty has no
    # record-page sections (1.x).
    record_pages: dict[str, list[LiveView]] | None = None
    # Dashboards and record-page layouts; None where Twenty has no page layouts (1.x).
    pages: LivePages | None = None


def make_plan(
    model: DataModel,
    live: dict[str, LiveObject],
    *,
    dialect: str,
    links_supported: bool,
    live_views: LiveLayout,
    live_links: list[dict[str, Any]],
    public_url: str,
) -> Plan:
    """Pure: what must change to make `live` contain `model`."""
    plan = Plan(dialect=dialect)
    for obj in model.objects:
        _plan_object(plan, obj, live.get(obj.nameSingular))
    for view in model.views:
        plan.items.append(_plan_view(view, model, live, live_views))
    plan.items.extend(_plan_kanban_columns(model, live, live_views))
    for view in model.views:
        if view.fields:
            plan.items.append(_plan_cards(view, model, live, live_views))
    for columns in model.columns:
        plan.items.append(_plan_columns(columns, model, live, live_views))
    for section in model.sections:
        plan.items.append(_plan_section(section, model, live, live_views))
    plan.items.extend(_plan_labels(model, live, plan))
    for view in model.views:
        if view.kanbanSum:
            plan.items.append(_plan_kanban_sum(view, live_views))
    if live_views.views_unreadable:
        _by_hand(plan, live_views.views_unreadable)
    planned = _planned_fields(model, plan)
    for tab in model.tabs:
        plan.items.append(_plan_page("tab", tab, model, live, live_views.pages, planned))
    for board in model.dashboards:
        plan.items.append(_plan_page("dashboard", board, model, live, live_views.pages, planned))
    for link in model.links:
        plan.items.append(_plan_link(link, links_supported, live_links, public_url))
    plan.items.append(_plan_timeline(live, dialect))
    _block_dependents(plan)
    return plan


def _plan_timeline(live: dict[str, LiveObject], dialect: str) -> PlanItem:
    """Lines on the Person's and the Opportunity's timeline (bridge/sync/timeline.py): nothing
    to make, as Twenty has its timeline; said so the plan tells what this Twenty will show."""
    item = PlanItem("timeline", "timeline lines", "present", object="timelineActivity")
    reason = timeline_unsupported(WriteRules.from_live(Dialect(dialect), live))
    if reason is None:
        item.detail = "a line per Whop event on the Person's and the Opportunity's timeline"
    else:
        item.status = "unsupported"
        item.detail = f"{reason}: the bridge writes no timeline lines there"
    return item


def _by_hand(plan: Plan, reason: str) -> None:
    """Views that could not be read: what provisioning would do to them is asked for by hand."""
    for item in plan.items:
        if item.kind in ("view", "view_groups", "view_fields", "view_settings") and item.status in PENDING:
            item.status = "manual"
            item.detail = f"{reason}: {item.detail or item.name}, by hand"


def _plan_labels(model: DataModel, live: dict[str, LiveObject], plan: Plan) -> list[PlanItem]:
    """One item per object whose labels the bridge shortens (its earlier labels only)."""
    creating = {i.name for i in plan.items if i.kind == "field" and i.status == "create"}
    items: list[PlanItem] = []
    changes = labels.relabels(model, live, planned=bool(creating))
    # Every object whose labels the bridge may shorten has its item, "present" once done, so a
    # plan lists the same items on every run.
    for obj in dict.fromkeys([*_relabelled_objects(model), *(c.obj for c in changes)]):
        mine = [c for c in changes if c.obj == obj]
        if not mine:
            items.append(PlanItem("labels", f"labels {obj}", "present", object=obj))
            continue
        item = PlanItem("labels", f"labels {obj}", "update", "shorten " + labels.describe(mine), object=obj)
        if plan.dialect == "1.x":
            # Observed on 1.x: after a label change its record API loses fields of the object
            # ("Property … was not found") until Twenty restarts. New fields get the short
            # labels when they are made; existing ones keep theirs.
            item.status = "unsupported"
            item.detail = (
                "this Twenty version's record API breaks when a label changes, so the bridge leaves these "
                f"labels as they are ({labels.describe(mine)}); nothing to do"
            )
        items.append(item)
    return items


def _relabelled_objects(model: DataModel) -> list[str]:
    """The objects whose labels the bridge may shorten, once per field that asks: the object of
    a field with earlier labels, the target of a relation made under another inverse label."""
    out: list[str] = []
    for spec in model.objects:
        for f in spec.fields:
            if f.formerLabels:
                out.append(spec.nameSingular)
            if f.relation is not None and f.relation.creation_label != f.relation.targetFieldLabel:
                out.append(f.relation.target)
    return out


def _plan_kanban_sum(view: ViewSpec, layout_: LiveLayout) -> PlanItem:
    item = PlanItem("view_settings", f"column sums {view.name}", "update", object=view.object)
    item.detail = f"each column sums {view.kanbanSum}"
    live_view = _named_view(view, layout_)
    if live_view is not None and live_view.kanban_aggregate is not None:
        item.status = "present"
        mine = live_view.kanban_aggregate == "SUM" and live_view.kanban_aggregate_field_id
        item.detail = "" if mine else "a person chose what the columns show: left as it is"
    return item


def _planned_fields(model: DataModel, plan: Plan) -> dict[str, set[str]]:
    """The fields provisioning makes this run, by object (with the inverse relation sides)."""
    out: dict[str, set[str]] = {}
    for item in plan.items:
        if item.kind == "field" and item.status == "create":
            obj, name = item.name.split(".", 1)
            out.setdefault(obj, set()).add(name)
            rel = model.object(obj).field(name).relation
            if rel:
                out.setdefault(rel.target, set()).add(rel.target_field_name)
        elif item.kind == "object" and item.status == "create":
            out.setdefault(item.name, set()).update({"id", "name", "createdAt", "updatedAt"})
    return out


def _plan_page(
    kind: Kind,
    spec: PageSpec,
    model: DataModel,
    live: dict[str, LiveObject],
    live_pages: LivePages | None,
    planned: dict[str, set[str]],
) -> PlanItem:
    unavailable = pages.unavailable_widgets(model, spec, live, planned)
    found = (
        pages.plan_dashboard(spec, live_pages, unavailable)
        if kind == "dashboard"
        else pages.plan_tab(spec, live_pages, unavailable)
    )
    name = f"dashboard {spec.title}" if kind == "dashboard" else f"tab {spec.object} {spec.title}"
    objects = tuple(dict.fromkeys(w.object for w in spec.widgets))
    return PlanItem(kind, name, found.status, found.detail, object=spec.object, depends_on=objects)  # type: ignore[arg-type]


def _plan_object(plan: Plan, spec: ObjectSpec, live: LiveObject | None) -> None:
    name = spec.nameSingular
    if live is None:
        if spec.custom:
            plan.items.append(PlanItem("object", name, "create", spec.labelSingular or "", object=name))
        else:
            plan.items.append(
                PlanItem(
                    "object",
                    name,
                    "conflict",
                    f"standard object {name!r} is missing; is TWENTY_URL a Twenty workspace?",
                    object=name,
                )
            )
    else:
        plan.items.append(PlanItem("object", name, "present", object=name))
        if not live.is_active:
            plan.items[-1].status = "conflict"
            plan.items[-1].detail = f"object {name!r} is deactivated in Twenty; reactivate it"
    for f in spec.fields:
        plan.items.append(_plan_field(spec, f, live.fields.get(f.name) if live else None))


def _plan_field(obj: ObjectSpec, spec: FieldSpec, live: LiveField | None) -> PlanItem:
    key = _field_key(obj.nameSingular, spec.name)
    depends = (spec.relation.target,) if spec.relation else ()
    item = PlanItem("field", key, "create", spec.type, object=obj.nameSingular, depends_on=depends)
    if live is None:
        if spec.standard:
            # Twenty's own field is missing (a trimmed workspace): the bridge never creates it.
            item.status = "manual"
            item.detail = f"{key} is a standard field this workspace lacks; the bridge does not create it"
        elif spec.unique:
            item.detail = f"{spec.type}, unique"
        return item
    conflict = _field_conflict(key, spec, live)
    if conflict is not None:
        item.status, item.detail = "conflict", conflict
        return item
    missing = _missing_options(spec, live)
    if missing:
        item.status, item.new_options = "add_options", missing
        item.detail = "add " + ", ".join(missing)
        return item
    item.status, item.detail = "present", ""
    return item


def _field_conflict(key: str, spec: FieldSpec, live: LiveField) -> str | None:
    """Why the live field cannot serve as the declared one (the bridge never retypes, never
    reactivates, never changes a relation); None when it can."""
    if live.type != spec.type:
        return (
            f"exists as {live.type}, schema/ declares {spec.type}; the bridge never retypes fields: "
            f"rename or remove {key} in Twenty, then provision again"
        )
    if not live.is_active:
        return f"{key} is deactivated in Twenty; reactivate it"
    if spec.unique and not live.is_unique:
        return f"{key} exists but is not unique, so upserts cannot match on it; mark it unique in Twenty"
    if spec.relation and (live.relation_type != spec.relation.type or live.relation_target != spec.relation.target):
        return (
            f"relation {key} points to {live.relation_target} ({live.relation_type}), schema/ wants "
            f"{spec.relation.target} ({spec.relation.type})"
        )
    return None


def _missing_options(spec: FieldSpec, live: LiveField) -> tuple[str, ...]:
    """The declared option values the live field lacks, in schema/ order."""
    if not spec.options:
        return ()
    have = {o.get("value") for o in live.options}
    return tuple(v for v in spec.option_values() if v not in have)


def _plan_view(view: ViewSpec, model: DataModel, live: dict[str, LiveObject], layout_: LiveLayout) -> PlanItem:
    item = PlanItem("view", f"view {view.name}", "create", f"{view.type} of {view.object}", object=view.object)
    if _named_view(view, layout_):
        item.status, item.detail = "present", ""
    elif view.groupBy:
        item.detail += f" grouped by {view.groupBy}"
    return item


def _named_view(view: ViewSpec, layout_: LiveLayout) -> LiveView | None:
    return next((v for v in layout_.views.get(view.object, []) if v.name == view.name), None)


def _wanted(model: DataModel, live: dict[str, LiveObject], obj: str, names: tuple[str, ...]) -> list[Wanted | str]:
    """Each name as a Wanted (with its id once Twenty has it), or the bare name when the field is
    neither in the workspace nor about to be created (a standard field this workspace lacks)."""
    spec = model.object(obj)
    live_obj = live.get(obj)
    declared = {f.name for f in spec.fields if not f.standard}
    declared |= {  # the inverse sides Twenty makes for the bridge's relations to this object
        f.relation.target_field_name for o in model.objects for f in o.fields if f.relation and f.relation.target == obj
    }
    out: list[Wanted | str] = []
    for name in names:
        found = live_obj.fields.get(name) if live_obj else None
        if found is not None and found.is_active:
            out.append(Wanted(name, found.id))
        elif found is None and (name in declared or (name == "name" and spec.custom)):
            out.append(Wanted(name, None))  # provisioning creates it before it is shown
        else:
            out.append(name)
    return out


def _split(wanted: list[Wanted | str]) -> tuple[list[Wanted], list[str]]:
    return [w for w in wanted if isinstance(w, Wanted)], [w for w in wanted if isinstance(w, str)]


def _fields_item(
    kind: Kind, name: str, obj: str, view: LiveView | None, wanted: list[Wanted | str], *, where: str
) -> PlanItem:
    known, absent = _split(wanted)
    missing = layout.missing_fields(view, known)
    hidden = layout.hidden_as_made(view, known)
    item = PlanItem(kind, name, "create" if missing or hidden else "present", object=obj)
    notes = [f"add to {where}: " + ", ".join(w.name for w in missing)] if missing else []
    if hidden:
        notes.append(f"show in {where} (Twenty added them hidden): " + ", ".join(w.name for w, _ in hidden))
    if absent:
        notes.append("not in this workspace, left out: " + ", ".join(absent))
    item.detail = "; ".join(notes)
    return item


def _plan_cards(view: ViewSpec, model: DataModel, live: dict[str, LiveObject], layout_: LiveLayout) -> PlanItem:
    wanted = _wanted(model, live, view.object, view.fields)
    return _fields_item(
        "view_fields", f"cards {view.name}", view.object, _named_view(view, layout_), wanted, where="the cards"
    )


def _plan_columns(columns: ColumnsSpec, model: DataModel, live: dict[str, LiveObject], layout_: LiveLayout) -> PlanItem:
    name = f"columns {columns.object}"
    listing = layout.index_view(layout_.views.get(columns.object, []), not_named=_own_views(model))
    if listing is None and columns.object in live and not layout_.views_unreadable:
        return PlanItem(
            "view_fields",
            name,
            "manual",
            f"{columns.object} has no standard list view (key INDEX) to add columns to; "
            f"add {', '.join(columns.fields)} to a list view in Twenty by hand",
            object=columns.object,
        )
    wanted = _wanted(model, live, columns.object, columns.fields)
    where = f"{listing.name!r}" if listing else "its standard list view"
    item = _fields_item("view_fields", name, columns.object, listing, wanted, where=where)
    hidden = _hidden_by_twenty(model, columns.object, listing, wanted)
    if hidden:
        _also(item, "show: " + ", ".join(n for _, n in hidden))
    late = _filed_late(columns, live, listing, wanted, layout_)
    if late:
        after = columns.after or "the name"
        _also(item, f"move after {after} (Twenty added them at the end): " + ", ".join(n for _, n in late))
    if _name_to_widen(columns, model, live, listing) is not None:
        _also(item, f"widen the name to {columns.nameSize} px")
    return item


def _also(item: PlanItem, note: str) -> None:
    """One more change to a list's columns: the item is pending and its detail names it last."""
    item.status = "create"
    item.detail = "; ".join(p for p in (item.detail, note) if p)


def _name_to_widen(
    columns: ColumnsSpec, model: DataModel, live: dict[str, LiveObject], view: LiveView | None
) -> LiveViewField | None:
    """The name column of one of the bridge's own objects' lists, as Twenty made it, when it is
    not yet as wide as schema/ asks (a column anyone touched keeps its width)."""
    name = live[columns.object].fields.get("name") if columns.object in live else None
    if not columns.nameSize or view is None or name is None or not model.object(columns.object).custom:
        return None
    found = next((f for f in view.fields if f.field_id == name.id), None)
    return found if found is not None and found.untouched and found.size != columns.nameSize else None


def _filed_late(
    columns: ColumnsSpec,
    live: dict[str, LiveObject],
    view: LiveView | None,
    wanted: list[Wanted | str],
    layout_: LiveLayout,
) -> list[tuple[LiveViewField, str]]:
    """Where Twenty shows every new field at the end of the list (1.x), the declared columns it
    put there and nobody touched since, past other columns: they go where the bridge would have
    added them, on the first screen."""
    if not layout_.files_new_fields_shown or view is None:
        return []
    return layout.filed_late(view, _split(wanted)[0], _anchor_id(columns, live))


def _anchor_id(columns: ColumnsSpec, live: dict[str, LiveObject]) -> str | None:
    """The field of the column the declared ones follow (None: the view's first, the name)."""
    found = live[columns.object].fields.get(columns.after) if columns.after and columns.object in live else None
    return found.id if found else None


def _own_views(model: DataModel) -> frozenset[str]:
    return frozenset(v.name for v in model.views)


def _hidden_by_twenty(
    model: DataModel, obj: str, view: LiveView | None, wanted: list[Wanted | str]
) -> list[tuple[LiveViewField, str]]:
    """The declared columns Twenty filed hidden when it made their fields (2.21 adds every new
    field to the object's list, hidden) and nobody touched since: a column a person hid, showed
    or moved has a later `updatedAt` and stays as they left it."""
    return layout.hidden_by_twenty(view, _split(wanted)[0])


def _kanban_values(model: DataModel, obj: LiveObject, view: LiveView) -> tuple[str, list[str]] | None:
    """(field name, option values the Kanban should have a column for), for a Kanban grouped by
    a SELECT field schema/ declares options for. Options added this run are not counted: Twenty
    makes their columns itself (2.x; 1.x on the view records its screens show, observed)."""
    group = next((f for f in obj.fields.values() if f.id == view.group_field_id), None)
    if view.type != "KANBAN" or group is None:
        return None
    try:
        spec = model.object(obj.name_singular).field(group.name)
    except KeyError:
        return None
    if not spec.options:
        return None
    have = {str(o.get("value")) for o in group.options}
    return group.name, [v for v in spec.option_values() if v in have]


def _plan_kanban_columns(model: DataModel, live: dict[str, LiveObject], layout_: LiveLayout) -> list[PlanItem]:
    items: list[PlanItem] = []
    for spec in model.objects:
        obj = live.get(spec.nameSingular)
        if obj is None:
            continue
        for view in layout_.views.get(spec.nameSingular, []):
            found = _kanban_values(model, obj, view)
            if found is None:
                continue
            missing = layout.missing_columns(view, found[1])
            if missing:
                detail = f"add columns for {found[0]}: " + ", ".join(v for v, _ in missing)
                items.append(
                    PlanItem("view_groups", f"kanban columns {view.name}", "create", detail, object=spec.nameSingular)
                )
    return items


def _plan_section(section: SectionSpec, model: DataModel, live: dict[str, LiveObject], layout_: LiveLayout) -> PlanItem:
    item = PlanItem("section", f"section {section.object} {section.name}", "create", object=section.object)
    if layout_.record_pages is None:
        item.status = "unsupported"
        item.detail = (
            "this Twenty version has no record-page sections: the record page lists the Whop fields "
            "with the others; nothing to do"
        )
        return item
    pages = _record_page_views(section.object, layout_)
    if section.object in live and not pages:
        item.status = "manual"
        item.detail = (
            f"no sections on the {section.object} record page for the bridge to add to; in Twenty, edit "
            f"the record page's layout, add a section {section.name!r} and move the Whop fields into it"
        )
        return item
    wanted, absent = _split(_wanted(model, live, section.object, section_fields(model, section)))
    notes: list[str] = []
    changes = [layout.section_change(view, section.name, wanted) for view in pages]
    if not pages or any(c.section is None for c in changes):
        notes.append(f"create the section {section.name!r} on the record page")
    count = max((len(c.move) + len(c.add) for c in changes), default=len(wanted))
    if count:
        notes.append(f"put {count} field(s) in it")
    if absent:
        notes.append("not in this workspace, left out: " + ", ".join(absent))
    if pages and all(c.done for c in changes):
        item.status = "present"
        notes = notes[-1:] if absent else []
    item.detail = "; ".join(notes)
    return item


def _record_page_views(obj: str, layout_: LiveLayout) -> list[LiveView]:
    """The record page's FIELDS views that have sections (a page without sections is left alone:
    adding one would change how all its fields show)."""
    return [v for v in (layout_.record_pages or {}).get(obj, []) if v.field_groups]


def _plan_link(link: LinkSpec, supported: bool, live_links: list[dict[str, Any]], public_url: str) -> PlanItem:
    url = link.resolved_url(public_url)
    item = PlanItem("link", f"link {link.name}", "create", url)
    if not supported:
        item.status = "manual"
        item.detail = f"this Twenty version has no API for sidebar links; add a link to {url} in Twenty by hand"
    elif any(i.get("link") == url for i in live_links):
        item.status, item.detail = "present", ""
    return item


def _block_dependents(plan: Plan) -> None:
    """A conflict blocks its object's pending changes and everything that needs that object."""
    blocked = {i.object for i in plan.items if i.status == "conflict" and i.object}
    changed = True
    while changed:  # propagate through relations until nothing new is blocked
        changed = False
        for item in plan.items:
            if item.status in PENDING and (item.object in blocked or any(d in blocked for d in item.depends_on)):
                item.status = "blocked"
                item.detail = f"blocked by a conflict on {item.object if item.object in blocked else item.depends_on}"
                if item.object and item.object not in blocked:
                    blocked.add(item.object)
                    changed = True


# Applying -------------------------------------------------------------------------------------


async def plan_workspace(
    meta: MetadataClient,
    model: DataModel,
    public_url: str,
    records: DashboardRecords | None = None,
    view_records: ViewRecordsApi | None = None,
) -> Plan:
    plan, _, _ = await _plan_with_live(meta, views_of(meta, view_records), model, public_url, records)
    return plan


def views_of(meta: MetadataClient, view_records: ViewRecordsApi | None) -> Views | None:
    """Where this server keeps the views its screens show: 2.x's metadata API, 1.x's view
    records (data API; None when provisioning was given no data client)."""
    return meta if meta.dialect is Dialect.V2 else view_records


async def _plan_with_live(
    meta: MetadataClient, views: Views | None, model: DataModel, public_url: str, records: DashboardRecords | None
) -> tuple[Plan, dict[str, LiveObject], LiveLayout]:
    live = await meta.list_objects()
    layout_ = await _read_layout(meta, views, model, live, records)
    links_supported = meta.supports_navigation_links
    live_links = await meta.list_navigation_links() if links_supported and model.links else []
    plan = make_plan(
        model,
        live,
        dialect=meta.dialect.value,
        links_supported=links_supported,
        live_views=layout_,
        live_links=live_links,
        public_url=public_url,
    )
    return plan, live, layout_


async def _read_layout(
    meta: MetadataClient,
    views: Views | None,
    model: DataModel,
    live: dict[str, LiveObject],
    records: DashboardRecords | None,
) -> LiveLayout:
    result = LiveLayout(record_pages={} if meta.supports_record_page_sections else None)
    if views is None:
        result.views_unreadable = (
            "this Twenty version's screens show views kept as records (data API), and provisioning had no "
            "data client to reach them"
        )
        return result
    result.files_new_fields_shown = views.files_new_fields_shown
    for name in sorted(_shown_objects(model)):
        if name in live:
            result.views[name] = await views.list_views(live[name].id)
    if meta.supports_page_layouts:
        result.pages = await _read_pages(meta, model, live, records)
    if result.record_pages is not None and result.pages is not None:
        result.record_pages.update(await _sectioned_pages(meta, model, live, result.pages, result.views))
    return result


def _shown_objects(model: DataModel) -> set[str]:
    """The objects whose views provisioning reads: those with declared views, columns or
    sections, and those with declared options (their Kanbans may lack columns for options
    added later)."""
    shown = {v.object for v in model.views} | {c.object for c in model.columns} | {s.object for s in model.sections}
    return shown | {o.nameSingular for o in model.objects if any(f.options for f in o.fields)}


async def _sectioned_pages(
    meta: MetadataClient,
    model: DataModel,
    live: dict[str, LiveObject],
    read: LivePages,
    listed: dict[str, list[LiveView]],
) -> dict[str, list[LiveView]]:
    """By object with a declared section: the views behind its record page's FIELDS widgets."""
    found: dict[str, list[LiveView]] = {}
    for section in model.sections:
        if section.object in live:
            ids = _fields_view_ids(read.record_pages.get(section.object, []))
            found[section.object] = await _views_by_id(meta, ids, listed[section.object])
    return found


async def _read_pages(
    meta: MetadataClient, model: DataModel, live: dict[str, LiveObject], records: DashboardRecords | None
) -> LivePages:
    """Each object's record page (for its sections and tabs) and, when schema/ declares a
    dashboard, the DASHBOARD layouts with the records that list them."""
    result = LivePages()
    for name in sorted({s.object for s in model.sections} | {str(t.object) for t in model.tabs}):
        if name in live:
            nodes = await meta.page_layouts(object_id=live[name].id, layout_type="RECORD_PAGE")
            result.record_pages[name] = [pages.parse_page(n) for n in nodes]
    if model.dashboards:
        nodes = await meta.page_layouts(object_id=None, layout_type="DASHBOARD")
        result.dashboards = [pages.parse_page(n) for n in nodes]
        keys = {d.key for d in model.dashboards}
        ours = [p.id for p in result.dashboards if p.name in keys]
        if ours and records is not None:
            result.records = await records.by_layout(ours)
        elif ours:  # no way to read the records: take them as there (nothing is made twice)
            result.records = dict.fromkeys(ours, "live")
    return result


def _fields_view_ids(layouts: list[pages.LivePage]) -> list[str]:
    """The views behind the record page's FIELDS widgets, in tab order: their field groups are
    the page's sections."""
    ids: list[str] = []
    for page in layouts:
        for tab in page.tabs:
            for widget in tab.widgets:
                if widget.type == "FIELDS" and widget.view_id and widget.view_id not in ids:
                    ids.append(widget.view_id)
    return ids


async def _views_by_id(meta: MetadataClient, ids: list[str], listed: list[LiveView]) -> list[LiveView]:
    """The views with these ids, from the object's list where it has them (one read fewer)."""
    by_id = {v.id: v for v in listed}
    found: list[LiveView] = []
    for view_id in ids:
        view = by_id.get(view_id) or await meta.get_view(view_id)
        if view is not None:
            found.append(view)
    return found


async def provision(
    meta: MetadataClient,
    model: DataModel,
    public_url: str,
    *,
    dry_run: bool = False,
    on_step: Callable[[PlanItem], None] | None = None,
    records: DashboardRecords | None = None,
    view_records: ViewRecordsApi | None = None,
) -> ApplyResult:
    """`records`: the `dashboard` records (data API) that list dashboards in Twenty; without
    it a dashboard's layout is made but not listed (tests of the metadata side).
    `view_records`: the workspace's views (data API), which 1.x's screens show; without it, on
    1.x the plan asks for the views by hand."""
    views = views_of(meta, view_records)
    plan, live, layout_ = await _plan_with_live(meta, views, model, public_url, records)
    start = meta.mutations
    view_writes = view_records.writes if view_records is not None else 0
    result = ApplyResult(plan=plan, mutations=0)
    if dry_run or not plan.pending:
        return result
    run = _Run(meta, views, model, live, layout_, records)
    try:
        # Sections first, placed last on the page: Twenty files each field created next into
        # the page's last section, so the bridge's fields land in its own without a move each.
        for item in plan.items:
            if item.kind == "section" and item.status == "create":
                await run.open_section(_section(model, item))
        for item in plan.items:
            if item.status not in PENDING:
                continue
            await run.apply(item, public_url)
            result.applied.append(item.name)
            if on_step:
                on_step(item)
    finally:
        # A run that stopped early must not leave the bridge's section last, where Twenty
        # would file people's new fields.
        with contextlib.suppress(Exception):
            await run.settle_sections()
        written = (view_records.writes if view_records is not None else 0) - view_writes
        result.mutations = meta.mutations - start + run.record_writes + written
    return result


class _Run:
    """One application of a plan. Views are read once per object after the objects and fields
    exist (each later step changes a different view, so one reading serves them all, and it
    shows what Twenty made meanwhile, e.g. 2.x Kanban columns for new options)."""

    def __init__(
        self,
        meta: MetadataClient,
        views: Views | None,
        model: DataModel,
        live: dict[str, LiveObject],
        plan: LiveLayout,
        records: DashboardRecords | None,
    ) -> None:
        self.meta, self.model, self.live, self.plan_layout = meta, model, live, plan
        self._view_api = views
        self.records = records
        self.record_writes = 0  # data-API writes (a dashboard's record)
        self._views: dict[str, list[LiveView]] = {}
        self.opened: dict[str, tuple[SectionSpec, str]] = {}  # section made this run: its spec, view
        self._fresh_objects = False  # whether self.live was listed after the fields were made

    async def apply(self, item: PlanItem, public_url: str) -> None:
        meta, model = self.meta, self.model
        if item.kind == "object":
            self.live = await _create_object(meta, model.object(item.name), self.live)
        elif item.kind == "field":
            obj_name, field_name = item.name.split(".", 1)
            spec = model.object(obj_name).field(field_name)
            self.live = await _apply_field(meta, self.live, obj_name, spec, item)
        elif item.kind == "view":
            view = next(v for v in model.views if f"view {v.name}" == item.name)
            await _create_view(self.view_api, self.live, view)
            self._views.pop(view.object, None)
        elif item.kind == "view_groups":
            await self.add_kanban_columns(item)
        elif item.kind == "view_fields":
            await self.add_view_fields(item)
        elif item.kind == "section":
            await self.fill_section(_section(model, item))
        elif item.kind == "link":
            link = next(lk for lk in model.links if f"link {lk.name}" == item.name)
            await meta.create_navigation_link(name=link.name, url=link.resolved_url(public_url), icon=link.icon)
        elif item.kind == "labels":
            await self.relabel(str(item.object))
        elif item.kind == "view_settings":
            await self.set_kanban_sum(item)
        elif item.kind in ("tab", "dashboard"):
            await self.make_page(item)

    async def objects(self) -> dict[str, LiveObject]:
        """The objects as they are now that fields were made (inverse relation sides included)."""
        if not self._fresh_objects:
            self.live = await self.meta.list_objects()
            self._fresh_objects = True
        return self.live

    async def relabel(self, obj: str) -> None:
        for change in labels.relabels(self.model, await self.objects(), planned=False):
            if change.obj == obj:
                field_id = self.live[obj].fields[change.field].id
                await self.meta.update_label(field_id, change.new, change.description, name=f"{obj}.{change.field}")

    @property
    def view_api(self) -> Views:
        assert self._view_api is not None, "a view item is pending only when the views could be read"
        return self._view_api

    async def set_kanban_sum(self, item: PlanItem) -> None:
        spec = next(v for v in self.model.views if f"column sums {v.name}" == item.name)
        view = next((v for v in await self.views(spec.object) if v.name == spec.name), None)
        summed = self.live[spec.object].fields.get(str(spec.kanbanSum))
        if view is None or summed is None or view.kanban_aggregate is not None:
            return
        await self.view_api.set_kanban_aggregate(view.id, "SUM", summed.id, name=f"view {view.name}")

    async def make_page(self, item: PlanItem) -> None:
        live = await self.objects()
        maker = PageMaker(self.meta, _field_ids(live), {name: obj.id for name, obj in live.items()}, _relations(live))
        planned = _planned_fields(self.model, Plan(dialect=self.meta.dialect.value))
        pages_now = self.plan_layout.pages or LivePages()
        if item.kind == "dashboard":
            spec = next(d for d in self.model.dashboards if f"dashboard {d.title}" == item.name)
            found = pages.plan_dashboard(spec, pages_now, pages.unavailable_widgets(self.model, spec, live, planned))
            self.record_writes += await maker.dashboard(spec, pages_now, found, self.records)
        else:
            spec = next(t for t in self.model.tabs if f"tab {t.object} {t.title}" == item.name)
            found = pages.plan_tab(spec, pages_now, pages.unavailable_widgets(self.model, spec, live, planned))
            await maker.tab(spec, pages_now, found)

    async def views(self, obj: str) -> list[LiveView]:
        if obj not in self._views:
            self._views[obj] = await self.view_api.list_views(self.live[obj].id)
        return self._views[obj]

    async def add_kanban_columns(self, item: PlanItem) -> None:
        assert item.object is not None
        obj = self.live[item.object]
        for view in await self.views(item.object):
            found = _kanban_values(self.model, obj, view)
            if view.name != item.name.removeprefix("kanban columns ") or found is None or not view.group_field_id:
                continue
            missing = layout.missing_columns(view, found[1])
            await self.view_api.create_view_columns(view.id, view.group_field_id, missing, name=f"view {view.name}")

    async def add_view_fields(self, item: PlanItem) -> None:
        assert item.object is not None
        views = await self.views(item.object)
        if item.name.startswith("cards "):
            spec = next(v for v in self.model.views if f"cards {v.name}" == item.name)
            target = next((v for v in views if v.name == spec.name), None)
            names = spec.fields
        else:
            return await self.add_columns(item.object, layout.index_view(views, not_named=_own_views(self.model)))
        if target is None:
            log.warning("%s: the view is not in the workspace; provisioning again will say what to do", item.name)
            return
        wanted = self.known(item.object, names)
        added = layout.appended(target, layout.missing_fields(target, wanted))
        await self.view_api.create_view_fields(target.id, added, name=f"view {target.name}")
        # Fields created this run are in the view already on 2.21, hidden: shown after the added.
        hidden = layout.hidden_as_made(target, wanted)
        await self.view_api.show_view_fields(
            layout.shown_at_end(target, hidden, len(added)), name=f"view {target.name}"
        )

    async def add_columns(self, obj: str, target: LiveView | None) -> None:
        """The declared columns the list lacks, those Twenty filed hidden on the bridge's own
        objects (2.x) and those it filed at the end (1.x), right after the `after` column so they
        show on the first screen."""
        if target is None:
            log.warning("columns %s: the list view is not in the workspace; provision again", obj)
            return
        spec = next(c for c in self.model.columns if c.object == obj)
        wanted = self.known(obj, spec.fields)
        filed = dict(_hidden_by_twenty(self.model, obj, target, list(wanted)))
        filed |= dict(_filed_late(spec, self.live, target, list(wanted), self.plan_layout))
        missing = {w.name for w in layout.missing_fields(target, wanted)}
        moving = [w for w in wanted if w.name in missing or any(n == w.name for n in filed.values())]
        positions = iter(
            layout.placed(target, len(moving), _anchor_id(spec, self.live), whole=self.view_api.integer_positions)
        )
        added: list[NewViewField] = []
        for w in moving:
            position = next(positions)
            shown = next((f for f, n in filed.items() if n == w.name), None)
            if shown is not None:
                await self.view_api.show_view_field(
                    shown.id, position, name=f"{obj}.{w.name} in {target.name}", size=LIST_COLUMN_SIZE
                )
            else:
                added.append(NewViewField(str(w.field_id), position, size=LIST_COLUMN_SIZE))
        await self.view_api.create_view_fields(target.id, added, name=f"view {target.name}")
        wide = _name_to_widen(spec, self.model, self.live, target)
        if wide is not None and spec.nameSize:
            await self.view_api.resize_view_field(wide.id, spec.nameSize, name=f"the name column of {target.name}")

    def known(self, obj: str, names: tuple[str, ...]) -> list[Wanted]:
        """The fields by these names that exist in the workspace now."""
        wanted, _ = _split(_wanted(self.model, self.live, obj, names))
        return [w for w in wanted if w.field_id]

    async def record_pages(self, obj: str, *, fresh: bool) -> list[LiveView]:
        ids = [v.id for v in (self.plan_layout.record_pages or {}).get(obj, [])]
        listed = await self.views(obj) if fresh else self.plan_layout.views.get(obj, [])
        pages = await _views_by_id(self.meta, ids, listed) if fresh else _record_page_views(obj, self.plan_layout)
        return [v for v in pages if v.field_groups]

    async def open_section(self, section: SectionSpec) -> None:
        """Make the section where a record page lacks it, as the page's last."""
        for view in await self.record_pages(section.object, fresh=False):
            if layout.find_section(view, section.name) is None:
                group = await self.meta.create_section(view.id, section.name, layout.new_section_position(view))
                self.opened[group.id] = (section, view.id)

    async def fill_section(self, section: SectionSpec) -> None:
        """Move the bridge's fields Twenty parked in the page's last section into the bridge's,
        and add those the page lacks; then settle the sections made this run."""
        wanted = self.known(section.object, section_fields(self.model, section))
        for view in await self.record_pages(section.object, fresh=True):
            change = layout.section_change(view, section.name, wanted)
            group = change.section
            if group is None:
                group = await self.meta.create_section(view.id, section.name, layout.new_section_position(view))
                self.opened[group.id] = (section, view.id)
            positions = iter(layout.section_positions(view, group.id, len(change.move) + len(change.add)))
            for view_field, name in change.move:
                await self.meta.move_view_field(view_field.id, group.id, next(positions), name=name)
            added = [NewViewField(str(w.field_id), next(positions), group.id) for w in change.add]
            await self.meta.create_view_fields(view.id, added, name=f"the {section.object} record page")
        await self.settle_sections()

    async def settle_sections(self) -> None:
        """Place each section made this run just before the page's old last section, so that
        Twenty goes on filing people's new fields there and not in the bridge's section."""
        for group_id, (section, view_id) in list(self.opened.items()):
            del self.opened[group_id]
            pages = await self.record_pages(section.object, fresh=False)
            view = next((v for v in pages if v.id == view_id), None)
            position = layout.settled_section_position(view, group_id) if view else None
            if position is not None:
                await self.meta.move_section(group_id, position, name=section.name)


def _field_ids(live: dict[str, LiveObject]) -> FieldIds:
    """The workspace's field ids by object and name, and each field's type by id."""
    return FieldIds(
        {name: {f.name: f.id for f in obj.fields.values()} for name, obj in live.items()},
        {f.id: f.type for obj in live.values() for f in obj.fields.values()},
    )


def _relations(live: dict[str, LiveObject]) -> dict[tuple[str, str], tuple[str, str]]:
    """(object, field) -> (target object, target field) for every relation field in the workspace."""
    return {
        (name, f.name): (f.relation_target, f.relation_target_field)
        for name, obj in live.items()
        for f in obj.fields.values()
        if f.relation_target and f.relation_target_field
    }


async def _create_object(meta: MetadataClient, spec: ObjectSpec, live: dict[str, LiveObject]) -> dict[str, LiveObject]:
    payload = {
        "nameSingular": spec.nameSingular,
        "namePlural": spec.namePlural,
        "labelSingular": spec.labelSingular,
        "labelPlural": spec.labelPlural,
        "description": spec.description,
        "icon": spec.icon,
        "isLabelSyncedWithName": False,
    }
    with contextlib.suppress(AlreadyExists):  # another process made it; the listing below decides
        await meta.create_object(payload)
    live = await meta.list_objects()
    if spec.nameSingular not in live:
        raise AlreadyExists(f"object {spec.nameSingular} was reported as existing but is not listed")
    return live


async def _apply_field(
    meta: MetadataClient, live: dict[str, LiveObject], obj_name: str, spec: FieldSpec, item: PlanItem
) -> dict[str, LiveObject]:
    obj = live[obj_name]
    if item.status == "add_options":
        current = obj.fields[spec.name]
        await meta.update_options(current.id, merged_options(current.options, spec), name=item.name)
        return await meta.list_objects()
    payload = field_payload(spec, obj.id, live)
    try:
        created = await meta.create_field(payload)
    except AlreadyExists:
        live = await meta.list_objects()
        existing = live[obj_name].fields.get(spec.name)
        if existing is None or existing.type != spec.type:
            raise
        return live
    fields = {**obj.fields, created.name: created}
    return {**live, obj_name: LiveObject(obj.id, obj.name_singular, obj.name_plural, obj.is_active, fields)}


def field_payload(spec: FieldSpec, object_id: str, live: dict[str, LiveObject]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "objectMetadataId": object_id,
        "type": spec.type,
        "name": spec.name,
        "label": spec.label,
        "isNullable": spec.nullable,
    }
    if spec.description:
        payload["description"] = spec.description
    if spec.icon:
        payload["icon"] = spec.icon
    if spec.unique:
        payload["isUnique"] = True
    if spec.options:
        payload["options"] = [
            {"value": o.value, "label": o.label, "color": o.color, "position": i} for i, o in enumerate(spec.options)
        ]
    if spec.default is not None:
        # SELECT defaults are SQL-quoted strings inside the JSON ("'ACTIVE'"); booleans are plain.
        payload["defaultValue"] = f"'{spec.default}'" if spec.type == "SELECT" else spec.default
    if spec.relation:
        payload["relationCreationPayload"] = {
            "type": spec.relation.type,
            "targetObjectMetadataId": live[spec.relation.target].id,
            "targetFieldLabel": spec.relation.creation_label,
            "targetFieldIcon": spec.relation.targetFieldIcon,
        }
    return payload


def merged_options(existing: tuple[dict[str, Any], ...], spec: FieldSpec) -> list[dict[str, Any]]:
    """The full option list Twenty wants on update: existing options with their ids, then the new ones."""
    return merge_option_values(existing, [(o.value, o.label, o.color) for o in spec.options or ()])


def merge_option_values(
    existing: tuple[dict[str, Any], ...], wanted: list[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    keep = ("id", "value", "label", "color", "position")
    options: list[dict[str, Any]] = [{k: o[k] for k in keep if k in o} for o in existing]
    have = {o["value"] for o in options}
    position = max((float(o.get("position") or 0) for o in options), default=-1)
    for value, label, color in wanted:
        if value in have:
            continue
        position += 1
        options.append({"id": str(uuid.uuid4()), "value": value, "label": label, "color": color, "position": position})
        have.add(value)
    return options


async def _create_view(views: Views, live: dict[str, LiveObject], view: ViewSpec) -> None:
    obj = live[view.object]
    group_field = obj.fields[view.groupBy] if view.groupBy else None
    if group_field is None:
        raise AlreadyExists(f"view {view.name}: group-by field {view.groupBy} is not in the workspace")
    values = [str(o.get("value")) for o in sorted(group_field.options, key=lambda o: float(o.get("position") or 0))]
    if group_field.is_nullable:
        values.append("")  # the column of records with no value, last, as Twenty makes it
    await views.create_kanban_view(
        object_id=obj.id, name=view.name, icon=view.icon, group_field_id=group_field.id, group_values=values
    )


def _section(model: DataModel, item: PlanItem) -> SectionSpec:
    return next(s for s in model.sections if f"section {s.object} {s.name}" == item.name)
