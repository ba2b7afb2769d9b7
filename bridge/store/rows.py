"""Rows read back as the store's dataclasses: one reading rule for every table.

A dataclass field takes the column of its name, or `<name>_json` decoded; a timestamp comes back
as aware UTC (SQLite keeps no zone), a boolean as `bool` (SQLite returns 0 or 1). The plan is made
once, when a module declares its reader, so a field without a column fails at import, not on a
row.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa

from bridge.store.db import as_utc_or_none

_T = TypeVar("_T")
Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _boolean(value: Any) -> Any:
    return None if value is None else bool(value)


def _decoder(column: sa.Column[Any]) -> Convert:
    # A missing or empty document reads as the column's default document ("{}", "[]"), else None.
    clause = column.server_default
    default = clause.arg if isinstance(clause, sa.DefaultClause) and isinstance(clause.arg, str) else None

    def decode(value: Any) -> Any:
        raw = value or default
        return None if raw is None else json.loads(raw)

    return decode


def _convert(column: sa.Column[Any]) -> Convert:
    if isinstance(column.type, sa.DateTime):
        return as_utc_or_none
    if isinstance(column.type, sa.Boolean):
        return _boolean
    return _same


def row_reader(
    cls: type[_T],
    table: sa.Table,
    *,
    columns: Mapping[str, str] | None = None,
    convert: Mapping[str, Convert] | None = None,
) -> Callable[[Any], _T]:
    """A function from a row of `table` (or a SELECT of the columns `cls` needs) to `cls`.
    `columns` names a field's column where the names differ; `convert` reads a field its own way."""
    renamed, own = columns or {}, convert or {}
    plan: list[tuple[str, str, Convert]] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        column = renamed.get(field.name, field.name)
        if field.name in own and column in table.c:
            plan.append((field.name, column, own[field.name]))
        elif column in table.c:
            plan.append((field.name, column, _convert(table.c[column])))
        elif f"{column}_json" in table.c:
            plan.append((field.name, f"{column}_json", _decoder(table.c[f"{column}_json"])))
        else:
            raise TypeError(f"{cls.__name__}.{field.name} has no column in {table.name}")

    def read(row: Any) -> _T:
        m = row._mapping
        return cls(**{name: read_value(m[column]) for name, column, read_value in plan})

    return read
