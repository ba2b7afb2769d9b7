"""Twenty Tasks the bridge opens for people to act on: a failed payment, a dispute, a Resolution
Center case. Shared by the worker (webhooks) and the sync (what a reconciliation finds).

Each Task has an id derived from the company and the Whop object, so a retried event or a second
reconciliation upserts the same Task, never a second one; its "task" shadow (keyed by the Whop
id) holds what was written, so an unchanged Task costs no call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import SkippableError
from bridge.store.shadows import ShadowWrite, get_shadows, put_shadows
from bridge.sync import mapping
from bridge.twenty.data import TASK, TASK_TARGET, TwentyDataClient, target_column

# Deterministic Twenty ids for tasks: a retried event upserts the same Task, never a second one.
TASK_NAMESPACE = uuid.UUID("6f1f3c1e-4a0b-4d8e-9a57-1c0f2b7e9d11")
TASK_SHADOW = "task"


def task_id(company_id: str, whop_id: str) -> str:
    return str(uuid.uuid5(TASK_NAMESPACE, f"{company_id}:{whop_id}"))


async def has_task(store: AsyncEngine, company_id: str, whop_id: str) -> bool:
    return whop_id in await get_shadows(store, company_id, TASK_SHADOW, [whop_id])


async def upsert_task(
    twenty: TwentyDataClient,
    store: AsyncEngine,
    company_id: str,
    whop_id: str,
    task: dict[str, Any],
    *,
    person_id: str | None,
    opportunity_id: str | None,
    when: datetime | None,
    update: bool = True,
) -> bool:
    """Write the Task of `whop_id` linked to its Person and Opportunity (Twenty ids); returns
    False when nothing was written: Twenty already holds this Task (its shadow says so), or it
    exists and `update` is off. An update never sends `status`: a Task someone closed stays closed."""
    digest = mapping.record_hash(task)
    held = (await get_shadows(store, company_id, TASK_SHADOW, [whop_id])).get(whop_id)
    if held is not None and (held.hash == digest or not update):
        return False
    tid = task_id(company_id, whop_id)
    record = {k: v for k, v in task.items() if held is None or k != "status"} | {"id": tid}
    await send_task(twenty, record, person_id=person_id, opportunity_id=opportunity_id)
    await put_shadows(store, company_id, TASK_SHADOW, [ShadowWrite(whop_id, digest, tid, when, task)])
    return True


# Tasks (and their links) sent in one call: Twenty's most records a call.
TASK_BATCH = 200


@dataclass(frozen=True)
class Outgoing:
    """A Task to upsert (`record` holds its id) and the Person and Opportunity it links to."""

    record: dict[str, Any]
    person_id: str | None = None
    opportunity_id: str | None = None


async def send_task(
    twenty: TwentyDataClient, record: dict[str, Any], *, person_id: str | None = None, opportunity_id: str | None = None
) -> None:
    """Upsert one Task (`record` holds its id) and link it to a Person and an Opportunity (Twenty
    ids); the links have ids derived from the Task's, so sending them again adds none."""
    await send_tasks(twenty, [Outgoing(record, person_id, opportunity_id)])


async def send_tasks(twenty: TwentyDataClient, tasks: Sequence[Outgoing]) -> None:
    """`send_task` for many: the Tasks in calls of up to `TASK_BATCH`, then their links likewise
    (a reconciliation's first pass may open a Task for each of many memberships at once)."""
    for start in range(0, len(tasks), TASK_BATCH):
        chunk = tasks[start : start + TASK_BATCH]
        records = [t.record for t in chunk]
        try:
            await twenty.upsert(TASK, records)
        except SkippableError:
            if not any("bodyV2" in r for r in records):
                raise
            # Older servers have no rich-text body; the title alone still tells the story.
            await twenty.upsert(TASK, [{k: v for k, v in r.items() if k != "bodyV2"} for r in records])
        targets = await _targets(twenty, chunk)
        if targets:
            await twenty.upsert(TASK_TARGET, targets)


async def _targets(twenty: TwentyDataClient, tasks: Sequence[Outgoing]) -> list[dict[str, Any]]:
    if not any(t.person_id or t.opportunity_id for t in tasks):
        return []
    known = (await twenty.write_rules()).known_fields.get(TASK_TARGET.singular, frozenset())
    out = []
    for t in tasks:
        tid = str(t.record["id"])
        for kind, target in (("person", t.person_id), ("opportunity", t.opportunity_id)):
            if target:
                link = {"id": str(uuid.uuid5(TASK_NAMESPACE, f"{tid}:{kind}")), "taskId": tid}
                out.append({**link, target_field(known, kind): target})
    return out


def target_field(known: frozenset[str], kind: str) -> str:
    """The taskTarget field linking a Task to a `kind` record (`twenty/data.py` `target_column`)."""
    return target_column(known, kind)


async def read_task(twenty: TwentyDataClient, tid: str) -> dict[str, Any] | None:
    """The Task as Twenty holds it now (`id`, `status`), or None when it is gone (a person
    deleted it: soft-deleted records are not listed, and an upsert would restore it on 2.x)."""
    found = await twenty.find(TASK, {"id": {"in": [tid]}}, selection="id status")
    return found[0] if found else None
