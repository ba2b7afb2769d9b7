"""Compare schema/ with a live Twenty workspace, print a plan, apply it.

Rules: never delete, never retype. A field that exists with another type (or lost its unique
flag, or was deactivated) is a *conflict*; a conflict blocks every pending change to its object
and to anything that depends on that object, so no object is left half-provisioned. Everything
else is created in dependency order (custom objects, fields, relations, views, links). When a
create answers "already exists" (another process won the race), the workspace is listed again
and the item counts as present if it now matches.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bridge.twenty.metadata import AlreadyExists, LiveField, LiveObject, MetadataClient
from bridge.twenty.schema import DataModel, FieldSpec, LinkSpec, ObjectSpec, ViewSpec

Status = Literal["create", "add_options", "present", "conflict", "blocked", "manual"]
Kind = Literal["object", "field", "view", "link"]


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
        return [i for i in self.items if i.status in ("create", "add_options")]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.conflicts

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "items": [asdict(i) for i in self.items]}


@dataclass
class ApplyResult:
    plan: Plan
    mutations: int
    applied: list[str] = field(default_factory=list)


def _field_key(obj: str, name: str) -> str:
    return f"{obj}.{name}"


def make_plan(
    model: DataModel,
    live: dict[str, LiveObject],
    *,
    dialect: str,
    links_supported: bool,
    live_views: dict[str, list[dict[str, Any]]],
    live_links: list[dict[str, Any]],
    public_url: str,
) -> Plan:
    """Pure: what must change to make `live` contain `model`."""
    plan = Plan(dialect=dialect)
    for obj in model.objects:
        _plan_object(plan, obj, live.get(obj.nameSingular))
    for view in model.views:
        plan.items.append(_plan_view(view, model, live, live_views))
    for link in model.links:
        plan.items.append(_plan_link(link, links_supported, live_links, public_url))
    _block_dependents(plan)
    return plan


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
        if spec.unique:
            item.detail = f"{spec.type}, unique"
        return item
    if live.type != spec.type:
        item.status = "conflict"
        item.detail = (
            f"exists as {live.type}, schema/ declares {spec.type}; the bridge never retypes fields: "
            f"rename or remove {key} in Twenty, then provision again"
        )
        return item
    if not live.is_active:
        item.status, item.detail = "conflict", f"{key} is deactivated in Twenty; reactivate it"
        return item
    if spec.unique and not live.is_unique:
        item.status = "conflict"
        item.detail = f"{key} exists but is not unique, so upserts cannot match on it; mark it unique in Twenty"
        return item
    if spec.relation and (live.relation_type != spec.relation.type or live.relation_target != spec.relation.target):
        item.status = "conflict"
        item.detail = (
            f"relation {key} points to {live.relation_target} ({live.relation_type}), schema/ wants "
            f"{spec.relation.target} ({spec.relation.type})"
        )
        return item
    if spec.options:
        have = {o.get("value") for o in live.options}
        missing = tuple(v for v in spec.option_values() if v not in have)
        if missing:
            item.status, item.new_options = "add_options", missing
            item.detail = "add " + ", ".join(missing)
            return item
    item.status, item.detail = "present", ""
    return item


def _plan_view(
    view: ViewSpec, model: DataModel, live: dict[str, LiveObject], live_views: dict[str, list[dict[str, Any]]]
) -> PlanItem:
    item = PlanItem("view", f"view {view.name}", "create", f"{view.type} of {view.object}", object=view.object)
    obj = live.get(view.object)
    if obj is not None and any(v.get("name") == view.name for v in live_views.get(obj.id, [])):
        item.status, item.detail = "present", ""
    elif view.groupBy:
        item.detail += f" grouped by {view.groupBy}"
    return item


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
            if item.status in ("create", "add_options") and (
                item.object in blocked or any(d in blocked for d in item.depends_on)
            ):
                item.status = "blocked"
                item.detail = f"blocked by a conflict on {item.object if item.object in blocked else item.depends_on}"
                if item.object and item.object not in blocked:
                    blocked.add(item.object)
                    changed = True


# Applying -------------------------------------------------------------------------------------


async def plan_workspace(meta: MetadataClient, model: DataModel, public_url: str) -> Plan:
    plan, _ = await _plan_with_live(meta, model, public_url)
    return plan


async def _plan_with_live(
    meta: MetadataClient, model: DataModel, public_url: str
) -> tuple[Plan, dict[str, LiveObject]]:
    live = await meta.list_objects()
    live_views: dict[str, list[dict[str, Any]]] = {}
    for view in model.views:
        obj = live.get(view.object)
        if obj is not None and obj.id not in live_views:
            live_views[obj.id] = await meta.list_views(obj.id)
    links_supported = meta.supports_navigation_links
    live_links = await meta.list_navigation_links() if links_supported and model.links else []
    plan = make_plan(
        model,
        live,
        dialect=meta.dialect.value,
        links_supported=links_supported,
        live_views=live_views,
        live_links=live_links,
        public_url=public_url,
    )
    return plan, live


async def provision(
    meta: MetadataClient,
    model: DataModel,
    public_url: str,
    *,
    dry_run: bool = False,
    on_step: Callable[[PlanItem], None] | None = None,
) -> ApplyResult:
    plan, live = await _plan_with_live(meta, model, public_url)
    start = meta.mutations
    result = ApplyResult(plan=plan, mutations=0)
    if dry_run or not plan.pending:
        return result
    for item in plan.items:
        if item.status not in ("create", "add_options"):
            continue
        if item.kind == "object":
            live = await _create_object(meta, model.object(item.name), live)
        elif item.kind == "field":
            obj_name, field_name = item.name.split(".", 1)
            spec = model.object(obj_name).field(field_name)
            live = await _apply_field(meta, live, obj_name, spec, item)
        elif item.kind == "view":
            view = next(v for v in model.views if f"view {v.name}" == item.name)
            await _create_view(meta, live, view, model)
        elif item.kind == "link":
            link = next(lk for lk in model.links if f"link {lk.name}" == item.name)
            await meta.create_navigation_link(name=link.name, url=link.resolved_url(public_url), icon=link.icon)
        result.applied.append(item.name)
        if on_step:
            on_step(item)
    result.mutations = meta.mutations - start
    return result


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
            "targetFieldLabel": spec.relation.targetFieldLabel,
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


async def _create_view(meta: MetadataClient, live: dict[str, LiveObject], view: ViewSpec, model: DataModel) -> None:
    obj = live[view.object]
    group_field = obj.fields[view.groupBy] if view.groupBy else None
    if group_field is None:
        raise AlreadyExists(f"view {view.name}: group-by field {view.groupBy} is not in the workspace")
    values = [str(o.get("value")) for o in sorted(group_field.options, key=lambda o: float(o.get("position") or 0))]
    await meta.create_kanban_view(
        object_id=obj.id, name=view.name, icon=view.icon, group_field_id=group_field.id, group_values=values
    )
