"""Record operations shared by the GraphQL and REST data APIs: input checks, create / upsert /
update / delete with Twenty's per-dialect semantics, filters, ordering and cursor paging.

Every write goes through a `_Txn` so that a failing call (a duplicate, a conflict) stores nothing.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .errors import TwentyError, not_found
from .rules import composite_subfields, is_uuid
from .table import RecordTable, json_copy, norm_key
from .workspace import Meta, Record, UniqueKey, Workspace, new_id, now_iso

MAX_RECORDS_2X = 200  # QUERY_MAX_RECORDS
DEFAULT_PAGE = 60  # QUERY_DEFAULT_LIMIT_RECORDS
ONE_X_RESPONSE_CAP = 60  # observed #17: 1.x lists only the first 60 created/upserted records
API_ACTOR: dict[str, Any] = {"source": "API", "workspaceMemberId": None, "name": "API key", "context": {}}
DIRECTIONS = ("AscNullsFirst", "AscNullsLast", "DescNullsFirst", "DescNullsLast")
_SYSTEM_WRITABLE = ("id", "createdAt", "updatedAt", "deletedAt", "position", "createdBy", "updatedBy")


def cap(name: str) -> str:
    return name[:1].upper() + name[1:]


def enum_name(obj: Meta, field: Meta) -> str:
    return f"{cap(obj['nameSingular'])}{cap(field['name'])}Enum"


def is_deleted(record: Record) -> bool:
    return record.get("deletedAt") is not None


# -- input values ---------------------------------------------------------------------------


def _bad(message: str) -> TwentyError:
    return TwentyError(message, "BAD_USER_INPUT")


def normalize_datetime(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{where}: expected an ISO-8601 date-time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f'{where}: "{value}" is not a valid date-time') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _number(value: Any, where: str, *, allow_str: bool = False) -> int | float:
    if isinstance(value, bool):
        raise _bad(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return value
    if allow_str and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return int(number) if number.is_integer() else number
    raise _bad(f"{where}: expected a number, got {value!r}")


class InputChecker:
    """Turns a caller's `data` object into stored values, refusing what real Twenty refuses."""

    def __init__(self, ws: Workspace, obj: Meta, *, operation: str) -> None:
        self.ws = ws
        self.obj = obj
        self.type_name = f"{cap(obj['nameSingular'])}{operation}Input"
        self.keys: dict[str, tuple[str, Meta]] = {}
        for field in ws.active_fields(obj):
            if field["type"] == "RELATION":
                column = ws.join_column(field)
                if column:
                    self.keys[column] = ("join", field)
                    if ws.dialect == "2.x":
                        self.keys[field["name"]] = ("connect", field)  # nested connect/disconnect
                continue
            self.keys[field["name"]] = ("field", field)

    def check(self, data: Any, where: str = "data") -> Record:
        if not isinstance(data, dict):
            raise _bad(f'{where}: expected an object of type "{self.type_name}", got {data!r}')
        values: Record = {}
        for key, value in data.items():
            spec = self.keys.get(key)
            if spec is None:
                raise _bad(f'{where}: Field "{key}" is not defined by type "{self.type_name}".')
            kind, field = spec
            if kind == "join":
                values[key] = self._join_value(field, value, f"{where}.{key}")
            elif kind == "connect":
                column = self.ws.join_column(field)
                assert column is not None
                values[column] = self._connect_value(field, value, f"{where}.{key}")
            else:
                values[key] = self.value(field, value, f"{where}.{key}")
        return values

    def _join_value(self, field: Meta, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not is_uuid(value):
            raise _bad(f'{where}: "{value}" is not a valid UUID')
        target = self.ws.relation_target(field)
        if target is not None and value not in self.ws.records_of(target[0]):
            # Twenty's join columns are foreign keys; a dangling id fails the insert.
            raise _bad(f"{where}: no {target[0]['nameSingular']} record has id {value}")
        return str(value)

    def _connect_value(self, field: Meta, value: Any, where: str) -> str | None:
        if not isinstance(value, dict) or not ({"connect", "disconnect"} & value.keys()):
            raise _bad(f"{where}: expected {{connect: {{where: {{...}}}}}} or {{disconnect: true}}")
        if value.get("disconnect"):
            return None
        where_clause = (value.get("connect") or {}).get("where")
        target = self.ws.relation_target(field)
        if not isinstance(where_clause, dict) or not where_clause or target is None:
            raise _bad(f"{where}.connect.where must name a unique field of the target")
        target_obj = target[0]
        keys = {k.path[0]: k for k in self.ws.unique_keys(target_obj)}
        found: set[str] = set()
        for name, wanted in where_clause.items():
            key = keys.get(name)
            if key is None:
                raise _bad(f'{where}.connect.where: "{name}" is not a unique field of {target_obj["nameSingular"]}')
            for record in self.ws.records_of(target_obj).values():
                stored = key.value(record)
                compare = wanted.get(key.path[1]) if len(key.path) > 1 and isinstance(wanted, dict) else wanted
                if stored is not None and stored == compare and not is_deleted(record):
                    found.add(record["id"])
        if len(found) != 1:
            raise _bad(
                f"Expected 1 record to connect to {field['name']}, found {len(found)} for {json.dumps(where_clause)}"
            )
        return found.pop()

    def value(self, field: Meta, value: Any, where: str) -> Any:
        ftype = field["type"]
        name = field["name"]
        sub = composite_subfields(self.ws.dialect, ftype)
        if sub is not None:
            return self._composite(field, sub, value, where)
        if value is None:
            if ftype == "TEXT" and self.ws.dialect == "1.x":
                # Observed 1.19: on 1.x every TEXT column is NOT NULL (default ""), so PostgreSQL
                # refuses the statement, and with it the whole batch.
                raise TwentyError(
                    f'null value in column "{name}" of relation "{self.obj["nameSingular"]}" '
                    "violates not-null constraint",
                    "INTERNAL_SERVER_ERROR",
                    status=500,
                )
            if not field["isNullable"] and name not in _SYSTEM_WRITABLE:
                raise _bad(f'{where}: field "{name}" cannot be null')
            return None
        if ftype in ("TEXT", "RICH_TEXT"):
            if not isinstance(value, str):
                raise _bad(f"{where}: String cannot represent a non string value: {json.dumps(value)}")
            return value
        if ftype == "UUID":
            if not is_uuid(value):
                raise _bad(f'{where}: "{value}" is not a valid UUID')
            return str(value)
        if ftype == "DATE_TIME":
            return normalize_datetime(value, where)
        if ftype == "DATE":
            try:
                return date.fromisoformat(str(value)[:10]).isoformat()
            except ValueError:
                raise _bad(f'{where}: "{value}" is not a valid date') from None
        if ftype == "BOOLEAN":
            if not isinstance(value, bool):
                raise _bad(f"{where}: Boolean cannot represent a non boolean value: {json.dumps(value)}")
            return value
        if ftype in ("NUMBER", "POSITION"):
            return _number(value, where)
        if ftype == "NUMERIC":
            return _number(value, where, allow_str=True)
        if ftype in ("SELECT", "RATING"):
            self._check_option(field, value, where)
            return value
        if ftype == "MULTI_SELECT":
            if not isinstance(value, list):
                raise _bad(f"{where}: expected a list of option values")
            for item in value:
                self._check_option(field, item, where)
            return list(value)
        if ftype == "ARRAY":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _bad(f"{where}: expected a list of strings")
            return list(value)
        return copy.deepcopy(value)  # RAW_JSON, FILES, ...

    def _check_option(self, field: Meta, value: Any, where: str) -> None:
        if field["type"] == "RATING":
            allowed = [f"RATING_{i}" for i in range(1, 6)]
        else:
            allowed = [o["value"] for o in field.get("options") or []]
        if value not in allowed:
            raise _bad(f'{where}: Value "{value}" does not exist in "{enum_name(self.obj, field)}" enum.')

    def _composite(self, field: Meta, sub: dict[str, Any], value: Any, where: str) -> Any:
        if field["name"] in ("createdBy", "updatedBy"):
            return None  # accepted, then overwritten with the API actor
        if value is None:
            return json_copy(sub)
        if not isinstance(value, dict):
            raise _bad(f"{where}: expected an object with {', '.join(sub)}")
        merged = self.ws.field_default(field)
        for key, item in value.items():
            if key not in sub:
                raise _bad(f'{where}: Field "{key}" is not defined by type "{cap(field["type"].lower())}Input".')
            if item is None:
                merged[key] = sub[key]
            elif key in ("amountMicros", "addressLat", "addressLng"):
                merged[key] = _number(item, f"{where}.{key}", allow_str=True)
            elif key in ("additionalEmails", "additionalPhones", "secondaryLinks", "context"):
                if key == "additionalEmails" and (
                    not isinstance(item, list) or not all(isinstance(v, str) for v in item)
                ):
                    raise _bad(f"{where}.{key}: expected a list of strings")
                merged[key] = copy.deepcopy(item)
            else:
                if not isinstance(item, str):
                    raise _bad(f"{where}.{key}: String cannot represent a non string value: {json.dumps(item)}")
                merged[key] = item
        return merged


# -- transactions and uniqueness --------------------------------------------------------------


def _index_name(obj: Meta, key: UniqueKey) -> str:
    digest = hashlib.sha1(f"{obj['nameSingular']}.{'.'.join(key.path)}".encode(), usedforsecurity=False)
    prefix = "PK_" if key.path == ("id",) else "IDX_UNIQUE_"
    return prefix + digest.hexdigest()[:23]


def duplicate_error(ws: Workspace, obj: Meta, key: UniqueKey, value: Any) -> TwentyError:
    """A unique constraint violated by a plain create or an update."""
    friendly = f"Duplicate {key.label} with value {value}. Please set a unique one."
    if ws.dialect == "1.x":
        return _bad(friendly)
    message = (
        f"A duplicate entry was detected: unique constraint {obj['nameSingular']}.{_index_name(obj, key)} was violated"
    )
    return TwentyError(message, "BAD_USER_INPUT", subCode="DUPLICATE_ENTRY_DETECTED", userFriendlyMessage=friendly)


class _Txn:
    """Writes to one object's rows, checked for uniqueness and applied only on commit."""

    def __init__(self, ws: Workspace, obj: Meta) -> None:
        self.ws = ws
        self.obj = obj
        self.rows = ws.records_of(obj)
        self.changed: dict[str, Record] = {}

    def get(self, record_id: str) -> Record | None:
        return self.changed.get(record_id) or self.rows.get(record_id)

    def put(self, record: Record) -> None:
        self.changed[record["id"]] = record

    def commit(self) -> None:
        keys = [k for k in self.ws.unique_keys(self.obj) if k.enforced]
        for key in keys:
            claimed: dict[str, str] = {}  # value -> the changed row that takes it
            for record_id, record in self.changed.items():
                value = key.value(record)
                if value is None:
                    continue
                norm = norm_key(value)
                owner = claimed.get(norm)
                if owner is None:
                    # A row this write leaves alone; the unique index covers soft-deleted rows
                    # too (observed #9: a re-create fails).
                    held = self.rows.lookup(key.path, norm)
                    owner = next((i for i in held if i not in self.changed), None)
                if owner is not None and owner != record_id:
                    raise duplicate_error(self.ws, self.obj, key, value)
                claimed[norm] = record_id
        for columns, message in self.ws.unique_together.get(self.obj["id"], ()):
            holders: dict[tuple[Any, ...], list[str]] = {}
            for record_id, record in {**self.rows, **self.changed}.items():
                values = tuple(record.get(c) for c in columns)
                if not is_deleted(record) and None not in values:
                    holders.setdefault(values, []).append(record_id)
            if any(len(ids) > 1 and any(i in self.changed for i in ids) for ids in holders.values()):
                raise _bad(message)
        self.rows.update(self.changed)


def stamp_insert(ws: Workspace, obj: Meta, record: Record, values: Record) -> Record:
    stamp = now_iso()
    record.update(values)
    record["id"] = values.get("id") or new_id()
    record["createdAt"] = values.get("createdAt") or stamp
    for field in obj["fieldsList"]:  # e.g. a timeline activity's `happensAt`
        if field["type"] == "DATE_TIME" and field.get("defaultValue") == "now" and record.get(field["name"]) is None:
            record[field["name"]] = stamp
    record["updatedAt"] = stamp
    record.setdefault("deletedAt", None)
    record["createdBy"] = dict(API_ACTOR)
    if "updatedBy" in record:
        record["updatedBy"] = dict(API_ACTOR)
    if values.get("position") is None:
        record["position"] = ws.next_position(obj)
    return record


def _stamp_update(record: Record, values: Record) -> None:
    for key, value in values.items():
        if key in ("id", "createdBy", "updatedBy", "createdAt"):
            continue
        record[key] = value
    record["updatedAt"] = now_iso()
    if "updatedBy" in record:
        record["updatedBy"] = dict(API_ACTOR)


# -- create / upsert -----------------------------------------------------------------------


def create_records(ws: Workspace, obj: Meta, inputs: Any, *, upsert: bool) -> list[Record | None]:
    """createX / createXs / REST POST. One entry per input; None where 1.x silently skipped it.

    Upsert (see the fact sheet §3 and observations #2-#9, #17):
    - match keys: id, then every unique field (custom ones, then standard ones); a key whose value
      is missing or empty in the input is skipped; matching includes soft-deleted rows;
    - 2.x: one input matching different rows through different keys fails the whole call; a
      soft-deleted match is restored and updated;
    - 1.x: the first matching key by priority wins (id > custom unique > standard unique); a
      soft-deleted match yields nothing for that input and changes nothing.
    """
    if not isinstance(inputs, list):
        raise _bad(f'Expected a list of "{cap(obj["nameSingular"])}CreateInput"')
    if ws.max_upsert is not None and len(inputs) > ws.max_upsert:
        raise TwentyError(
            f"Maximum number of records to upsert is {ws.max_upsert}.",
            "BAD_USER_INPUT",
            subCode="TOO_MANY_RECORDS_TO_UPDATE",
        )
    checker = InputChecker(ws, obj, operation="Create")
    values_list = [checker.check(item, f"data[{i}]") for i, item in enumerate(inputs)]
    keys = ws.unique_keys(obj)
    _refuse_batch_duplicates(keys, values_list, ws.dialect)

    txn = _Txn(ws, obj)
    results: list[Record | None] = []
    inserted: list[Record] = []
    for values in values_list:
        # Matched against the rows as they were before this call (the txn applies on commit).
        target_id = _match(ws, keys, txn.rows, values) if upsert else None
        if target_id is None:
            record = stamp_insert(ws, obj, ws.blank_record(obj), values)
            txn.put(record)
            results.append(record)
            inserted.append(record)
            continue
        existing = txn.get(target_id)
        assert existing is not None
        if is_deleted(existing) and ws.dialect == "1.x":
            results.append(None)  # observed #9: createPeople returned [] for it
            continue
        record = json_copy(existing)
        _stamp_update(record, values)
        record["deletedAt"] = None  # 2.x upsert restores a soft-deleted match
        txn.put(record)
        results.append(record)
    txn.commit()
    ws.note_created(obj, inserted)
    return [json_copy(r) if r is not None else None for r in results]


def _refuse_batch_duplicates(keys: list[UniqueKey], values_list: list[Record], dialect: str) -> None:
    """The same unique value twice in one call fails the whole call (observed #8)."""
    for key in keys:
        if not key.enforced:
            continue
        seen: set[str] = set()
        for values in values_list:
            value = key.value(values)
            if value is None:
                continue
            norm = norm_key(value)
            if norm in seen:
                raise _bad(f"Duplicate {key.label} with value {value}. Please set a unique one.")
            seen.add(norm)


def _match(ws: Workspace, keys: list[UniqueKey], rows: RecordTable, values: Record) -> str | None:
    found: list[str] = []
    for key in keys:
        value = key.value(values)
        if value is None:
            continue
        ids = rows.lookup(key.path, norm_key(value))
        if ws.dialect == "1.x" and ids:
            return ids[0]
        for record_id in ids:
            if record_id not in found:
                found.append(record_id)
    if len(found) > 1:
        labels = ", ".join(k.label for k in keys if k.value(values) is not None)
        raise TwentyError(
            f"Multiple records found with the same unique field values for {labels}. "
            "Cannot determine which record to update.",
            "BAD_USER_INPUT",
            subCode="UPSERT_MULTIPLE_MATCHING_RECORDS_CONFLICT",
            userFriendlyMessage="Multiple records match this upsert; cannot determine which one to update.",
        )
    return found[0] if found else None


def response_slice(ws: Workspace, results: list[Record | None]) -> list[Record]:
    """What a create-many answers with: all rows on 2.x, only the first 60 on 1.x (observed #17)."""
    rows = [r for r in results if r is not None]
    return rows[:ONE_X_RESPONSE_CAP] if ws.dialect == "1.x" else rows


# -- update / delete / restore ----------------------------------------------------------------


def _live(ws: Workspace, obj: Meta, record_id: Any) -> Record:
    record = ws.records_of(obj).get(str(record_id)) if is_uuid(record_id) else None
    if record is None or is_deleted(record):
        raise not_found(f"Record {record_id} not found")
    return record


def update_record(ws: Workspace, obj: Meta, record_id: Any, data: Any) -> Record:
    existing = _live(ws, obj, record_id)
    values = InputChecker(ws, obj, operation="Update").check(data)
    txn = _Txn(ws, obj)
    record = json_copy(existing)
    _stamp_update(record, values)
    txn.put(record)
    txn.commit()
    return json_copy(record)


def update_records(ws: Workspace, obj: Meta, flt: Any, data: Any) -> list[Record]:
    """updateXs(filter, data): the same data on every match (observed #12)."""
    values = InputChecker(ws, obj, operation="Update").check(data)
    txn = _Txn(ws, obj)
    updated: list[Record] = []
    for existing in select(ws, obj, flt):
        record = json_copy(existing)
        _stamp_update(record, values)
        txn.put(record)
        updated.append(record)
    txn.commit()
    return [json_copy(r) for r in updated]


def soft_delete_record(ws: Workspace, obj: Meta, record_id: Any) -> Record:
    record = _live(ws, obj, record_id)
    record["deletedAt"] = now_iso()
    return json_copy(record)


def soft_delete_records(ws: Workspace, obj: Meta, flt: Any) -> list[Record]:
    return [soft_delete_record(ws, obj, r["id"]) for r in select(ws, obj, flt)]


def restore_record(ws: Workspace, obj: Meta, record_id: Any) -> Record:
    record = ws.records_of(obj).get(str(record_id))
    if record is None:
        raise not_found(f"Record {record_id} not found")
    record["deletedAt"] = None
    record["updatedAt"] = now_iso()
    return json_copy(record)


def restore_records(ws: Workspace, obj: Meta, flt: Any) -> list[Record]:
    rows = [r for r in select(ws, obj, flt, with_deleted=True) if is_deleted(r)]
    return [restore_record(ws, obj, r["id"]) for r in rows]


def destroy_record(ws: Workspace, obj: Meta, record_id: Any) -> Record:
    rows = ws.records_of(obj)
    record: Record | None = rows.pop(str(record_id), None)
    if record is None:
        raise not_found(f"Record {record_id} not found")
    # Join columns pointing at it are SET NULL, as Twenty's foreign keys do.
    for field in obj["fieldsList"]:
        if field["type"] != "RELATION":
            continue
        target = ws.relation_target(field)
        if target is None:
            continue
        column = ws.join_column(target[1])
        if column:
            for other in ws.records_of(target[0]).values():
                if other.get(column) == record["id"]:
                    other[column] = None
    return record


def destroy_records(ws: Workspace, obj: Meta, flt: Any) -> list[Record]:
    return [destroy_record(ws, obj, r["id"]) for r in select(ws, obj, flt, with_deleted=True)]


# -- filters ------------------------------------------------------------------------------

Predicate = Callable[[Record], bool]
_COMPARATORS = frozenset("eq neq in is gt gte lt lte like ilike startsWith endsWith containsAny containsIlike".split())


def mentions_deleted_at(flt: Any) -> bool:
    if isinstance(flt, dict):
        return any(k == "deletedAt" or mentions_deleted_at(v) for k, v in flt.items())
    if isinstance(flt, list):
        return any(mentions_deleted_at(v) for v in flt)
    return False


def compile_filter(ws: Workspace, obj: Meta, flt: Any) -> Predicate:
    """A predicate for Twenty's filter object; unknown fields or comparators raise BAD_USER_INPUT."""
    if flt is None:
        return lambda _r: True
    if not isinstance(flt, dict):
        raise _bad(f"Filter must be an object, got {flt!r}")
    fields = {f["name"]: f for f in ws.active_fields(obj) if f["type"] != "RELATION"}
    joins = {ws.join_column(f): f for f in ws.active_fields(obj) if ws.join_column(f)}
    parts: list[Predicate] = []
    for key, value in flt.items():
        if key in ("and", "or"):
            if not isinstance(value, list):
                raise _bad(f'"{key}" expects a list of filters')
            subs = [compile_filter(ws, obj, v) for v in value]
            parts.append(_all_of(subs) if key == "and" else _any_of(subs))
        elif key == "not":
            parts.append(_none_of([compile_filter(ws, obj, value)]))
        elif key in joins:
            parts.append(_leaf((key,), "UUID", value, f"filter.{key}"))
        elif key in fields:
            field = fields[key]
            sub_fields = composite_subfields(ws.dialect, field["type"])
            if sub_fields is None:
                parts.append(_leaf((key,), field["type"], value, f"filter.{key}"))
                continue
            if not isinstance(value, dict):
                raise _bad(f"filter.{key}: expected sub-fields of {field['type']}")
            for sub_name, sub_value in value.items():
                if sub_name not in sub_fields:
                    raise _bad(f'filter.{key}: "{sub_name}" is not a sub-field of {field["type"]}')
                sub_type = "NUMBER" if sub_name in ("amountMicros", "addressLat", "addressLng") else "TEXT"
                parts.append(_leaf((key, sub_name), sub_type, sub_value, f"filter.{key}.{sub_name}"))
        else:
            raise _bad(f'filter: field "{key}" does not exist on object "{obj["nameSingular"]}"')
    return lambda r: all(p(r) for p in parts)


def _all_of(predicates: list[Predicate]) -> Predicate:
    return lambda r: all(p(r) for p in predicates)


def _any_of(predicates: list[Predicate]) -> Predicate:
    return lambda r: any(p(r) for p in predicates)


def _none_of(predicates: list[Predicate]) -> Predicate:
    return lambda r: not any(p(r) for p in predicates)


def _get_path(record: Record, path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _comparable(ftype: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    if ftype in ("DATE_TIME",) and isinstance(value, str):
        return normalize_datetime(value, where)
    if ftype in ("NUMBER", "NUMERIC", "POSITION", "RATING_NUM"):
        return _number(value, where, allow_str=True)
    if ftype == "UUID" and isinstance(value, str):
        return value.lower()
    return value


def _like(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.S | (re.I if ignore_case else 0))


def _leaf(path: tuple[str, ...], ftype: str, spec: Any, where: str) -> Predicate:
    if not isinstance(spec, dict) or not spec:
        raise _bad(f"{where}: expected a comparison such as {{eq: ...}}")
    checks: list[Predicate] = []
    for op, operand in spec.items():
        if op not in _COMPARATORS:
            raise _bad(f'{where}: unknown comparator "{op}"')
        checks.append(_comparison(path, ftype, op, operand, f"{where}.{op}"))
    return lambda r: all(c(r) for c in checks)


def _safe(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def run(value: Any) -> bool:
        try:
            return test(value)
        except TypeError:
            return False

    return run


def _comparison(path: tuple[str, ...], ftype: str, op: str, operand: Any, where: str) -> Predicate:
    def stored(record: Record) -> Any:
        return _comparable(ftype, _get_path(record, path), where)

    if op == "is":
        if operand not in ("NULL", "NOT_NULL"):
            raise _bad(f"{where}: expected NULL or NOT_NULL")
        # An empty string is not NULL (observed #10): whopUserId[is]:NOT_NULL matches every row.
        return (lambda r: stored(r) is None) if operand == "NULL" else (lambda r: stored(r) is not None)
    if op in ("in", "containsAny"):
        if not isinstance(operand, list):
            raise _bad(f"{where}: expected a list")
        wanted = [_comparable(ftype, v, where) for v in operand]
        if op == "in":
            return lambda r: (v := stored(r)) is not None and v in wanted
        return lambda r: isinstance(v := stored(r), list) and any(x in wanted for x in v)
    if op in ("like", "ilike", "containsIlike"):
        if not isinstance(operand, str):
            raise _bad(f"{where}: expected a string pattern")
        pattern = _like(operand, ignore_case=op != "like")
        if op == "containsIlike":
            return lambda r: isinstance(v := stored(r), list) and any(pattern.match(str(x)) for x in v)
        return lambda r: isinstance(v := stored(r), str) and pattern.match(v) is not None
    if op in ("startsWith", "endsWith"):
        if not isinstance(operand, str):
            raise _bad(f"{where}: expected a string")
        if op == "startsWith":
            return lambda r: isinstance(v := stored(r), str) and v.startswith(operand)
        return lambda r: isinstance(v := stored(r), str) and v.endswith(operand)
    target = _comparable(ftype, operand, where)
    # SQL semantics: comparing with NULL is never true, so neq skips rows whose value is NULL.
    tests: dict[str, Callable[[Any], bool]] = {
        "eq": lambda v: v == target,
        "neq": lambda v: v != target,
        "gt": lambda v: v > target,
        "gte": lambda v: v >= target,
        "lt": lambda v: v < target,
        "lte": lambda v: v <= target,
    }
    test = _safe(tests[op])
    if target is None:
        return lambda _r: False
    return lambda r: (v := stored(r)) is not None and test(v)


def select(ws: Workspace, obj: Meta, flt: Any, *, with_deleted: bool = False) -> list[Record]:
    """Rows matching `flt`; soft-deleted rows only when the filter names deletedAt (as Twenty)."""
    predicate = compile_filter(ws, obj, flt)
    include_deleted = with_deleted or mentions_deleted_at(flt)
    rows = ws.records_of(obj)
    ids = _candidates(ws, obj, rows, flt)
    # The predicate still decides: the candidates only spare the scan of every other row.
    scanned = rows.values() if ids is None else [rows[i] for i in rows.in_order(ids)]
    return [r for r in scanned if (include_deleted or not is_deleted(r)) and predicate(r)]


def _candidates(ws: Workspace, obj: Meta, rows: RecordTable, flt: Any) -> set[str] | None:
    """The ids a filter can match, looked up in the table's indexes as a database would for
    `eq`/`in` on TEXT values; None when only a scan can tell. Every matching row is among them
    (more may be); the filter has been checked by `compile_filter` already."""
    if not isinstance(flt, dict):
        return None
    fields = {f["name"]: f for f in ws.active_fields(obj) if f["type"] != "RELATION"}
    best: set[str] | None = None
    for key, value in flt.items():  # the parts are ANDed: any narrowed part bounds the rest
        found: set[str] | None = None
        if key == "or" and isinstance(value, list):
            parts = [_candidates(ws, obj, rows, v) for v in value]
            found = None if any(p is None for p in parts) else set().union(*parts)  # type: ignore[arg-type]
        elif key == "and" and isinstance(value, list):
            found = _smallest(_candidates(ws, obj, rows, v) for v in value)
        elif key in fields and isinstance(value, dict):
            ftype = fields[key]["type"]
            sub = composite_subfields(ws.dialect, ftype)
            if sub is None:
                found = _text_lookup(rows, (key,), value) if ftype == "TEXT" else None
            else:
                found = _smallest(
                    _text_lookup(rows, (key, name), spec)
                    for name, spec in value.items()
                    if name not in ("amountMicros", "addressLat", "addressLng")  # compared as numbers
                )
        best = _smallest([best, found])
    return best


def _smallest(sets: Any) -> set[str] | None:
    known = [s for s in sets if s is not None]
    return min(known, key=len) if known else None


def _text_lookup(rows: RecordTable, path: tuple[str, ...], spec: Any) -> set[str] | None:
    """Rows whose TEXT value at `path` equals one of `eq`/`in`'s values; None for other tests,
    and for "" (an index leaves empty values out)."""
    if not isinstance(spec, dict):
        return None
    wanted = [spec["eq"]] if "eq" in spec else spec.get("in")
    if not isinstance(wanted, list) or not all(isinstance(v, str) and v for v in wanted):
        return None
    found: set[str] = set()
    for value in wanted:
        found.update(rows.lookup(path, value))
    return found


# -- ordering and paging --------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSpec:
    path: tuple[str, ...]
    ascending: bool
    nulls_first: bool


def parse_order_by(ws: Workspace, obj: Meta, order_by: Any) -> list[OrderSpec]:
    """Twenty's orderBy: [{field: AscNullsFirst}, {composite: {sub: DescNullsLast}}]; id breaks ties."""
    specs: list[OrderSpec] = []
    items = order_by if isinstance(order_by, list) else [order_by] if order_by else []
    fields = {f["name"]: f for f in ws.active_fields(obj) if f["type"] != "RELATION"}
    joins = {ws.join_column(f) for f in ws.active_fields(obj) if ws.join_column(f)}
    for item in items:
        if not isinstance(item, dict):
            raise _bad(f"orderBy: expected objects, got {item!r}")
        for name, direction in item.items():
            if name not in fields and name not in joins:
                raise _bad(f'orderBy: field "{name}" does not exist on object "{obj["nameSingular"]}"')
            if isinstance(direction, dict):
                sub = composite_subfields(ws.dialect, fields[name]["type"]) if name in fields else None
                for sub_name, sub_direction in direction.items():
                    if sub is None or sub_name not in sub:
                        raise _bad(f'orderBy: "{name}.{sub_name}" is not a sub-field')
                    specs.append(_order_spec((name, sub_name), sub_direction))
            else:
                specs.append(_order_spec((name,), direction))
    specs.append(OrderSpec(("id",), True, True))
    return specs


def _order_spec(path: tuple[str, ...], direction: Any) -> OrderSpec:
    if direction not in DIRECTIONS:
        raise _bad(f"orderBy: direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return OrderSpec(path, direction.startswith("Asc"), direction.endswith("NullsFirst"))


def _compare_values(specs: list[OrderSpec], left: list[Any], right: list[Any]) -> int:
    for spec, a, b in zip(specs, left, right, strict=True):
        if a == b:
            continue
        if a is None or b is None:
            first_is_null = a is None
            return (-1 if first_is_null else 1) * (1 if spec.nulls_first else -1)
        try:
            less = a < b
        except TypeError:
            less = str(a) < str(b)
        result = -1 if less else 1
        return result if spec.ascending else -result
    return 0


def encode_cursor(specs: list[OrderSpec], record: Record) -> str:
    payload = {"id": record["id"], "values": [_get_path(record, s.path) for s in specs]}
    return base64.b64encode(json.dumps(payload).encode()).decode()


def decode_cursor(specs: list[OrderSpec], cursor: Any) -> list[Any]:
    try:
        payload = json.loads(base64.b64decode(str(cursor), validate=True))
        values = payload["values"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _bad(f"Invalid cursor: {cursor}") from None
    if not isinstance(values, list) or len(values) != len(specs):
        raise _bad("The cursor does not belong to this ordering")
    return values


@dataclass
class Page:
    rows: list[Record]
    specs: list[OrderSpec]
    total: int
    has_next: bool
    has_previous: bool

    def cursor(self, record: Record) -> str:
        return encode_cursor(self.specs, record)

    @property
    def start_cursor(self) -> str | None:
        return self.cursor(self.rows[0]) if self.rows else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursor(self.rows[-1]) if self.rows else None


def find_page(
    ws: Workspace,
    obj: Meta,
    *,
    flt: Any = None,
    order_by: Any = None,
    first: Any = None,
    last: Any = None,
    after: Any = None,
    before: Any = None,
    max_page: int | None,
    default_page: int = DEFAULT_PAGE,
) -> Page:
    if first is not None and last is not None:
        raise _bad("Cannot provide both first and last")
    if after is not None and before is not None:
        raise _bad("Cannot provide both before and after")
    for name, size in (("first", first), ("last", last)):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _bad(f"{name} must be a non-negative integer")
        if max_page is not None and size > max_page:
            raise _bad(f"Cannot fetch more than {max_page} records at once ({name}: {size}).")
    specs = parse_order_by(ws, obj, order_by)
    rows = select(ws, obj, flt)
    total = len(rows)

    def key(record: Record) -> list[Any]:
        return [_get_path(record, s.path) for s in specs]

    rows.sort(key=functools.cmp_to_key(lambda a, b: _compare_values(specs, key(a), key(b))))
    has_previous = has_next = False
    if after is not None:
        mark = decode_cursor(specs, after)
        kept = [r for r in rows if _compare_values(specs, key(r), mark) > 0]
        has_previous = len(kept) < len(rows)
        rows = kept
    if before is not None:
        mark = decode_cursor(specs, before)
        kept = [r for r in rows if _compare_values(specs, key(r), mark) < 0]
        has_next = len(kept) < len(rows)
        rows = kept
    if last is not None:
        has_previous = has_previous or len(rows) > last
        rows = rows[len(rows) - last :] if last else []
    else:
        size = default_page if first is None else first
        has_next = has_next or len(rows) > size
        rows = rows[:size]
    return Page([json_copy(r) for r in rows], specs, total, has_next, has_previous)


# -- whole-record rendering (REST) ----------------------------------------------------------


def render_record(ws: Workspace, obj: Meta, record: Record, depth: int) -> Record:
    """A record as REST prints it: every active field, join columns, and relations up to `depth`."""
    out: Record = {}
    for field in ws.active_fields(obj):
        if field["type"] != "RELATION":
            out[field["name"]] = json_copy(record.get(field["name"]))
            continue
        column = ws.join_column(field)
        target = ws.relation_target(field)
        if column:
            out[column] = record.get(column)
        if depth <= 0 or target is None:
            continue
        target_obj, inverse = target
        rows = ws.records_of(target_obj)
        if column:
            related = rows.get(record.get(column) or "")
            out[field["name"]] = (
                render_record(ws, target_obj, related, depth - 1)
                if related is not None and not is_deleted(related)
                else None
            )
        else:
            back = ws.join_column(inverse)
            out[field["name"]] = [
                render_record(ws, target_obj, r, depth - 1)
                for r in rows.values()
                if back and r.get(back) == record["id"] and not is_deleted(r)
            ]
    return out
