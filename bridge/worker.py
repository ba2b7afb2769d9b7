"""The inbox worker: applies stored Whop webhook deliveries to Twenty.

Events are claimed in groups (several bridge processes never take the same one) and applied
through the same writer as the sync, so 20 membership events cost one Twenty read and one
upsert. The payload is only a hint: the record is re-read from Whop, so deliveries that arrive
late, twice or out of order all converge on Whop's current state, and the writer's shadow check
keeps an older state from overwriting a newer one. Unknown event types and companies are
recorded as ignored.

A failure stays with its event. A delivery that cannot be read, or whose id is not shaped like a
Whop id, is dead-lettered at once; a record that Whop refuses, that belongs to another company,
or that cannot be mapped or written fails only the events about it, and its group-mates apply.
Failed events are retried with backoff by the inbox and dead-lettered after the last attempt.
When the cause is Twenty being down (a retryable error, and a probe of Twenty fails as well), the
events go back to the inbox without spending an attempt, and the worker claims nothing until a
probe finds Twenty answering again (`TwentyBreaker`). While a pass runs, its claims are renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from bridge import metrics
from bridge.errors import BridgeError, RetryableError, SkippableError
from bridge.logs import bound
from bridge.runtime import Runtime
from bridge.store import connections, inbox, leases
from bridge.store.db import utcnow
from bridge.store.inbox import InboxEvent
from bridge.store.shadows import get_shadows
from bridge.sync import attribution, mapping, moments, waitlist
from bridge.sync.objects import (
    BY_KIND,
    INVOICES,
    MEMBERSHIPS,
    PAYMENTS,
    PEOPLE,
    PRODUCTS,
    REVENUE,
    SyncedObject,
    event_kind,
)
from bridge.sync.objects.payments import fold
from bridge.sync.objects.people import fetch_missing_people
from bridge.sync.objects.tasks import failed_payment_task, payment_links, shadow_label
from bridge.sync.options import OptionGuard
from bridge.sync.records import (
    CompanyItems,
    MembershipItems,
    foreign_company,
)
from bridge.sync.tasks import upsert_task
from bridge.sync.timeline import Timeline
from bridge.sync.writer import WriteReport, Writers
from bridge.twenty.data import OPPORTUNITY, WHOP_PRODUCT, TwentyDataClient
from bridge.whop.client import NotFound, WhopClient, is_whop_id
from bridge.whop.models import Membership, Payment, WebhookEnvelope

log = logging.getLogger(__name__)

R = TypeVar("R")
FETCH_CONCURRENCY = 8
YIELD_EVERY = 5
_UNSEEN = object()
# The id an event of each kind names: its Whop type prefix (declared by `bridge/sync/objects/`).
ID_PREFIXES = {kind: obj.id_prefix for kind, obj in BY_KIND.items()}
# Ids a usable payload may carry: each becomes a key or a Whop path later.
HINT_IDS = ("id", "company_id", "membership_id", "member_id", "user_id", "product_id", "plan_id")
ERROR_CHARS = 300  # an error names the problem; it does not quote a hostile payload
# The kinds `Applier._in_order` has a step for, in the order it takes them. An object declared
# with webhook events needs its step here too (tests/sync/objects checks the two agree); an
# event of a kind without one fails, never acknowledged unwritten.
STEP_KINDS = ("product", "member", "payment", "entry", "membership", "invoice")

CLAIM_LEASE = 60.0  # seconds a claim lasts; renewed every third of that while its pass runs
FIRST_PROBE = 2.0  # seconds until the first probe of a Twenty found down, doubling…
MAX_PROBE = 15.0  # …to this: a recovery is noticed within 15 s, at 4 calls a minute meanwhile

# Deterministic Twenty ids for tasks: a retried event upserts the same Task, never a second one.
# Events that open (or update) a Task with a deadline, besides refreshing their payment.
CASE_EVENTS = ("dispute.", "resolution_center_case.")

WhopFactory = Callable[[str], Awaitable[WhopClient | None]]


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # event id -> its error
    retryable: set[str] = field(default_factory=set)  # failed for a cause that passes (a service down)
    permanent: set[str] = field(default_factory=set)  # failed for a cause no retry can fix

    def fail(self, event_ids: Iterable[str], error: BaseException | str, *, permanent: bool = False) -> None:
        """These events failed with `error`; an event keeps the first error it got."""
        reason = error if isinstance(error, str) else describe(error)
        for event_id in event_ids:
            if event_id in self.failed:
                continue
            self.failed[event_id] = reason
            if isinstance(error, RetryableError):
                self.retryable.add(event_id)
            if permanent:
                self.permanent.add(event_id)


class Unreadable(Exception):
    """A delivery whose content the bridge refuses (e.g. an id not shaped like a Whop id)."""


def describe(exc: BaseException) -> str:
    """An error as one short line: what went wrong, never the whole payload that caused it."""
    if isinstance(exc, BridgeError | Unreadable):
        text = str(exc)
    elif isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        text = f"{where}: {first['msg']}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "…"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _object_id(kind: str, data: Any) -> Any:
    """The id the event is about, as the payload has it (checked by the caller), or None."""
    if not isinstance(data, dict):
        return None
    if kind == "payment":
        # refunds and disputes point at their payment
        payment = data.get("payment")
        if isinstance(payment, dict) and payment.get("id"):
            return payment["id"]
        if data.get("payment_id"):
            return data["payment_id"]
    return data.get("id") or None


class TwentyBreaker:
    """Open while Twenty fails with retryable errors, so events wait without spending attempts.

    Closed, the worker claims as usual. When a pass fails retryably, `twenty_down` probes Twenty
    once (`TwentyDataClient.probe`, one cheap read, not retried); if that fails too, the breaker
    opens: the events go back to the inbox, and `allows` lets the worker claim again only once a
    probe succeeds. Probes come FIRST_PROBE s apart, doubling up to MAX_PROBE s.
    """

    def __init__(self, probe: Callable[[], Awaitable[None]], *, clock: Callable[[], float]) -> None:
        self.probe = probe
        self.clock = clock
        self.opened_at: float | None = None
        self.next_probe = 0.0
        self.wait = FIRST_PROBE
        self.last_error = ""

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    async def allows(self) -> bool:
        """May the worker claim? Always while closed; while open, once a due probe succeeds."""
        if self.opened_at is None:
            return True
        if self.clock() < self.next_probe:
            return False
        if not await self._answers():
            self._schedule()
            return False
        log.info("Twenty answers again after %.0f s; the worker claims events again", self.clock() - self.opened_at)
        self.opened_at = None
        return True

    async def twenty_down(self) -> bool:
        """After retryable failures: is Twenty itself down? Opens the breaker if a probe says so."""
        if self.opened_at is not None:
            return True
        if await self._answers():
            return False
        self.opened_at = self.clock()
        self.wait = FIRST_PROBE
        self._schedule()
        log.warning("Twenty is failing (%s): events wait without spending attempts; probing it", self.last_error)
        return True

    async def _answers(self) -> bool:
        try:
            await self.probe()
        except RetryableError as exc:
            self.last_error = str(exc)
            return False
        except BridgeError:
            return True  # it answered, if only to refuse: the events' own failures count then
        return True

    def _schedule(self) -> None:
        self.next_probe = self.clock() + self.wait
        self.wait = min(MAX_PROBE, self.wait * 2)


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        twenty: TwentyDataClient | None = None,
        worker_id: str | None = None,
        batch: int = 100,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Built on the event loop it runs on: it keeps that loop's engine from the runtime."""
        self.runtime = runtime
        self.settings = runtime.settings
        self.store = runtime.store
        self.leases = runtime.leases
        self.twenty = twenty or runtime.twenty()
        self.whop_for: WhopFactory = runtime.whop
        self.worker_id = worker_id or leases.owner_id()
        self.batch = batch
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self.applied = 0
        self.failed = 0
        self.lease_seconds = CLAIM_LEASE
        self.clock = clock
        self.breaker = TwentyBreaker(self.twenty.probe, clock=lambda: self.clock())
        # A Whop status Twenty does not list yet is added as an option, as the sync does.
        self.options = OptionGuard(opener=runtime.metadata)

    def wake(self) -> None:
        """Called by the webhook endpoint after it stored a delivery."""
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            # Cleared before claiming: a delivery stored while this pass runs wakes the next one.
            self._wake.clear()
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: the claims run out and come back, no attempt spent
                log.exception("inbox worker pass failed")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def run_once(self) -> int:
        """Claim and apply one group of due events; returns how many were handled."""
        if not await self.breaker.allows():
            return 0  # Twenty is down: the events wait in the inbox, attempts unspent
        events = await inbox.claim(self.store, self.worker_id, limit=self.batch, lease_seconds=self.lease_seconds)
        if not events:
            return 0
        by_company: dict[str | None, list[InboxEvent]] = {}
        for ev in events:
            by_company.setdefault(ev.company_id, []).append(ev)
        async with self._claims_kept([ev.webhook_id for ev in events]):
            try:
                for problem in await self.runtime.deletions.maybe_refresh(
                    self.twenty, self.store, restore=self.settings.restore_deleted
                ):
                    log.warning("%s %s: %s", problem.object, problem.key, problem.reason)
            except BridgeError as exc:  # the writes below still keep what the store knows
                log.warning("could not read what was deleted in Twenty: %s", exc)
            for company_id, group in by_company.items():
                with bound(company_id=company_id, webhook_ids=[e.webhook_id for e in group]):
                    outcome = await self._apply_company(company_id, group)
                await self._record(group, outcome)
        return len(events)

    @contextlib.asynccontextmanager
    async def _claims_kept(self, webhook_ids: Sequence[str]) -> AsyncIterator[None]:
        """Renew the claims every third of their lease while the pass runs: one Twenty call may
        retry for minutes, and a claim that ran out would be handed to another worker."""

        async def keep() -> None:
            while True:
                await asyncio.sleep(self.lease_seconds / 3)
                try:
                    await inbox.extend(self.store, self.worker_id, webhook_ids, lease_seconds=self.lease_seconds)
                except Exception:  # the next renewal may get through; a lost claim costs no attempt
                    log.warning("could not renew the claims on %d events", len(webhook_ids), exc_info=True)

        keeper = asyncio.create_task(keep())
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _record(self, group: list[InboxEvent], outcome: Outcome) -> None:
        """Store how each event of one company's group ended."""
        failed = [ev.webhook_id for ev in group if ev.webhook_id in outcome.failed]
        failed = await self._release_waiting(failed, outcome)
        for webhook_id in failed:
            self.failed += 1
            metrics.WEBHOOKS.labels("failed").inc()
            await inbox.mark_failed(
                self.store,
                webhook_id,
                self.worker_id,
                outcome.failed[webhook_id],
                permanent=webhook_id in outcome.permanent,
            )
        applied = [i for i in (ev.webhook_id for ev in group) if i not in outcome.failed and i not in outcome.ignored]
        ignored = {i: r for i, r in outcome.ignored.items() if i not in outcome.failed}
        # The common cases in one transaction: fewer writes competing with the webhook endpoint.
        await inbox.finish_many(self.store, self.worker_id, applied=applied, ignored=ignored)
        self.applied += len(applied)
        metrics.WEBHOOKS.labels("applied").inc(len(applied))
        metrics.WEBHOOKS.labels("ignored").inc(len(ignored))

    async def _release_waiting(self, failed: list[str], outcome: Outcome) -> list[str]:
        """While Twenty is down, the events that failed for it go back to the inbox, keeping their
        place, no attempt spent (not their fault); the failures left to record."""
        waiting = [i for i in failed if i in outcome.retryable]
        if not waiting or not await self.breaker.twenty_down():
            return failed
        by_reason: dict[str, list[str]] = {}
        for webhook_id in waiting:
            by_reason.setdefault(f"waiting for Twenty: {outcome.failed[webhook_id]}", []).append(webhook_id)
        for reason, ids in by_reason.items():
            await inbox.release(self.store, self.worker_id, ids, reason)
        return [i for i in failed if i not in outcome.retryable]

    async def _apply_company(self, company_id: str | None, events: list[InboxEvent]) -> Outcome:
        outcome = Outcome()
        if not company_id:
            for ev in events:
                outcome.ignored[ev.webhook_id] = "no company in the delivery"
            return outcome
        connection = await connections.get_connection(self.store, company_id)
        if connection is None or connection.status != "connected":
            for ev in events:
                outcome.ignored[ev.webhook_id] = f"company {company_id} is not connected to this bridge"
            return outcome
        try:
            whop = await self.whop_for(company_id)
        except BridgeError as exc:
            outcome.fail([ev.webhook_id for ev in events], exc)
            return outcome
        if whop is None:
            for ev in events:
                outcome.ignored[ev.webhook_id] = f"no Whop credentials for {company_id}"
            return outcome
        try:
            await Applier(self, whop, company_id, connection.id).apply(events, outcome)
        except Exception as exc:  # a fault outside any one record (a store error, a bug): the group retries
            log.warning("applying %d events failed: %s", len(events), describe(exc))
            outcome.fail([ev.webhook_id for ev in events if ev.webhook_id not in outcome.ignored], exc)
        finally:
            await whop.close()
        return outcome


class Applier:
    """Applies one company's events: group by kind, take or re-read the records, write in batches."""

    def __init__(self, worker: Worker, whop: WhopClient, company_id: str, connection_id: int) -> None:
        self.worker = worker
        self.hints: dict[tuple[str, str], Any] = {}
        self.whop = whop
        self.company_id = company_id
        self.connection_id = connection_id
        self.items: CompanyItems | None = None
        self.writers = Writers(
            store=worker.store,
            twenty=worker.twenty,
            company_id=company_id,
            guard=worker.options,  # a Whop status Twenty does not list yet is added, as the sync does
            batch_size=worker.settings.twenty_batch_size,
            leases=worker.leases,
            restore_deleted=worker.settings.restore_deleted,
        )
        self.membership_items = MembershipItems(
            worker.store,
            company_id,
            stage_policy=worker.settings.stage_policy,
            fetch_people=self._fetch_missing_people,
            plans=functools.partial(worker.runtime.plans.get, fetch=whop.get_plan),
        )
        self.paid: dict[str, Payment] = {}  # payments read in this pass, for their history records
        self.deleted_products: set[str] = set()
        self.cases: list[tuple[str, str, dict[str, Any]]] = []  # (event id, type, dispute or case)
        self.announced: dict[str, set[str]] = {}  # Whop id -> the moments its events announced
        # Payloads no newer than what Twenty holds (not written again), with their events: the
        # timeline may still lack the lines they tell.
        self.settled: dict[str, tuple[Any, list[str]]] = {}

    async def _items(self) -> CompanyItems:
        if self.items is None:
            self.items = await CompanyItems.of(self.worker.store, self.company_id)
        return self.items

    async def apply(self, events: list[InboxEvent], outcome: Outcome) -> None:
        await self._in_order(outcome, await self._wanted(events, outcome))

    async def _wanted(self, events: list[InboxEvent], outcome: Outcome) -> dict[str, dict[str, list[str]]]:
        """The records the events name, by kind: {object id: the events naming it}. An event
        that cannot be read is failed or ignored here, alone."""
        wanted: dict[str, dict[str, list[str]]] = {k: {} for k in ID_PREFIXES}
        for n, ev in enumerate(events):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the webhook endpoint answer between chunks of parsing
            try:
                body = json.loads(ev.body)
            except (ValueError, RecursionError):
                body = None
            if not isinstance(body, dict):
                outcome.ignored[ev.webhook_id] = "body is not a JSON event"
                continue
            try:
                read = self._read(body)
            except Exception as exc:  # whatever a signed but hostile body raises: this event alone, for good
                outcome.fail([ev.webhook_id], f"cannot read the delivery: {describe(exc)}", permanent=True)
                continue
            if isinstance(read, str):
                outcome.ignored[ev.webhook_id] = read
                continue
            kind, object_id, envelope = read
            wanted[kind].setdefault(object_id, []).append(ev.webhook_id)
            self._hint(kind, object_id, envelope)
            self._note(ev.webhook_id, kind, object_id, envelope)
        return wanted

    def _note(self, webhook_id: str, kind: str, object_id: str, envelope: WebhookEnvelope) -> None:
        """What an event says beyond its record: a product deleted, a case opened, a moment."""
        event_type = envelope.type or ""
        if event_type == "product.deleted":
            self.deleted_products.add(object_id)
        elif event_type.startswith(CASE_EVENTS) and isinstance(envelope.data, dict):
            self.cases.append((webhook_id, event_type, envelope.data))
        if event_type in moments.ANNOUNCING:  # read from Whop, so the moment is judged on its state
            self.hints[(kind, object_id)] = None
            self.announced.setdefault(object_id, set()).add(moments.ANNOUNCING[event_type])

    async def _in_order(self, outcome: Outcome, wanted: dict[str, dict[str, list[str]]]) -> None:
        for kind, records in wanted.items():
            if kind not in STEP_KINDS:
                for event_ids in records.values():
                    outcome.fail(event_ids, f"{kind} events have no step in the worker", permanent=True)
        products, members, payments, entries, named, invoices = (wanted.get(kind, {}) for kind in STEP_KINDS)
        # Order matters only for links: products and people first, then memberships and payments.
        await self._guard(outcome, products, self._products)
        await self._guard(outcome, members, self._plain(PEOPLE))
        payment_memberships = await self._guard(outcome, payments, self._payments)
        # Waitlist signups before memberships: one approved becomes its membership's Opportunity.
        entry_memberships = await self._guard(outcome, entries, self._entries)
        memberships = dict(named)
        for membership_id, event_ids in [*(payment_memberships or {}).items(), *(entry_memberships or {}).items()]:
            memberships.setdefault(membership_id, []).extend(event_ids)
        await self._guard(outcome, memberships, self._memberships)
        await self._guard(outcome, memberships, self._membership_moments)
        await self._guard(outcome, invoices, self._invoices)
        # The payment history last: each record links the Opportunity written just before.
        paid = {k: v for k, v in payments.items() if k in self.paid}
        await self._guard(outcome, paid, self._history)
        await self._case_tasks(outcome)
        await self._guard(outcome, self._revenue_keys(memberships), self._revenue)
        # The timeline last: its lines point at the Person, the Opportunity and the WhopPayment.
        settled = {k: event_ids for k, (_, event_ids) in self.settled.items()}
        await self._guard(outcome, {**settled, **memberships, **paid}, self._timeline)

    @staticmethod
    def _read(body: dict[str, Any]) -> tuple[str, str, WebhookEnvelope] | str:
        """(kind, object id, envelope) of an event to apply, or why it is ignored; raises for a
        delivery the bridge cannot read."""
        envelope = WebhookEnvelope.model_validate(body)
        kind = event_kind(envelope.type)
        if not kind:
            return f"event type {envelope.type!r} is not synced"
        object_id = _object_id(kind, envelope.data)
        if object_id is None:
            return "event carries no object id (a test delivery?)"
        if not is_whop_id(object_id, ID_PREFIXES[kind]):
            # Checked before it can reach a URL, a key or a log line whole.
            raise Unreadable(f"{_shown(object_id)} is not a Whop {kind} id")
        return kind, str(object_id), envelope

    def _hint(self, kind: str, object_id: str, envelope: WebhookEnvelope) -> None:
        """Keep the newest complete payload per record; a payload without `updated_at` means doubt.

        A usable hint saves the Whop call: the writer then compares its `updated_at` with what the
        bridge last wrote and drops it if older. Any doubt (no timestamp, another shape, a field
        the models cannot read, an id not shaped like Whop's, another company named, a refund
        pointing at its payment) and the record is re-read from Whop instead.
        """
        model = BY_KIND[kind].hint
        parsed: Any = None
        if model is not None:
            try:
                parsed = envelope.data_as(model)
            except Exception:  # an out-of-range time, a hostile amount…: ask Whop
                parsed = None
        usable = (
            parsed is not None
            and getattr(parsed, "id", None) == object_id
            and parsed.updated_at is not None
            and parsed.company_id == self.company_id
            and all(getattr(parsed, name, None) is None or is_whop_id(getattr(parsed, name)) for name in HINT_IDS)
        )
        previous = self.hints.get((kind, object_id), _UNSEEN)
        if not usable or previous is None:
            self.hints[(kind, object_id)] = None  # in doubt: re-read
        elif previous is _UNSEEN or parsed.updated_at > previous.updated_at:
            self.hints[(kind, object_id)] = parsed

    async def _guard(
        self,
        outcome: Outcome,
        ids: dict[str, list[str]],
        step: Callable[[dict[str, list[str]], Outcome], Awaitable[Any]],
    ) -> Any:
        if not ids:
            return None
        try:
            return await step(ids, outcome)
        except BridgeError as exc:  # said of the whole step (Twenty down, a refused batch)
            outcome.fail([e for event_ids in ids.values() for e in event_ids], exc)
            return None
        except Exception as exc:
            if len(ids) == 1:
                outcome.fail(next(iter(ids.values())), exc)
                return None
            # Something in one of these records breaks the step (a value no mapping can take):
            # halve until it stands alone, so the others still apply. Redoing a half is cheap, as
            # records already written are skipped by their shadows.
            keys = list(ids)
            half = len(keys) // 2
            first = await self._guard(outcome, {k: ids[k] for k in keys[:half]}, step)
            second = await self._guard(outcome, {k: ids[k] for k in keys[half:]}, step)
            return _merged(first, second)

    async def _fetch(self, obj: SyncedObject[Any], ids: dict[str, list[str]], outcome: Outcome) -> list[Any]:
        """The records: from the events' payloads when usable, else re-read from Whop, a few at a
        time (the client's limiter sets the pace)."""
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)
        what = obj.kind
        assert obj.get_one is not None
        getter = obj.get_one(self.whop)

        async def one(object_id: str) -> Any:
            record = self.hints.get((what, object_id))
            if record is None:
                async with gate:
                    try:
                        record = await getter(object_id)
                    except NotFound:
                        for event_id in ids[object_id]:
                            outcome.ignored[event_id] = f"{what} {object_id} no longer exists at Whop"
                        return None
                    except Exception as exc:  # refused (403), unreadable…: this record's events alone
                        outcome.fail(ids[object_id], exc)
                        return None
            problem = foreign_company(record, self.company_id)
            if problem is not None:
                outcome.fail(ids[object_id], f"{problem}: not written", permanent=True)
                return None
            return record

        await self._vet_hints(ids, outcome, obj)
        found = await asyncio.gather(*(one(object_id) for object_id in list(ids)))
        return [record for record in found if record is not None]

    async def _vet_hints(self, ids: dict[str, list[str]], outcome: Outcome, obj: SyncedObject[Any]) -> None:
        """Payloads stand in for a Whop read only for records the bridge already wrote for this
        company (a payload can name any id; Whop says whose a new one is), and only when newer:
        a payload no newer than what the bridge wrote is that version or an older one, skipped."""
        what = obj.kind
        hinted = [i for i in ids if self.hints.get((what, i)) is not None]
        if obj.hint is None or not hinted:
            return
        shadows = await get_shadows(self.worker.store, self.company_id, obj.shadow_name, hinted)
        for object_id in hinted:
            shadow = shadows.get(object_id)
            hint = self.hints[(what, object_id)]
            if shadow is None:
                self.hints[(what, object_id)] = None
            elif shadow.whop_updated_at and hint.updated_at <= shadow.whop_updated_at:
                event_ids = ids.pop(object_id)
                for event_id in event_ids:
                    outcome.ignored[event_id] = "Twenty already has this version or a newer one"
                # Still Whop's word on what happened: the timeline writes a line it lacks (a
                # retry after the line failed, a late delivery of an event it never heard of).
                self.settled[object_id] = (hint, event_ids)

    def _settle(self, report: WriteReport, ids: dict[str, list[str]], key_of: dict[str, str], outcome: Outcome) -> None:
        """Events whose record failed to write are retried, those whose record belongs to another
        company in Twenty fail for good (retrying cannot change whose it is); the rest applied."""
        failed = {p.key: p for p in report.problems if p.kind in ("failed", "refused")}
        for object_id, event_ids in ids.items():
            key = key_of.get(object_id, object_id)
            if key in failed:
                outcome.fail(event_ids, failed[key].reason, permanent=failed[key].kind == "refused")

    async def _products(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        gone = {k: v for k, v in ids.items() if k in self.deleted_products}
        live = {k: v for k, v in ids.items() if k not in gone}
        products = await self._fetch(PRODUCTS, live, outcome) if live else []
        items = (await self._items()).products(products)
        # Deleted at Whop: marked, not re-read (Whop no longer has it) nor written back as live.
        # Whop cannot say whose a deleted product was, so only one the bridge wrote for this
        # company may be marked: a delivery can name any id.
        ours = await get_shadows(self.worker.store, self.company_id, WHOP_PRODUCT.singular, list(gone))
        for key, event_ids in gone.items():
            if key not in ours:
                for event_id in event_ids:
                    outcome.ignored[event_id] = (
                        f"product {key} was never written for {self.company_id}: nothing to mark"
                    )
        items += [PRODUCTS.deleted_item(key) for key in gone if key in ours]
        report = await self.writers(WHOP_PRODUCT).write(items)
        self._settle(report, ids, {}, outcome)

    def _plain(self, obj: SyncedObject[Any]) -> Callable[[dict[str, list[str]], Outcome], Awaitable[None]]:
        """The step of an object its declaration says all of: read (or take from the payloads),
        build, write; the events of a record that failed fail."""

        async def step(ids: dict[str, list[str]], outcome: Outcome) -> None:
            await self._write(obj, await self._fetch(obj, ids, outcome), ids, outcome)

        return step

    async def _write(
        self, obj: SyncedObject[R], records: Sequence[R], ids: dict[str, list[str]], outcome: Outcome
    ) -> None:
        """Write records as their declaration builds them; the events of one that failed fail."""
        assert obj.build is not None
        report = await self.writers(obj.twenty, obj.shadow).write(await obj.build(await self._items(), records))
        keys = {getattr(r, "id", ""): obj.key(r) for r in records} if obj.key is not None else {}
        self._settle(report, ids, keys, outcome)

    async def _memberships(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        memberships = await self._fetch(MEMBERSHIPS, ids, outcome)
        await (await self._waitlist()).adopt(memberships)  # one made from a signup takes its lead
        # New to the bridge and read from Whop (a payload has no affiliate): where they came from.
        known = await get_shadows(self.worker.store, self.company_id, OPPORTUNITY.singular, [m.id for m in memberships])
        new = [m for m in memberships if m.id not in known and self.hints.get(("membership", m.id)) is None]
        self.membership_items.facts = await self._items()
        items = await self.membership_items(memberships)
        report = await self.writers(OPPORTUNITY).write(items)
        self._settle(report, ids, {}, outcome)
        if new:
            sweep = attribution.AttributionSweep(
                whop=self.whop,
                store=self.worker.store,
                company_id=self.company_id,
                writer=self.writers,
            )
            done = await sweep.new_memberships(new)
            for problem in done.problems:
                log.info("%s %s: %s", problem.object, problem.key, problem.reason)

    async def _fetch_missing_people(self, memberships: list[Membership]) -> None:
        """A membership whose Person the bridge has not written yet: read its member and write it."""
        report, problems = await fetch_missing_people(self.whop, await self._items(), self.writers, memberships)
        for problem in problems:
            log.warning("cannot link membership to its person: %s", problem.reason)
        for outcome, n in (report.counts if report else {}).items():
            metrics.RECORDS.labels("person", outcome).inc(n)

    async def _payments(self, ids: dict[str, list[str]], outcome: Outcome) -> dict[str, list[str]]:
        """Fold each payment into its membership's last-payment fields; a failed one gets a Task."""
        payments: list[Payment] = await self._fetch(PAYMENTS, ids, outcome)
        self.paid.update((p.id, p) for p in payments)
        await (await self._items()).record_payments(payments)
        by_membership: dict[str, list[str]] = {}
        for p in payments:
            event_ids = ids.get(p.id, [])
            if not p.membership_id:
                for event_id in event_ids:
                    outcome.ignored[event_id] = f"payment {p.id} belongs to no membership"
                continue
            by_membership.setdefault(p.membership_id, []).extend(event_ids)
        await fold(self.worker.store, self.company_id, payments)
        for p in payments:
            if p.membership_id and mapping.payment_is_failure(p):
                try:
                    await self._failed_payment_task(p)
                except SkippableError as exc:
                    log.warning("could not create a task for failed payment %s: %s", p.id, exc)
                except Exception as exc:  # this payment's events retry; the others go on
                    outcome.fail(ids.get(p.id, []), exc)
        return by_membership

    async def _history(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        """The WhopPayment records of the payments these events named (refunds, disputes and
        retries change the payment, so each event rewrites it)."""
        rules = await self.worker.twenty.write_rules()
        skipped = PAYMENTS.unprovisioned(rules.known_fields)
        if skipped is not None:
            log.info("%s", skipped)
            return
        await self._write(PAYMENTS, [self.paid[k] for k in ids], ids, outcome)

    def _revenue_keys(self, memberships: dict[str, list[str]]) -> dict[str, list[str]]:
        """The buyers whose revenue facts this pass changed, with the events that changed them."""
        moved = self.items.moved if self.items is not None else set()
        keys: dict[str, list[str]] = {key: [] for key in moved}
        for ms in self.membership_items.seen:
            key = ms.user_id or ms.member_id
            if key in keys:
                keys[key].extend(memberships.get(ms.id, []))
        return keys

    async def _revenue(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        await self._write(REVENUE, list(ids), ids, outcome)

    async def _membership_moments(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        """Tasks for the moments these memberships are in: set to cancel, trial ending."""
        seen = {ms.id: ms for ms in self.membership_items.seen if not set(ids.get(ms.id, ())) & set(outcome.failed)}
        now = utcnow()
        wants = [
            w
            for ms in seen.values()
            for w in moments.membership_wants(ms, now=now, announced=self.announced.get(ms.id, ()))
        ]
        settled = await self._moments().settle(wants)
        for key, exc in settled.failed.items():
            outcome.fail(ids.get(key.split(":", 1)[0], []), exc)

    async def _timeline(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        """A line on the Person's and the Opportunity's timeline for each event these states
        tell (bridge/sync/timeline.py); one already written is not sent again."""
        timeline = Timeline(
            self.worker.twenty, self.worker.store, self.company_id, batch_size=self.worker.settings.twenty_batch_size
        )
        if await timeline.unsupported():
            return
        memberships, payments = self._told_states(ids, outcome)
        written = await timeline.write(await timeline.new_lines(memberships, payments))
        for result, n in written.counts.items():
            metrics.RECORDS.labels("timeline", result).inc(n)
        for problem in written.problems:
            log.warning("%s %s: %s", problem.object, problem.key, problem.reason)

    def _told_states(self, ids: dict[str, list[str]], outcome: Outcome) -> tuple[list[Membership], list[Payment]]:
        """The memberships and payments whose events are in `ids` and did not fail in this pass
        (settled hints first, then the states read), one of each id, for their timeline lines."""
        failed = set(outcome.failed)
        settled = [hint for key, (hint, _) in self.settled.items() if key in ids]
        seen = [*(h for h in settled if isinstance(h, Membership)), *self.membership_items.seen]
        memberships = {ms.id: ms for ms in seen if ms.id in ids and not set(ids[ms.id]) & failed}
        paid = [*(h for h in settled if isinstance(h, Payment)), *self.paid.values()]
        payments = {p.id: p for p in paid if p.id in ids and not set(ids[p.id]) & failed}
        return list(memberships.values()), list(payments.values())

    async def _invoices(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        """A Task while an invoice is past due, closed once it is paid; the invoice is always read
        from Whop with this company's credentials (a payload names no membership anyway)."""
        invoices = await self._fetch(INVOICES, ids, outcome)
        wants = []
        for inv in invoices:
            membership_id = None
            if (inv.status or "").lower() == "past_due":
                membership_id = await moments.invoice_membership(
                    inv, get_payment=self.whop.get_payment, list_memberships=self.whop.list_memberships
                )
            want = moments.invoice_want(
                inv, membership_id=membership_id, announced=moments.INVOICE in self.announced.get(inv.id, ())
            )
            if want is not None:
                wants.append(want)
        settled = await self._moments().settle(wants)
        for key, exc in settled.failed.items():
            outcome.fail(ids.get(key.split(":", 1)[0], []), exc)

    async def _entries(self, ids: dict[str, list[str]], outcome: Outcome) -> dict[str, list[str]]:
        """Waitlist signups, read from Whop with this company's credentials: a lead, or the
        membership it became (returned with its events, to be written in this pass)."""
        read = await waitlist.read_entries(self.whop, self.company_id, list(ids))
        for entry_id, error in read.failed.items():
            outcome.fail(ids[entry_id], error, permanent=isinstance(error, str))
        signups = await self._waitlist()
        applied = await signups.apply(read.entries)
        self._settle(applied.people, {}, {}, outcome)
        self._settle(applied.leads, ids, {}, outcome)
        for problem in applied.problems:
            log.warning("%s %s: %s", problem.object, problem.key, problem.reason)
        gone = await signups.gone(read.gone)
        self._settle(gone, {k: ids[k] for k in read.gone}, {}, outcome)
        marked = set(gone.twenty_ids) | {p.key for p in gone.problems}
        for entry_id in read.gone:
            if entry_id not in marked:
                for event_id in ids[entry_id]:
                    outcome.ignored[event_id] = f"waitlist entry {entry_id} is gone from Whop and was never a lead here"
        converted: dict[str, list[str]] = {}
        for entry_id, membership_id in applied.converted.items():
            converted.setdefault(membership_id, []).extend(ids.get(entry_id, []))
        return converted

    async def _waitlist(self) -> waitlist.Waitlist:
        return waitlist.Waitlist(
            store=self.worker.store,
            twenty=self.worker.twenty,
            whop=self.whop,
            items=await self._items(),
            writer=self.writers,
            leases=self.worker.leases,
            stage_policy=self.worker.settings.stage_policy,
        )

    def _moments(self) -> moments.Moments:
        return moments.Moments(self.worker.twenty, self.worker.store, self.company_id)

    async def _case_tasks(self, outcome: Outcome) -> None:
        """A Task per dispute or Resolution Center case, due at its evidence deadline; an update
        of the case updates the Task (never its status: a Task someone closed stays closed)."""
        for event_id, event_type, data in self.cases:
            case_id = data.get("id")
            if not isinstance(case_id, str) or not is_whop_id(case_id):
                outcome.ignored[event_id] = "the case carries no usable id"
                continue
            payment_id = _object_id("payment", data)
            p = self.paid.get(payment_id) if isinstance(payment_id, str) else None
            if p is None:
                # Its payment was not read for this company (another's, gone, or a read that
                # failed and retries this event): the case is not this company's to write.
                if event_id not in outcome.failed:
                    outcome.ignored[event_id] = f"the case's payment is not one of {self.company_id}'s at Whop"
                continue
            person, opportunity = await payment_links(self.worker.store, self.company_id, p)
            task = mapping.case_task(
                event_type,
                data,
                person_name=shadow_label(person),
                product_title=p.product_title if p else None,
            )
            try:
                await upsert_task(
                    self.worker.twenty,
                    self.worker.store,
                    self.company_id,
                    case_id,
                    task,
                    person_id=person.twenty_id if person else None,
                    opportunity_id=opportunity.twenty_id if opportunity else None,
                    when=p.updated_at if p else None,
                )
            except SkippableError as exc:
                log.warning("could not write the task of %s: %s", case_id, exc)
            except Exception as exc:  # this case's event retries; the others go on
                outcome.fail([event_id], exc)

    async def _failed_payment_task(self, p: Payment) -> None:
        """Once per failed payment: a Task that a person closes; a retry never reopens it. Its
        membership is read and its Opportunity written first, so the Task links it."""
        membership_id = p.membership_id
        assert membership_id is not None

        async def opportunity_first() -> str | None:
            membership = await self.whop.get_membership(membership_id)
            await self.writers(OPPORTUNITY).write(await self.membership_items([membership]))
            return membership.product_title

        await failed_payment_task(
            self.worker.twenty, self.worker.store, self.company_id, p, product_title=None, first=opportunity_first
        )


def _merged(first: Any, second: Any) -> Any:
    """The results of a step run on two halves: None, or payment events by membership id."""
    if first is None or second is None:
        return first if second is None else second
    merged: dict[str, list[str]] = {k: list(v) for k, v in first.items()}
    for key, event_ids in second.items():
        merged.setdefault(key, []).extend(event_ids)
    return merged
