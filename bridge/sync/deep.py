"""`sync --deep`: check the Twenty side against what the bridge last wrote.

Twenty is read in full (one call per 200 records). A record whose bridge-owned fields (the key
and every `whop…` field; all fields of a WhopProduct) no longer hold what the bridge wrote had
them changed by a person: its shadow hash is cleared so the reconciliation that follows writes
it again (curated fields stay protected by the usual rules). A record the bridge wrote that is
gone from Twenty was deleted by a person: it is reported, and restored only when
BRIDGE_RESTORE_DELETED allows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.shadows import forget_hashes, written_records
from bridge.sync.writer import Problem
from bridge.twenty.data import OBJECTS, TwentyDataClient
from bridge.twenty.schema import DataModel
from bridge.twenty.values import owned_fields, same, selection

log = logging.getLogger(__name__)


@dataclass
class DeepReport:
    repaired: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, list[str]] = field(default_factory=dict)
    restored: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


async def deep_check(
    *,
    store: AsyncEngine,
    twenty: TwentyDataClient,
    model: DataModel,
    company_id: str,
    restore_deleted: bool,
    dry_run: bool,
) -> DeepReport:
    report = DeepReport()
    for obj_name in ("whopProduct", "person", "opportunity"):
        obj = OBJECTS[obj_name]
        live = await twenty.find(obj, {obj.key: {"neq": ""}}, selection=selection(model, obj_name))
        by_id = {str(r["id"]): r for r in live}
        rows = await written_records(store, company_id, obj_name)
        fields = [f.name for f in owned_fields(model, obj_name)]
        stale = _compare(report, obj_name, rows, by_id, fields)
        deleted = report.deleted.get(obj_name, [])
        report.problems.extend(_deleted_problem(obj_name, whop_id, restore_deleted) for whop_id in deleted)
        if dry_run:
            continue
        if restore_deleted and deleted:
            ids = {w: t for w, t, _ in rows if w in deleted}
            for whop_id in deleted:
                await twenty.restore(obj, ids[whop_id])
                report.restored.setdefault(obj_name, []).append(whop_id)
            stale.extend(deleted)
        await forget_hashes(store, company_id, obj_name, stale)
    return report


def _compare(
    report: DeepReport,
    obj_name: str,
    rows: Sequence[tuple[str, str, dict[str, Any]]],
    by_id: dict[str, dict[str, Any]],
    fields: list[str],
) -> list[str]:
    """Note in `report` the written records gone from Twenty and those whose bridge-owned
    fields a person changed; return the changed ones (their hashes are to be forgotten)."""
    stale: list[str] = []
    for whop_id, twenty_id, written in rows:
        record = by_id.get(str(twenty_id))
        if record is None:
            report.deleted.setdefault(obj_name, []).append(whop_id)
            continue
        changed = [f for f in fields if f in written and not same(written[f], record.get(f))]
        if changed:
            stale.append(whop_id)
            report.repaired.setdefault(obj_name, []).append(whop_id)
            report.problems.append(
                Problem(obj_name, whop_id, "changed in Twenty: " + ", ".join(changed), kind="repaired")
            )
    return stale


def _deleted_problem(obj_name: str, whop_id: str, restore_deleted: bool) -> Problem:
    """How a record deleted in Twenty is reported: restored, or left deleted and why."""
    if restore_deleted:
        return Problem(obj_name, whop_id, "deleted in Twenty; restored", kind="restored")
    return Problem(
        obj_name,
        whop_id,
        "deleted in Twenty; left deleted (set BRIDGE_RESTORE_DELETED=true to restore)",
        kind="deleted_in_twenty",
    )


__all__ = ["DeepReport", "deep_check"]
