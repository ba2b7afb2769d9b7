"""A small read-only HTML view of the fake workspace, so a person running the local demo can
"see the members in Twenty" without a real Twenty. Not part of Twenty's API."""

from __future__ import annotations

from html import escape
from typing import Any

from .records import is_deleted
from .workspace import Meta, Record, Workspace

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}
tr.deleted td{color:#999;text-decoration:line-through}
.muted{color:#888}
"""
_HIDDEN = {"id", "position", "createdBy", "updatedBy", "deletedAt"}


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def index_page(ws: Workspace) -> str:
    rows = []
    for obj in ws.objects:
        records = ws.records_of(obj).values()
        live = sum(1 for r in records if not is_deleted(r))
        deleted = len(records) - live
        kind = "system" if obj["isSystem"] else "custom" if obj["isCustom"] else "standard"
        rows.append(
            f"<tr><td><a href='/ui/{escape(obj['namePlural'])}'>{escape(obj['labelPlural'])}</a></td>"
            f"<td>{escape(obj['namePlural'])}</td><td>{kind}</td><td>{live}</td><td>{deleted}</td></tr>"
        )
    body = (
        f"<h1>Fake Twenty <span class='muted'>({escape(ws.dialect)})</span></h1>"
        "<table><tr><th>Object</th><th>API name</th><th>Kind</th><th>Records</th><th>Soft-deleted</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _page("Fake Twenty", body)


def _label(ws: Workspace, obj: Meta, record: Record) -> str:
    field = ws.field_by_id(obj.get("labelIdentifierFieldMetadataId") or "")
    if field is None:
        return str(record.get("id"))
    return _display(ws, field, record.get(field["name"])) or str(record.get("id"))


def _display(ws: Workspace, field: Meta, value: Any) -> str:
    if value is None:
        return ""
    ftype = field["type"]
    if isinstance(value, dict):
        if ftype == "FULL_NAME":
            return f"{value.get('firstName') or ''} {value.get('lastName') or ''}".strip()
        if ftype == "EMAILS":
            extra = value.get("additionalEmails") or []
            return ", ".join([value.get("primaryEmail") or "", *extra]).strip(", ")
        if ftype == "LINKS":
            return str(value.get("primaryLinkUrl") or "")
        if ftype == "PHONES":
            return f"{value.get('primaryPhoneCallingCode') or ''} {value.get('primaryPhoneNumber') or ''}".strip()
        if ftype == "CURRENCY":
            micros = value.get("amountMicros")
            return "" if micros is None else f"{float(micros) / 1_000_000:,.2f} {value.get('currencyCode') or ''}"
        if ftype == "ADDRESS":
            return ", ".join(str(value.get(k)) for k in ("addressCity", "addressCountry") if value.get(k))
        if "markdown" in value:
            return str(value.get("markdown") or "")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def object_page(ws: Workspace, obj: Meta, *, show_deleted: bool) -> str:
    label_id = obj.get("labelIdentifierFieldMetadataId")
    columns: list[Meta] = []
    for field in ws.active_fields(obj):
        if field["name"] in _HIDDEN:
            continue
        if field["type"] == "RELATION" and not ws.join_column(field):
            continue
        columns.append(field)
    columns.sort(key=lambda f: (f["id"] != label_id, f["name"] in ("createdAt", "updatedAt")))
    head = "".join(f"<th>{escape(f['label'])}</th>" for f in columns)
    rows = []
    records = sorted(ws.records_of(obj).values(), key=lambda r: str(r.get("createdAt")))
    for record in records:
        if is_deleted(record) and not show_deleted:
            continue
        cells = []
        for field in columns:
            column = ws.join_column(field)
            if column:
                target = ws.relation_target(field)
                related = ws.records_of(target[0]).get(record.get(column) or "") if target else None
                text = _label(ws, target[0], related) if target and related else ""
            else:
                text = _display(ws, field, record.get(field["name"]))
            cells.append(f"<td>{escape(text)}</td>")
        css = " class='deleted'" if is_deleted(record) else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    toggle = (
        f"<a href='/ui/{escape(obj['namePlural'])}'>hide soft-deleted</a>"
        if show_deleted
        else f"<a href='/ui/{escape(obj['namePlural'])}?deleted=1'>show soft-deleted</a>"
    )
    body = (
        f"<p><a href='/'>&larr; all objects</a></p><h1>{escape(obj['labelPlural'])}</h1>"
        f"<p class='muted'>{len(rows)} shown · {toggle}</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )
    return _page(obj["labelPlural"], body)
