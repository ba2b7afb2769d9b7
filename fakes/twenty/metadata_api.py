"""POST /metadata: graphql-core executing the dialect's real metadata SDL over the fake workspace.

The SDL files in sdl/ are introspected copies of real servers (1.x) and of the 2.43 SDK, so
introspection, argument types and document validation behave as the real endpoint's do; only
the resolvers below are the fake's own. A root field without a resolver answers an error saying
the fake does not implement it, rather than pretending.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    ValueNode,
    build_schema,
    execute_sync,
    get_operation_ast,
    validate,
)
from graphql.language import FieldNode

from . import layouts
from .documents import parsed
from .errors import TwentyError
from .rules import is_uuid
from .workspace import Meta, Workspace

SDL_DIR = Path(__file__).parent / "sdl"
SDL_FILES = {"1.x": "metadata-1.x.graphql", "2.x": "metadata-2.43.graphql"}
# A 2.x release whose metadata API differs (2.21: a widget's `gridPosition` is required).
RELEASE_SDL_FILES = {"2.21": "metadata-2.21.graphql"}
FORBIDDEN_MESSAGE = "Entity does not have permission to access this feature"
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
_MISSING = object()


@dataclass
class MetadataContext:
    ws: Workspace
    data_model_permission: bool


@dataclass
class MetadataOutcome:
    operation: str | None = None  # "query" | "mutation" once the document validated
    root_fields: list[str] = field(default_factory=list)
    encoded: bytes | None = None  # the response as sent, when it is a kept one (`_kept`)


Resolver = Callable[..., Any]


# -- resolvers --------------------------------------------------------------------------------


def _ws(info: GraphQLResolveInfo[MetadataContext]) -> Workspace:
    context: MetadataContext = info.context
    return context.ws


def _nest_match(item: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    """nestjs-query's filter comparisons (is / isNot / eq / in / …) on a metadata dict."""
    for key, condition in (flt or {}).items():
        if key == "and":
            if not all(_nest_match(item, sub) for sub in condition):
                return False
            continue
        if key == "or":
            if not any(_nest_match(item, sub) for sub in condition):
                return False
            continue
        value = item.get(key)
        for op, operand in (condition or {}).items():
            checks: dict[str, Callable[[Any, Any], bool]] = {
                "is": lambda v, o: v is o or v == o,
                "isNot": lambda v, o: not (v is o or v == o),
                "eq": lambda v, o: v == o,
                "neq": lambda v, o: v != o,
                "in": lambda v, o: v in o,
                "notIn": lambda v, o: v not in o,
                "like": lambda v, o: isinstance(v, str) and o.strip("%") in v,
                "iLike": lambda v, o: isinstance(v, str) and o.strip("%").lower() in v.lower(),
            }
            ok = checks.get(op)
            if ok is None:
                raise TwentyError(f"Unsupported filter comparison {op!r} in the fake")
            if not ok(value, operand):
                return False
    return True


def _connection(items: list[dict[str, Any]], paging: dict[str, Any] | None) -> dict[str, Any]:
    """A nestjs-query cursor connection: default page 10, at most 1000 (QueryOptions)."""
    paging = paging or {}
    first, last = paging.get("first"), paging.get("last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and size > 1000:
            raise TwentyError(f"Field paging.{name} max allowed value is `1000`.")

    def position(cursor: str) -> int:
        try:
            wanted = json.loads(base64.b64decode(cursor, validate=True))["id"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise TwentyError(f"Invalid cursor {cursor!r}") from None
        for index, item in enumerate(items):
            if item["id"] == wanted:
                return index
        raise TwentyError(f"Invalid cursor {cursor!r}")

    start, stop = 0, len(items)
    if paging.get("after"):
        start = position(paging["after"]) + 1
    if paging.get("before"):
        stop = position(paging["before"])
    window = items[start:stop]
    if last is not None and first is None:
        page = window[max(0, len(window) - last) :]
        has_next, has_previous = stop < len(items), len(window) > last
    else:
        size = 10 if first is None else first
        page = window[:size]
        has_next, has_previous = len(window) > size, start > 0

    def cursor(item: dict[str, Any]) -> str:
        return base64.b64encode(json.dumps({"id": item["id"]}).encode()).decode()

    return {
        "edges": [{"node": item, "cursor": cursor(item)} for item in page],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursor(page[0]) if page else None,
            "endCursor": cursor(page[-1]) if page else None,
        },
        "totalCount": len(items),
    }


def _all_fields(ws: Workspace) -> list[Meta]:
    return [_presented(f) for obj in ws.objects for f in obj["fieldsList"]]


def _presented(field_meta: Meta) -> Meta:
    """A field as the metadata API shows it: one side of a morph relation (kept as a plain
    relation for the records) is a MORPH_RELATION field of its own name ("targetPerson")."""
    if not field_meta.get("morphGroup"):
        return field_meta
    return {**field_meta, "type": "MORPH_RELATION", "morphId": field_meta["morphGroup"]}


def _listed(ws: Workspace, obj: Meta) -> list[Meta]:
    """An object's `fieldsList`: as `fields`, but a morph relation once, under its own name
    (2.21: timelineActivity's "target", with `targetPersonId`… as its join columns)."""
    out: list[Meta] = []
    seen: set[str] = set()
    for f in obj["fieldsList"]:
        group = f.get("morphGroup")
        if not group:
            out.append(f)
            continue
        if group in seen:
            continue
        seen.add(group)
        members = [m for m in obj["fieldsList"] if m.get("morphGroup") == group]
        relations = [r for m in members if (r := _relation_of(ws, m)) is not None]
        out.append({**_presented(f), "name": group, "label": "Target", "morphRelations": relations})
    return out


def _indexes(ws: Workspace, obj: Meta) -> list[dict[str, Any]]:
    out = []
    for key in ws.unique_keys(obj)[1:]:
        stamp = key.field["createdAt"]
        out.append(
            {
                "id": key.field["id"],
                "name": f"IDX_UNIQUE_{obj['nameSingular']}_{key.field['name']}",
                "isCustom": key.field["isCustom"],
                "isUnique": True,
                "indexWhereClause": None,
                "indexType": "BTREE",
                "createdAt": stamp,
                "updatedAt": stamp,
                "indexFieldMetadataList": [
                    {
                        "id": key.field["id"],
                        "fieldMetadataId": key.field["id"],
                        "order": 0,
                        "subFieldName": key.path[1] if len(key.path) > 1 else None,
                        "createdAt": stamp,
                        "updatedAt": stamp,
                    }
                ],
            }
        )
    return out


def _relation(field_meta: Meta, info: GraphQLResolveInfo[MetadataContext]) -> dict[str, Any] | None:
    if field_meta.get("type") != "RELATION":
        return None
    return _relation_of(_ws(info), field_meta)


def _relation_of(ws: Workspace, field_meta: Meta) -> dict[str, Any] | None:
    target = ws.relation_target(field_meta)
    source = ws.object(field_meta["objectMetadataId"])
    if target is None or source is None:
        return None
    return {
        "type": (field_meta.get("settings") or {}).get("relationType"),
        "sourceObjectMetadata": source,
        "targetObjectMetadata": target[0],
        "sourceFieldMetadata": field_meta,
        "targetFieldMetadata": target[1],
    }


def _views(ws: Workspace, object_id: str | None, types: list[str] | None = None) -> list[Meta]:
    return [
        v
        for v in ws.views
        if (object_id is None or v["objectMetadataId"] == object_id) and (not types or v["type"] in types)
    ]


def _field_groups(ws: Workspace, view_id: str) -> list[Meta]:
    return sorted(
        (g for g in ws.view_field_groups if g["viewId"] == view_id and g["deletedAt"] is None),
        key=lambda g: g["position"],
    )


def _live(layouts_: list[Meta]) -> list[Meta]:
    """Page layouts as the API answers them: deleted tabs and widgets left out."""
    out = []
    for layout in layouts_:
        if layout["deletedAt"] is not None:
            continue
        tabs = [
            {**t, "widgets": [w for w in t["widgets"] if w["deletedAt"] is None]}
            for t in layout["tabs"]
            if t["deletedAt"] is None
        ]
        out.append({**layout, "tabs": tabs})
    return out


def _find(items: list[Meta], item_id: str) -> Meta | None:
    return next((i for i in items if i["id"] == item_id), None)


def _query_resolvers(dialect: str) -> dict[str, Resolver]:
    resolvers: dict[str, Resolver] = {
        "objects": lambda _s, info, paging=None, filter=None: _connection(
            [o for o in _ws(info).objects if _nest_match(o, filter)], paging
        ),
        "object": lambda _s, info, id: _ws(info).require_object(id),
        "fields": lambda _s, info, paging=None, filter=None: _connection(
            [f for f in _all_fields(_ws(info)) if _nest_match(f, filter)], paging
        ),
        "field": lambda _s, info, id: _ws(info).require_field(id),
    }
    if dialect == "1.x":
        resolvers |= {
            "getCoreViews": lambda _s, info, objectMetadataId=None: _views(_ws(info), objectMetadataId),
            "getCoreView": lambda _s, info, id: _find(_ws(info).views, id),
            "getCoreViewGroups": lambda _s, info, viewId=None: [
                g for g in _ws(info).view_groups if viewId is None or g["viewId"] == viewId
            ],
            "getCoreViewFields": lambda _s, info, viewId: [f for f in _ws(info).view_fields if f["viewId"] == viewId],
            "getCoreViewField": lambda _s, info, id: _find(_ws(info).view_fields, id),
        }
    else:
        resolvers |= {
            "getViews": lambda _s, info, objectMetadataId=None, viewTypes=None: _views(
                _ws(info), objectMetadataId, viewTypes
            ),
            "getView": lambda _s, info, id: _find(_ws(info).views, id),
            "getViewGroups": lambda _s, info, viewId=None: [
                g for g in _ws(info).view_groups if viewId is None or g["viewId"] == viewId
            ],
            "getViewFields": lambda _s, info, viewId: [f for f in _ws(info).view_fields if f["viewId"] == viewId],
            "getViewField": lambda _s, info, id: _find(_ws(info).view_fields, id),
            "getViewFieldGroups": lambda _s, info, viewId: _field_groups(_ws(info), viewId),
            "getViewFieldGroup": lambda _s, info, id: _find(_ws(info).view_field_groups, id),
            "getPageLayouts": lambda _s, info, objectMetadataId=None, pageLayoutType=None: [
                layout
                for layout in _live(_ws(info).page_layouts)
                if (objectMetadataId is None or layout["objectMetadataId"] == objectMetadataId)
                and (pageLayoutType is None or layout["type"] == pageLayoutType)
            ],
            "getPageLayout": lambda _s, info, id: _find(_live(_ws(info).page_layouts), id),
            "navigationMenuItems": lambda _s, info: list(_ws(info).nav_items),
            "navigationMenuItem": lambda _s, info, id: _find(_ws(info).nav_items, id),
        }
    return resolvers


def _mutation_resolvers(dialect: str) -> dict[str, Resolver]:
    resolvers: dict[str, Resolver] = {
        "createOneObject": lambda _s, info, input: _ws(info).create_object(input["object"]),
        "updateOneObject": lambda _s, info, input: _ws(info).update_object(input["id"], input["update"]),
        "deleteOneObject": lambda _s, info, input: _ws(info).delete_object(input["id"]),
        "createOneField": lambda _s, info, input: _ws(info).create_field(input["field"]),
        "updateOneField": lambda _s, info, input: _ws(info).update_field(input["id"], input["update"]),
        "deleteOneField": lambda _s, info, input: _ws(info).delete_field(input["id"]),
    }
    if dialect == "1.x":
        resolvers |= {
            # 1.x's CreateViewInput defaults `key` to "INDEX" (its SDL): every view made so has it.
            "createCoreView": lambda _s, info, input: _ws(info).create_view({"key": "INDEX", **input}),
            "deleteCoreView": lambda _s, info, id: _ws(info).delete_view(id),
            "destroyCoreView": lambda _s, info, id: _ws(info).delete_view(id),
            "createCoreViewGroup": lambda _s, info, input: _ws(info).create_view_group(input),
            "createCoreViewField": lambda _s, info, input: _ws(info).create_view_field(input),
            "updateCoreViewField": lambda _s, info, id, input: _ws(info).update_view_field(id, input),
            "updateCoreView": lambda _s, info, id, input: layouts.update_view(_ws(info), id, input),
        }
    else:
        resolvers |= {
            "createView": lambda _s, info, input: _ws(info).create_view(input),
            "deleteView": lambda _s, info, id: _ws(info).delete_view(id),
            "destroyView": lambda _s, info, id: _ws(info).delete_view(id),
            "createViewGroup": lambda _s, info, input: _ws(info).create_view_group(input),
            "createManyViewGroups": lambda _s, info, inputs: [_ws(info).create_view_group(i) for i in inputs],
            "createViewField": lambda _s, info, input: _ws(info).create_view_field(input),
            "createManyViewFields": lambda _s, info, inputs: _ws(info).create_view_fields(inputs),
            "updateViewField": lambda _s, info, input: _ws(info).update_view_field(input["id"], input["update"]),
            "createViewFieldGroup": lambda _s, info, input: _ws(info).create_view_field_group(input),
            "createManyViewFieldGroups": lambda _s, info, inputs: [
                _ws(info).create_view_field_group(i) for i in inputs
            ],
            "updateViewFieldGroup": lambda _s, info, input: _ws(info).update_view_field_group(
                input["id"], input["update"]
            ),
            "createPageLayout": lambda _s, info, input: layouts.create_page_layout(_ws(info), input),
            "createPageLayoutTab": lambda _s, info, input: layouts.create_tab(_ws(info), input),
            "createPageLayoutWidget": lambda _s, info, input: layouts.create_widget(_ws(info), input),
            "updatePageLayoutWithTabsAndWidgets": lambda _s, info, id, input: layouts.update_with_tabs(
                _ws(info), id, input
            ),
            "createViewSort": lambda _s, info, input: layouts.create_view_sort(_ws(info), input),
            "createViewFilter": lambda _s, info, input: layouts.create_view_filter(_ws(info), input),
            "updateView": lambda _s, info, id, input: layouts.update_view(_ws(info), id, input),
            "createNavigationMenuItem": lambda _s, info, input: _ws(info).create_nav_item(input),
            "createManyNavigationMenuItems": lambda _s, info, inputs: [_ws(info).create_nav_item(i) for i in inputs],
            "deleteNavigationMenuItem": lambda _s, info, id: _ws(info).delete_nav_item(id),
        }
    return resolvers


def _type_resolvers(dialect: str) -> dict[tuple[str, str], Resolver]:
    resolvers: dict[tuple[str, str], Resolver] = {
        ("Object", "fields"): lambda obj, _info, paging=None, filter=None: _connection(
            [_presented(f) for f in obj["fieldsList"] if _nest_match(f, filter)], paging
        ),
        ("Object", "fieldsList"): lambda obj, info: _listed(_ws(info), obj),
        ("Object", "indexMetadataList"): lambda obj, info: _indexes(_ws(info), obj),
        ("Object", "indexMetadatas"): lambda obj, info, paging=None, filter=None: _connection(
            _indexes(_ws(info), obj), paging
        ),
        ("Field", "relation"): _relation,
        ("Field", "object"): lambda f, info: _ws(info).object(f["objectMetadataId"]),
    }
    if dialect == "2.x":
        resolvers |= {
            ("View", "viewGroups"): lambda v, info: [g for g in _ws(info).view_groups if g["viewId"] == v["id"]],
            ("View", "viewFields"): lambda v, info: [f for f in _ws(info).view_fields if f["viewId"] == v["id"]],
            ("View", "viewFieldGroups"): lambda v, info: _field_groups(_ws(info), v["id"]),
            ("View", "viewSorts"): lambda v, info: [x for x in _ws(info).view_sorts if x["viewId"] == v["id"]],
            ("View", "viewFilters"): lambda v, info: [x for x in _ws(info).view_filters if x["viewId"] == v["id"]],
            ("ViewFieldGroup", "viewFields"): lambda g, info: [
                f for f in _ws(info).view_fields if f["viewFieldGroupId"] == g["id"]
            ],
        }
    return resolvers


# -- plumbing -------------------------------------------------------------------------------


def _wrap(resolve: Resolver, *, guarded: bool) -> Resolver:
    """TwentyError -> GraphQLError with extensions; mutations also pass the DATA_MODEL guard."""

    def run(source: Any, info: GraphQLResolveInfo[MetadataContext], **args: Any) -> Any:
        context: MetadataContext = info.context
        try:
            if guarded and not context.data_model_permission:
                raise TwentyError(FORBIDDEN_MESSAGE, "FORBIDDEN", status=403)
            return resolve(source, info, **args)
        except TwentyError as error:
            raise GraphQLError(error.message, extensions={"code": error.code, **error.extensions}) from None

    return run


def _not_implemented(name: str) -> Resolver:
    def run(_source: Any, _info: GraphQLResolveInfo[MetadataContext], **_args: Any) -> Any:
        raise TwentyError(f"{name} is not implemented by the fake Twenty", "INTERNAL_SERVER_ERROR")

    return run


def _fallback(return_type: Any, info: GraphQLResolveInfo[MetadataContext]) -> Any:
    """A type-correct placeholder for a non-null field the fake keeps no value for."""
    if isinstance(return_type, GraphQLList):
        return []
    if isinstance(return_type, GraphQLEnumType):
        return next(iter(return_type.values))
    if isinstance(return_type, GraphQLScalarType):
        return {
            "Boolean": False,
            "String": "",
            "Int": 0,
            "Float": 0.0,
            "ID": _NIL_UUID,
            "UUID": _NIL_UUID,
            "DateTime": "1970-01-01T00:00:00.000Z",
        }.get(return_type.name)
    return None


def default_resolver(source: Any, info: GraphQLResolveInfo[MetadataContext], **_args: Any) -> Any:
    value = source.get(info.field_name, _MISSING) if isinstance(source, dict) else _MISSING
    if value is _MISSING or value is None:
        if isinstance(info.return_type, GraphQLNonNull):
            return _fallback(info.return_type.of_type, info)
        return None
    return value


def _parse_uuid_value(value: Any) -> str:
    if not is_uuid(value):
        raise GraphQLError(f"Invalid UUID: {value!r}")
    return str(value)


def _parse_uuid_literal(node: ValueNode, _variables: Any = None) -> str:
    if isinstance(node, StringValueNode) and is_uuid(node.value):
        return node.value
    raise GraphQLError("Invalid UUID literal")


@functools.cache
def metadata_schema(dialect: str, release: str | None = None) -> GraphQLSchema:
    """The dialect's metadata schema (or a 2.x release's) with the fake's resolvers, built once
    per process."""
    sdl = RELEASE_SDL_FILES[release] if release else SDL_FILES[dialect]
    schema = build_schema((SDL_DIR / sdl).read_text(encoding="utf-8"))
    uuid_type = schema.type_map.get("UUID")
    if isinstance(uuid_type, GraphQLScalarType):
        uuid_type.parse_value = _parse_uuid_value  # type: ignore[method-assign]
        uuid_type.parse_literal = _parse_uuid_literal  # type: ignore[method-assign,assignment]
    for root_type, resolvers, guarded in (
        (schema.query_type, _query_resolvers(dialect), False),
        (schema.mutation_type, _mutation_resolvers(dialect), True),
    ):
        assert root_type is not None
        for name, root_field in root_type.fields.items():
            resolve = resolvers.get(name) or _not_implemented(f"{root_type.name}.{name}")
            root_field.resolve = _wrap(resolve, guarded=guarded)
    for (type_name, field_name), resolve in _type_resolvers(dialect).items():
        gql_type = schema.type_map.get(type_name)
        if isinstance(gql_type, GraphQLObjectType) and field_name in gql_type.fields:
            target: GraphQLField = gql_type.fields[field_name]
            target.resolve = _wrap(resolve, guarded=False)
    return schema


# Answers kept, as data and as the bytes sent (as Starlette's JSONResponse encodes them): the
# introspection (about 1 MB; it does not depend on the workspace) and the list of objects (keyed
# by everything it reads, the objects themselves as text: ~10x cheaper than executing it). The
# bridge asks for both every time it connects; a kept answer is what executing would give.
_KEEP = 64
_kept: OrderedDict[tuple[str, ...], tuple[dict[str, Any], bytes]] = OrderedDict()


def _kept_key(ws: Workspace, body: dict[str, Any], outcome: MetadataOutcome) -> tuple[str, ...] | None:
    if outcome.operation != "query":
        return None
    base = (f"{ws.dialect}/{ws.release}", body["query"], json.dumps(body.get("variables") or {}, sort_keys=True))
    base += (str(body.get("operationName")),)
    if all(n.startswith("__") for n in outcome.root_fields):
        return base
    if outcome.root_fields == ["objects"]:  # reads the objects and the dialect, nothing else
        return (*base, repr(ws.objects))
    return None


# Each document is validated once per schema, as a server's document cache would (the answers
# are the same, only cheaper).
@functools.lru_cache(maxsize=512)
def _validation_errors(dialect: str, release: str | None, query: str) -> tuple[GraphQLError, ...]:
    return tuple(validate(metadata_schema(dialect, release), parsed(query)))


def _root_names(operation: OperationDefinitionNode) -> list[str]:
    return [s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)]


def _format(error: GraphQLError, default_code: str, *, executing: bool = False) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    if "code" not in extensions:
        # An execution error with no path and no cause is a variable that failed coercion.
        coercion = executing and error.original_error is None and not error.path
        extensions["code"] = "BAD_USER_INPUT" if coercion else default_code
    formatted["extensions"] = extensions
    return formatted


def execute_metadata(
    ws: Workspace, body: Any, *, data_model_permission: bool
) -> tuple[dict[str, Any], MetadataOutcome]:
    outcome = MetadataOutcome()
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        error = {"message": "Must provide query string.", "extensions": {"code": "BAD_REQUEST"}}
        return {"errors": [error]}, outcome
    schema = metadata_schema(ws.dialect, ws.release)
    query: str = body["query"]
    variables = body.get("variables") or {}
    operation_name = body.get("operationName")
    try:
        document = parsed(query)
    except GraphQLError as error:
        return {"errors": [_format(error, "GRAPHQL_PARSE_FAILED")]}, outcome
    validation_errors = _validation_errors(ws.dialect, ws.release, query)
    if validation_errors:
        return {"errors": [_format(e, "GRAPHQL_VALIDATION_FAILED") for e in validation_errors]}, outcome
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        unknown = {"message": "Unknown or ambiguous operation", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
        return {"errors": [unknown]}, outcome
    outcome.operation = operation.operation.value
    outcome.root_fields = _root_names(operation)
    kept_key = _kept_key(ws, body, outcome)
    if kept_key is not None and kept_key in _kept:
        _kept.move_to_end(kept_key)
        response, outcome.encoded = _kept[kept_key]
        return response, outcome
    result: ExecutionResult = execute_sync(
        schema,
        document,
        context_value=MetadataContext(ws, data_model_permission),
        variable_values=variables,
        operation_name=operation_name,
        field_resolver=default_resolver,
    )
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [_format(e, "INTERNAL_SERVER_ERROR", executing=True) for e in result.errors]
    if kept_key is not None and not result.errors:
        outcome.encoded = json.dumps(response, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        _kept[kept_key] = (response, outcome.encoded)
        while len(_kept) > _KEEP:
            _kept.popitem(last=False)
    return response, outcome
