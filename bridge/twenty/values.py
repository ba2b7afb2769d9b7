"""Twenty's values as the bridge reads and compares them: which fields it owns and selects, and
when two values are the same to Twenty (empty is empty, numbers by value, instants by instant)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.twenty.schema import DataModel, FieldSpec

COMPOSITE_SELECTION = {
    "CURRENCY": "{ amountMicros currencyCode }",
    "LINKS": "{ primaryLinkUrl primaryLinkLabel }",
    "FULL_NAME": "{ firstName lastName }",
    "EMAILS": "{ primaryEmail }",
}


def owned_fields(model: DataModel, obj: str) -> list[FieldSpec]:
    spec = model.object(obj)
    return [f for f in spec.fields if f.type != "RELATION" and (spec.custom or f.name.startswith("whop"))]


def selection(model: DataModel, obj: str) -> str:
    parts = ["id"]
    for f in owned_fields(model, obj):
        parts.append(f"{f.name} {COMPOSITE_SELECTION[f.type]}" if f.type in COMPOSITE_SELECTION else f.name)
    return " ".join(dict.fromkeys(parts))


def _blank(value: Any) -> bool:
    """Empty as Twenty stores it: a composite (LINKS, CURRENCY) read back with only empty parts too."""
    if value in (None, "", [], {}):
        return True
    return isinstance(value, dict) and all(_blank(v) for v in value.values())


def same(a: Any, b: Any) -> bool:
    """Equal as Twenty means them: empty is empty, numbers by value, timestamps by instant."""
    if _blank(a) and _blank(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same(a.get(k), b.get(k)) for k in set(a) | set(b) if k in a and k in b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    for parse in (_decimal, _instant):
        pa, pb = parse(a), parse(b)
        if pa is not None and pb is not None:
            return pa == pb
    return bool(a == b)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, int | float | Decimal) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return None


def _instant(value: Any) -> datetime | None:
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def top_level_names(selection_text: str) -> set[str]:
    """The field names at the top level of a GraphQL selection (`id name { firstName }` → id, name)."""
    names: set[str] = set()
    depth = 0
    for part in selection_text.replace("{", " { ").replace("}", " } ").split():
        if part == "{":
            depth += 1
        elif part == "}":
            depth -= 1
        elif depth == 0:
            names.add(part)
    return names


def read_selection(model: DataModel, obj: str, base: str) -> str:
    """`base` plus every field the bridge owns on `obj`: a read that shows all the bridge writes,
    so a record Twenty already holds as it would be sent need not be sent again."""
    have = top_level_names(base)
    extra = [
        f"{f.name} {COMPOSITE_SELECTION[f.type]}" if f.type in COMPOSITE_SELECTION else f.name
        for f in owned_fields(model, obj)
        if f.name not in have
    ]
    return " ".join([base, *extra])


def holds(existing: dict[str, Any], record: dict[str, Any]) -> bool:
    """Twenty's `existing` record already has every value of `record`."""
    return all(name in existing and same(existing[name], value) for name, value in record.items())
