"""/rest/*: Twenty's REST data API over the same record operations as /graphql.

The filter parser follows the fact sheet's description of Twenty's `filter=` syntax:
`field[comparator]:value`, top-level commas AND, `and(...)`, `or(...)`, `not(...)`, dotted
composite sub-fields, `[v1,v2]` lists, and values quoted with "…" or '…' (commas inside are safe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import TwentyError
from .records import (
    DEFAULT_PAGE,
    MAX_RECORDS_2X,
    cap,
    create_records,
    find_page,
    render_record,
    response_slice,
    restore_record,
    soft_delete_record,
    update_record,
)
from .rules import is_uuid
from .workspace import Meta, Workspace

REST_COMPARATORS = frozenset("eq neq in containsAny is gt gte lt lte startsWith endsWith like ilike".split())
_CONDITION = re.compile(
    r"^(?P<path>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?)\[(?P<op>[A-Za-z]+)\]:(?P<value>.*)$", re.S
)
_CONJUNCTION = re.compile(r"^(and|or|not)\(", re.S)


def _parse_error(message: str) -> TwentyError:
    return TwentyError(f"Invalid filter: {message}", "BAD_USER_INPUT", status=400)


def _split_top(text: str) -> list[str]:
    """Split on commas outside (), [] and quotes. A quote opens only where a value starts."""
    parts: list[str] = []
    buf: list[str] = []
    depth = 0
    quote: str | None = None
    previous = ""
    for char in text:
        if quote:
            buf.append(char)
            if char == quote:
                quote = None
            continue
        if char in "\"'" and previous in ("", ":", "[", ","):
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth < 0:
                raise _parse_error(f"unbalanced brackets in {text!r}")
        elif char == "," and depth == 0:
            parts.append("".join(buf))
            buf = []
            previous = ","
            continue
        buf.append(char)
        if not char.isspace():
            previous = char
    if quote:
        raise _parse_error(f"unterminated quote in {text!r}")
    if depth != 0:
        raise _parse_error(f"unbalanced brackets in {text!r}")
    parts.append("".join(buf))
    return [p.strip() for p in parts]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _closing_paren(text: str, opening: int) -> int:
    depth = 0
    quote: str | None = None
    for index in range(opening, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'" and text[index - 1] in ":[,":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    raise _parse_error(f"unbalanced parentheses in {text!r}")


def parse_rest_filter(ws: Workspace, obj: Meta, text: str) -> dict[str, Any]:
    """`filter=` text -> the GraphQL filter object records.compile_filter understands."""
    text = text.strip()
    if not text:
        raise _parse_error("empty filter")
    match = _CONJUNCTION.match(text)
    if match and _closing_paren(text, match.end() - 1) == len(text) - 1:
        inner = [p for p in _split_top(text[match.end() : -1]) if p]
        children = [parse_rest_filter(ws, obj, p) for p in inner]
        if match.group(1) == "not":
            if len(children) != 1:
                raise _parse_error("not(...) takes exactly one condition")
            return {"not": children[0]}
        return {match.group(1): children}
    parts = _split_top(text)
    if len(parts) > 1:
        return {"and": [parse_rest_filter(ws, obj, p) for p in parts if p]}
    return _condition(ws, obj, text)


def _condition(ws: Workspace, obj: Meta, text: str) -> dict[str, Any]:
    match = _CONDITION.match(text)
    if not match:
        raise _parse_error(f"{text!r} is not of the form field[comparator]:value")
    path = match.group("path").split(".")
    op = match.group("op")
    raw = match.group("value").strip()
    if op not in REST_COMPARATORS:
        raise _parse_error(f'unknown comparator "{op}" in {text!r}')
    field_type = _value_type(ws, obj, path)
    value: Any
    if op in ("in", "containsAny"):
        if not (raw.startswith("[") and raw.endswith("]")):
            raise _parse_error(f"{op} needs a list such as [v1,v2] in {text!r}")
        inner = raw[1:-1].strip()
        value = [_coerce(field_type, _unquote(v)) for v in _split_top(inner)] if inner else []
    elif op == "is":
        value = _unquote(raw)
        if value not in ("NULL", "NOT_NULL"):
            raise _parse_error(f"[is] takes NULL or NOT_NULL in {text!r}")
    else:
        value = _coerce(field_type, _unquote(raw))
    condition: dict[str, Any] = {op: value}
    return {path[0]: {path[1]: condition}} if len(path) == 2 else {path[0]: condition}


def _value_type(ws: Workspace, obj: Meta, path: list[str]) -> str:
    """The type a filter value should be read as; unknown fields are left for compile_filter."""
    meta = ws.field(obj, path[0])
    if meta is None:
        return "TEXT"
    if len(path) == 2:
        return "NUMBER" if path[1] in ("amountMicros", "addressLat", "addressLng") else "TEXT"
    return str(meta["type"])


def _coerce(field_type: str, value: str) -> Any:
    if field_type in ("NUMBER", "NUMERIC", "POSITION"):
        try:
            number = float(value)
        except ValueError:
            raise _parse_error(f"{value!r} is not a number") from None
        return int(number) if number.is_integer() else number
    if field_type == "BOOLEAN":
        if value.lower() not in ("true", "false"):
            raise _parse_error(f"{value!r} is not a boolean")
        return value.lower() == "true"
    return value


def parse_order_by(ws: Workspace, obj: Meta, text: str) -> list[dict[str, Any]]:
    """`order_by=createdAt[DescNullsLast],name.firstName` -> GraphQL orderBy (default AscNullsFirst)."""
    order: list[dict[str, Any]] = []
    for part in _split_top(text):
        match = re.fullmatch(r"([A-Za-z0-9_.]+)(?:\[([A-Za-z]+)\])?", part)
        if not match:
            raise TwentyError(f"Invalid order_by: {part!r}", status=400)
        path = match.group(1).split(".")
        direction = match.group(2) or "AscNullsFirst"
        order.append({path[0]: {path[1]: direction}} if len(path) == 2 else {path[0]: direction})
    return order


@dataclass
class RestOutcome:
    status: int
    body: Any
    write: bool = False
    records_written: int = 0
    operation: str = ""


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise TwentyError(f"{name} must be an integer, got {raw!r}", status=400) from None


def handle_rest(ws: Workspace, method: str, parts: list[str], params: dict[str, str], body: Any) -> RestOutcome:
    """Dispatch one REST call. `parts` is the path after /rest/, split on '/'."""
    method = method.upper()
    restore = bool(parts) and parts[0] == "restore"
    batch = bool(parts) and parts[0] == "batch"
    if restore or batch:
        parts = parts[1:]
    if not parts or len(parts) > 2:
        raise TwentyError("Unknown REST path", "NOT_FOUND", status=404)
    obj = ws.object(parts[0])
    if obj is None or obj["namePlural"] != parts[0] or not obj["isActive"]:
        raise TwentyError(f"object '{parts[0]}' not found", status=400)
    record_id = parts[1] if len(parts) == 2 else None
    singular, plural = obj["nameSingular"], obj["namePlural"]
    depth = _int_param(params, "depth", 1)
    if depth not in (0, 1, 2):
        raise TwentyError("depth must be 0, 1 or 2", status=400)

    def render(record: dict[str, Any]) -> dict[str, Any]:
        return render_record(ws, obj, record, depth)

    # 1.x ignores ?upsert=true on REST (observed #1); 2.x honours exactly "true".
    upsert = ws.dialect == "2.x" and params.get("upsert") == "true"
    if batch:
        if method != "POST" or record_id is not None:
            raise TwentyError("Batch only supports POST /rest/batch/{objects}", status=405)
        if not isinstance(body, list):
            raise TwentyError("The batch body must be a JSON array", status=400)
        results = create_records(ws, obj, body, upsert=upsert)
        rows = response_slice(ws, results)
        written = sum(1 for r in results if r is not None)
        return RestOutcome(
            201,
            {"data": {f"create{cap(plural)}": [render(r) for r in rows]}},
            True,
            written,
            f"POST /rest/batch/{plural}",
        )
    if restore:
        if method != "PATCH" or record_id is None:
            raise TwentyError("Restore is PATCH /rest/restore/{objects}/{id}", status=405)
        record = restore_record(ws, obj, record_id)
        return RestOutcome(
            200, {"data": {f"restore{cap(singular)}": render(record)}}, True, 1, f"PATCH /rest/restore/{plural}/{{id}}"
        )
    if record_id is None:
        if method == "GET":
            limit = min(_int_param(params, "limit", DEFAULT_PAGE), MAX_RECORDS_2X)  # silently capped
            if limit < 0:
                raise TwentyError("limit must not be negative", status=400)
            flt = parse_rest_filter(ws, obj, params["filter"]) if params.get("filter") else None
            order = parse_order_by(ws, obj, params["order_by"]) if params.get("order_by") else None
            page = find_page(
                ws,
                obj,
                flt=flt,
                order_by=order,
                first=None if params.get("ending_before") else limit,
                last=limit if params.get("ending_before") else None,
                after=params.get("starting_after") or None,
                before=params.get("ending_before") or None,
                max_page=None,
            )
            body_out = {
                "data": {plural: [render(r) for r in page.rows]},
                "totalCount": page.total,
                "pageInfo": {
                    "hasNextPage": page.has_next,
                    "startCursor": page.start_cursor,
                    "endCursor": page.end_cursor,
                },
            }
            return RestOutcome(200, body_out, operation=f"GET /rest/{plural}")
        if method == "POST":
            if not isinstance(body, dict):
                raise TwentyError("The body must be a JSON object", status=400)
            results = create_records(ws, obj, [body], upsert=upsert)
            created = results[0]
            return RestOutcome(
                201,
                {"data": {f"create{cap(singular)}": render(created) if created else None}},
                True,
                1 if created else 0,
                f"POST /rest/{plural}",
            )
        raise TwentyError(f"{method} is not allowed on /rest/{plural}", status=405)
    if method == "GET":
        found = ws.records_of(obj).get(record_id) if is_uuid(record_id) else None
        if found is None or found.get("deletedAt") is not None:
            raise TwentyError("Record not found", "NOT_FOUND", status=404)
        return RestOutcome(200, {"data": {singular: render(found)}}, operation=f"GET /rest/{plural}/{{id}}")
    if method in ("PATCH", "PUT"):
        record = update_record(ws, obj, record_id, body)
        return RestOutcome(
            200, {"data": {f"update{cap(singular)}": render(record)}}, True, 1, f"PATCH /rest/{plural}/{{id}}"
        )
    if method == "DELETE":
        record = soft_delete_record(ws, obj, record_id)
        return RestOutcome(
            200, {"data": {f"delete{cap(singular)}": {"id": record["id"]}}}, True, 1, f"DELETE /rest/{plural}/{{id}}"
        )
    raise TwentyError(f"{method} is not allowed on /rest/{plural}/{{id}}", status=405)
