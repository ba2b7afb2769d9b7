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
from dataclasses import dataclass, field

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
        deleted = report.deleted.get(obj_name, [])
        for whop_id in deleted:
            report.problems.append(
                Problem(
                    obj_name,
                    whop_id,
                    "deleted in Twenty"
                    + (
                        "; restored"
                        if restore_deleted
                        else "; left deleted (set BRIDGE_RESTORE_DELETED=true to restore)"
                    ),
                    kind="restored" if restore_deleted else "deleted_in_twenty",
                )
            )
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


__all__ = ["DeepReport", "deep_check"]
