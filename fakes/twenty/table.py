"""The rows of one object, with the look-ups a database answers from an index.

Twenty finds an upsert's match and a keyed read's rows through PostgreSQL indexes. Scanning every
row instead made this fake's own time grow with the table, until at 100,000 rows it ran far past
the timing model it stands for. A `RecordTable` is the dict of rows (record id -> record, in
insertion order) plus value indexes per field path, built on first use and kept up to date by
every change of the row set. Code that changes stored values in place (a field renamed or
dropped, a SELECT option removed) calls `forget_indexes`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

Record = dict[str, Any]
Path = tuple[str, ...]


_SCALARS = (str, int, float, bool, type(None))


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (plain dicts, lists, scalars), several times faster than
    `copy.deepcopy`, in which the fake spent a tenth of its time; anything else is deep-copied."""
    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if kind is list:
        return [json_copy(v) for v in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


def norm_key(value: Any) -> str:
    """Unique values compare exactly, as a PostgreSQL unique index does."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def path_value(record: Record, path: Path) -> Any:
    """The value at `path`, or None when missing or empty (an index holds neither)."""
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return None if value in (None, "") else value


class RecordTable(dict[str, Record]):
    """Record id -> record, plus lazily built indexes: field path -> normalized value -> ids."""

    def __init__(self) -> None:
        super().__init__()
        self._indexes: dict[Path, dict[str, set[str]]] = {}
        self._order: dict[str, int] = {}  # id -> insertion number (an update keeps its place)
        self._inserted = 0

    def __reduce__(self) -> tuple[Any, ...]:
        # Copied and pickled as its rows and their order; the indexes are rebuilt on first use.
        return (_restore, (dict(self), self._order, self._inserted))

    # -- look-ups -----------------------------------------------------------------------------

    def lookup(self, path: Path, key: str) -> list[str]:
        """Ids of the rows whose value at `path` normalizes to `key`, in insertion order."""
        return self.in_order(self._index(path).get(key, ()))

    def in_order(self, ids: Iterable[str]) -> list[str]:
        """`ids` that are rows of this table, in insertion order (as a scan would meet them)."""
        order = self._order
        return sorted((i for i in ids if i in order), key=order.__getitem__)

    def forget_indexes(self) -> None:
        self._indexes.clear()

    def _index(self, path: Path) -> dict[str, set[str]]:
        index = self._indexes.get(path)
        if index is None:
            index = self._indexes[path] = {}
            for record_id, record in self.items():
                self._add(index, path, record_id, record)
        return index

    @staticmethod
    def _add(index: dict[str, set[str]], path: Path, record_id: str, record: Record) -> None:
        value = path_value(record, path)
        if value is not None:
            index.setdefault(norm_key(value), set()).add(record_id)

    @staticmethod
    def _remove(index: dict[str, set[str]], path: Path, record_id: str, record: Record) -> None:
        value = path_value(record, path)
        if value is None:
            return
        key = norm_key(value)
        ids = index.get(key)
        if ids is not None:
            ids.discard(record_id)
            if not ids:
                del index[key]

    # -- every change of the row set goes through these ---------------------------------------

    def __setitem__(self, record_id: str, record: Record) -> None:
        old = self.get(record_id)
        if old is None:
            self._order[record_id] = self._inserted
            self._inserted += 1
        for path, index in self._indexes.items():
            if old is not None:
                self._remove(index, path, record_id, old)
            self._add(index, path, record_id, record)
        super().__setitem__(record_id, record)

    def __delitem__(self, record_id: str) -> None:
        record = self[record_id]
        for path, index in self._indexes.items():
            self._remove(index, path, record_id, record)
        del self._order[record_id]
        super().__delitem__(record_id)

    def pop(self, record_id: str, *default: Any) -> Any:
        if record_id not in self:
            if default:
                return default[0]
            raise KeyError(record_id)
        record = self[record_id]
        del self[record_id]
        return record

    def popitem(self) -> tuple[str, Record]:
        record_id = next(reversed(self))
        return record_id, self.pop(record_id)

    def setdefault(self, record_id: str, default: Record) -> Record:
        if record_id not in self:
            self[record_id] = default
        return self[record_id]

    def update(self, other: Any = (), /, **kwargs: Record) -> None:
        items: Iterable[tuple[str, Record]] = other.items() if isinstance(other, Mapping) else other
        for record_id, record in items:
            self[record_id] = record
        for record_id, record in kwargs.items():
            self[record_id] = record

    def __ior__(self, other: Any) -> RecordTable:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self._indexes.clear()
        self._order.clear()


def _restore(rows: dict[str, Record], order: dict[str, int], inserted: int) -> RecordTable:
    table = RecordTable()
    dict.update(table, rows)
    table._order, table._inserted = dict(order), inserted
    return table
