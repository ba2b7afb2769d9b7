"""Lines on the Person's and the Opportunity's timeline in Twenty, one per Whop event (issue 22).

What a line says comes from `sync/story.py`; this module writes it once. Each line is one
`timelineActivity` pointing at both the Person and the Opportunity (so each page's timeline
shows it) and linking the record it is about: the WhopPayment of a payment event, the
Opportunity of a membership event. Twenty 2.x shows such an activity as "Twenty linked a whop
payment <its text>", the text being `linkedRecordCachedName`, dated by its `createdAt`, which the
bridge sets to when the event happened so history reads in order (docs/twenty-observed.md).

Once, whoever writes it: the line's key ("pay_…:refund:49.00") is kept in `timeline_lines` after
it is written, so a re-sync, a replayed or duplicated delivery finds it there and sends nothing;
the activity's id is derived from the company and the key, so a line written but not recorded
(a crash between the two) is upserted onto itself, never doubled. Lines go to Twenty in batches
of up to `batch_size` through the shared request budget: a backfill adds a call per 200 lines.
Only records this company's shadows name are targeted, so a line never lands on another
company's record. A line whose records are not written yet waits (it is not recorded) and is
told again the next time its membership or payment is seen.

Twenty 1.x shows only its own kinds of entries (an activity linking another object renders as
an empty row there), so there the bridge writes none and `provision --dry-run` says so.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import SkippableError
from bridge.store.db import utcnow
from bridge.store.revenue import membership_ends
from bridge.store.shadows import Shadow, get_shadows
from bridge.store.timeline import held_lines, record_lines
from bridge.sync.mapping import iso_utc
from bridge.sync.story import MEMBERSHIP, Line, membership_lines, payment_lines
from bridge.sync.writer import Problem
from bridge.twenty.data import (
    OPPORTUNITY,
    PERSON,
    TIMELINE_ACTIVITY,
    WHOP_PAYMENT,
    TwentyDataClient,
    WriteRules,
    target_column,
    timeline_unsupported,
)
from bridge.whop.models import Membership, Payment

log = logging.getLogger(__name__)

# Deterministic Twenty ids for timeline lines: a line written again is the same activity.
TIMELINE_NAMESPACE = uuid.UUID("3b5c2f0e-8d4a-4f7b-b1e6-7a9c0d2e4f61")
TIMELINE = "timeline"  # how reports name these lines
SOURCE = "whop-twenty-bridge"


def activity_id(company_id: str, key: str) -> str:
    return str(uuid.uuid5(TIMELINE_NAMESPACE, f"{company_id}:{key}"))


def unsupported(rules: WriteRules) -> str | None:
    """Why this Twenty cannot show the bridge's lines, or None when it can."""
    return timeline_unsupported(rules)


@dataclass
class Written:
    """What one write did: lines written, waiting for their records, refused; and why."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    kept: list[Line] = field(default_factory=list)  # not sent: their records are not written yet, or held back


class Timeline:
    """Writes one company's timeline lines (the worker's pass, or a sync)."""

    def __init__(
        self,
        twenty: TwentyDataClient,
        store: AsyncEngine,
        company_id: str,
        *,
        batch_size: int = 200,
    ) -> None:
        self.twenty = twenty
        self.store = store
        self.company_id = company_id
        self.batch_size = max(1, batch_size)

    async def unsupported(self) -> str | None:
        """Why this Twenty shows no lines of the bridge's (then nothing is derived or sent)."""
        return unsupported(await self.twenty.write_rules())

    async def new_lines(self, memberships: Iterable[Membership] = (), payments: Iterable[Payment] = ()) -> list[Line]:
        """The lines these states tell that are not on the timeline yet."""
        memberships, payments = list(memberships), list(payments)
        held = await held_lines(self.store, self.company_id, [m.id for m in memberships] + [p.id for p in payments])
        ends = await membership_ends(self.store, self.company_id, [_buyer(ms) or "" for ms in memberships])
        told: dict[str, Line] = {}
        for ms in memberships:
            before = _ended_before(ms, ends.get(_buyer(ms) or "", ()))
            told.update((line.key, line) for line in membership_lines(ms, held.get(ms.id, ()), ended_before=before))
        for p in payments:
            told.update((line.key, line) for line in payment_lines(p))
        written = {h.key for lines in held.values() for h in lines}
        return [line for key, line in told.items() if key not in written]

    async def write(self, lines: Sequence[Line], *, full_batches: bool = False) -> Written:
        """Write `lines` (new ones, from `new_lines`) and remember them. The lines whose records
        are not written yet are kept, and with `full_batches` so are the ready ones that would
        make a short batch (a sync's backfill writes as it goes, in full batches, and keeps the
        rest for later)."""
        done = Written()
        if not lines:
            return done
        rules = await self.twenty.write_rules()
        if unsupported(rules) is not None:
            done.counts["unsupported"] += len(lines)
            return done
        records, waiting = await self._records(lines, rules)
        done.kept = waiting
        if waiting and not full_batches:  # their records are not written yet: told again the next time
            done.counts["waiting"] += len(waiting)
        if full_batches and (short := len(records) % self.batch_size):
            done.kept += [line for line, _ in records[-short:]]
            records = records[:-short]
        for start in range(0, len(records), self.batch_size):
            await self._send(records[start : start + self.batch_size], done)
        return done

    async def _send(self, batch: list[tuple[Line, dict[str, Any]]], done: Written) -> None:
        """One upsert; a refused batch is split until the line Twenty refuses stands alone."""
        try:
            await self.twenty.upsert(TIMELINE_ACTIVITY, [record for _, record in batch])
        except SkippableError as exc:
            if len(batch) == 1:
                line = batch[0][0]
                done.counts["refused"] += 1
                done.problems.append(Problem(TIMELINE, line.key, f"timeline line not written: {exc}", kind="failed"))
                return
            half = len(batch) // 2
            await self._send(batch[:half], done)
            await self._send(batch[half:], done)
            return
        await record_lines(self.store, self.company_id, [line.held(record["id"]) for line, record in batch])
        done.counts["written"] += len(batch)

    async def _records(
        self, lines: Sequence[Line], rules: WriteRules
    ) -> tuple[list[tuple[Line, dict[str, Any]]], list[Line]]:
        """Each line's activity, pointing at records this company's shadows name; the lines whose
        records are not written yet wait."""
        people = await self._shadows(PERSON.singular, (line.person_key for line in lines))
        opportunities = await self._shadows(OPPORTUNITY.singular, (line.membership_id for line in lines))
        payments = await self._shadows(WHOP_PAYMENT.singular, (line.payment_id for line in lines))
        products = await self._shadows("whopProduct", (line.product_id for line in lines))
        known = rules.known_fields[TIMELINE_ACTIVITY.singular]
        to_person, to_opportunity = target_column(known, "person"), target_column(known, "opportunity")
        now = utcnow()
        records: list[tuple[Line, dict[str, Any]]] = []
        waiting: list[Line] = []
        for line in lines:
            person = _id(people, line.person_key)
            opportunity = _id(opportunities, line.membership_id)
            linked, linked_object = _linked(line, opportunity, payments)
            object_id = rules.object_ids.get(linked_object)
            if linked is None or object_id is None or (person is None and opportunity is None):
                waiting.append(line)
                continue
            product = products.get(line.product_id or "")
            when = _when(line, now)
            record: dict[str, Any] = {
                "id": activity_id(self.company_id, line.key),
                "name": line.event,
                "linkedRecordCachedName": line.text(_label(product)),
                "linkedRecordId": linked,
                "linkedObjectMetadataId": object_id,
                "properties": _properties(line),
            }
            if when is not None:
                record["createdAt"] = when  # the timeline is dated and ordered by it
                record["happensAt"] = when
            if person is not None:
                record[to_person] = person
            if opportunity is not None:
                record[to_opportunity] = opportunity
            records.append((line, record))
        return records, waiting

    async def _shadows(self, obj: str, keys: Iterable[str | None]) -> dict[str, Shadow]:
        return await get_shadows(self.store, self.company_id, obj, [k for k in keys if k])


def _buyer(ms: Membership) -> str | None:
    return ms.user_id or ms.member_id


def _ended_before(ms: Membership, ends: Iterable[tuple[str, datetime]]) -> bool:
    """Another membership of the buyer's (`ends`: its id and end) ended before this one began."""
    return any(mid != ms.id and ms.created_at is not None and ended < ms.created_at for mid, ended in ends)


def _linked(line: Line, opportunity: str | None, payments: dict[str, Shadow]) -> tuple[str | None, str]:
    """The record a line links (its Twenty id, if written) and that record's object: the
    Opportunity of a membership line, the WhopPayment of a payment line."""
    if line.obj == MEMBERSHIP:
        return opportunity, OPPORTUNITY.singular
    return _id(payments, line.payment_id), WHOP_PAYMENT.singular


def _when(line: Line, now: datetime) -> str | None:
    """When the line's event happened, never later than now (it is dated and ordered by it)."""
    return iso_utc(min(line.at, now)) if line.at is not None else None


def _id(shadows: dict[str, Shadow], key: str | None) -> str | None:
    shadow = shadows.get(key or "")
    return shadow.twenty_id if shadow is not None else None


def _label(shadow: Shadow | None) -> str | None:
    written = shadow.written if shadow else None
    return written.get("_label") if isinstance(written, dict) else None


def _properties(line: Line) -> dict[str, Any]:
    """What the line is about, for anyone reading the activity through the API (never a `diff`:
    Twenty would take it for a change of the record's fields)."""
    whop = {"event": line.kind, "membership": line.membership_id, "payment": line.payment_id}
    whop |= {"product": line.product_id, "amount": line.amount or None, "at": iso_utc(line.at)}
    return {"source": SOURCE, "whop": {k: v for k, v in whop.items() if v}}
