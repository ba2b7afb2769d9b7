from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.store.rows import row_reader

_M = sa.MetaData()
_TABLE = sa.Table(
    "things",
    _M,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(8), nullable=True),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("counts_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("extra_json", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class Thing:
    id: int
    name: str | None
    done: bool
    seen_at: datetime | None
    counts: dict[str, Any]
    extra: Any


class _Row:
    def __init__(self, **values: Any) -> None:
        self._mapping = values


_READ = row_reader(Thing, _TABLE)
_BASE: dict[str, Any] = {"id": 1, "name": "a", "done": 0, "seen_at": None, "counts_json": "{}", "extra_json": None}


@pytest.mark.parametrize(
    ("stored", "field", "read"),
    [
        ({"done": 1}, "done", True),  # SQLite's 0/1 reads as a bool
        ({"done": 0}, "done", False),
        ({"seen_at": datetime(2026, 1, 2, 3, 4)}, "seen_at", datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),  # SQLite: no zone
        ({"seen_at": None}, "seen_at", None),
        ({"counts_json": '{"a":1}'}, "counts", {"a": 1}),  # `<field>_json` decoded
        ({"counts_json": ""}, "counts", {}),  # an empty document reads as the column's default
        ({"extra_json": None}, "extra", None),  # no document, no default: None
        ({"extra_json": "[1,2]"}, "extra", [1, 2]),
        ({"name": None}, "name", None),  # anything else as stored
    ],
)
def test_a_row_reads_back_as_its_dataclass(stored: dict[str, Any], field: str, read: Any) -> None:
    thing = _READ(_Row(**{**_BASE, **stored}))
    assert getattr(thing, field) == read


def test_an_aware_time_comes_back_in_utc() -> None:
    paris = datetime(2026, 1, 2, 4, 4, tzinfo=timezone(timedelta(hours=1)))
    thing = _READ(_Row(**{**_BASE, "seen_at": paris}))
    assert thing.seen_at == paris and thing.seen_at is not None and thing.seen_at.tzinfo == UTC


def test_a_field_without_a_column_fails_when_the_reader_is_declared() -> None:
    @dataclass
    class Stray:
        id: int
        nowhere: str

    with pytest.raises(TypeError, match=r"Stray.nowhere has no column in things"):
        row_reader(Stray, _TABLE)
