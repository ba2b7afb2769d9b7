"""The Twenty data model the bridge provisions, loaded from `schema/` and validated.

The TOML files are the source of truth; this module only checks them against Twenty's naming
rules (camelCase, at most 63 characters, not reserved; SELECT values UPPER_SNAKE) so a typo
fails at load time with the file and field named, not halfway through provisioning.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge.errors import FatalError
from bridge.twenty.widgets import PageSpec, WidgetSpec

FieldType = Literal[
    "TEXT",
    "NUMBER",
    "NUMERIC",
    "BOOLEAN",
    "DATE",
    "DATE_TIME",
    "CURRENCY",
    "LINKS",
    "EMAILS",
    "PHONES",
    "FULL_NAME",
    "SELECT",
    "MULTI_SELECT",
    "RAW_JSON",
    "RATING",
    "UUID",
    "RELATION",
    "ARRAY",
    "RICH_TEXT",
]

NAME_RE = re.compile(r"^[a-z][a-zA-Z0-9]*$")
SELECT_VALUE_RE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
MAX_NAME = 63
TAG_COLORS = frozenset(
    "red ruby crimson tomato orange amber yellow lime grass green jade mint turquoise cyan sky blue "
    "iris violet purple plum pink bronze gold brown gray".split()
)
# twenty-shared RESERVED_METADATA_NAME_KEYWORDS plus the input-DTO words (research/twenty-api.md).
RESERVED_NAMES = frozenset(
    """approvedAccessDomain approvedAccessDomains appToken appTokens billingCustomer billingCustomers
    billingPrice billingPrices billingProduct billingProducts billingSubscription billingSubscriptions
    billingSubscriptionItem billingSubscriptionItems featureFlag featureFlags job jobs keyValuePair
    keyValuePairs pageLayout pageLayouts postgresCredential postgresCredentials twoFactorMethod
    twoFactorMethods user users userWorkspace userWorkspaces workspace workspaces role roles
    userWorkspaceRole userWorkspaceRoles plan plans event events field fields link links currency
    currencies fullNames address addresses type types object objects index relation relations
    aggregate not or and Int Float Boolean String ID""".split()
)


class SchemaFileError(FatalError):
    """A file under schema/ is malformed; the message names the file and the problem."""


def check_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"name {name!r} must be 1 to {MAX_NAME} characters")
    if not NAME_RE.match(name):
        raise ValueError(f"name {name!r} must be camelCase (^[a-z][a-zA-Z0-9]*$)")
    if name in RESERVED_NAMES:
        raise ValueError(f"name {name!r} is reserved by Twenty")
    return name


class SelectOption(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str
    label: str
    color: str = "gray"

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        if not SELECT_VALUE_RE.match(v) or "__" in v or len(v) > MAX_NAME:
            raise ValueError(f"option value {v!r} must be UPPER_SNAKE_CASE, at most 63 characters")
        return v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if not 1 <= len(v) <= MAX_NAME or "," in v:
            raise ValueError(f"option label {v!r} must be 1 to 63 characters with no comma")
        return v

    @field_validator("color")
    @classmethod
    def _color(cls, v: str) -> str:
        if v not in TAG_COLORS:
            raise ValueError(f"option color {v!r} is not one of Twenty's tag colors")
        return v


class RelationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["MANY_TO_ONE", "ONE_TO_MANY"]
    target: str
    targetFieldLabel: str
    targetFieldIcon: str = "IconLink"
    # The inverse field's name when it is not the camelCase of its label (a label shortened
    # later: the field keeps its name); its earlier labels, which the bridge may replace.
    targetFieldName: str | None = None
    targetFieldFormerLabels: tuple[str, ...] = ()

    @property
    def target_field_name(self) -> str:
        """Twenty names the inverse field after the camelCase of its label."""
        return self.targetFieldName or camel_case(self.targetFieldLabel)

    @property
    def creation_label(self) -> str:
        """The label to create the inverse field with, so that Twenty names it
        `target_field_name`; provisioning then gives it `targetFieldLabel`."""
        if camel_case(self.targetFieldLabel) == self.target_field_name:
            return self.targetFieldLabel
        return " ".join(re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", self.target_field_name)).capitalize()


def camel_case(label: str) -> str:
    words: list[str] = re.findall(r"[A-Za-z0-9]+", label)
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FieldType
    label: str
    description: str | None = None
    icon: str | None = None
    unique: bool = False
    nullable: bool = True
    default: Any = None
    options: tuple[SelectOption, ...] | None = None
    relation: RelationSpec | None = None
    # A field Twenty ships (e.g. Opportunity `stage`): never created, only given the declared
    # options it lacks; the options it has are left as they are.
    standard: bool = False
    # Labels the bridge gave this field before: a live field still labelled so gets `label`
    # (and `description`); any other label is a person's and stays.
    formerLabels: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.type in ("SELECT", "MULTI_SELECT"):
            if not self.options:
                raise ValueError(f"{self.name}: a {self.type} field needs at least one option")
            values = [o.value for o in self.options]
            if len(set(values)) != len(values):
                raise ValueError(f"{self.name}: option values must be unique")
        elif self.options:
            raise ValueError(f"{self.name}: only SELECT fields take options")
        if (self.type == "RELATION") != (self.relation is not None):
            raise ValueError(f"{self.name}: a RELATION field needs `relation`, and only it")
        if self.standard and (self.type not in ("SELECT", "MULTI_SELECT") or self.unique or self.default is not None):
            raise ValueError(f"{self.name}: a standard field is declared only to add options to it")
        return self

    def option_values(self) -> list[str]:
        return [o.value for o in self.options or ()]


class ObjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nameSingular: str
    namePlural: str
    custom: bool
    labelSingular: str | None = None
    labelPlural: str | None = None
    description: str | None = None
    icon: str | None = None
    fields: tuple[FieldSpec, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ObjectSpec:
        check_name(self.nameSingular) if self.custom else None
        check_name(self.namePlural) if self.custom else None
        if self.nameSingular == self.namePlural:
            raise ValueError("nameSingular and namePlural must differ")
        if self.custom and not (self.labelSingular and self.labelPlural):
            raise ValueError(f"{self.nameSingular}: a custom object needs labelSingular and labelPlural")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.nameSingular}: field names must be unique")
        if self.custom and "name" in names:
            raise ValueError(f"{self.nameSingular}: Twenty creates `name` itself; do not declare it")
        if self.custom and any(f.standard for f in self.fields):
            raise ValueError(f"{self.nameSingular}: a custom object has no standard fields")
        return self

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _unique_names(names: tuple[str, ...], where: str) -> tuple[str, ...]:
    for name in names:
        check_name(name)
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: a field is listed twice")
    return names


class ViewSpec(BaseModel):
    """A view the bridge creates (found again by name), with the fields it shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    object: str
    type: Literal["KANBAN", "TABLE"]
    groupBy: str | None = None
    icon: str = "IconLayoutKanban"
    # A Kanban's card fields (a table's columns), in order. Twenty makes a new Kanban's
    # columns but no card fields, so a card shows only the record's name until these exist.
    fields: tuple[str, ...] = ()
    # A Kanban's column headers show the sum of this field (set while the view has no aggregate).
    kanbanSum: str | None = None

    @model_validator(mode="after")
    def _kanban_needs_group(self) -> ViewSpec:
        if self.type == "KANBAN" and not self.groupBy:
            raise ValueError(f"view {self.name!r}: a KANBAN view needs groupBy")
        _unique_names(self.fields, f"view {self.name!r}")
        return self


class ColumnsSpec(BaseModel):
    """Columns the bridge adds to an object's standard list view (Twenty's "All …", key INDEX).

    Only missing columns are added, at the end; a column already there, shown or hidden, is
    left as the workspace has it, and nothing is ever removed or reordered.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: str
    fields: tuple[str, ...] = Field(min_length=1)
    # The columns go right after this one (default: the view's first column, the name).
    after: str | None = None
    # The name column's width, on the bridge's own objects, while it is as Twenty made it.
    nameSize: int | None = None

    @model_validator(mode="after")
    def _names(self) -> ColumnsSpec:
        _unique_names(self.fields, f"columns of {self.object}")
        return self


class SectionSpec(BaseModel):
    """A section of the record page holding the bridge's fields (Twenty 2.x field groups).

    `fields` defaults to every field schema/ declares on the object, in file order, except
    standard ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: str
    name: str = "Whop"
    fields: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _names(self) -> SectionSpec:
        if not self.name.strip():
            raise ValueError(f"section of {self.object}: the name must not be empty")
        if self.fields is not None:
            _unique_names(self.fields, f"section {self.name!r} of {self.object}")
        return self


class LinkSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    icon: str = "IconLink"

    def resolved_url(self, public_url: str) -> str:
        return self.url.replace("{public_url}", public_url.rstrip("/"))


class DataModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    objects: tuple[ObjectSpec, ...]
    views: tuple[ViewSpec, ...] = ()
    columns: tuple[ColumnsSpec, ...] = ()
    sections: tuple[SectionSpec, ...] = ()
    links: tuple[LinkSpec, ...] = Field(default=())
    dashboards: tuple[PageSpec, ...] = ()
    tabs: tuple[PageSpec, ...] = ()  # record-page tabs

    @model_validator(mode="after")
    def _references(self) -> DataModel:
        by_name = {o.nameSingular: o for o in self.objects}
        self._check_relations(by_name)
        for view in self.views:
            _check_view(by_name, view)
        names = [v.name for v in self.views]
        if len(set(names)) != len(names):
            raise ValueError("two views have the same name")
        self._check_lists(by_name)
        self._check_pages(by_name)
        return self

    def _check_relations(self, by_name: dict[str, ObjectSpec]) -> None:
        for obj in self.objects:
            for f in obj.fields:
                if f.relation and f.relation.target not in by_name:
                    raise ValueError(f"{obj.nameSingular}.{f.name}: unknown target {f.relation.target!r}")

    def _check_lists(self, by_name: dict[str, ObjectSpec]) -> None:
        """List columns and record-page sections: known objects and fields, one entry per object."""
        for where, obj_name, fields in [
            *((f"columns of {c.object}", c.object, c.fields) for c in self.columns),
            *((f"section {s.name!r} of {s.object}", s.object, s.fields or ()) for s in self.sections),
        ]:
            if obj_name not in by_name:
                raise ValueError(f"{where}: unknown object {obj_name!r}")
            _check_shown(by_name[obj_name], fields, where)
        for kind, objects in (
            ("columns", [c.object for c in self.columns]),
            ("section", [s.object for s in self.sections]),
        ):
            if len(set(objects)) != len(objects):
                raise ValueError(f"two {kind} entries for the same object")

    def _check_pages(self, by_name: dict[str, ObjectSpec]) -> None:
        for view in self.views:
            if view.kanbanSum:
                _check_shown(by_name[view.object], (view.kanbanSum,), f"view {view.name!r}")
        keys = [d.key for d in self.dashboards]
        if len(set(keys)) != len(keys):
            raise ValueError("two dashboards have the same key")
        tabs = [(t.object, t.title) for t in self.tabs]
        if len(set(tabs)) != len(tabs):
            raise ValueError("two record-page tabs of one object have the same title")
        for page in (*self.dashboards, *self.tabs):
            for widget in page.widgets:
                self._check_widget(by_name, widget)

    def _check_widget(self, by_name: dict[str, ObjectSpec], widget: WidgetSpec) -> None:
        where = f"widget {widget.title!r}"
        if widget.object not in by_name:
            raise ValueError(f"{where}: unknown object {widget.object!r}")
        _check_shown(by_name[widget.object], tuple(n for n in widget.field_names() if n != "id"), where)
        if widget.chart == "RELATION_TABLE":
            target = relation_target(self, widget.object, str(widget.relation))
            if target is not None:
                _check_shown(by_name[target], (*widget.columns, *([widget.sort[0]] if widget.sort else [])), where)

    def object(self, name: str) -> ObjectSpec:
        for o in self.objects:
            if o.nameSingular == name:
                return o
        raise KeyError(name)


def _check_view(by_name: dict[str, ObjectSpec], view: ViewSpec) -> None:
    """A view's object and fields are declared, and a Kanban groups by a SELECT field."""
    if view.object not in by_name:
        raise ValueError(f"view {view.name!r}: unknown object {view.object!r}")
    if view.groupBy:
        try:
            group = by_name[view.object].field(view.groupBy)
        except KeyError:
            raise ValueError(f"view {view.name!r}: unknown field {view.groupBy!r}") from None
        if group.type != "SELECT":
            raise ValueError(f"view {view.name!r}: groupBy must be a SELECT field")
    _check_shown(by_name[view.object], view.fields, f"view {view.name!r}")


def relation_target(model: DataModel, obj: str, field: str) -> str | None:
    """The object a declared relation field of `obj` (or an inverse side Twenty makes for a
    relation declared on another object) points to; None for a field schema/ does not declare."""
    for o in model.objects:
        for f in o.fields:
            if f.relation is None:
                continue
            if o.nameSingular == obj and f.name == field:
                return f.relation.target
            if f.relation.target == obj and f.relation.target_field_name == field:
                return o.nameSingular
    return None


def section_fields(model: DataModel, section: SectionSpec) -> tuple[str, ...]:
    """The fields a record-page section holds: its own list, or every field the bridge declares
    on the object, then the inverse sides Twenty makes for the bridge's relations to it."""
    if section.fields is not None:
        return section.fields
    names = [f.name for f in model.object(section.object).fields if not f.standard]
    for obj in model.objects:
        for f in obj.fields:
            if f.relation and f.relation.target == section.object:
                names.append(f.relation.target_field_name)
    return tuple(dict.fromkeys(names))


def _check_shown(obj: ObjectSpec, fields: tuple[str, ...], where: str) -> None:
    """A view may show the fields schema/ declares, `name`, and (on a standard object) Twenty's
    own fields; those are checked against the workspace when provisioning plans."""
    declared = {f.name for f in obj.fields}
    for name in fields:
        if name not in declared and name != "name" and obj.custom:
            raise ValueError(f"{where}: {obj.nameSingular} has no field {name!r}")


def default_schema_dir() -> Path:
    """schema/ in a source checkout; bridge/_schema in an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "schema", here / "_schema"):
        if (candidate / "objects").is_dir():
            return candidate
    raise SchemaFileError("schema/ not found; set BRIDGE_SCHEMA_DIR")


def load_data_model(directory: Path | None = None) -> DataModel:
    directory = directory or default_schema_dir()
    objects: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    # An object's own file (`opportunity.toml`) before the files that add to it (`opportunity.*.toml`).
    for path in sorted((directory / "objects").glob("*.toml"), key=lambda p: ("." in p.stem, p.name)):
        raw = _read(path)
        header, fields = raw.get("object", {}), list(raw.get("fields", []))
        name = header.get("nameSingular") if isinstance(header, dict) else None
        if isinstance(name, str) and name in by_name:
            _extend(by_name[name], header, fields, path)
            continue
        obj = {**header, "fields": fields}
        objects.append(obj)
        if isinstance(name, str):
            by_name[name] = obj
    extra = _read(directory / "views.toml") if (directory / "views.toml").exists() else {}
    boards = _read(directory / "dashboards.toml") if (directory / "dashboards.toml").exists() else {}
    # Relations point at objects: create custom objects before the objects that reference them.
    objects.sort(key=lambda o: (not o.get("custom", False), o.get("nameSingular", "")))
    try:
        return DataModel(
            objects=objects,
            views=extra.get("views", []),
            columns=extra.get("columns", []),
            sections=extra.get("sections", []),
            links=extra.get("links", []),
            tabs=extra.get("tabs", []),
            dashboards=boards.get("dashboards", []),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SchemaFileError(f"{directory}: {where}: {first['msg'].removeprefix('Value error, ')}") from None


def _extend(obj: dict[str, Any], header: dict[str, Any], fields: list[Any], path: Path) -> None:
    """A second file of one object (`opportunity.waitlist.toml`) adds fields to it: each concern
    declares its own, and the object is one. Its header may only repeat what the first said."""
    for key, value in header.items():
        if key != "fields" and obj.get(key, value) != value:
            raise SchemaFileError(f"{path}: object.{key} is {value!r}, but {obj['nameSingular']} says {obj[key]!r}")
    known = {f.get("name") for f in obj["fields"] if isinstance(f, dict)}
    for field in fields:
        if isinstance(field, dict) and field.get("name") in known:
            raise SchemaFileError(f"{path}: {obj['nameSingular']}.{field['name']} is declared twice")
    obj["fields"] = [*obj["fields"], *fields]


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SchemaFileError(f"{path}: {exc}") from None
