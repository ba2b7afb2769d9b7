"""Moments a sales team works from, as Twenty Tasks: a subscriber set to cancel at period end
(save them), a trial about to end (convert it), an invoice past due (collect it).

A moment is read from Whop's current state, never from a payload: the worker re-reads the
membership or invoice an event names, and a reconciliation sees them in its pages. So a replay,
a late or an out-of-order delivery lands on the state Whop holds now.

Each moment has one row in the store (shadow object "moment", keyed `<whop id>:<kind>`) saying
where its Task is, and one Task in Twenty whose id is derived from the company, the moment and
its round: replays, two workers and reconciliations upsert the same Task, never a second one.

    state    what it means                                  when Whop says open          when over
    (none)   no Task yet                                    open round 1                 -
    open     the bridge's Task, not closed by the bridge    update its text              close it if still To do
    closed   the bridge closed it (they changed their mind) open it again                -
    released a person deleted it while the moment lasted    leave it alone               -> ended
    ended    over, the Task left as a person had it         its Task if a person still   -
                                                            works on it, else round n+1

A Task is opened only when the moment is news: the worker opens one on the event that announces
it (`membership.cancel_at_period_end_changed`, `membership.trial_ending_soon`, `invoice.past_due`);
a reconciliation opens one for a state newer than the company's connection (its history is not
news, as for failed payments). Closing and updating need no such trigger. The bridge changes a
Task's status only while it is still its own open Task ("To do"): one a person moved on, closed or
deleted is theirs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import NeedsReconnect, SkippableError
from bridge.store.db import utcnow
from bridge.store.shadows import Shadow, ShadowWrite, all_shadows, get_shadows, put_shadows
from bridge.sync.mapping import iso_utc, record_hash, status_value
from bridge.sync.tasks import TASK_BATCH, Outgoing, read_task, send_task, send_tasks, task_id
from bridge.twenty.data import TwentyDataClient
from bridge.whop.models import Invoice, Membership

log = logging.getLogger(__name__)

MOMENT_SHADOW = "moment"
CANCEL, TRIAL, INVOICE = "cancel", "trial", "invoice"
# Events that announce a moment, and may open its Task (any event may update or close one).
ANNOUNCING = {
    "membership.cancel_at_period_end_changed": CANCEL,
    "membership.trial_ending_soon": TRIAL,
    "invoice.past_due": INVOICE,
}
SAVE_LEAD = timedelta(days=3)  # a save Task is due this long before the period ends…
TRIAL_LEAD = timedelta(days=1)  # …a convert Task this long before the trial ends…
COLLECT_WITHIN = timedelta(days=1)  # …and a collect Task this long after the invoice went past due
TRIAL_WINDOW = timedelta(days=3)  # a reconciliation treats a trial ending within this as ending soon

_LIVE = frozenset({"TRIALING", "ACTIVE", "PAST_DUE", "CANCELING"})
_PAYING = frozenset({"ACTIVE", "PAST_DUE", "COMPLETED"})  # a trial that got here converted
_SETTLED = frozenset({"PAID", "VOID"})  # nothing left to collect


@dataclass(frozen=True)
class Want:
    """What Whop's state says of one moment: open (with what the Task tells) or over."""

    kind: str  # cancel | trial | invoice
    subject: str  # the Whop id it is about (mem_…, inv_…)
    open: bool
    may_open: bool  # news enough to open a Task (an announcing event, or newer than the connection)
    at: datetime | None  # Whop's time of this state
    anchor: datetime | None = None  # the period or trial end the due date counts back from
    person_key: str | None = None
    membership_id: str | None = None
    product_title: str | None = None
    facts: tuple[tuple[str, str], ...] = ()  # the Task body's lines

    @property
    def key(self) -> str:
        return f"{self.subject}:{self.kind}"


# Whop state → wants (pure) --------------------------------------------------------------------


def membership_wants(
    ms: Membership, *, now: datetime, announced: Iterable[str] = (), since: datetime | None = None
) -> list[Want]:
    """The cancel and trial moments of a membership. `announced` holds the kinds an event
    announced; `since` (a reconciliation's connection time) lets a state newer than it open too."""
    status = status_value(ms.status) or ""
    announced = set(announced)
    wants: list[Want] = []
    of = functools.partial(
        Want, subject=ms.id, person_key=ms.user_id or ms.member_id, membership_id=ms.id, product_title=ms.product_title
    )
    if status in _LIVE:
        wants.append(_cancel_want(ms, of, status, announced, since))
    trial = _trial_want(ms, of, status, announced, now=now, since=since)
    if trial is not None:
        wants.append(trial)
    return wants


def _cancel_want(
    ms: Membership, of: Callable[..., Want], status: str, announced: set[str], since: datetime | None
) -> Want:
    """A live membership's cancel moment: open while it is set to cancel."""
    facts = [
        ("Period ends", iso_utc(ms.current_period_end) or "unknown"),
        ("Reason given", _reason(ms) or "none yet"),
        ("Membership", ms.id),
    ]
    if ms.manage_url:
        facts.append(("Manage", ms.manage_url))
    canceling = ms.cancel_at_period_end or status == "CANCELING"
    return of(
        kind=CANCEL,
        open=canceling,
        may_open=canceling and (CANCEL in announced or _newer(ms.updated_at, since)),
        at=ms.updated_at,
        anchor=ms.current_period_end,
        facts=tuple(facts),
    )


def _trial_want(
    ms: Membership,
    of: Callable[..., Want],
    status: str,
    announced: set[str],
    *,
    now: datetime,
    since: datetime | None,
) -> Want | None:
    """A trial ending soon (open), a trial that converted (over), or nothing to say."""
    trial_end = _trial_end(ms)
    if status == "TRIALING" and not ms.cancel_at_period_end:
        # Ending soon: Whop announced it, or a reconciliation sees the end within the window. A
        # trial further off says nothing (a Task opened by the announcement stays as it is).
        soon = trial_end is not None and trial_end - now <= TRIAL_WINDOW
        if TRIAL in announced or soon:
            return of(
                kind=TRIAL,
                open=True,
                may_open=TRIAL in announced or _newer(trial_end, since),
                at=ms.updated_at,
                anchor=trial_end,
                facts=(("Trial ends", iso_utc(trial_end) or "unknown"), ("Membership", ms.id)),
            )
    elif status in _PAYING:
        return of(kind=TRIAL, open=False, may_open=False, at=ms.updated_at)
    return None


def invoice_want(
    inv: Invoice, *, membership_id: str | None, announced: bool = False, since: datetime | None = None
) -> Want | None:
    """The collect moment of an invoice: open while past due, over once paid or voided."""
    status = status_value(inv.status) or ""
    of = functools.partial(
        Want,
        kind=INVOICE,
        subject=inv.id,
        at=inv.updated_at,
        person_key=inv.user_id or inv.member_id,
        membership_id=membership_id,
        product_title=inv.product_title,
    )
    if status == "PAST_DUE" and not inv.payment_processing:
        facts = [
            ("Invoice", f"{inv.number or inv.id} ({inv.id})"),
            ("Amount", inv.formatted_price or "unknown"),
            ("Was due", iso_utc(inv.due_date) or "unknown"),
        ]
        if inv.email_address:
            facts.append(("Billed to", inv.email_address))
        if inv.pay_online_url:
            facts.append(("Pay online", inv.pay_online_url))
        news = announced or _newer(inv.updated_at, since)
        return of(open=True, may_open=news, anchor=inv.due_date, facts=tuple(facts))
    if status in _SETTLED:
        return of(open=False, may_open=False)
    return None


def task_record(want: Want, *, who: str | None, product: str | None, opened_at: datetime) -> dict[str, Any]:
    """The Task a moment opens (no status: the caller sets it only when it may). Its due date
    counts back from the period or trial end, but is never before the moment was opened."""
    who = _clean(who) or want.person_key or "a customer"
    product = _clean(product) or _clean(want.product_title) or "a Whop product"
    if want.kind == CANCEL:
        title = f"Save {who}: {product} cancels at period end"
        intro = f"{who} set their {product} membership to cancel at the end of the period."
        due = max(want.anchor - SAVE_LEAD, opened_at) if want.anchor else opened_at + COLLECT_WITHIN
    elif want.kind == TRIAL:
        ends = (iso_utc(want.anchor) or "")[:10]
        title = f"Convert {who}: {product} trial ends {ends}".rstrip()
        intro = f"{who}'s trial of {product} ends soon; it becomes a paid membership unless they cancel."
        due = max(want.anchor - TRIAL_LEAD, opened_at) if want.anchor else opened_at + COLLECT_WITHIN
    else:
        title = f"Collect {who}: {product} invoice past due"
        intro = f"A Whop invoice for {product} is past due."
        due = opened_at + COLLECT_WITHIN
    lines = [intro, "", *(f"- {name}: {value}" for name, value in want.facts)]
    return {"title": f"{title}"[:250], "bodyV2": {"markdown": "\n".join(lines)}, "dueAt": iso_utc(due)}


def _newer(at: datetime | None, since: datetime | None) -> bool:
    return since is not None and at is not None and at > since


def _trial_end(ms: Membership) -> datetime | None:
    if (ms.most_recent_action or "").lower() in ("trial_ends_at", "trial_canceling_on") and ms.most_recent_action_at:
        return ms.most_recent_action_at
    return ms.current_period_end


def _reason(ms: Membership) -> str | None:
    parts = [p for p in ((ms.cancel_option or "").strip(), (ms.cancellation_reason or "").strip()) if p]
    return ": ".join(parts) or None


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


# Applying wants to Twenty ---------------------------------------------------------------------


@dataclass
class Row:
    """A moment's row: its round (a new Task each round), state, and when it was opened."""

    round: int = 0
    state: str | None = None
    opened_at: datetime | None = None
    membership_id: str | None = None

    @classmethod
    def of(cls, shadow: Shadow | None) -> Row:
        written = shadow.written if shadow is not None and isinstance(shadow.written, dict) else {}
        opened = written.get("openedAt")
        return cls(
            int(written.get("round") or 0),
            written.get("state"),
            datetime.fromisoformat(opened) if isinstance(opened, str) else None,
            written.get("membershipId"),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "state": self.state,
            "openedAt": self.opened_at.isoformat() if self.opened_at else None,
            "membershipId": self.membership_id,
        }


@dataclass
class Settled:
    """What a settle did, by moment key: counts for reports, and the failures to retry."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


class Moments:
    """Settles wants into Tasks for one company (the worker's pass, or a reconciliation)."""

    def __init__(
        self,
        twenty: TwentyDataClient,
        store: AsyncEngine,
        company_id: str,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.twenty = twenty
        self.store = store
        self.company_id = company_id
        self.clock = clock

    async def settle(self, wants: Sequence[Want]) -> Settled:
        """Open, update, close or reopen each moment's Task; a failure stays with its moment."""
        done = Settled()
        latest = {w.key: w for w in wants}  # the last word on each moment
        rows = await get_shadows(self.store, self.company_id, MOMENT_SHADOW, list(latest))
        # Moments without a Task yet are opened together: a first reconciliation may find many.
        fresh = [
            (w, row) for k, w in latest.items() if w.open and w.may_open and (row := Row.of(rows.get(k))).state is None
        ]
        await self._open_many(fresh, done)
        opened = {w.key for w, _ in fresh}
        for key, want in latest.items():
            if key in opened:
                continue
            try:
                outcome = await self._one(want, rows.get(key))
            except NeedsReconnect:
                raise
            except Exception as exc:  # this moment retries; the others go on
                done.failed[key] = exc
                continue
            if outcome:
                done.count(outcome)
        return done

    async def _one(self, want: Want, shadow: Shadow | None) -> str | None:
        row = Row.of(shadow)
        if want.open:
            if row.state is None:
                return await self._open(want, row) if want.may_open else None
            if row.state == "open":
                return await self._refresh(want, row, shadow)
            if row.state == "closed":  # the bridge closed it: the same Task opens again
                current = await read_task(self.twenty, self._tid(want, row))
                return await self._revive(want, row, current) if current else await self._open(want, row)
            if row.state == "ended" and want.may_open:
                # A Task a person still works on serves the new moment too; one they closed or
                # deleted does not, and the moment gets its next round.
                current = await read_task(self.twenty, self._tid(want, row))
                if current is not None and current.get("status") != "DONE":
                    return await self._revive(want, row, current)
                return await self._open(want, row)
            return None  # released (a person has it), or ended without news
        if row.state == "open":
            return await self._close(want, row)
        if row.state == "released":
            await self._save(want, Row(row.round, "ended", row.opened_at, row.membership_id), shadow)
        return None

    async def _open(self, want: Want, row: Row) -> str:
        row = Row(row.round + 1, "open", want.at or self.clock(), want.membership_id)
        task = await self._task(want, row)
        person_id, opportunity_id = await self._links(want)
        tid = self._tid(want, row)
        await send_task(
            self.twenty, {**task, "id": tid, "status": "TODO"}, person_id=person_id, opportunity_id=opportunity_id
        )
        await self._save(want, row, None, task)
        log.info("opened the %s Task of %s", want.kind, want.subject)
        return "opened"

    async def _open_many(self, wants: Sequence[tuple[Want, Row]], done: Settled) -> None:
        """`_open` for moments that never had a Task, in calls of up to `TASK_BATCH` Tasks; a
        failed call leaves its moments to the next pass, the others go on."""
        for start in range(0, len(wants), TASK_BATCH):
            chunk = wants[start : start + TASK_BATCH]
            ready: list[tuple[Want, Row, dict[str, Any]]] = []
            out: list[Outgoing] = []
            for want, held in chunk:
                row = Row(held.round + 1, "open", want.at or self.clock(), want.membership_id)
                task = await self._task(want, row)
                person_id, opportunity_id = await self._links(want)
                out.append(Outgoing({**task, "id": self._tid(want, row), "status": "TODO"}, person_id, opportunity_id))
                ready.append((want, row, task))
            try:
                await send_tasks(self.twenty, out)
            except NeedsReconnect:
                raise
            except Exception as exc:  # these moments retry; the others go on
                done.failed.update((want.key, exc) for want, _ in chunk)
                continue
            for want, row, task in ready:
                await self._save(want, row, None, task)
                log.info("opened the %s Task of %s", want.kind, want.subject)
                done.count("opened")

    async def _refresh(self, want: Want, row: Row, shadow: Shadow | None) -> str | None:
        task = await self._task(want, row)
        if shadow is not None and shadow.hash == record_hash(task):
            return None
        tid = self._tid(want, row)
        if await read_task(self.twenty, tid) is None:  # deleted by a person: theirs, never restored
            await self._save(want, Row(row.round, "released", row.opened_at, row.membership_id), shadow, task)
            return "released"
        await send_task(self.twenty, {**task, "id": tid})  # no status: a person's progress stands
        await self._save(want, row, shadow, task)
        return "updated"

    async def _close(self, want: Want, row: Row) -> str:
        tid = self._tid(want, row)
        current = await read_task(self.twenty, tid)
        if current is None or current.get("status") != "TODO":
            # Deleted, done or in progress: a person's Task now; the moment just ends.
            await self._save(want, Row(row.round, "ended", row.opened_at, row.membership_id), None)
            return "left"
        await send_task(self.twenty, {"id": tid, "status": "DONE"})
        await self._save(want, Row(row.round, "closed", row.opened_at, row.membership_id), None)
        log.info("closed the %s Task of %s: the moment is over", want.kind, want.subject)
        return "closed"

    async def _revive(self, want: Want, row: Row, current: dict[str, Any]) -> str:
        """The round's Task serves the moment again: its text is brought up to date, and it is
        set To do again only if it is Done (the bridge closed it, or a person moved it on)."""
        row = Row(row.round, "open", want.at or self.clock(), want.membership_id or row.membership_id)
        task = await self._task(want, row)
        record = {**task, "id": self._tid(want, row)}
        if current.get("status") == "DONE":
            record["status"] = "TODO"
        person_id, opportunity_id = await self._links(want)
        await send_task(self.twenty, record, person_id=person_id, opportunity_id=opportunity_id)
        await self._save(want, row, None, task)
        return "reopened"

    def _tid(self, want: Want, row: Row) -> str:
        return task_id(self.company_id, f"{want.key}:{row.round}")

    async def _task(self, want: Want, row: Row) -> dict[str, Any]:
        person = await self._shadow("person", want.person_key)
        return task_record(
            want,
            who=_label(person),
            product=want.product_title,
            opened_at=row.opened_at or want.at or self.clock(),
        )

    async def _links(self, want: Want) -> tuple[str | None, str | None]:
        person = await self._shadow("person", want.person_key)
        opportunity = await self._shadow("opportunity", want.membership_id)
        return (person.twenty_id if person else None, opportunity.twenty_id if opportunity else None)

    async def _shadow(self, obj: str, key: str | None) -> Shadow | None:
        if not key:
            return None
        return (await get_shadows(self.store, self.company_id, obj, [key])).get(key)

    async def _save(self, want: Want, row: Row, shadow: Shadow | None, task: dict[str, Any] | None = None) -> None:
        digest = record_hash(task) if task is not None else (shadow.hash if shadow else "")
        write = ShadowWrite(want.key, digest, self._tid(want, row), want.at, row.as_json())
        await put_shadows(self.store, self.company_id, MOMENT_SHADOW, [write])

    async def open_rows(self, kind: str) -> dict[str, Row]:
        """Moments of `kind` whose Task is still the bridge's to close or update, by subject."""
        suffix = f":{kind}"
        rows = await all_shadows(self.store, self.company_id, MOMENT_SHADOW, suffix=suffix)
        out: dict[str, Row] = {}
        for shadow in rows:
            row = Row.of(shadow)
            if row.state in ("open", "released"):
                out[shadow.whop_id.removesuffix(suffix)] = row
        return out


def _label(shadow: Shadow | None) -> str | None:
    written = shadow.written if shadow else None
    return written.get("_label") if isinstance(written, dict) else None


# Invoices: whose they are ---------------------------------------------------------------------

FindMembership = Callable[[Invoice], Awaitable[str | None]]


async def invoice_membership(
    inv: Invoice,
    *,
    get_payment: Callable[[str], Awaitable[Any]],
    list_memberships: Callable[..., Any],
) -> str | None:
    """The membership an invoice bills (Whop's invoice names none): the one its payment paid,
    else the buyer's newest membership of its plan, read with the company's own credentials."""
    if inv.payment_id:
        try:
            payment = await get_payment(inv.payment_id)
        except NeedsReconnect:
            raise
        except SkippableError:
            payment = None
        if payment is not None and payment.membership_id:
            return str(payment.membership_id)
    if not inv.member_id or not inv.plan_id:
        return None
    newest: Membership | None = None
    async for page in list_memberships(member_id=inv.member_id, plan_ids=inv.plan_id):
        for ms in page.data:
            if newest is None or (ms.created_at and newest.created_at and ms.created_at > newest.created_at):
                newest = ms
    return newest.id if newest else None


# A reconciliation's sweep ---------------------------------------------------------------------


class MomentSweep:
    """What a sync or reconciliation does for moments: it gathers wants from the membership pages
    as they go by (keeping only those that may open a Task or touch one the bridge holds, so
    memory stays small), then settles them with the company's invoices once the Opportunities
    they link to are written."""

    def __init__(self, moments: Moments, *, since: datetime | None, now: datetime) -> None:
        self.moments = moments
        self.since = since  # the company's connection: older states are history, not news
        self.now = now
        self.wants: list[Want] = []

    async def see(self, memberships: Sequence[Membership]) -> None:
        wants = [w for ms in memberships for w in membership_wants(ms, now=self.now, since=self.since)]
        held = await get_shadows(self.moments.store, self.moments.company_id, MOMENT_SHADOW, [w.key for w in wants])
        self.wants += [w for w in wants if (w.open and w.may_open) or w.key in held]

    async def invoices(self, whop: Any) -> list[tuple[str, str]]:
        """Wants for the invoices past due at Whop and those whose Task the bridge holds; returns
        the invoices that could not be read (id, why)."""
        held = await self.moments.open_rows(INVOICE)
        wanted: dict[str, None] = {}
        async for page in whop.list_invoices(statuses="past_due"):
            wanted.update((inv.id, None) for inv in page.data)
        wanted.update((inv_id, None) for inv_id in held)
        unread: list[tuple[str, str]] = []
        for inv_id in wanted:
            try:
                inv: Invoice = await whop.get_invoice(inv_id)
            except NeedsReconnect:
                raise
            except SkippableError as exc:
                unread.append((inv_id, str(exc)))
                continue
            if inv.company_id and inv.company_id != self.moments.company_id:
                unread.append((inv_id, f"invoice {inv_id} belongs to {inv.company_id}"))
                continue
            row = held.get(inv_id)
            membership_id = row.membership_id if row else None
            if membership_id is None and (inv.status or "").lower() == "past_due":
                membership_id = await invoice_membership(
                    inv, get_payment=whop.get_payment, list_memberships=whop.list_memberships
                )
            want = invoice_want(inv, membership_id=membership_id, since=self.since)
            if want is not None:
                self.wants.append(want)
        return unread

    async def finish(self) -> Settled:
        wants, self.wants = self.wants, []
        return await self.moments.settle(wants)
