"""The sync engine: Whop lists in, Twenty records out, checkpointed after every page.

Order: products, then people (members), then opportunities (memberships) linked to both. Payments
are walked alongside products and people (they cost Whop calls, not Twenty calls) and folded
into the opportunities as last-payment fields. While one page is written to Twenty the next is
already being fetched from Whop, so the Twenty rate limit is the only thing the run waits on.

A run stores a checkpoint (the Whop cursor of the last page fully written, per phase) after
every page. A run stopped at any point (Ctrl-C, kill -9, crash) is resumed from there by the next
`sync`; upserts are keyed by Whop ids, so a page written twice creates nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import metrics
from bridge.errors import AuthError, BridgeError, NeedsReconnect, SkippableError
from bridge.logs import bound
from bridge.store import runs as run_store
from bridge.store.connections import get_connection
from bridge.store.db import utcnow
from bridge.store.leases import Leases
from bridge.store.shadows import get_shadows, mark_gone, mark_seen, unseen_since
from bridge.sync import deletions, mapping
from bridge.sync.attribution import AttributionSweep
from bridge.sync.moments import Moments, MomentSweep
from bridge.sync.objects import MEMBERSHIPS, PAYMENTS, PEOPLE, PHASE_OBJECTS, PRODUCTS, REVIEWS, SyncedObject, payments
from bridge.sync.objects.people import fetch_missing_people
from bridge.sync.objects.tasks import failed_payment_task
from bridge.sync.options import OptionGuard
from bridge.sync.records import CompanyItems, LastPayment, MembershipItems, PlanBook, payment_time
from bridge.sync.reviews import sync_reviews
from bridge.sync.story import Line
from bridge.sync.timeline import TIMELINE, Timeline
from bridge.sync.waitlist import Applied, Waitlist, read_entries
from bridge.sync.writer import Item, ObjectWriter, Problem, WriteReport, Writers
from bridge.twenty.data import OPPORTUNITY, TwentyDataClient, WriteRules
from bridge.twenty.metadata import LiveObject
from bridge.whop.client import WhopClient
from bridge.whop.models import Membership, Page, Payment

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# Timeline lines a sync keeps before it writes the ready ones (in full batches): a backfill's
# memory stays bounded, whatever the company's size.
TIMELINE_FLUSH_LINES = 2000
# Batches of changed records read from Whop, and read from Twenty, ahead of the one being
# written: a backfill makes one keyed read of up to (1 + this) batches.
READ_AHEAD_BATCHES = 4

Progress = Callable[[str, dict[str, dict[str, int]]], None]


@dataclass
class SyncOptions:
    kind: run_store.RunKind = "full"
    dry_run: bool = False
    batch_size: int = 200
    page_size: int = 100
    stage_policy: str = "advance"
    trigger: run_store.Trigger = "cli"
    restore_deleted: bool = False
    schema_dir: Path | None = None


@dataclass
class SyncResult:
    run_id: int
    status: run_store.RunStatus
    counts: dict[str, dict[str, int]]
    problems: list[dict[str, str]]
    resumed_from: dict[str, Any] | None = None
    planned: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    twenty_calls: int = 0
    twenty_writes: int = 0
    whop_calls: int = 0


class SyncEngine:
    def __init__(
        self,
        *,
        store: AsyncEngine,
        whop: WhopClient,
        twenty: TwentyDataClient,
        company_id: str,
        options: SyncOptions,
        guard: OptionGuard | None = None,
        progress: Progress | None = None,
        connection_id: int | None = None,
        leases: Leases | None = None,
        plans: PlanBook | None = None,
        deletions: deletions.DeletionWatch | None = None,
    ) -> None:
        self.store = store
        self.whop = whop
        self.twenty = twenty
        self.company_id = company_id
        self._items: CompanyItems | None = None
        self.deletions = deletions
        self._plans = functools.partial((plans or PlanBook()).get, fetch=whop.get_plan)
        self.options = options
        self.guard = guard or OptionGuard(None)
        self.progress = progress
        self.connection_id = connection_id
        self.leases = leases or Leases(lambda: store)
        self.counts: dict[str, Counter[str]] = {}
        self.problems: list[Problem] = []
        self.planned: dict[str, dict[str, list[str]]] = {}
        self.run_id = 0
        self._checkpoint: dict[str, Any] = {"done": [], "cursors": {}}
        self._checkpoint_lock = asyncio.Lock()
        self._payments: dict[str, LastPayment] = {}  # a dry run's last payment per membership
        self._connected_at: datetime | None = None  # failed payments before it get no Task
        self._reported: set[tuple[str, str]] = set()  # unreadable Whop records reported this run
        self._sweep: MomentSweep | None = None  # moments seen in the membership pages
        self._timeline = Timeline(twenty, store, company_id, batch_size=options.batch_size)
        self._told: list[Line] = []  # timeline lines the pages told, written once their records are
        self._timeline_on: bool | None = None  # whether this Twenty shows the bridge's lines
        self._flush_at = TIMELINE_FLUSH_LINES  # lines kept before the ready ones are written
        # Every writer of the run, each through the option guard; the run's id is set once known.
        self.writers = Writers(
            store=store,
            twenty=twenty,
            company_id=company_id,
            guard=self.guard,
            batch_size=options.batch_size,
            leases=self.leases,
            restore_deleted=options.restore_deleted,
            dry_run=options.dry_run,
        )
        self._attribution = AttributionSweep(whop=whop, store=store, company_id=company_id, writer=self.writers)

    # Run lifecycle --------------------------------------------------------------------------

    async def run(self) -> SyncResult:
        resumed: dict[str, Any] | None = None
        previous = None
        if not self.options.dry_run:
            previous = await run_store.find_resumable_run(self.store, self.company_id, self.options.kind)
        if previous is not None and await run_store.resume_run(self.store, previous.id):
            self.run_id = previous.id
            resumed = previous.checkpoint or {"done": [], "cursors": {}}
            self._checkpoint = {
                "done": list(resumed.get("done", [])),
                "cursors": dict(resumed.get("cursors", {})),
            }
            for obj, counts in (previous.counts or {}).items():
                self.counts[obj] = Counter(counts)
            log.info("resuming sync run %d from %s", self.run_id, self._checkpoint)
        else:
            self.run_id = await run_store.start_run(
                self.store,
                company_id=self.company_id,
                kind=self.options.kind,
                trigger=self.options.trigger,
                dry_run=self.options.dry_run,
                connection_id=self.connection_id,
            )
        self.writers.run_id = self.run_id or None
        with bound(run_id=self.run_id, company_id=self.company_id, kind=self.options.kind):
            return await self._run(resumed)

    async def _run(self, resumed: dict[str, Any] | None) -> SyncResult:
        facts: asyncio.Future[Any] | None = None
        try:
            try:
                deep = self.options.kind == "deep" and not resumed
                if not deep:
                    # What each buyer paid and holds is read first (Whop only, no Twenty call), so
                    # every Person is written once, with its revenue, rather than created then
                    # updated. It waits on nothing in Twenty, so it starts before the reads below.
                    facts = self._revenue_facts()
                live = await self._twenty_state()
                if deep:
                    await self._deep_check()
                    facts = self._revenue_facts()
                await self._phase(PRODUCTS)
                assert facts is not None
                await facts
                await self._phase(PEOPLE)
                await self._phase_waitlist()
                await self._phase_memberships()
                await self._phase_moments()
                await self._phase_attribution()
                await self._phase_payment_records(live)
                # The lines the membership and payment pages told, now their records are written:
                # all in one go, so a backfill sends them in full batches.
                await self._write_timeline()
                await self._phase_reviews(live)
            finally:
                await _stop(facts)  # ended early: the facts' walks stop with the run
        except (asyncio.CancelledError, KeyboardInterrupt):
            await asyncio.shield(run_store.mark_interrupted(self.store, self.run_id, "stopped; resumes on next sync"))
            raise
        except BridgeError as exc:
            self.problems.append(Problem("run", "-", str(exc), kind="failed"))
            await run_store.finish_run(
                self.store, self.run_id, "failed", self._counts(), self._problems(), reason=str(exc)
            )
            raise
        await run_store.finish_run(self.store, self.run_id, run_store.SUCCEEDED, self._counts(), self._problems())
        return SyncResult(self.run_id, run_store.SUCCEEDED, self._counts(), self._problems(), resumed, self.planned)

    def _revenue_facts(self) -> asyncio.Future[Any]:
        """The payments fold, the membership-facts walk and the buyers' profiles (attribution),
        started (Whop calls only)."""
        walks = [self._phase_payments(), self._phase_membership_facts()]
        if not self.options.dry_run:
            walks.append(self._attribution.prefetch(page_size=self.options.page_size))
        return asyncio.ensure_future(asyncio.gather(*walks))

    async def _twenty_state(self) -> dict[str, LiveObject] | None:
        """The live metadata (SELECT options, write rules), and what people deleted in Twenty:
        the first write of the run needs both."""
        live = await self.guard.load()
        if live is not None and self.guard.meta is not None:
            self.twenty.learn_rules(WriteRules.from_live(self.guard.meta.dialect, live))
        if not self.options.dry_run:
            # What people deleted in Twenty stays deleted; each deletion is reported once.
            watch = self.deletions or deletions.DeletionWatch()
            self.problems.extend(
                await watch.maybe_refresh(self.twenty, self.store, restore=self.options.restore_deleted)
            )
        return live

    async def _deep_check(self) -> None:
        from bridge.sync.deep import deep_check
        from bridge.twenty.schema import load_data_model

        report = await deep_check(
            store=self.store,
            twenty=self.twenty,
            model=load_data_model(self.options.schema_dir),
            company_id=self.company_id,
            restore_deleted=self.options.restore_deleted,
            dry_run=self.options.dry_run,
        )
        self.problems.extend(report.problems)
        for obj, keys in report.repaired.items():
            self.counts.setdefault(obj, Counter())["changed_in_twenty"] += len(keys)
        for obj, keys in report.deleted.items():
            self.counts.setdefault(obj, Counter())["deleted_in_twenty"] += len(keys)
        for obj, keys in report.restored.items():
            self.counts.setdefault(obj, Counter())["restored"] += len(keys)

    def _counts(self) -> dict[str, dict[str, int]]:
        return {obj: dict(c) for obj, c in self.counts.items()}

    def _problems(self) -> list[dict[str, str]]:
        return [p.as_dict() for p in self.problems[-500:]]  # a bounded list for the run record

    def _record(self, obj: str, report: WriteReport) -> None:
        self.counts.setdefault(obj, Counter()).update(report.counts)
        if not self.options.dry_run:
            for outcome, n in report.counts.items():
                metrics.RECORDS.labels(obj, outcome).inc(n)
        self.problems.extend(report.problems)
        for outcome, keys in report.planned.items():
            self.planned.setdefault(obj, {}).setdefault(outcome, []).extend(keys)
        if self.progress:
            self.progress(obj, self._counts())

    async def _save_cursor(self, phase: str, cursor: str | None, *, done: bool = False) -> None:
        if self.options.dry_run:
            return
        async with self._checkpoint_lock:
            if cursor:
                self._checkpoint["cursors"][phase] = cursor
            if done and phase not in self._checkpoint["done"]:
                self._checkpoint["done"].append(phase)
            await run_store.save_checkpoint(self.store, self.run_id, self._checkpoint, self._counts())

    async def _pages(self, phase: str, lister: Callable[..., AsyncIterator[Page[M]]]) -> AsyncIterator[Page[M]]:
        """Pages of one phase from its checkpoint on, one page fetched ahead. The caller marks
        the phase done once everything it took from them is written."""
        if phase in self._checkpoint["done"]:
            return
        cursor = self._checkpoint["cursors"].get(phase)
        async for page in prefetch(lister(after=cursor, page_size=self.options.page_size)):
            await self._unreadable(phase, page)
            yield page

    async def _unreadable(self, phase: str, page: Page[Any]) -> None:
        """Records Whop listed that the bridge cannot read are reported, each once a run, and
        count as seen: left as Twenty has them, never marked deleted at Whop."""
        if not page.unreadable:
            return
        obj = PHASE_OBJECTS.get(phase, phase)
        for key, reason in page.unreadable:
            if (obj, key) not in self._reported:
                self._reported.add((obj, key))
                self.problems.append(Problem(obj, key, f"{reason}; left as it is", kind="failed"))
        if obj == "opportunity" and not self.options.dry_run:
            await mark_seen(self.store, self.company_id, obj, [key for key, _ in page.unreadable], self.run_id)

    # Phases ---------------------------------------------------------------------------------

    async def _phase(self, obj: SyncedObject[M]) -> None:
        """Write an object's pages as its declaration builds them (`bridge/sync/objects/`), with
        what this run adds to its pages (`_extras`)."""
        items = await self._company_items()
        build = obj.build
        assert build is not None

        async def page_items(page: list[M]) -> list[Item]:
            return await self._extras(obj, page, await build(items, page))

        await self._drain(obj, page_items)

    async def _extras(self, obj: SyncedObject[M], page: list[M], items: list[Item]) -> list[Item]:
        """What a run adds to a page: where the buyers came from (People), the failed payments'
        Tasks and the lines payments tell (WhopPayments)."""
        if obj is PEOPLE:
            return self._attribution.attach_people(items)
        if obj is PAYMENTS:
            await self._payment_page(cast(list[Payment], page))
        return items

    async def _phase_membership_facts(self) -> None:
        """What each membership says about its buyer's revenue (active, ended), before the Persons
        are written; the memberships phase reads them from Whop again to write the Opportunities."""
        items = await self._company_items()
        assert MEMBERSHIPS.list_page is not None
        async for page in self._pages("membership_facts", MEMBERSHIPS.list_page(self.whop)):
            await items.record_memberships(page.data)
            await self._save_cursor("membership_facts", page.end_cursor)
        await self._save_cursor("membership_facts", None, done=True)

    async def _drain(self, declared: SyncedObject[M], make_items: Callable[[list[M]], Awaitable[list[Item]]]) -> None:
        """Write a phase's changed records in full batches that may span Whop pages.

        Whop pages hold 100 records and a Twenty batch up to 200: changed records are buffered
        until a batch is full. Batches go through a `WritePipeline`, so the next one is built
        (shadows, its keyed read) while the previous one is being written. Pages are read and
        triaged ahead of the writes, up to `READ_AHEAD_BATCHES` batches, and the records new
        to the bridge among them are read from Twenty in one call (`read_ahead`), so a backfill
        makes one keyed read for several upserts instead of one each. The checkpoint only
        moves past pages whose records are all written and stored: each save is queued behind
        the batches submitted before it.
        """
        phase, name, obj = declared.phase, declared.twenty.singular, declared.twenty
        assert phase is not None and declared.list_page is not None
        lister = declared.list_page(self.whop)
        if phase in self._checkpoint["done"]:
            return
        writer = self.writers(obj, declared.shadow)
        batch = self.options.batch_size
        room = asyncio.Condition()  # guards `buffer`, `cursors` and `finished`
        buffer: deque[tuple[Item, int]] = deque()  # (item, index of the page it came from)
        cursors: list[str | None] = []
        finished = False
        asked: set[str] = set()  # keys read ahead in this phase
        saved = -1  # the last page whose cursor is saved, or queued to be

        def written(report: WriteReport) -> None:
            self._record(name, report)

        async def produce() -> None:
            """Whop pages, triaged, into the buffer, while it holds less than the look-ahead."""
            nonlocal finished
            try:
                async for page in self._pages(phase, lister):
                    changed, triaged = await writer.triage(await make_items(page.data))
                    self._record(name, triaged)
                    if not self.options.dry_run and triaged.twenty_ids:
                        # Unchanged records were seen at Whop too (written ones are marked when stored).
                        ids = list(triaged.twenty_ids)
                        await mark_seen(self.store, self.company_id, name, ids, self.run_id)
                    async with room:
                        await room.wait_for(lambda: len(buffer) < batch * (1 + READ_AHEAD_BATCHES))
                        # The page and its records together: an empty buffer means every page
                        # listed so far is in the batches submitted.
                        cursors.append(page.end_cursor)
                        buffer.extend((item, len(cursors) - 1) for item in changed)
                        room.notify_all()
            finally:
                async with room:
                    finished = True
                    room.notify_all()

        async with writer.pipeline() as pipeline:
            producer = asyncio.create_task(produce())
            try:
                while True:
                    async with room:
                        await room.wait_for(lambda: finished or len(buffer) >= batch)
                        if not buffer:
                            break
                        chunk = [buffer.popleft()[0] for _ in range(min(batch, len(buffer)))]
                        upcoming = [item for item, _ in buffer]
                        room.notify_all()
                    if any(item.key not in asked for item in chunk):
                        await self._read_ahead(writer, chunk + upcoming, asked)
                    await pipeline.submit(chunk, written)
                    # Every page before the first still-buffered record is written once the
                    # batches submitted so far are.
                    done = (buffer[0][1] - 1) if buffer else len(cursors) - 1
                    if done > saved:
                        saved = done
                        await pipeline.then(functools.partial(self._save_cursor, phase, cursors[done]))
                await producer  # what it raised, if it stopped early
            finally:
                await _stop(producer)
                self.twenty.forget_reads(obj)
        await self._save_cursor(phase, cursors[-1] if cursors else None, done=True)

    async def _read_ahead(self, writer: ObjectWriter, items: list[Item], asked: set[str]) -> None:
        """One keyed read for the records among `items` that are new to the bridge (no shadow):
        the writer's read of each of their batches is then answered without a call."""
        fresh = [i for i in items if i.key not in asked][: self.options.batch_size * (1 + READ_AHEAD_BATCHES)]
        asked.update(i.key for i in fresh)
        known = await get_shadows(self.store, self.company_id, writer.shadow_name, [i.key for i in fresh])
        new = [i for i in fresh if i.key not in known]
        if new:
            emails = sorted({i.email for i in new if i.email})
            await self.twenty.read_ahead(writer.obj, [i.key for i in new], emails=emails)

    async def _phase_payments(self) -> None:
        """Keep the last payment per membership (shadow object "payment", keyed by membership)."""
        assert PAYMENTS.list_page is not None
        async for page in self._pages("payments", PAYMENTS.list_page(self.whop)):
            # Stored at once and read back by the memberships phase: memory stays flat however
            # many memberships the company has (a dry run stores nothing: it remembers here).
            await payments.fold(
                self.store, self.company_id, page.data, self._payments if self.options.dry_run else None
            )
            if not self.options.dry_run:
                await (await self._company_items()).record_payments(page.data)
            self.counts.setdefault("payment", Counter())["seen"] += len(page.data)
            await self._save_cursor("payments", page.end_cursor)
        await self._save_cursor("payments", None, done=True)

    async def _phase_payment_records(self, live: dict[str, Any] | None) -> None:
        """The payment history: a WhopPayment per Whop payment, linked to the Person and the
        Opportunity the phases before wrote. A workspace provisioned before the object existed
        is told to provision again rather than failing the run."""
        if self._unprovisioned(PAYMENTS, live):
            return
        row = await get_connection(self.store, self.company_id)
        self._connected_at = row.connected_at if row else None
        await self._phase(PAYMENTS)

    def _unprovisioned(self, obj: SyncedObject[Any], live: dict[str, Any] | None) -> bool:
        """A workspace provisioned before the object existed is told to provision again, and the
        run goes on without it."""
        reason = obj.unprovisioned(live)
        if reason is not None:
            self.problems.append(Problem(obj.twenty.singular, "-", reason))
        return reason is not None

    async def _payment_page(self, page: list[Payment]) -> None:
        """A Task for each failed payment a webhook did not bring: only failures after the
        company was connected (its history is not news), once each (a closed Task stays closed);
        and the lines the payments tell."""
        since = self._connected_at
        if not self.options.dry_run and since is not None:
            for p in page:
                when = payment_time(p)
                if not (mapping.payment_is_failure(p) and p.membership_id and when and when > since):
                    continue
                if await failed_payment_task(
                    self.twenty, self.store, self.company_id, p, product_title=p.product_title
                ):
                    self.counts.setdefault("task", Counter())["created"] += 1
        await self._tell(payments=page)

    async def _phase_memberships(self) -> None:
        walked = "memberships" not in self._checkpoint["done"]
        await self._drain(MEMBERSHIPS, self.membership_items)
        if walked:
            await self._mark_disappeared()

    async def _mark_disappeared(self) -> None:
        """Memberships this run did not see at Whop: confirm each is gone, then mark it DELETED."""
        unseen = await unseen_since(self.store, self.company_id, "opportunity", self.run_id)
        gone: list[str] = []
        for shadow in unseen:
            try:
                await self.whop.get_membership(shadow.whop_id)
            except SkippableError:  # NotFound: really deleted at Whop
                gone.append(shadow.whop_id)
                continue
            # Still there (listed late or filtered): it was seen after all.
            await mark_seen(self.store, self.company_id, "opportunity", [shadow.whop_id], self.run_id)
        if not gone:
            return
        counter = self.counts.setdefault("opportunity", Counter())
        counter["gone"] += len(gone)
        if self.options.dry_run:
            self.planned.setdefault("opportunity", {}).setdefault("gone", []).extend(gone)
            return
        report = await self.writers(OPPORTUNITY).write_changed([MEMBERSHIPS.deleted_item(key) for key in gone])
        report.counts.pop("updated", None)  # counted as "gone" above
        self._record("opportunity", report)
        await mark_gone(self.store, self.company_id, "opportunity", gone)
        log.info("marked %d membership(s) deleted at Whop", len(gone))

    async def _phase_waitlist(self) -> None:
        """Waitlist signups (bridge/sync/waitlist.py): leads, and the ones approved since become
        their membership's Opportunity before the memberships phase writes it. Signups are few:
        the phase keeps no cursor, and is done again by a resumed run."""
        if self.options.dry_run or "waitlist" in self._checkpoint["done"]:
            return
        signups = Waitlist(
            store=self.store,
            twenty=self.twenty,
            whop=self.whop,
            items=await self._company_items(),
            writer=self.writers,
            leases=self.leases,
            stage_policy=self.options.stage_policy,
        )
        listed: set[str] = set()
        try:
            async for page in self.whop.list_waitlist_entries(page_size=self.options.page_size):
                listed.update(e.id for e in page.data)
                self._record_waitlist(await signups.apply(page.data))
            # Held but not listed: withdrawn (listed only when asked for) or deleted at Whop.
            read = await read_entries(self.whop, self.company_id, sorted(await signups.held() - listed))
            self._record_waitlist(await signups.apply(read.entries))
            self._record("opportunity", await signups.gone(read.gone))
            for key, error in read.failed.items():
                self.problems.append(Problem("opportunity", key, f"waitlist entry not read: {error}", kind="failed"))
        except NeedsReconnect:
            raise
        except (AuthError, SkippableError) as exc:  # e.g. no plan:waitlist:read: the rest goes on
            self.problems.append(Problem("opportunity", "-", f"waitlist not read from Whop: {exc}"))
        await self._save_cursor("waitlist", None, done=True)

    def _record_waitlist(self, applied: Applied) -> None:
        self._record("person", applied.people)
        self._record("opportunity", applied.leads)
        self.problems.extend(applied.problems)
        if applied.converted:
            self.counts.setdefault("opportunity", Counter())["converted"] += len(applied.converted)

    async def _phase_attribution(self) -> None:
        """Where buyers and memberships came from (bridge/sync/attribution.py), once the Persons
        and Opportunities it is written on are."""
        if self.options.dry_run:
            return
        done = await self._attribution.run(page_size=self.options.page_size)
        # Counted apart: a second pass over records this run wrote, not changes Whop made to them.
        self._record("personAttribution", done.people)
        self._record("opportunityAttribution", done.opportunities)
        self.problems.extend(done.problems)

    async def _phase_reviews(self, live: dict[str, Any] | None) -> None:
        """Reviews (bridge/sync/reviews.py): Whop sends no webhook for them, so every run reads
        them; a workspace provisioned before the object existed is told to provision again."""
        if self.options.dry_run:
            return
        if self._unprovisioned(REVIEWS, live):
            return
        try:
            done = await sync_reviews(
                whop=self.whop,
                store=self.store,
                company=(await self._company_items()).company,
                writers=self.writers,
                page_size=self.options.page_size,
            )
        except NeedsReconnect:
            raise
        except (AuthError, SkippableError) as exc:  # e.g. the credential may not read reviews
            self.problems.append(Problem("whopReview", "-", f"reviews not read from Whop: {exc}"))
            return
        self._record("whopReview", done.report)
        self.problems.extend(done.problems)

    async def _moment_sweep(self) -> MomentSweep:
        if self._sweep is None:
            row = await get_connection(self.store, self.company_id)
            moments = Moments(self.twenty, self.store, self.company_id)
            self._sweep = MomentSweep(moments, since=row.connected_at if row else None, now=utcnow())
        return self._sweep

    async def _phase_moments(self) -> None:
        """Tasks for moments the webhooks did not bring (bridge/sync/moments.py): memberships set
        to cancel and trials ending (seen in the memberships phase), invoices past due."""
        if self.options.dry_run:
            return
        sweep = await self._moment_sweep()
        try:
            for key, reason in await sweep.invoices(self.whop):
                self.problems.append(Problem("task", key, reason))
        except NeedsReconnect:
            raise
        except (AuthError, SkippableError) as exc:  # e.g. no invoice:basic:read: the rest goes on
            self.problems.append(Problem("task", "-", f"invoices not read from Whop: {exc}"))
        settled = await sweep.finish()
        if settled.counts:
            self.counts.setdefault("task", Counter()).update(settled.counts)
        for key, error in settled.failed.items():
            self.problems.append(Problem("task", key, f"moment not written: {error}", kind="failed"))

    async def _company_items(self) -> CompanyItems:
        if self._items is None:
            self._items = await CompanyItems.of(self.store, self.company_id, keep_facts=not self.options.dry_run)
        return self._items

    async def membership_items(self, memberships: list[Membership]) -> list[Item]:
        """Opportunity items for memberships, linked to Person and WhopProduct by their Twenty ids."""
        build = MembershipItems(
            self.store,
            self.company_id,
            stage_policy=self.options.stage_policy,
            payments=self._payments,
            fetch_people=None if self.options.dry_run else self._fetch_missing_people,
            plans=self._plans,
            facts=await self._company_items(),
        )
        if self.options.dry_run:
            return await build(memberships)
        await (await self._moment_sweep()).see(memberships)
        self._attribution.see(memberships)
        await self._tell(memberships=memberships)
        return await self._attribution.attach_opportunities(memberships, await build(memberships))

    # The timeline ----------------------------------------------------------------------------

    async def _tell(self, *, memberships: Sequence[Membership] = (), payments: Sequence[Payment] = ()) -> None:
        """Keep the timeline lines these pages tell that are not written yet (none on a dry run,
        or where this Twenty shows no lines of the bridge's)."""
        if self.options.dry_run:
            return
        if self._timeline_on is None:
            reason = await self._timeline.unsupported()
            self._timeline_on = reason is None
            if reason is not None:
                log.info("timeline lines not written: %s", reason)
        if self._timeline_on:
            self._told += await self._timeline.new_lines(memberships, payments)
            if len(self._told) >= self._flush_at:
                await self._write_timeline(final=False)

    async def _write_timeline(self, *, final: bool = True) -> None:
        """Write the lines kept so far whose records are written. On the way (not `final`) only
        full batches go, and the rest is kept, so memory stays bounded and calls few; at the end
        of the run everything ready goes, and a line still waiting is told by the next run."""
        lines, self._told = self._told, []
        if not lines:
            return
        written = await self._timeline.write(lines, full_batches=not final)
        self._told = [] if final else written.kept
        self._flush_at = len(self._told) + TIMELINE_FLUSH_LINES
        self._record(TIMELINE, WriteReport(counts=written.counts, problems=written.problems))

    async def _fetch_missing_people(self, memberships: list[Membership]) -> None:
        """A membership whose member was not listed (left, or listed after this page): fetch it."""
        report, problems = await fetch_missing_people(self.whop, await self._company_items(), self.writers, memberships)
        self.problems.extend(problems)
        if report is not None:
            self._record("person", report)


async def _stop(task: asyncio.Future[Any] | None) -> None:
    """Cancel a phase still running beside a run that ended, and wait until it has stopped."""
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: the run already reports what went wrong
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def prefetch(source: AsyncIterator[T], depth: int = 2) -> AsyncIterator[T]:
    """Iterate `source` with up to `depth` items fetched ahead in a background task."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=depth)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put((True, item))
            await queue.put((False, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            await queue.put((False, exc))

    task = asyncio.create_task(pump())
    try:
        while True:
            ok, value = await queue.get()
            if not ok:
                if isinstance(value, BaseException):
                    raise value
                return
            yield value
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
