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

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import RecordConflict, SkippableError
from bridge.store import deleted
from bridge.store.leases import Leases
from bridge.store.shadows import Shadow, ShadowWrite, get_shadows, put_shadows
from bridge.sync.mapping import record_hash, without_unchanged_curated
from bridge.twenty.data import ObjectApi, TwentyDataClient
from bridge.twenty.documents import Dialect
from bridge.twenty.values import holds

log = logging.getLogger(__name__)

Builder = Callable[[dict[str, Any] | None, dict[str, Any] | None], dict[str, Any]]
# The field naming the Whop company a record belongs to (Opportunity, WhopProduct, WhopPayment).
COMPANY_FIELD = "whopCompanyId"


@dataclass
class Item:
    """One Whop record on its way to Twenty."""

    key: str  # the Whop id, also the value of the object's key field in Twenty
    basis: dict[str, Any]  # everything Whop says about it (hashed to detect change)
    build: Builder  # (current Twenty record, last written record) -> record to send
    whop_updated_at: datetime | None = None
    email: str | None = None  # people: the e-mail that may match an existing Person
    label: str | None = None  # display name kept in the shadow (for Opportunity names)


def fixed(record: dict[str, Any]) -> Builder:
    """A build function for a record the bridge owns whole (nothing curated to merge)."""
    return lambda _current, _last: dict(record)


# (item, record to send, the Twenty record it updates or None)
Pending = tuple[Item, dict[str, Any], dict[str, Any] | None]


# refused: another company's record; deleted_in_twenty: a person's deletion the bridge keeps;
# restored / repaired: a deep check brought back what was deleted or changed in Twenty.
ProblemKind = Literal["skipped", "conflict", "failed", "refused", "deleted_in_twenty", "restored", "repaired"]


@dataclass
class Problem:
    object: str
    key: str
    reason: str
    kind: ProblemKind = "skipped"

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


@dataclass
class Prepared:
    """A batch read and built under the write lease, not sent yet."""

    batch: list[Item]
    send: list[Pending]  # records to upsert
    there: list[Pending]  # records Twenty already holds as they would be sent
    report: WriteReport
    seen_keys: set[str]  # keys of the Twenty records the read returned
    seen_ids: set[str]  # and their ids

    def keys(self) -> set[str]:
        return {item.key for item in self.batch}

    def emails_sent(self) -> set[str]:
        """The primary e-mails this batch gives its records (not one it left out as taken)."""
        sent = ((record.get("emails") or {}).get("primaryEmail") for _, record, _ in self.send)
        return {_address(e) for e in sent if isinstance(e, str) and e.strip()}

    def target_ids(self) -> set[str]:
        """The Twenty records this batch writes to (updates, and Persons it links by e-mail)."""
        return {str(existing["id"]) for _, _, existing in self.send + self.there if existing and existing.get("id")}


class Guard(Protocol):
    """What runs before a write: `OptionGuard` adds the SELECT options a batch's values lack."""

    async def ensure(self, obj: str, records: list[dict[str, Any]]) -> None: ...


class WriterFor(Protocol):
    """Makes the writer of a Twenty object, under its own shadows or a second view's."""

    def __call__(self, obj: ObjectApi, shadow: str | None = None, /) -> ObjectWriter: ...


@dataclass
class Writers:
    """The one writer factory: the sync and the worker make every `ObjectWriter` here, each
    writing through the option guard, so a new Whop status is added whichever path meets it.
    A sync sets `run_id` once its run is started (shadows remember which run saw them)."""

    store: AsyncEngine
    twenty: TwentyDataClient
    company_id: str
    guard: Guard
    batch_size: int
    leases: Leases | None = None
    restore_deleted: bool = False
    dry_run: bool = False
    run_id: int | None = None

    def __call__(self, obj: ObjectApi, shadow: str | None = None, /) -> ObjectWriter:
        return ObjectWriter(self, obj, shadow)


class ObjectWriter:
    """Writes one Twenty object for one company, with the settings of the `Writers` that made it."""

    def __init__(self, settings: Writers, obj: ObjectApi, shadow_name: str | None = None) -> None:
        self.store, self.twenty, self.company_id = settings.store, settings.twenty, settings.company_id
        self.obj = obj
        self.batch_size, self.dry_run, self.run_id = settings.batch_size, settings.dry_run, settings.run_id
        # First, the guard adds the SELECT options the batch's values lack.
        self.before_write: Callable[[list[dict[str, Any]]], Any] | None = functools.partial(
            settings.guard.ensure, obj.singular
        )
        self.restore_deleted = settings.restore_deleted  # else a record a person deleted in Twenty stays deleted
        # Shadows are kept under the object's name, or another for a second view of the same records
        # (a Person's revenue fields are written apart from its member fields).
        self.shadow_name = shadow_name or obj.singular
        # The process's lease helper (the runtime's); a writer on its own gets one of its own.
        self.leases = settings.leases or Leases(lambda: settings.store)

    async def write(self, items: Sequence[Item]) -> WriteReport:
        changed, report = await self.triage(items)
        report.merge(await self.write_changed(changed))
        return report

    async def triage(self, items: Sequence[Item]) -> tuple[list[Item], WriteReport]:
        """Split off the records whose Whop state is what the bridge last wrote (no call needed)."""
        report = WriteReport()
        unique = list({item.key: item for item in items}.values())  # last one wins
        shadows = await get_shadows(self.store, self.company_id, self.shadow_name, [i.key for i in unique])
        changed: list[Item] = []
        for item in unique:
            shadow = shadows.get(item.key)
            if shadow and shadow.twenty_id and shadow.gone_at is None and shadow.hash == record_hash(item.basis):
                report.counts["unchanged"] += 1
                report.twenty_ids[item.key] = shadow.twenty_id
            else:
                changed.append(item)
        if changed and not self.restore_deleted:
            # A person's deletion wins (bridge/sync/deletions.py): an upsert would restore it on 2.x.
            kept = await deleted.held(self.store, self.obj.singular, [i.key for i in changed])
            if kept:
                report.counts["kept_deleted"] += len(kept)
                changed = [i for i in changed if i.key not in kept]
        return changed, report

    async def write_changed(self, items: Sequence[Item]) -> WriteReport:
        report = WriteReport()
        changed = list({item.key: item for item in items}.values())
        shadows: dict[str, Shadow] = {}
        if self.dry_run:
            shadows = await get_shadows(self.store, self.company_id, self.shadow_name, [i.key for i in changed])
        for start in range(0, len(changed), self.batch_size):
            batch = changed[start : start + self.batch_size]
            if self.dry_run:
                report.merge(await self._write_batch(batch, shadows))
                continue
            # Webhooks and syncs write the same records: one writer per object at a time, and the
            # shadows are read again inside the lock so an older Whop state never wins.
            name = f"write:{self.company_id}:{self.obj.singular}"
            async with self.leases.hold(name, ttl=WRITE_LEASE_TTL, wait=WRITE_LEASE_WAIT):
                fresh = await get_shadows(self.store, self.company_id, self.shadow_name, [i.key for i in batch])
                current = [i for i in batch if not _stale(i, fresh.get(i.key))]
                report.counts["stale"] += len(batch) - len(current)
                report.merge(await self._write_batch(current, fresh))
        return report

    async def _write_batch(self, batch: list[Item], shadows: dict[str, Shadow]) -> WriteReport:
        """Write one batch; the steps follow the module docstring's list."""
        if not batch:
            return WriteReport()
        prepared = await self._prepare(batch, shadows)
        if self.dry_run:
            self._report_dry_run(prepared.send, prepared.report)
            return prepared.report
        return await self._finish(prepared, await self._send(prepared))

    async def _prepare(self, batch: list[Item], shadows: dict[str, Shadow]) -> Prepared:
        """Steps 1-3 for a batch (shadows already read): the keyed read, e-mail ownership and the
        records to send. Changes nothing, in Twenty or in the store."""
        report = WriteReport()
        known, unknown = await self._known_updates(batch, shadows)
        by_key, by_email = await self._read_current(unknown)
        claimed_emails: set[str] = set()
        read: list[Pending] = []
        for item in unknown:
            if self._refuse_foreign(item, by_key.get(item.key), report):
                continue
            existing, drop_email = self._settle_email(item, by_key.get(item.key), by_email, claimed_emails, report)
            record = self._build_record(item, existing, shadows.get(item.key), drop_email=drop_email)
            read.append((item, record, existing))
        # Only what was read can be compared with Twenty; the known updates' `existing` is the
        # bridge's own last write, not Twenty's state.
        read, there = self._already_there(read, report)
        seen = [*by_key.values(), *(r for rows in by_email.values() for r in rows)]
        return Prepared(
            batch=batch,
            send=known + read,
            there=there,
            report=report,
            seen_keys={str(r[self.obj.key]) for r in seen if r.get(self.obj.key)},
            seen_ids={str(r["id"]) for r in seen if r.get("id")},
        )

    async def _send(self, prepared: Prepared) -> list[Pending]:
        """Steps 4-5: the upsert (isolating refusals) and the ids a short answer left out."""
        if self.before_write is not None:
            await self.before_write([r for _, r, _ in prepared.send])
        written = await self._upsert_isolating(prepared.send, prepared.report)
        await self._learn_missing_ids(written, prepared.report)
        return written

    async def _finish(self, prepared: Prepared, written: list[Pending]) -> WriteReport:
        """Step 6: the shadows of what Twenty stored, and of what it already held."""
        await self._store_shadows(written, prepared.report)
        await self._store_shadows(prepared.there, prepared.report, count=False)
        return prepared.report

    def pipeline(self) -> WritePipeline:
        return WritePipeline(self)

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

    def _refuse_foreign(self, item: Item, existing: dict[str, Any] | None, report: WriteReport) -> bool:
        """A Twenty record another company owns is never overwritten, whatever the item says:
        this holds when the bridge's own memory is gone too (no shadow, a lost database)."""
        owner = existing.get(COMPANY_FIELD) if existing is not None else None
        if not owner or owner == self.company_id:
            return False
        reason = (
            f"Twenty holds {self.obj.singular} {item.key} for company {owner}, not {self.company_id}: not overwritten"
        )
        report.problems.append(Problem(self.obj.singular, item.key, reason, kind="refused"))
        report.counts["refused"] += 1
        log.warning("%s", reason)
        return True

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
            address = _address((r.get("emails") or {}).get("primaryEmail") or "")
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
        await put_shadows(self.store, self.company_id, self.shadow_name, rows, run_id=self.run_id)

    async def _upsert_isolating(self, records: list[Pending], report: WriteReport) -> list[Pending]:
        """Upsert; if Twenty refuses the batch, split it until the bad records stand alone."""
        if not records:
            return []
        try:
            answer = await self.twenty.upsert(self.obj, [r for _, r, _ in records])
        except SkippableError as exc:
            if len(records) == 1:
                item = records[0][0]
                kind: ProblemKind = "conflict" if isinstance(exc, RecordConflict) else "failed"
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


@dataclass
class _Flight:
    """A batch on its way: `sent` once its upsert is answered; `task` ends once it is finished
    (shadows stored, reported) after every batch before it."""

    prepared: Prepared
    task: asyncio.Task[None]
    sent: asyncio.Event


class WritePipeline:
    """Writes a stream of batches of one object, one upsert at a time and in order, and prepares
    the next batch (fresh shadows, the keyed read, the records to send) while the previous
    upsert is in flight: the bridge's own work and its reads stay off the path of Twenty's
    writes, which is what a backfill waits on.

    What holds as when batches go one at a time (`ObjectWriter.write_changed`):
    - the per-object write lease covers each batch from its shadows and read to its stored
      shadows. The pipeline keeps it across consecutive batches, gives it back when nothing
      more is waiting to be written, and hands it over at least every `LEASE_TURN_SECONDS`, so
      a webhook waiting to write the same object gets its turn;
    - a batch sharing a key with the batch in flight, or wanting an e-mail that batch gives a
      record, is prepared only after that batch is finished; one whose read saw a record that
      batch writes is prepared again then. So every batch is built from what Twenty holds
      after the batches before it, and e-mail ownership is settled as one batch at a time would;
    - shadows are stored only after Twenty answered, and `on_done` callbacks and `then` steps
      run in submission order, each after everything submitted before it is finished: a
      checkpoint saved by one never covers a batch whose shadows are not stored yet.
    """

    def __init__(self, writer: ObjectWriter) -> None:
        self.writer = writer
        self._lease: contextlib.AsyncExitStack | None = None
        self._lease_since = 0.0
        self._lease_lock = asyncio.Lock()
        self._submitting = 0  # submissions under way (they need the lease)
        self._flight: _Flight | None = None  # the last batch launched
        # A batch prepared while the one in flight is being written, and its caller's signal.
        self._next: tuple[Prepared, Callable[[WriteReport], None] | None, asyncio.Future[None]] | None = None
        self._tail: asyncio.Task[None] | None = None  # the last step of the ordered chain
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: BaseException | None = None  # what the first failed step raised

    async def __aenter__(self) -> WritePipeline:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
                # Stopped: a batch cut short is written again by the next run (its shadows, and
                # so the checkpoint, never got past it).
                for task in self._tasks:
                    task.cancel()
            # Failed: the batch in flight ends (stored, not reported: what follows a failed
            # link fails too), rather than being cut off inside a database transaction.
            await asyncio.gather(*self._tasks, return_exceptions=True)
            async with self._lease_lock:
                await self._release()

    async def submit(self, items: Sequence[Item], on_done: Callable[[WriteReport], None] | None = None) -> None:
        """Queue `items` for writing (in batches); returns once the last batch's upsert has
        started, so the caller can build the next one meanwhile. `on_done` gets each batch's
        report when it is finished."""
        self._raise_failure()
        writer = self.writer
        if writer.dry_run:
            report = await writer.write_changed(items)
            if on_done is not None:
                on_done(report)
            return
        changed = list({item.key: item for item in items}.values())
        for start in range(0, len(changed), writer.batch_size):
            self._submitting += 1
            try:
                await self._submit_batch(changed[start : start + writer.batch_size], on_done)
            finally:
                self._submitting -= 1

    async def then(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` once everything submitted so far is finished: now, if it already is."""
        self._raise_failure()
        tail = self._tail
        if tail is None or tail.done():
            if tail is not None and not tail.cancelled() and (failure := tail.exception()) is not None:
                raise failure  # before `_ended` has noted it: never step past a failure
            await step()
            return

        async def after() -> None:
            await tail
            await step()

        self._chain(after())

    async def flush(self) -> None:
        """Wait until everything submitted is finished (raising what a batch raised)."""
        if self._tail is not None:
            await self._tail
        self._raise_failure()
        self._flight = None

    def _raise_failure(self) -> None:
        """A batch failed: stop here rather than write on behind it."""
        if self._failed is not None:
            raise self._failed

    async def _submit_batch(self, batch: list[Item], on_done: Callable[[WriteReport], None] | None) -> None:
        writer = self.writer
        flight = self._flight
        if flight is not None and _writes_what_batch_names(flight.prepared, batch):
            await self.flush()
            flight = None
        await self._hold_lease()
        if self._flight is None:
            flight = None  # the lease changed hands: everything before is finished
        prepared = await self._prepare(batch)
        if flight is not None and _read_what_flight_changes(prepared, flight.prepared):
            # Read while that batch may be changing a record this one saw: read again after it.
            await self.flush()
            flight = None
            prepared = await self._prepare(batch)
        if prepared.send:
            await writer.twenty.reserve()  # the upsert's turn in the budget, taken meanwhile
        self._raise_failure()
        if flight is None or flight.sent.is_set():
            self._launch(prepared, on_done)
            return
        await self._launch_behind(flight, prepared, on_done)

    async def _launch_behind(
        self, flight: _Flight, prepared: Prepared, on_done: Callable[[WriteReport], None] | None
    ) -> None:
        """The batch in flight launches this one the moment its own upsert is answered."""
        launched: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._next = (prepared, on_done, launched)
        try:
            await asyncio.wait({launched, flight.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self._next is not None and self._next[2] is launched:
                self._next = None
        if not launched.done():
            await flight.task  # it failed before its upsert was answered: raise that
            self._raise_failure()

    def _launch(self, prepared: Prepared, on_done: Callable[[WriteReport], None] | None) -> None:
        """Start `prepared`'s upsert now; its report and shadows follow, in order."""
        writer = self.writer
        sent = asyncio.Event()
        previous = self._tail

        async def write() -> None:
            written = await writer._send(prepared)
            sent.set()
            waiting, self._next = self._next, None
            if waiting is not None:
                following, following_done, launched = waiting
                self._launch(following, following_done)
                launched.set_result(None)
                await asyncio.sleep(0)  # its upsert goes out before this batch's bookkeeping
            report = await writer._finish(prepared, written)
            if previous is not None:
                await previous  # reports and checkpoints go in submission order
            if on_done is not None:
                on_done(report)

        task = self._chain(write())
        self._flight = _Flight(prepared, task, sent)

    async def _prepare(self, batch: list[Item]) -> Prepared:
        """Fresh shadows (the lease is held) and the batch built from them and a keyed read."""
        writer = self.writer
        fresh = await get_shadows(writer.store, writer.company_id, writer.shadow_name, [i.key for i in batch])
        current = [i for i in batch if not _stale(i, fresh.get(i.key))]
        prepared = await writer._prepare(current, fresh)
        prepared.report.counts["stale"] += len(batch) - len(current)
        prepared.batch = batch  # every key counts towards overlaps, stale ones too
        return prepared

    def _chain(self, step: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `step` as the new last link of the chain (it awaits the link before it itself)."""

        async def link() -> None:
            await step
            await self._release_if_idle()

        task = asyncio.create_task(link())
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        self._tail = task
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failed is None:
            self._failed = task.exception()

    async def _hold_lease(self) -> None:
        async with self._lease_lock:
            if self._lease is not None and time.monotonic() - self._lease_since >= LEASE_TURN_SECONDS:
                await self.flush()
                await self._release()  # a writer waiting for the object goes now
            if self._lease is None:
                self._flight = None
                writer = self.writer
                name = f"write:{writer.company_id}:{writer.obj.singular}"
                stack = contextlib.AsyncExitStack()
                await stack.enter_async_context(writer.leases.hold(name, ttl=WRITE_LEASE_TTL, wait=WRITE_LEASE_WAIT))
                self._lease, self._lease_since = stack, time.monotonic()

    async def _release_if_idle(self) -> None:
        """The last batch is finished and no other is being submitted: give the lease back."""
        if self._submitting or self._tail is not asyncio.current_task():
            return
        async with self._lease_lock:
            if not self._submitting and self._tail is asyncio.current_task():
                await self._release()

    async def _release(self) -> None:
        stack, self._lease = self._lease, None
        if stack is not None:
            await asyncio.shield(stack.aclose())  # a cancelled caller still frees the row


PRESERVED_COMPOSITES = {"person": ("name", "emails", "phones"), "opportunity": ("amount",)}


def _written(shadow: Shadow | None) -> dict[str, Any] | None:
    """The record the bridge last sent, without its own bookkeeping keys (`_label`)."""
    if shadow is None or shadow.gone_at is not None or not shadow.written:
        return None
    return {k: v for k, v in shadow.written.items() if not k.startswith("_")}


def _writes_what_batch_names(flying: Prepared, batch: list[Item]) -> bool:
    """The batch in flight writes a key or an e-mail `batch` names: wait for it before reading."""
    return bool(
        flying.keys() & {i.key for i in batch} or flying.emails_sent() & {_address(i.email) for i in batch if i.email}
    )


def _read_what_flight_changes(prepared: Prepared, flying: Prepared) -> bool:
    """`prepared` saw a key or a record the batch in flight may be changing."""
    return bool(prepared.seen_keys & flying.keys() or prepared.seen_ids & flying.target_ids())


def _address(email: str) -> str:
    """An e-mail as Twenty's answers are compared: case and surrounding spaces do not count."""
    return email.strip().lower()


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
# A pipeline holding the lease across batches hands it over this often (a webhook's write waits
# at most about this long behind a backfill).
LEASE_TURN_SECONDS = 10.0
