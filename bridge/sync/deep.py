"""`sync --deep`: check the Twenty side against what the bridge last wrote.

Twenty is read in full (one call per 200 records). A record whose bridge-owned fields (the key
and every `whop…` field; all fields of a WhopProduct) no longer hold what the bridge wrote had
them changed by a person: its shadow hash is cleared so the reconciliation that follows writes
it again (curated fields stay protected by the usual rules). A record the bridge wrote that is
gone from Twenty was deleted by a person: it is reported, and restored only when
BRIDGE_RESTORE_DELETED allows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.tables import record_shadows
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
        async with store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        record_shadows.c.whop_id, record_shadows.c.twenty_id, record_shadows.c.written_json
                    ).where(
                        record_shadows.c.company_id == company_id,
                        record_shadows.c.object == obj_name,
                        record_shadows.c.gone_at.is_(None),
                        record_shadows.c.twenty_id.is_not(None),
                    )
                )
            ).all()
        fields = [f.name for f in owned_fields(model, obj_name)]
        stale: list[str] = []
        for whop_id, twenty_id, written_json in rows:
            record = by_id.get(str(twenty_id))
            if record is None:
                report.deleted.setdefault(obj_name, []).append(whop_id)
                continue
            written = _loads(written_json)
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
        await _invalidate(store, company_id, obj_name, stale)
    return report


async def _invalidate(store: AsyncEngine, company_id: str, obj: str, whop_ids: list[str]) -> None:
    """Forget the hash so the following walk writes these records again."""
    if not whop_ids:
        return
    async with store.begin() as conn:
        for start in range(0, len(whop_ids), 500):
            await conn.execute(
                sa.update(record_shadows)
                .where(
                    record_shadows.c.company_id == company_id,
                    record_shadows.c.object == obj,
                    record_shadows.c.whop_id.in_(whop_ids[start : start + 500]),
                )
                .values(hash="")
            )


def _loads(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["DeepReport", "deep_check"]
