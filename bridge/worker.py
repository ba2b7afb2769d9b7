"""The inbox worker: applies stored Whop webhook deliveries to Twenty.

Events are claimed in groups (several bridge processes never take the same one) and applied
through the same writer as the sync, so 20 membership events cost one Twenty read and one
upsert. The payload is only a hint: the record is re-read from Whop, so deliveries that arrive
late, twice or out of order all converge on Whop's current state, and the writer's shadow check
keeps an older state from overwriting a newer one. A failure is retried with backoff by the
inbox and dead-lettered after the last attempt; unknown event types and companies are recorded
as ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge import metrics
from bridge.errors import BridgeError, SkippableError
from bridge.logs import bound
from bridge.runtime import Runtime
from bridge.store import connections, inbox, leases
from bridge.store.inbox import InboxEvent
from bridge.store.shadows import ShadowWrite, get_shadows, put_shadows
from bridge.sync import mapping
from bridge.sync.records import (
    PAYMENT_SHADOW,
    MembershipItems,
    fetch_members,
    fold_payments,
    held_payments,
    payment_time,
    person_item,
    product_item,
)
from bridge.sync.writer import ObjectWriter, WriteReport
from bridge.twenty.data import OPPORTUNITY, PERSON, TASK, TASK_TARGET, WHOP_PRODUCT, TwentyDataClient
from bridge.whop.client import NotFound, WhopClient
from bridge.whop.models import Membership, Payment, Product, WebhookEnvelope

log = logging.getLogger(__name__)

FETCH_CONCURRENCY = 8
YIELD_EVERY = 5
# Kinds whose payload is the record itself, with an `updated_at` to order it by.
HINT_MODELS: dict[str, Any] = {"membership": Membership, "product": Product, "payment": Payment}
_UNSEEN = object()
SHADOW_OBJECTS = {"membership": "opportunity", "product": "whopProduct"}

# Deterministic Twenty ids for tasks: a retried event upserts the same Task, never a second one.
TASK_NAMESPACE = uuid.UUID("6f1f3c1e-4a0b-4d8e-9a57-1c0f2b7e9d11")

WhopFactory = Callable[[str], Awaitable[WhopClient | None]]


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def _kind(event_type: str | None) -> str:
    prefix = (event_type or "").split(".", 1)[0]
    return {
        "membership": "membership",
        "member": "member",
        "payment": "payment",
        "refund": "payment",
        "dispute": "payment",
        "dispute_alert": "payment",
        "product": "product",
    }.get(prefix, "")


def _object_id(kind: str, data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    if kind == "payment":
        # refunds and disputes point at their payment
        payment = data.get("payment")
        if isinstance(payment, dict) and payment.get("id"):
            return str(payment["id"])
        if data.get("payment_id"):
            return str(data["payment_id"])
    value = data.get("id")
    return str(value) if value else None


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        twenty: TwentyDataClient | None = None,
        worker_id: str | None = None,
        batch: int = 100,
        poll_interval: float = 1.0,
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
            except Exception:  # the loop must survive a database hiccup; the events stay claimed-then-expire
                log.exception("inbox worker pass failed")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def run_once(self) -> int:
        """Claim and apply one group of due events; returns how many were handled."""
        events = await inbox.claim(self.store, self.worker_id, limit=self.batch)
        if not events:
            return 0
        by_company: dict[str | None, list[InboxEvent]] = {}
        for ev in events:
            by_company.setdefault(ev.company_id, []).append(ev)
        for company_id, group in by_company.items():
            with bound(company_id=company_id, webhook_ids=[e.webhook_id for e in group]):
                outcome = await self._apply_company(company_id, group)
            applied, ignored = [], {}
            for ev in group:
                if ev.webhook_id in outcome.failed:
                    self.failed += 1
                    metrics.WEBHOOKS.labels("failed").inc()
                    await inbox.mark_failed(self.store, ev.webhook_id, self.worker_id, outcome.failed[ev.webhook_id])
                elif ev.webhook_id in outcome.ignored:
                    ignored[ev.webhook_id] = outcome.ignored[ev.webhook_id]
                else:
                    applied.append(ev.webhook_id)
            # The common cases in one transaction: fewer writes competing with the webhook endpoint.
            await inbox.finish_many(self.store, self.worker_id, applied=applied, ignored=ignored)
            self.applied += len(applied)
            metrics.WEBHOOKS.labels("applied").inc(len(applied))
            metrics.WEBHOOKS.labels("ignored").inc(len(ignored))
        return len(events)

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
            for ev in events:
                outcome.failed[ev.webhook_id] = str(exc)
            return outcome
        if whop is None:
            for ev in events:
                outcome.ignored[ev.webhook_id] = f"no Whop credentials for {company_id}"
            return outcome
        try:
            await Applier(self, whop, company_id, connection.id).apply(events, outcome)
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
        self.membership_items = MembershipItems(
            worker.store,
            company_id,
            stage_policy=worker.settings.stage_policy,
            fetch_people=self._fetch_missing_people,
        )

    def _writer(self, obj: Any) -> ObjectWriter:
        return ObjectWriter(
            store=self.worker.store,
            twenty=self.worker.twenty,
            company_id=self.company_id,
            obj=obj,
            batch_size=self.worker.settings.twenty_batch_size,
            leases=self.worker.leases,
        )

    async def apply(self, events: list[InboxEvent], outcome: Outcome) -> None:
        wanted: dict[str, dict[str, list[str]]] = {"membership": {}, "member": {}, "payment": {}, "product": {}}
        for n, ev in enumerate(events):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the webhook endpoint answer between chunks of parsing
            try:
                envelope = WebhookEnvelope.model_validate(json.loads(ev.body))
            except (ValueError, TypeError):
                outcome.ignored[ev.webhook_id] = "body is not a JSON event"
                continue
            kind = _kind(envelope.type)
            if not kind:
                outcome.ignored[ev.webhook_id] = f"event type {envelope.type!r} is not synced"
                continue
            object_id = _object_id(kind, envelope.data)
            if object_id is None:
                outcome.ignored[ev.webhook_id] = "event carries no object id (a test delivery?)"
                continue
            wanted[kind].setdefault(object_id, []).append(ev.webhook_id)
            self._hint(kind, object_id, envelope)

        # Order matters only for links: products and people first, then memberships and payments.
        await self._guard(outcome, wanted["product"], self._products)
        await self._guard(outcome, wanted["member"], self._members)
        payment_memberships = await self._guard(outcome, wanted["payment"], self._payments)
        memberships = dict(wanted["membership"])
        for membership_id, event_ids in (payment_memberships or {}).items():
            memberships.setdefault(membership_id, []).extend(event_ids)
        await self._guard(outcome, memberships, self._memberships)

    def _hint(self, kind: str, object_id: str, envelope: WebhookEnvelope) -> None:
        """Keep the newest complete payload per record; a payload without `updated_at` means doubt.

        A usable hint saves the Whop call: the writer then compares its `updated_at` with what the
        bridge last wrote and drops it if older. Any doubt (no timestamp, another shape, a refund
        pointing at its payment) and the record is re-read from Whop instead.
        """
        model = HINT_MODELS.get(kind)
        parsed: Any = None
        if model is not None:
            try:
                parsed = envelope.data_as(model)
            except ValueError:
                parsed = None
        usable = parsed is not None and getattr(parsed, "id", None) == object_id and parsed.updated_at is not None
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
        except BridgeError as exc:
            for event_ids in ids.values():
                for event_id in event_ids:
                    outcome.failed.setdefault(event_id, str(exc))
            return None

    async def _fetch(
        self, getter: Callable[[str], Awaitable[Any]], ids: dict[str, list[str]], outcome: Outcome, what: str
    ) -> list[Any]:
        """The records: from the events' payloads when usable, else re-read from Whop, a few at a
        time (the client's limiter sets the pace)."""
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(object_id: str) -> Any:
            hint = self.hints.get((what, object_id))
            if hint is not None:
                return hint
            async with gate:
                try:
                    return await getter(object_id)
                except NotFound:
                    for event_id in ids[object_id]:
                        outcome.ignored[event_id] = f"{what} {object_id} no longer exists at Whop"
                    return None

        await self._drop_stale_hints(ids, outcome, what)
        found = await asyncio.gather(*(one(object_id) for object_id in list(ids)))
        return [record for record in found if record is not None]

    async def _drop_stale_hints(self, ids: dict[str, list[str]], outcome: Outcome, what: str) -> None:
        """A payload no newer than what the bridge wrote is that version or an older one: skip it."""
        shadow_object = SHADOW_OBJECTS.get(what)
        hinted = [i for i in ids if self.hints.get((what, i)) is not None]
        if shadow_object is None or not hinted:
            return
        shadows = await get_shadows(self.worker.store, self.company_id, shadow_object, hinted)
        for object_id in hinted:
            shadow = shadows.get(object_id)
            hint = self.hints[(what, object_id)]
            if shadow and shadow.whop_updated_at and hint.updated_at <= shadow.whop_updated_at:
                for event_id in ids.pop(object_id):
                    outcome.ignored[event_id] = "Twenty already has this version or a newer one"

    def _settle(self, report: WriteReport, ids: dict[str, list[str]], key_of: dict[str, str], outcome: Outcome) -> None:
        """Events whose record failed to write are retried; the rest count as applied."""
        failed = {p.key: p.reason for p in report.problems if p.kind == "failed"}
        for object_id, event_ids in ids.items():
            key = key_of.get(object_id, object_id)
            if key in failed:
                for event_id in event_ids:
                    outcome.failed.setdefault(event_id, failed[key])

    async def _products(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        products = await self._fetch(self.whop.get_product, ids, outcome, "product")
        report = await self._writer(WHOP_PRODUCT).write([product_item(p) for p in products])
        self._settle(report, ids, {}, outcome)

    async def _members(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        members = await self._fetch(self.whop.get_member, ids, outcome, "member")
        report = await self._writer(PERSON).write([person_item(m) for m in members])
        self._settle(report, ids, {m.id: mapping.person_key(m) for m in members}, outcome)

    async def _memberships(self, ids: dict[str, list[str]], outcome: Outcome) -> None:
        memberships = await self._fetch(self.whop.get_membership, ids, outcome, "membership")
        items = await self.membership_items(memberships)
        report = await self._writer(OPPORTUNITY).write(items)
        self._settle(report, ids, {}, outcome)

    async def _fetch_missing_people(self, memberships: list[Membership]) -> None:
        """A membership whose Person the bridge has not written yet: read its member and write it."""
        members, problems = await fetch_members(self.whop.get_member, memberships)
        for problem in problems:
            log.warning("cannot link membership to its person: %s", problem.reason)
        if members:
            report = await self._writer(PERSON).write([person_item(m) for m in members])
            for outcome, n in report.counts.items():
                metrics.RECORDS.labels("person", outcome).inc(n)

    async def _payments(self, ids: dict[str, list[str]], outcome: Outcome) -> dict[str, list[str]]:
        """Fold each payment into its membership's last-payment fields; a failed one gets a Task."""
        payments: list[Payment] = await self._fetch(self.whop.get_payment, ids, outcome, "payment")
        by_membership: dict[str, list[str]] = {}
        for p in payments:
            event_ids = ids.get(p.id, [])
            if not p.membership_id:
                for event_id in event_ids:
                    outcome.ignored[event_id] = f"payment {p.id} belongs to no membership"
                continue
            by_membership.setdefault(p.membership_id, []).extend(event_ids)
        held = await held_payments(self.worker.store, self.company_id, list(by_membership))
        changed = fold_payments(payments, held)
        rows = [last.shadow_row() for last in changed.values()]
        await put_shadows(self.worker.store, self.company_id, PAYMENT_SHADOW, rows)
        for p in payments:
            if p.membership_id and mapping.payment_is_failure(p):
                try:
                    await self._failed_payment_task(p)
                except SkippableError as exc:
                    log.warning("could not create a task for failed payment %s: %s", p.id, exc)
        return by_membership

    async def _failed_payment_task(self, p: Payment) -> None:
        existing = await get_shadows(self.worker.store, self.company_id, "task", [p.id])
        if p.id in existing:
            return
        assert p.membership_id is not None
        membership = await self.whop.get_membership(p.membership_id)
        items = await self.membership_items([membership])
        opp_report = await self._writer(OPPORTUNITY).write(items)
        people = await get_shadows(
            self.worker.store, self.company_id, "person", [membership.user_id or membership.member_id or ""]
        )
        person = next(iter(people.values()), None)
        person_name = person.written.get("_label") if person and isinstance(person.written, dict) else None
        task = mapping.failed_payment_task(p, person_name=person_name, product_title=membership.product_title)
        task_id = str(uuid.uuid5(TASK_NAMESPACE, f"{self.company_id}:{p.id}"))
        twenty = self.worker.twenty
        try:
            await twenty.upsert(TASK, [{**task, "id": task_id}])
        except SkippableError:
            # Older servers have no rich-text body; the title alone still tells the story.
            await twenty.upsert(TASK, [{k: v for k, v in task.items() if k != "bodyV2"} | {"id": task_id}])
        targets = []
        if person and person.twenty_id:
            targets.append(
                {
                    "id": str(uuid.uuid5(TASK_NAMESPACE, f"{task_id}:person")),
                    "taskId": task_id,
                    "personId": person.twenty_id,
                }
            )
        opp_id = opp_report.twenty_ids.get(membership.id)
        if opp_id is None:
            opp = await get_shadows(self.worker.store, self.company_id, "opportunity", [membership.id])
            opp_id = opp[membership.id].twenty_id if membership.id in opp else None
        if opp_id:
            targets.append(
                {
                    "id": str(uuid.uuid5(TASK_NAMESPACE, f"{task_id}:opportunity")),
                    "taskId": task_id,
                    "opportunityId": opp_id,
                }
            )
        if targets:
            await twenty.upsert(TASK_TARGET, targets)
        await put_shadows(
            self.worker.store,
            self.company_id,
            "task",
            [ShadowWrite(p.id, mapping.record_hash(task), task_id, payment_time(p), task)],
        )
