"""Write one kind of record to Twenty in batches: skip what is unchanged, read once, upsert once.

For each batch the writer
1. drops records whose Whop-side hash equals the shadow's (no Twenty call at all);
2. reads the rest from Twenty in one call (by key, and by e-mail for people) to learn ids and
   the values people curate;
3. settles e-mail collisions itself: an e-mail that belongs to another Whop user's Person is
   reported and left out, never merged by guesswork;
4. upserts the batch in one call; a record Twenty refuses is isolated by splitting the batch and
   reported, the rest are written;
5. compares what came back with what was sent (1.x answers only 60 of 200; an upsert onto a
   soft-deleted row answers nothing) and reads back the missing ids;
6. stores shadows (hash, Twenty id, values written) so the next run can skip them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import RecordConflict, SkippableError
from bridge.store.leases import Leases
from bridge.store.shadows import Shadow, ShadowWrite, get_shadows, put_shadows
from bridge.sync.mapping import record_hash, without_unchanged_curated
from bridge.twenty.data import ObjectApi, TwentyDataClient
from bridge.twenty.documents import Dialect
from bridge.twenty.values import holds

log = logging.getLogger(__name__)

Builder = Callable[[dict[str, Any] | None, dict[str, Any] | None], dict[str, Any]]
OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")


@dataclass
class Item:
    """One Whop record on its way to Twenty."""

    key: str  # the Whop id, also the value of the object's key field in Twenty
    basis: dict[str, Any]  # everything Whop says about it (hashed to detect change)
    build: Builder  # (current Twenty record, last written record) -> record to send
    whop_updated_at: datetime | None = None
    email: str | None = None  # people: the e-mail that may match an existing Person
    label: str | None = None  # display name kept in the shadow (for Opportunity names)


# (item, record to send, the Twenty record it updates or None)
Pending = tuple[Item, dict[str, Any], dict[str, Any] | None]


@dataclass
class Problem:
    object: str
    key: str
    reason: str
    kind: str = "skipped"  # skipped | conflict | failed

    def as_dict(self) -> dict[str, str]:
        return {"object": self.object, "key": self.key, "reason": self.reason, "kind": self.kind}


@dataclass
class WriteReport:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    twenty_ids: dict[str, str] = field(default_factory=dict)
    planned: dict[str, list[str]] = field(default_factory=dict)  # dry run: outcome -> keys

    def merge(self, other: WriteReport) -> None:
        self.counts.update(other.counts)
        self.problems.extend(other.problems)
        self.twenty_ids.update(other.twenty_ids)
        for outcome, keys in other.planned.items():
            self.planned.setdefault(outcome, []).extend(keys)


class ObjectWriter:
    def __init__(
        self,
        *,
        store: AsyncEngine,
        twenty: TwentyDataClient,
        company_id: str,
        obj: ObjectApi,
        batch_size: int,
        dry_run: bool = False,
        run_id: int | None = None,
        before_write: Callable[[list[dict[str, Any]]], Any] | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.store = store
        self.twenty = twenty
        self.company_id = company_id
        self.obj = obj
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.run_id = run_id
        self.before_write = before_write  # e.g. add unknown SELECT options first
        # The process's lease helper (the runtime's); a writer on its own gets one of its own.
        self.leases = leases or Leases(lambda: store)

    async def write(self, items: Sequence[Item]) -> WriteReport:
        changed, report = await self.triage(items)
        report.merge(await self.write_changed(changed))
        return report

    async def triage(self, items: Sequence[Item]) -> tuple[list[Item], WriteReport]:
        """Split off the records whose Whop state is what the bridge last wrote (no call needed)."""
        report = WriteReport()
        unique = list({item.key: item for item in items}.values())  # last one wins
        shadows = await get_shadows(self.store, self.company_id, self.obj.singular, [i.key for i in unique])
        changed: list[Item] = []
        for item in unique:
            shadow = shadows.get(item.key)
            if shadow and shadow.twenty_id and shadow.gone_at is None and shadow.hash == record_hash(item.basis):
                report.counts["unchanged"] += 1
                report.twenty_ids[item.key] = shadow.twenty_id
            else:
                changed.append(item)
        return changed, report

    async def write_changed(self, items: Sequence[Item]) -> WriteReport:
        report = WriteReport()
        changed = list({item.key: item for item in items}.values())
        shadows: dict[str, Shadow] = {}
        if self.dry_run:
            shadows = await get_shadows(self.store, self.company_id, self.obj.singular, [i.key for i in changed])
        for start in range(0, len(changed), self.batch_size):
            batch = changed[start : start + self.batch_size]
            if self.dry_run:
                report.merge(await self._write_batch(batch, shadows))
                continue
            # Webhooks and syncs write the same records: one writer per object at a time, and the
            # shadows are read again inside the lock so an older Whop state never wins.
            name = f"write:{self.company_id}:{self.obj.singular}"
            async with self.leases.hold(name, ttl=WRITE_LEASE_TTL, wait=WRITE_LEASE_WAIT):
                fresh = await get_shadows(self.store, self.company_id, self.obj.singular, [i.key for i in batch])
                current = [i for i in batch if not _stale(i, fresh.get(i.key))]
                report.counts["stale"] += len(batch) - len(current)
                report.merge(await self._write_batch(current, fresh))
        return report

    async def _write_batch(self, batch: list[Item], shadows: dict[str, Shadow]) -> WriteReport:
        """Write one batch; the steps follow the module docstring's list."""
        report = WriteReport()
        if not batch:
            return report
        known, unknown = await self._known_updates(batch, shadows)
        by_key, by_email = await self._read_current(unknown)
        claimed_emails: set[str] = set()
        read: list[Pending] = []
        for item in unknown:
            existing, drop_email = self._settle_email(item, by_key.get(item.key), by_email, claimed_emails, report)
            record = self._build_record(item, existing, shadows.get(item.key), drop_email=drop_email)
            read.append((item, record, existing))
        # Only what was read can be compared with Twenty; the known updates' `existing` is the
        # bridge's own last write, not Twenty's state.
        read, there = self._already_there(read, report)
        records = known + read
        if self.dry_run:
            self._report_dry_run(records, report)
            return report
        if self.before_write is not None:
            await self.before_write([r for _, r, _ in records])
        written = await self._upsert_isolating(records, report)
        await self._learn_missing_ids(written, report)
        await self._store_shadows(written, report)
        await self._store_shadows(there, report, count=False)
        return report

    def _already_there(self, records: list[Pending], report: WriteReport) -> tuple[list[Pending], list[Pending]]:
        """Split off records Twenty already holds exactly as they would be sent (written before
        the bridge could store its shadow: a crash, a lost database): no upsert, only the shadow."""
        send: list[Pending] = []
        there: list[Pending] = []
        for pending in records:
            item, record, existing = pending
            if existing is not None and str(existing.get(self.obj.key)) == item.key and holds(existing, record):
                report.twenty_ids[item.key] = str(existing["id"])
                report.counts["unchanged"] += 1
                there.append(pending)
            else:
                send.append(pending)
        return send, there

    async def _known_updates(self, batch: list[Item], shadows: dict[str, Shadow]) -> tuple[list[Pending], list[Item]]:
        """Split off updates that need no read first: records the bridge wrote before (it knows
        their Twenty ids) whose curated values did not change at Whop. Only on 2.x: 1.x may
        blank a composite an upsert leaves out, so there the read (and the re-sent composites)
        stays. Returns those updates ready to send, and the items that still need the read."""
        if self.dry_run or (await self.twenty.write_rules()).dialect is not Dialect.V2:
            return [], batch
        known: list[Pending] = []
        unknown: list[Item] = []
        for item in batch:
            shadow = shadows.get(item.key)
            written = _written(shadow)
            if shadow is None or not shadow.twenty_id or written is None:
                unknown.append(item)
                continue
            record = without_unchanged_curated(self.obj.singular, item.build(written, written), written)
            if record is None:
                unknown.append(item)
            else:
                known.append((item, record, {**written, "id": shadow.twenty_id}))
        return known, unknown

    async def _read_current(
        self, batch: list[Item]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """One read of what Twenty has: the batch's records by key, and (people) by primary e-mail."""
        if not batch:
            return {}, {}
        emails = sorted({i.email for i in batch if i.email})
        current = await self.twenty.find_by_keys(self.obj, [i.key for i in batch], emails=emails)
        by_key = {str(r.get(self.obj.key)): r for r in current if r.get(self.obj.key)}
        by_email: dict[str, list[dict[str, Any]]] = {}
        for r in current:
            address = ((r.get("emails") or {}).get("primaryEmail") or "").strip().lower()
            if address:
                by_email.setdefault(address, []).append(r)
        return by_key, by_email

    def _settle_email(
        self,
        item: Item,
        existing: dict[str, Any] | None,
        by_email: dict[str, list[dict[str, Any]]],
        claimed_emails: set[str],
        report: WriteReport,
    ) -> tuple[dict[str, Any] | None, bool]:
        """Decide who owns `item`'s e-mail; return (the Twenty record to update, drop the e-mail?).

        An e-mail held by another Whop user's Person, by several records, by a record other than
        the one with this key, or by an earlier record of this batch is reported and left out.
        A single Person with no key that holds it is the one to update (linked, not duplicated).
        """
        if not item.email:
            return existing, False
        owners = [r for r in by_email.get(item.email, []) if r is not existing]
        holder = self._email_holder(item, existing, owners, claimed_emails)
        claimed_emails.add(item.email)
        if holder is not None:
            report.problems.append(
                Problem(
                    self.obj.singular,
                    item.key,
                    f"e-mail {item.email} already belongs to {holder}; written without it",
                    kind="conflict",
                )
            )
            report.counts["conflicts"] += 1
            return existing, True
        if existing is None and owners:
            return owners[0], False  # a Person the CRM already had: link it, don't duplicate
        return existing, False

    def _email_holder(
        self,
        item: Item,
        existing: dict[str, Any] | None,
        owners: list[dict[str, Any]],
        claimed_emails: set[str],
    ) -> Any:
        """Who else holds `item`'s e-mail (for the report), or None when `item` may have it."""
        foreign = [r for r in owners if r.get(self.obj.key) and r.get(self.obj.key) != item.key]
        ambiguous = existing is None and len(owners) > 1
        if not (foreign or ambiguous or (existing is not None and owners) or item.email in claimed_emails):
            return None
        if foreign:
            return foreign[0].get(self.obj.key)
        if owners:
            return f"{len(owners)} existing records"
        return "another record in this sync"

    def _build_record(
        self, item: Item, existing: dict[str, Any] | None, shadow: Shadow | None, *, drop_email: bool
    ) -> dict[str, Any]:
        """The record to send: the item's builder, minus a contested e-mail, plus preserved composites."""
        record = item.build(existing, shadow.written if shadow else None)
        if drop_email:
            record.pop("emails", None)
        if existing is not None:
            # Seen on 1.x: an upsert that omits a composite field may blank it. Send the value a
            # person curated back as Twenty has it, so leaving it alone cannot erase it.
            for name in PRESERVED_COMPOSITES.get(self.obj.singular, ()):
                if name not in record and _has_value(existing.get(name)):
                    record[name] = existing[name]
        return record

    def _report_dry_run(self, records: list[Pending], report: WriteReport) -> None:
        """Dry run: count and list what would be created or updated; nothing is written."""
        for item, _record, existing in records:
            outcome = "updated" if existing else "created"
            report.counts[outcome] += 1
            report.planned.setdefault(outcome, []).append(item.key)
            if existing:
                report.twenty_ids[item.key] = str(existing["id"])

    async def _store_shadows(self, written: list[Pending], report: WriteReport, *, count: bool = True) -> None:
        """Count what Twenty stored and remember it (hash, id, values sent) so the next run can skip it."""
        rows = []
        for item, record, existing in written:
            twenty_id = report.twenty_ids.get(item.key)
            if twenty_id is None:
                continue
            if count:
                report.counts["updated" if existing else "created"] += 1
            rows.append(
                ShadowWrite(
                    whop_id=item.key,
                    hash=record_hash(item.basis),
                    twenty_id=twenty_id,
                    whop_updated_at=item.whop_updated_at,
                    written={**record, "_label": item.label} if item.label else record,
                )
            )
        await put_shadows(self.store, self.company_id, self.obj.singular, rows, run_id=self.run_id)

    async def _upsert_isolating(self, records: list[Pending], report: WriteReport) -> list[Pending]:
        """Upsert; if Twenty refuses the batch, split it until the bad records stand alone."""
        if not records:
            return []
        try:
            answer = await self.twenty.upsert(self.obj, [r for _, r, _ in records])
        except SkippableError as exc:
            if len(records) == 1:
                item = records[0][0]
                kind = "conflict" if isinstance(exc, RecordConflict) else "failed"
                report.problems.append(Problem(self.obj.singular, item.key, str(exc), kind=kind))
                report.counts["failed"] += 1
                log.warning("twenty refused %s %s: %s", self.obj.singular, item.key, exc)
                return []
            middle = len(records) // 2
            left = await self._upsert_isolating(records[:middle], report)
            return left + await self._upsert_isolating(records[middle:], report)
        for row in answer:
            key = row.get(self.obj.key)
            if key and row.get("id"):
                report.twenty_ids[str(key)] = str(row["id"])
        return records

    async def _learn_missing_ids(self, written: list[Pending], report: WriteReport) -> None:
        """A short answer is not a failure (1.x lists only 60 records); ask for the rest by key."""
        missing = [item.key for item, _, _ in written if item.key not in report.twenty_ids]
        if not missing:
            return
        for row in await self.twenty.find_by_keys(self.obj, missing):
            report.twenty_ids[str(row[self.obj.key])] = str(row["id"])
        for key in missing:
            if key not in report.twenty_ids:
                # Seen on 1.x: an upsert onto a soft-deleted record stores and answers nothing.
                report.problems.append(
                    Problem(
                        self.obj.singular,
                        key,
                        "Twenty did not store it: the record was probably deleted in Twenty; "
                        "restore it there (or run `sync --deep` with BRIDGE_RESTORE_DELETED=true)",
                    )
                )
                report.counts["skipped"] += 1


PRESERVED_COMPOSITES = {"person": ("name", "emails", "phones"), "opportunity": ("amount",)}


def _written(shadow: Shadow | None) -> dict[str, Any] | None:
    """The record the bridge last sent, without its own bookkeeping keys (`_label`)."""
    if shadow is None or shadow.gone_at is not None or not shadow.written:
        return None
    return {k: v for k, v in shadow.written.items() if not k.startswith("_")}


def _has_value(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_value(v) for v in value.values())
    return value not in (None, "", [], {})


def _stale(item: Item, shadow: Shadow | None) -> bool:
    """The bridge already wrote a newer Whop state of this record."""
    return bool(
        shadow and shadow.whop_updated_at and item.whop_updated_at and item.whop_updated_at < shadow.whop_updated_at
    )


# Per-object write lease: held for one batch (read, upsert, shadows); a batch waits this long for
# the sync or worker writing the same object before its caller retries later.
WRITE_LEASE_TTL = 120.0
WRITE_LEASE_WAIT = 600.0
