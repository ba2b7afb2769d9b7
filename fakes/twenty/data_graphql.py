"""POST /graphql: Twenty's per-workspace data API, interpreted from the document.

Real Twenty generates this schema from the workspace's metadata, so the fake has no SDL for it:
it parses the document with graphql-core and maps root fields by name (`people`, `person`,
`createPeople`, `updatePerson`, …) onto records.py. Selections are checked against the metadata
before anything runs, so a document asking for an unknown field writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeNode,
    Undefined,
    print_ast,
)
from graphql.language import ListTypeNode
from graphql.utilities import value_from_ast_untyped

from .documents import parsed
from .errors import TwentyError, not_found
from .records import (
    MAX_RECORDS_2X,
    Page,
    cap,
    create_records,
    destroy_record,
    destroy_records,
    find_page,
    is_deleted,
    response_slice,
    restore_record,
    restore_records,
    select,
    soft_delete_record,
    soft_delete_records,
    update_record,
    update_records,
)
from .rules import COMPOSITE_TYPENAMES, composite_subfields
from .workspace import Meta, Record, Workspace

_ARGS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (allowed, required)
    "findMany": ({"filter", "orderBy", "first", "last", "after", "before", "limit"}, set()),
    "findOne": ({"filter"}, {"filter"}),
    "createMany": ({"data", "upsert"}, {"data"}),
    "createOne": ({"data", "upsert"}, {"data"}),
    "updateOne": ({"id", "data"}, {"id", "data"}),
    "updateMany": ({"filter", "data"}, {"filter", "data"}),
    "deleteOne": ({"id"}, {"id"}),
    "deleteMany": ({"filter"}, {"filter"}),
    "destroyOne": ({"id"}, {"id"}),
    "destroyMany": ({"filter"}, {"filter"}),
    "restoreOne": ({"id"}, {"id"}),
    "restoreMany": ({"filter"}, {"filter"}),
}
_PAGE_INFO = ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")
_TYPE_SUFFIXES = re.compile(r"^(?P<object>[A-Z][A-Za-z0-9]*?)(CreateInput|UpdateInput|FilterInput|OrderByInput)$")


def _validation(message: str) -> TwentyError:
    return TwentyError(message, "GRAPHQL_VALIDATION_FAILED")


@dataclass
class DataOutcome:
    """What one /graphql request did, for the fake's stats."""

    reads: int = 0
    writes: int = 0
    records_written: int = 0
    operations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Root:
    kind: str
    obj: Meta


def _root_fields(ws: Workspace, operation: str) -> dict[str, _Root]:
    roots: dict[str, _Root] = {}
    for obj in ws.objects:
        if not obj["isActive"]:
            continue
        singular, plural = obj["nameSingular"], obj["namePlural"]
        if operation == "query":
            roots[plural] = _Root("findMany", obj)
            roots[singular] = _Root("findOne", obj)
            continue
        for verb in ("create", "update", "delete", "destroy", "restore"):
            roots[f"{verb}{cap(plural)}"] = _Root(f"{verb}Many", obj)
            roots[f"{verb}{cap(singular)}"] = _Root(f"{verb}One", obj)
    return roots


def _strip_undefined(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_undefined(v) for k, v in value.items() if v is not Undefined}
    if isinstance(value, list):
        return [_strip_undefined(v) for v in value if v is not Undefined]
    return value


class _Document:
    """The operation to run, its fragments and its variables."""

    def __init__(self, ws: Workspace, body: dict[str, Any]) -> None:
        query = body.get("query")
        if not isinstance(query, str):
            raise TwentyError("Must provide query string.", "BAD_REQUEST")
        try:
            document = parsed(query)
        except GraphQLError as error:
            raise TwentyError(error.message, "GRAPHQL_PARSE_FAILED") from None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        name = body.get("operationName")
        if name:
            chosen = [o for o in operations if o.name and o.name.value == name]
            if not chosen:
                raise _validation(f'Unknown operation named "{name}".')
            self.operation = chosen[0]
        elif len(operations) == 1:
            self.operation = operations[0]
        else:
            raise _validation("Must provide operation name if query contains multiple operations.")
        raw_variables = body.get("variables") or {}
        if not isinstance(raw_variables, dict):
            raise TwentyError("Variables must be provided as an object", "BAD_USER_INPUT")
        self.variables: dict[str, Any] = {}
        for definition in self.operation.variable_definitions or ():
            var_name = definition.variable.name.value
            _check_type_name(ws, definition.type)
            if var_name in raw_variables:
                self.variables[var_name] = raw_variables[var_name]
            elif definition.default_value is not None:
                self.variables[var_name] = value_from_ast_untyped(definition.default_value, {})
            elif isinstance(definition.type, NonNullTypeNode):
                raise TwentyError(
                    f'Variable "${var_name}" of required type "{print_ast(definition.type)}" was not provided.',
                    "BAD_USER_INPUT",
                )

    def included(self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
        for directive in node.directives or ():
            condition = next((a for a in directive.arguments or () if a.name.value == "if"), None)
            value = bool(value_from_ast_untyped(condition.value, self.variables)) if condition else True
            if directive.name.value == "skip" and value:
                return False
            if directive.name.value == "include" and not value:
                return False
        return True

    def fields(self, selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
        """The field nodes of a selection set with fragments flattened (type conditions ignored)."""
        for selection in selection_set.selections if selection_set else ():
            if not self.included(selection):  # type: ignore[arg-type]
                continue
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self.fields(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    raise _validation(f'Unknown fragment "{selection.name.value}".')
                yield from self.fields(fragment.selection_set)

    def args(self, node: FieldNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for argument in node.arguments or ():
            value = value_from_ast_untyped(argument.value, self.variables)
            if value is not Undefined:
                out[argument.name.value] = _strip_undefined(value)
        return out


def _check_type_name(ws: Workspace, type_node: TypeNode) -> None:
    """Reject variable types Twenty would not know, e.g. `PeopleCreateInput` for `PersonCreateInput`."""
    while isinstance(type_node, NonNullTypeNode | ListTypeNode):
        type_node = type_node.type
    assert isinstance(type_node, NamedTypeNode)
    match = _TYPE_SUFFIXES.match(type_node.name.value)
    if match and not any(cap(o["nameSingular"]) == match.group("object") for o in ws.objects):
        raise _validation(f'Unknown type "{type_node.name.value}".')


class _Renderer:
    """Validates selections against the metadata and renders records into them."""

    def __init__(self, ws: Workspace, doc: _Document) -> None:
        self.ws = ws
        self.doc = doc
        self._members: dict[str, dict[str, tuple[str, Meta]]] = {}

    def members(self, obj: Meta) -> dict[str, tuple[str, Meta]]:
        cached = self._members.get(obj["id"])
        if cached is not None:
            return cached
        members: dict[str, tuple[str, Meta]] = {}
        for item in self.ws.active_fields(obj):
            if item["type"] == "RELATION":
                column = self.ws.join_column(item)
                if column:
                    members[column] = ("join", item)
                members[item["name"]] = ("manyToOne" if column else "oneToMany", item)
            elif composite_subfields(self.ws.dialect, item["type"]) is not None:
                members[item["name"]] = ("composite", item)
            else:
                members[item["name"]] = ("scalar", item)
        self._members[obj["id"]] = members
        return members

    def _target(self, item: Meta) -> tuple[Meta, Meta]:
        target = self.ws.relation_target(item)
        assert target is not None
        return target

    # validation ------------------------------------------------------------------------------

    def check_record(self, obj: Meta, selection: SelectionSetNode | None, type_name: str) -> None:
        if selection is None:
            raise _validation(f'Field of type "{type_name}" must have a selection of subfields.')
        members = self.members(obj)
        for node in self.doc.fields(selection):
            name = node.name.value
            if name == "__typename":
                continue
            member = members.get(name)
            if member is None:
                raise _validation(f'Cannot query field "{name}" on type "{type_name}".')
            kind, item = member
            if kind in ("scalar", "join"):
                if node.selection_set is not None:
                    raise _validation(f'Field "{name}" must not have a selection since it is a leaf.')
            elif kind == "composite":
                sub = composite_subfields(self.ws.dialect, item["type"]) or {}
                if node.selection_set is None:
                    composite = COMPOSITE_TYPENAMES[item["type"]]
                    raise _validation(f'Field "{name}" of type "{composite}" must have a selection of subfields.')
                for sub_node in self.doc.fields(node.selection_set):
                    if sub_node.name.value not in sub and sub_node.name.value != "__typename":
                        raise _validation(
                            f'Cannot query field "{sub_node.name.value}" on type "{COMPOSITE_TYPENAMES[item["type"]]}".'
                        )
            elif kind == "manyToOne":
                target_obj, _ = self._target(item)
                self.check_record(target_obj, node.selection_set, cap(target_obj["nameSingular"]))
            else:
                target_obj, _ = self._target(item)
                self.check_connection(target_obj, node.selection_set)

    def check_connection(self, obj: Meta, selection: SelectionSetNode | None) -> None:
        type_name = f"{cap(obj['nameSingular'])}Connection"
        if selection is None:
            raise _validation(f'Field of type "{type_name}" must have a selection of subfields.')
        for node in self.doc.fields(selection):
            name = node.name.value
            if name in ("__typename", "totalCount"):
                continue
            if name == "pageInfo":
                for sub in self.doc.fields(node.selection_set):
                    if sub.name.value not in (*_PAGE_INFO, "__typename"):
                        raise _validation(f'Cannot query field "{sub.name.value}" on type "PageInfo".')
            elif name == "edges":
                for sub in self.doc.fields(node.selection_set):
                    if sub.name.value == "node":
                        self.check_record(obj, sub.selection_set, cap(obj["nameSingular"]))
                    elif sub.name.value not in ("cursor", "__typename"):
                        raise _validation(
                            f'Cannot query field "{sub.name.value}" on type "{cap(obj["nameSingular"])}Edge".'
                        )
            else:
                raise _validation(f'Cannot query field "{name}" on type "{type_name}".')

    # rendering -------------------------------------------------------------------------------

    def record(self, obj: Meta, record: Record, selection: SelectionSetNode | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        members = self.members(obj)
        for node in self.doc.fields(selection):
            alias = node.alias.value if node.alias else node.name.value
            name = node.name.value
            if name == "__typename":
                out[alias] = cap(obj["nameSingular"])
                continue
            kind, item = members[name]
            if kind in ("scalar", "join"):
                out[alias] = record.get(name)
            elif kind == "composite":
                value = record.get(name) or {}
                out[alias] = {
                    (s.alias.value if s.alias else s.name.value): (
                        COMPOSITE_TYPENAMES[item["type"]] if s.name.value == "__typename" else value.get(s.name.value)
                    )
                    for s in self.doc.fields(node.selection_set)
                }
            elif kind == "manyToOne":
                target_obj, _ = self._target(item)
                column = self.ws.join_column(item)
                related = self.ws.records_of(target_obj).get(record.get(column or "") or "")
                out[alias] = (
                    self.record(target_obj, related, node.selection_set)
                    if related is not None and not is_deleted(related)
                    else None
                )
            else:
                target_obj, inverse = self._target(item)
                back = self.ws.join_column(inverse)
                args = self.doc.args(node)
                scope = {back: {"eq": record["id"]}} if back else {}
                flt = {"and": [args["filter"], scope]} if args.get("filter") else scope
                page = find_page(
                    self.ws,
                    target_obj,
                    flt=flt,
                    order_by=args.get("orderBy"),
                    first=args.get("first", args.get("limit")),
                    last=args.get("last"),
                    after=args.get("after"),
                    before=args.get("before"),
                    max_page=None,
                )
                out[alias] = self.connection(target_obj, page, node.selection_set)
        return out

    def connection(self, obj: Meta, page: Page, selection: SelectionSetNode | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        type_name = cap(obj["nameSingular"])
        for node in self.doc.fields(selection):
            alias = node.alias.value if node.alias else node.name.value
            name = node.name.value
            if name == "__typename":
                out[alias] = f"{type_name}Connection"
            elif name == "totalCount":
                out[alias] = page.total
            elif name == "pageInfo":
                info = {
                    "hasNextPage": page.has_next,
                    "hasPreviousPage": page.has_previous,
                    "startCursor": page.start_cursor,
                    "endCursor": page.end_cursor,
                    "__typename": "PageInfo",
                }
                out[alias] = {
                    (s.alias.value if s.alias else s.name.value): info[s.name.value]
                    for s in self.doc.fields(node.selection_set)
                }
            elif name == "edges":
                edges = []
                for row in page.rows:
                    edge: dict[str, Any] = {}
                    for sub in self.doc.fields(node.selection_set):
                        sub_alias = sub.alias.value if sub.alias else sub.name.value
                        if sub.name.value == "node":
                            edge[sub_alias] = self.record(obj, row, sub.selection_set)
                        elif sub.name.value == "cursor":
                            edge[sub_alias] = page.cursor(row)
                        else:
                            edge[sub_alias] = f"{type_name}Edge"
                    edges.append(edge)
                out[alias] = edges
        return out


def execute_data(ws: Workspace, body: Any) -> tuple[dict[str, Any], DataOutcome]:
    """Run one /graphql request; errors come back as GraphQL errors with extensions.code."""
    outcome = DataOutcome()
    if not isinstance(body, dict):
        return {"errors": [TwentyError("POST body must be a JSON object", "BAD_REQUEST").graphql()]}, outcome
    try:
        doc = _Document(ws, body)
        operation = doc.operation.operation.value
        if operation not in ("query", "mutation"):
            raise _validation(f"{operation} operations are not supported by the data API")
        roots = _root_fields(ws, operation)
        renderer = _Renderer(ws, doc)
        plan: list[tuple[FieldNode, _Root | None]] = []
        for node in doc.fields(doc.operation.selection_set):
            name = node.name.value
            if name in ("__schema", "__type"):
                raise _validation("The fake Twenty data API does not serve introspection")
            if name == "__typename":
                plan.append((node, None))
                continue
            root = roots.get(name)
            if root is None:
                # The spec the bridge is written against treats an unknown object as bad input.
                raise TwentyError(f'Cannot query field "{name}" on type "{operation.capitalize()}".', "BAD_USER_INPUT")
            allowed, required = _ARGS[root.kind]
            given = {a.name.value for a in node.arguments or ()}
            for arg in given - allowed:
                raise _validation(f'Unknown argument "{arg}" on field "{operation.capitalize()}.{name}".')
            for arg in required - given:
                raise _validation(f'Field "{name}" argument "{arg}" is required but not provided.')
            type_name = cap(root.obj["nameSingular"])
            if root.kind == "findMany":
                renderer.check_connection(root.obj, node.selection_set)
            else:
                renderer.check_record(root.obj, node.selection_set, type_name)
            plan.append((node, root))
    except TwentyError as error:
        return {"errors": [error.graphql()]}, outcome

    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for node, root in plan:
        alias = node.alias.value if node.alias else node.name.value
        if root is None:
            data[alias] = operation.capitalize()
            continue
        try:
            data[alias], written = _run(ws, renderer, doc, node, root)
        except TwentyError as error:
            data[alias] = None
            errors.append(error.graphql([alias]))
            continue
        outcome.operations.append(node.name.value)
        if root.kind.startswith("find"):
            outcome.reads = 1
        else:
            outcome.writes = 1
            outcome.records_written += written
    response: dict[str, Any] = {"data": data}
    if errors:
        response["errors"] = errors
    return response, outcome


def _run(ws: Workspace, renderer: _Renderer, doc: _Document, node: FieldNode, root: _Root) -> tuple[Any, int]:
    args = doc.args(node)
    obj, kind, selection = root.obj, root.kind, node.selection_set

    def many(rows: list[Record]) -> list[dict[str, Any]]:
        return [renderer.record(obj, r, selection) for r in rows]

    if kind == "findMany":
        page = find_page(
            ws,
            obj,
            flt=args.get("filter"),
            order_by=args.get("orderBy"),
            first=args.get("first", args.get("limit")),
            last=args.get("last"),
            after=args.get("after"),
            before=args.get("before"),
            max_page=MAX_RECORDS_2X if ws.dialect == "2.x" else None,
        )
        return renderer.connection(obj, page, selection), 0
    if kind == "findOne":
        rows = select(ws, obj, args.get("filter"))
        if not rows:
            raise not_found("Record not found")
        return renderer.record(obj, rows[0], selection), 0
    if kind in ("createMany", "createOne"):
        upsert = bool(args.get("upsert"))
        data = args.get("data")
        # GraphQL input coercion turns a single object given for a list argument into a list of one.
        batch = data if kind == "createMany" and isinstance(data, list) else [data]
        results = create_records(ws, obj, batch, upsert=upsert)
        written = sum(1 for r in results if r is not None)
        if kind == "createOne":
            return (renderer.record(obj, results[0], selection) if results[0] else None), written
        return many(response_slice(ws, results)), written
    if kind == "updateOne":
        return renderer.record(obj, update_record(ws, obj, args.get("id"), args.get("data")), selection), 1
    if kind == "updateMany":
        rows = update_records(ws, obj, args.get("filter"), args.get("data"))
        return many(rows), len(rows)
    one = {"deleteOne": soft_delete_record, "destroyOne": destroy_record, "restoreOne": restore_record}
    if kind in one:
        return renderer.record(obj, one[kind](ws, obj, args.get("id")), selection), 1
    several = {"deleteMany": soft_delete_records, "destroyMany": destroy_records, "restoreMany": restore_records}
    rows = several[kind](ws, obj, args.get("filter"))
    return many(rows), len(rows)
