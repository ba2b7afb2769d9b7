"""Waitlists, the top of the pipeline: a signup for a waitlisted plan (a Whop waitlist entry)
becomes a Person and an Opportunity at the stage WAITLISTED. When Whop approves it and makes a
membership, that same Opportunity becomes the membership's: never a second record.

The lead's Opportunity is keyed by the entry id (`whopMembershipId = entry_…`) and written by the
usual writer under its own shadow ("waitlistEntry"), so a reconciliation never takes it for a
membership gone from Whop. Converting it is a change of key, under the Opportunity write lease:
one upsert by its Twenty id sets `whopMembershipId` to the membership's id, and the bridge's
"opportunity" shadow of the membership then points at that record, so the membership's next
write (in the same pass) updates it, moving its stage on from WAITLISTED as the membership says.

What can happen first:
- the entry's approval and its membership in one pass, or the approval first: the entry is
  converted before the membership is written (the worker reads entries before memberships, and a
  sync lists them before the memberships phase);
- the membership first (its event came before the approval's): before a membership new to the
  bridge is written, the entries the bridge holds for its user are read from Whop, and the one
  that made it is converted (`adopt`);
- a replayed or late `entry.*` event after the conversion: the entry's row says it is converted,
  so nothing is written again.
Every entry is read from Whop with the company's own credentials: the webhook's `Entry` shape has
no account, no membership and no `updated_at`, so a payload never stands in for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import NeedsReconnect, SkippableError
from bridge.store import deleted
from bridge.store.leases import Leases
from bridge.store.shadows import Shadow, ShadowWrite, all_shadows, get_shadows, put_shadows
from bridge.sync import mapping
from bridge.sync.objects.waitlist import WAITLIST, WAITLIST_SHADOW
from bridge.sync.records import CompanyItems
from bridge.sync.writer import WRITE_LEASE_TTL, WRITE_LEASE_WAIT, Item, Problem, WriteReport, WriterFor
from bridge.twenty.data import OPPORTUNITY, PERSON, TwentyDataClient
from bridge.whop.client import NotFound, WhopClient
from bridge.whop.models import Member, Membership, WaitlistEntry, WhopUser

log = logging.getLogger(__name__)

BUYER_SHADOW = "waitlistBuyer"  # user id -> the signups the bridge holds for them
WAITLISTED = "WAITLISTED"
CONVERTED = "_convertedInto"  # in a signup's shadow: the membership its Opportunity became

# Records (pure) -------------------------------------------------------------------------------


def answers_text(entry: WaitlistEntry) -> str | None:
    lines = [f"{_clean(q) or '?'}: {_clean(a)}" for q, a in entry.answers if _clean(a)]
    return "\n".join(lines) or None


def entry_record(
    entry: WaitlistEntry,
    *,
    person_name: str | None,
    product_title: str | None,
    person_id: str | None,
    product_id: str | None,
    company: mapping.CompanyRef | None,
    current: dict[str, Any] | None,
    last_written: dict[str, Any] | None,
    stage_policy: str = "advance",
) -> dict[str, Any]:
    """The Opportunity of a signup not yet a membership. Its stage is WAITLISTED when it is made,
    and the bridge never moves it after that: the membership it becomes does."""
    record: dict[str, Any] = {
        "whopMembershipId": entry.id,
        "whopWaitlistEntryId": entry.id,
        "whopWaitlistStatus": mapping.status_value(entry.status),
        "whopWaitlistedAt": mapping.iso_utc(entry.created_at),
        "whopWaitlistAnswers": answers_text(entry),
        "whopPlanId": entry.plan_id,
        "whopCreatedAt": mapping.iso_utc(entry.created_at),
        "whopUpdatedAt": mapping.iso_utc(entry.updated_at),
        **mapping.company_fields(company),
    }
    if person_id is not None:
        record["pointOfContactId"] = person_id
    if product_id is not None:
        record["whopProductId"] = product_id  # the WhopProduct's Twenty id (the relation's join column)
    name = _lead_name(entry, person_name=person_name, product_title=product_title)
    if mapping.curated(name, (current or {}).get("name"), (last_written or {}).get("name")):
        record["name"] = name
    if current is None and stage_policy != "off":
        record["stage"] = WAITLISTED
    return record


def _lead_name(entry: WaitlistEntry, *, person_name: str | None, product_title: str | None) -> str:
    """ "Ada Lovelace – Pro Signals": who signed up and for what, each by the best name known,
    the bridge's Person and WhopProduct first (their names are the ones shown in Twenty)."""
    who = _clean(person_name) or _clean(entry.user_name) or _clean(entry.username) or entry.user_id or entry.id
    what = _clean(product_title) or _clean(entry.product_title) or entry.product_id or entry.plan_id or "a waitlist"
    return f"{who} {mapping.EN_DASH} {what}"


def lead_person_item(user: WhopUser) -> Item:
    """A Person for a signup whose user is no member of the company (Whop gave no member row):
    what the public profile says, no e-mail; a member row written later fills the rest."""
    who = _clean(user.name) or _clean(user.username)

    def build(current: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any]:
        record: dict[str, Any] = {"whopUserId": user.id, "whopUsername": user.username}
        name = mapping.split_name(who) if who else None
        if mapping.curated(name, (current or {}).get("name"), (last or {}).get("name")):
            record["name"] = name
        return record

    return Item(user.id, build(None, None), build, None, label=who or user.id)


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _written(shadow: Shadow | None) -> dict[str, Any]:
    """The fields a shadow says were last written ({} when it holds none)."""
    return shadow.written if shadow is not None and isinstance(shadow.written, dict) else {}


def _label(shadow: Shadow | None) -> str | None:
    written = shadow.written if shadow else None
    return written.get("_label") if isinstance(written, dict) else None


def converted_into(shadow: Shadow | None) -> str | None:
    written = shadow.written if shadow else None
    value = written.get(CONVERTED) if isinstance(written, dict) else None
    return value if isinstance(value, str) else None


def _converted_row(entry: WaitlistEntry, membership_id: str, row: Shadow | None, lead: str | None) -> ShadowWrite:
    """The signup's shadow, marked as the membership's: later events of it write nothing."""
    digest = row.hash if row is not None else ""
    return ShadowWrite(entry.id, digest, lead, entry.updated_at, {**_written(row), CONVERTED: membership_id})


# Reading signups from Whop --------------------------------------------------------------------


@dataclass
class Read:
    entries: list[WaitlistEntry] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # 404: deleted at Whop
    failed: dict[str, BaseException | str] = field(default_factory=dict)


async def read_entries(whop: WhopClient, company_id: str, ids: Sequence[str]) -> Read:
    """Signups read with the company's own credentials; one of another company is refused."""
    read = Read()
    for entry_id in ids:
        try:
            entry = await whop.get_waitlist_entry(entry_id)
        except NotFound:
            read.gone.append(entry_id)
            continue
        except NeedsReconnect:
            raise
        except Exception as exc:  # refused (403), unreadable…: this signup's events alone
            read.failed[entry_id] = exc
            continue
        if entry.company_id and entry.company_id != company_id:
            read.failed[entry_id] = f"waitlist entry {entry_id} belongs to {entry.company_id}, not {company_id}"
            continue
        read.entries.append(entry)
    return read


# Writing them ---------------------------------------------------------------------------------


@dataclass
class Applied:
    people: WriteReport = field(default_factory=WriteReport)
    leads: WriteReport = field(default_factory=WriteReport)
    converted: dict[str, str] = field(default_factory=dict)  # entry id -> membership id
    problems: list[Problem] = field(default_factory=list)


class Waitlist:
    """Writes one company's signups: their Persons, their Opportunities, their conversions."""

    def __init__(
        self,
        *,
        store: AsyncEngine,
        twenty: TwentyDataClient,
        whop: WhopClient,
        items: CompanyItems,
        writer: WriterFor,
        leases: Leases,
        stage_policy: str = "advance",
    ) -> None:
        self.store = store
        self.twenty = twenty
        self.whop = whop
        self.items = items
        self.company_id = items.company.id
        self.writer = writer
        self.leases = leases
        self.stage_policy = stage_policy

    async def apply(self, entries: Sequence[WaitlistEntry]) -> Applied:
        done = Applied()
        latest = list({e.id: e for e in entries}.values())
        rows = await get_shadows(self.store, self.company_id, WAITLIST_SHADOW, [e.id for e in latest])
        waiting: list[WaitlistEntry] = []
        for entry in latest:
            if entry.membership_id:
                if await self.convert(entry, rows.get(entry.id)):
                    done.converted[entry.id] = entry.membership_id
            elif converted_into(rows.get(entry.id)) is None:
                waiting.append(entry)
        if not waiting:
            return done
        done.people, problems = await self._people(waiting)
        done.problems += problems
        items = await self._lead_items(waiting)
        done.leads = await self.writer(OPPORTUNITY, WAITLIST_SHADOW).write(items)
        await self._index(waiting)
        return done

    async def gone(self, entry_ids: Sequence[str]) -> WriteReport:
        """Signups deleted at Whop: their leads (only ones the bridge wrote for this company: a
        delivery can name any id) say so; a converted one is the membership's now, left alone."""
        rows = await get_shadows(self.store, self.company_id, WAITLIST_SHADOW, list(entry_ids))
        keys = [k for k, row in rows.items() if converted_into(row) is None and row.twenty_id]
        return await self.writer(OPPORTUNITY, WAITLIST_SHADOW).write_changed([WAITLIST.deleted_item(k) for k in keys])

    async def held(self) -> set[str]:
        """Signups whose lead the bridge holds, not converted (a sync reads those it did not list)."""
        rows = await all_shadows(self.store, self.company_id, WAITLIST_SHADOW)
        return {r.whop_id for r in rows if converted_into(r) is None and r.twenty_id and r.gone_at is None}

    async def adopt(self, memberships: Sequence[Membership]) -> list[str]:
        """Before memberships new to the bridge are written: a signup of their user that made one
        of them gives it its Opportunity. Returns the membership ids that adopted a lead."""
        wanted, candidates = await self._new_with_signups(memberships)
        if not wanted:
            return []
        rows = await get_shadows(self.store, self.company_id, WAITLIST_SHADOW, candidates)
        pending = [e for e in candidates if e in rows and converted_into(rows[e]) is None]
        read = await read_entries(self.whop, self.company_id, pending)
        adopted = []
        for entry in read.entries:
            if entry.membership_id and entry.membership_id in wanted:
                await self.convert(entry, rows.get(entry.id))
                adopted.append(entry.membership_id)
        return adopted

    async def _new_with_signups(self, memberships: Sequence[Membership]) -> tuple[list[str], list[str]]:
        """The memberships new to the bridge whose user has signups it holds (one per user), and
        the ids of those signups."""
        fresh = [ms for ms in memberships if ms.user_id]
        if not fresh:
            return [], []
        known = await get_shadows(self.store, self.company_id, "opportunity", [ms.id for ms in fresh])
        fresh = [ms for ms in fresh if ms.id not in known]
        index = await get_shadows(self.store, self.company_id, BUYER_SHADOW, [str(ms.user_id) for ms in fresh])
        wanted = {str(ms.user_id): ms.id for ms in fresh if str(ms.user_id) in index}
        candidates = [e for user in wanted for e in (index[user].written or {}).get("entries", [])]
        return list(wanted.values()), candidates

    async def convert(self, entry: WaitlistEntry, row: Shadow | None) -> bool:
        """The signup's Opportunity becomes its membership's, once: True only the first time, so a
        re-sync or a replayed event does not count the conversion again."""
        membership_id = entry.membership_id
        assert membership_id is not None
        if converted_into(row) == membership_id:
            return False
        name = f"write:{self.company_id}:{OPPORTUNITY.singular}"
        async with self.leases.hold(name, ttl=WRITE_LEASE_TTL, wait=WRITE_LEASE_WAIT):
            # Read again under the lock: a writer of the membership may have been just before.
            row = (await get_shadows(self.store, self.company_id, WAITLIST_SHADOW, [entry.id])).get(entry.id)
            if converted_into(row) == membership_id:
                return False
            opp = (await get_shadows(self.store, self.company_id, "opportunity", [membership_id])).get(membership_id)
            lead = await self._lead_left(entry, row)
            await self._join(entry, membership_id, row, lead, opp)
            await put_shadows(
                self.store,
                self.company_id,
                WAITLIST_SHADOW,
                [_converted_row(entry, membership_id, row, lead)],
            )
            return True

    async def _lead_left(self, entry: WaitlistEntry, row: Shadow | None) -> str | None:
        """The signup's Opportunity, unless Whop deleted the signup or a person deleted the lead."""
        lead = row.twenty_id if row is not None and row.gone_at is None else None
        if lead and entry.id in await deleted.held(self.store, OPPORTUNITY.singular, [entry.id]):
            return None  # a person deleted the lead: the membership gets its own record
        return lead

    async def _join(
        self, entry: WaitlistEntry, membership_id: str, row: Shadow | None, lead: str | None, opp: Shadow | None
    ) -> None:
        """One Opportunity for the signup and its membership where the bridge can still make it so."""
        if lead and opp is None:
            await self._hand_over(entry, membership_id, row, lead)
        elif lead and opp is not None and opp.twenty_id != lead:
            # Written apart before the bridge knew (two passes at once): the lead says so.
            await self.twenty.upsert(OPPORTUNITY, [{"id": lead, "whopWaitlistStatus": "APPROVED"}])
            log.warning("waitlist entry %s and membership %s have two Opportunities", entry.id, membership_id)
        elif lead is None and opp is not None and opp.twenty_id:
            # Never a lead here: the membership's Opportunity tells where it came from.
            await self.twenty.upsert(OPPORTUNITY, [{"id": opp.twenty_id, **self._origin(entry)}])

    async def _hand_over(self, entry: WaitlistEntry, membership_id: str, row: Shadow | None, lead: str) -> None:
        """The lead becomes the membership's Opportunity: its key changes to the membership's id."""
        fields = {"whopMembershipId": membership_id, "whopWaitlistStatus": "APPROVED"}
        await self.twenty.upsert(OPPORTUNITY, [{"id": lead, **fields}])
        written = {**_written(row), **fields}
        written.pop(CONVERTED, None)
        # No hash: the membership's own record is written next, onto this Opportunity.
        await put_shadows(
            self.store, self.company_id, "opportunity", [ShadowWrite(membership_id, "", lead, None, written)]
        )
        log.info("waitlist entry %s became membership %s (one Opportunity)", entry.id, membership_id)

    @staticmethod
    def _origin(entry: WaitlistEntry) -> dict[str, Any]:
        return {
            "whopWaitlistEntryId": entry.id,
            "whopWaitlistStatus": "APPROVED",
            "whopWaitlistedAt": mapping.iso_utc(entry.created_at),
        }

    async def _people(self, entries: Sequence[WaitlistEntry]) -> tuple[WriteReport, list[Problem]]:
        """Persons for signups whose user the bridge has not written: the company's member row of
        that user when Whop has one (a signup makes one, `pending_entry`), else the user's profile."""
        users = list(dict.fromkeys(e.user_id for e in entries if e.user_id))
        have = await get_shadows(self.store, self.company_id, PERSON.singular, users)
        members: list[Member] = []
        leads: list[Item] = []
        problems: list[Problem] = []
        for user_id in (u for u in users if u not in have):
            try:
                member = await self._member_of(user_id)
                if member is not None:
                    members.append(member)
                else:
                    leads.append(lead_person_item(await self.whop.get_user(user_id)))
            except NeedsReconnect:
                raise
            except SkippableError as exc:
                problems.append(Problem("person", user_id, f"waitlist signup's user not read from Whop: {exc}"))
        report = WriteReport()
        items = [*(await self.items.people(members)), *leads]
        if items:
            report = await self.writer(PERSON, None).write(items)
        return report, problems

    async def _member_of(self, user_id: str) -> Member | None:
        pages = self.whop.list_members(user_ids=user_id, page_size=10)
        try:
            page = await anext(pages)
        except StopAsyncIteration:
            return None
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()
        return next((m for m in page.data if m.user is not None and m.user.id == user_id), None)

    async def _lead_items(self, entries: Sequence[WaitlistEntry]) -> list[Item]:
        people = await get_shadows(
            self.store, self.company_id, PERSON.singular, [e.user_id for e in entries if e.user_id]
        )
        products = await get_shadows(
            self.store, self.company_id, "whopProduct", [e.product_id for e in entries if e.product_id]
        )
        items = []
        for entry in entries:
            person = people.get(entry.user_id or "")
            product = products.get(entry.product_id or "")

            def build(
                current: dict[str, Any] | None,
                last: dict[str, Any] | None,
                entry: WaitlistEntry = entry,
                person: Shadow | None = person,
                product: Shadow | None = product,
            ) -> dict[str, Any]:
                return entry_record(
                    entry,
                    person_name=_label(person),
                    product_title=_label(product),
                    person_id=person.twenty_id if person else None,
                    product_id=product.twenty_id if product else None,
                    company=self.items.company,
                    current=current,
                    last_written={k: v for k, v in (last or {}).items() if not k.startswith("_")} if last else None,
                    stage_policy=self.stage_policy,
                )

            items.append(Item(entry.id, build(None, None), build, entry.updated_at))
        return items

    async def _index(self, entries: Sequence[WaitlistEntry]) -> None:
        """user id -> their signups, so a membership written first finds its lead (`adopt`)."""
        users = list(dict.fromkeys(e.user_id for e in entries if e.user_id))
        held = await get_shadows(self.store, self.company_id, BUYER_SHADOW, users)
        rows = []
        for user_id in users:
            before = list((held[user_id].written or {}).get("entries", [])) if user_id in held else []
            after = list(dict.fromkeys([*before, *(e.id for e in entries if e.user_id == user_id)]))
            if after != before:
                rows.append(ShadowWrite(user_id, "", None, None, {"entries": after}))
        await put_shadows(self.store, self.company_id, BUYER_SHADOW, rows)
