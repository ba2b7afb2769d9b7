"""Attribution: what brought a buyer and a membership, so a sales team can filter and group by
source. On the Person: the first and last source Whop's `/people` profile gives (a Whop ad, a
lead form, an external ad, a referring site, a UTM tracking link) and Whop's own figures for the
buyer (lifetime value, purchases, first and last seen) beside the bridge's. On the Opportunity:
the promo code used, the affiliate who referred it, and the buyer's first source.

Whop's webhooks carry none of it (a membership's `affiliate` is null in them; no event announces
a profile's sources), so each sync and reconciliation reads it: `/people?has_purchased=true` for
the buyers the bridge wrote, and the memberships its pages saw. It is written apart from the
member and membership fields (shadows "personSource" and "opportunitySource"): a record changes
only when its attribution does, one with none costs nothing, and only records the bridge already
wrote are updated (an attribution never creates a Person or an Opportunity).

In a backfill the records are new, and a second pass would write every Person and Opportunity
twice. So a sync reads the profiles first (`prefetch`, Whop only, beside the revenue facts), and
the members and memberships phases send a record the bridge never wrote with its attribution
(`attach_people`, `attach_opportunities`). The pass then finds Twenty already holding those
values as written (`_adopt`) and writes only what changed since.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import AuthError, NeedsReconnect, SkippableError
from bridge.store.shadows import ShadowWrite, get_shadows, put_shadows
from bridge.sync import mapping
from bridge.sync.writer import Item, ObjectWriter, Problem, WriteReport, WriterFor
from bridge.twenty.data import OPPORTUNITY, PERSON
from bridge.whop.client import WhopClient
from bridge.whop.models import Membership, Money, Page, Source, WhopPerson

log = logging.getLogger(__name__)

PERSON_SHADOW = "personSource"
OPPORTUNITY_SHADOW = "opportunitySource"

# Whop → fields (pure) ---------------------------------------------------------------------------


def source_text(src: Source | None) -> str | None:
    """A source as Whop's own vocabulary writes it: `referrer:<domain>`, `utm:<source>`,
    `whop:<campaign>:<ad group>:<ad>`, `lead_form:<campaign>`, `ext:<platform>[:<campaign>]`."""
    if src is None:
        return None
    kind = (src.type or "").strip().lower()
    parts: list[str | None]
    if kind == "referrer":
        parts = ["referrer", src.domain]
    elif kind == "utm":
        parts = ["utm", src.utm_source or src.domain]
    elif kind == "ad_click":
        parts = ["whop", src.campaign, src.ad_group, src.ad]
    elif kind == "lead_form":
        parts = ["lead_form", src.campaign]
    elif kind == "external_ad_click":
        parts = ["ext", src.platform, src.campaign]
    else:
        parts = [kind or None, src.domain or src.utm_source]
    text = ":".join(_clean(p) for p in parts if _clean(p))
    return text or None


def person_fields(p: WhopPerson) -> dict[str, Any]:
    ltv = Money(amount=p.ltv, currency="usd") if p.ltv is not None else None
    return {
        "whopFirstSourceType": mapping.status_value(p.first_source.type) if p.first_source else None,
        "whopFirstSource": source_text(p.first_source),
        "whopLastSourceType": mapping.status_value(p.last_source.type) if p.last_source else None,
        "whopLastSource": source_text(p.last_source),
        "whopReportedLtv": mapping.money_to_currency(ltv),
        "whopPurchaseCount": p.purchase_count,
        "whopFirstSeenAt": mapping.iso_utc(p.first_seen_at),
        "whopLastSeenAt": mapping.iso_utc(p.last_seen_at),
    }


@dataclass(frozen=True)
class Seen:
    """What a membership page said of a membership's attribution (kept small: one per membership)."""

    membership_id: str
    person_key: str | None
    promo_code_id: str | None
    affiliate_user_id: str | None

    @classmethod
    def of(cls, ms: Membership) -> Seen:
        return cls(ms.id, ms.user_id or ms.member_id, ms.promo_code_id, ms.affiliate_user_id)


def opportunity_fields(
    seen: Seen, *, promo_code: str | None, affiliate: str | None, first_source: Source | None
) -> dict[str, Any]:
    """The membership's promo code, affiliate, and source: the affiliate when one referred it
    (the strongest word on who brought it), else the buyer's first source, else its promo code."""
    kind: str | None
    detail: str | None
    if seen.affiliate_user_id:
        kind, detail = "AFFILIATE", affiliate or seen.affiliate_user_id
    elif first_source is not None and first_source.type:
        kind, detail = mapping.status_value(first_source.type), source_text(first_source)
    elif seen.promo_code_id:
        kind, detail = "PROMO_CODE", promo_code or seen.promo_code_id
    else:
        kind, detail = None, None
    return {
        "whopPromoCodeName": promo_code,
        "whopAffiliate": affiliate,
        "whopAffiliateUserId": seen.affiliate_user_id,
        "whopSourceType": kind,
        "whopSource": detail,
    }


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _with_first(item: Item, fields: dict[str, Any]) -> Item:
    """`item`, sending `fields` as well when the bridge has never written its record."""
    build = item.build

    def first(current: dict[str, Any] | None, last: dict[str, Any] | None) -> dict[str, Any]:
        record = build(current, last)
        return record if last is not None else {**fields, **record}

    return replace(item, build=first)


def _item(key_field: str, key: str, fields: dict[str, Any]) -> Item:
    record = {key_field: key, **fields}

    def build(existing: dict[str, Any] | None, _last: dict[str, Any] | None) -> dict[str, Any]:
        # Seen on 1.x: an upsert that leaves out a composite may blank it; send back what is there.
        kept = {k: v for k, v in (existing or {}).items() if isinstance(v, dict) and k not in record}
        return {**kept, **record}

    return Item(key, record, build, None)


# A reconciliation's sweep -----------------------------------------------------------------------


@dataclass
class Attributed:
    people: WriteReport = field(default_factory=WriteReport)
    opportunities: WriteReport = field(default_factory=WriteReport)
    problems: list[Problem] = field(default_factory=list)


class AttributionSweep:
    """Gathers the memberships a run's pages show, then writes attribution once the Persons and
    Opportunities it belongs on are written."""

    def __init__(self, *, whop: WhopClient, store: AsyncEngine, company_id: str, writer: WriterFor) -> None:
        self.whop = whop
        self.store = store
        self.company_id = company_id
        self.writer = writer
        self.seen: dict[str, Seen] = {}
        self._names: dict[str, str | None] = {}  # promo code or affiliate user id -> what to show
        # What `prefetch` read: each buyer's Person fields and first source, by user id.
        self._profiles: dict[str, dict[str, Any]] | None = None
        self._sources: dict[str, Source] = {}
        self._early_problems: list[Problem] = []

    def see(self, memberships: list[Membership]) -> None:
        for ms in memberships:
            self.seen[ms.id] = Seen.of(ms)

    async def prefetch(self, page_size: int = 100) -> None:
        """A sync's first step (Whop only): every buyer's profile, kept for the run, so the
        Persons and Opportunities it creates carry their attribution from their first write."""
        profiles: dict[str, dict[str, Any]] = {}
        try:
            async for page in self.whop.list_people(has_purchased="true", page_size=page_size):
                for p in page.data:
                    if p.user_id:
                        profiles[str(p.user_id)] = person_fields(p)
                        if p.first_source is not None:
                            self._sources[str(p.user_id)] = p.first_source
        except NeedsReconnect:
            raise
        except (AuthError, SkippableError) as exc:  # no people:read, say: the memberships still go
            self._early_problems.append(Problem("person", "-", f"buyer sources not read from Whop: {exc}"))
        self._profiles = profiles

    def attach_people(self, items: list[Item]) -> list[Item]:
        """Person items that, when the bridge never wrote the Person, send its attribution too.
        The item's basis (its hash) stays the member's: the attribution keeps its own shadow."""
        if not self._profiles:
            return items
        return [_with_first(item, found) if (found := self._profiles.get(item.key)) else item for item in items]

    async def attach_opportunities(self, memberships: list[Membership], items: list[Item]) -> list[Item]:
        """Opportunity items that, when the bridge never wrote the Opportunity, send its
        attribution too (its promo code and affiliate names read from Whop, once a run each)."""
        if self._profiles is None:
            return items
        held = await get_shadows(self.store, self.company_id, "opportunity", [ms.id for ms in memberships])
        extra: dict[str, dict[str, Any]] = {}
        for ms in memberships:
            if ms.id in held:
                continue
            fields = await self._opportunity_fields(Seen.of(ms), self._sources, self._early_problems)
            if fields is not None:
                extra[ms.id] = fields
        return [_with_first(item, found) if (found := extra.get(item.key)) else item for item in items]

    async def run(self, page_size: int = 100) -> Attributed:
        """A sync's: every buyer's profile (as `prefetch` read it, if it did), then the
        memberships its pages showed."""
        if self._profiles is None:
            return await self._run(self.whop.list_people(has_purchased="true", page_size=page_size))
        done = Attributed(problems=self._early_problems)
        self._early_problems = []
        held = await get_shadows(self.store, self.company_id, "person", list(self._profiles))
        items = [_item("whopUserId", key, fields) for key, fields in self._profiles.items() if key in held]
        if items:
            await self._adopt(PERSON_SHADOW, "person", items)
            done.people = await write_read_ahead(self.writer(PERSON, PERSON_SHADOW), items)
        done.opportunities = await self._opportunities(self._sources, done.problems)
        self.seen = {}
        return done

    async def new_memberships(self, memberships: list[Membership]) -> Attributed:
        """The worker's, for memberships new to the bridge read from Whop (a webhook's payload has
        no affiliate): their buyers' profiles (one read each) and their promo code and affiliate."""
        self.see(memberships)
        users = list(dict.fromkeys(ms.user_id for ms in memberships if ms.user_id))

        async def profiles() -> AsyncIterator[Page[WhopPerson]]:
            for user_id in users:
                pages = self.whop.list_people(user_id=user_id, page_size=10)
                try:
                    yield await anext(pages)
                except StopAsyncIteration:
                    continue
                finally:
                    close = getattr(pages, "aclose", None)
                    if close is not None:
                        await close()

        return await self._run(profiles())

    async def _run(self, pages: AsyncIterator[Page[WhopPerson]]) -> Attributed:
        done = Attributed()
        sources: dict[str, Source] = {}
        items: list[Item] = []
        try:
            async for page in pages:
                buyers = [p for p in page.data if p.user_id]
                held = await get_shadows(self.store, self.company_id, "person", [str(p.user_id) for p in buyers])
                for p in buyers:
                    key = str(p.user_id)
                    if p.first_source is not None:
                        sources[key] = p.first_source
                    if key in held:
                        items.append(_item("whopUserId", key, person_fields(p)))
        except NeedsReconnect:
            raise
        except (AuthError, SkippableError) as exc:  # no people:read, say: the memberships still go
            done.problems.append(Problem("person", "-", f"buyer sources not read from Whop: {exc}"))
        if items:
            done.people = await write_read_ahead(self.writer(PERSON, PERSON_SHADOW), items)
        done.opportunities = await self._opportunities(sources, done.problems)
        self.seen = {}
        return done

    async def _opportunities(self, sources: dict[str, Source], problems: list[Problem]) -> WriteReport:
        wanted = [
            s for s in self.seen.values() if s.promo_code_id or s.affiliate_user_id or sources.get(s.person_key or "")
        ]
        if not wanted:
            return WriteReport()
        held = await get_shadows(self.store, self.company_id, "opportunity", [s.membership_id for s in wanted])
        items = []
        for s in wanted:
            if s.membership_id not in held:
                continue  # never written (or not yet): an attribution does not make an Opportunity
            fields = await self._opportunity_fields(s, sources, problems)
            if fields is not None:
                items.append(_item(OPPORTUNITY.key, s.membership_id, fields))
        await self._adopt(OPPORTUNITY_SHADOW, "opportunity", items)
        return await write_read_ahead(self.writer(OPPORTUNITY, OPPORTUNITY_SHADOW), items)

    async def _opportunity_fields(
        self, seen: Seen, sources: dict[str, Source], problems: list[Problem]
    ) -> dict[str, Any] | None:
        """A membership's attribution fields, or None when it has none to tell."""
        first_source = sources.get(seen.person_key or "")
        if not (seen.promo_code_id or seen.affiliate_user_id or first_source):
            return None
        promo = await self._name(seen.promo_code_id, self._promo_code, problems)
        affiliate = await self._name(seen.affiliate_user_id, self._username, problems)
        return opportunity_fields(seen, promo_code=promo, affiliate=affiliate, first_source=first_source)

    async def _adopt(self, shadow_name: str, record_shadow: str, items: list[Item]) -> None:
        """Records whose attribution went out with their first write (`attach_*`): their
        attribution shadow is stored from what the record's own shadow says was sent, so the pass
        does not send it again. Only values Twenty was sent exactly are adopted."""
        if not items:
            return
        keys = [i.key for i in items]
        mine = await get_shadows(self.store, self.company_id, shadow_name, keys)
        records = await get_shadows(self.store, self.company_id, record_shadow, keys)
        rows = []
        for item in items:
            record = records.get(item.key)
            if item.key in mine or record is None or not record.twenty_id or record.gone_at is not None:
                continue
            sent = record.written if isinstance(record.written, dict) else {}
            if all(k in sent and sent[k] == v for k, v in item.basis.items()):
                rows.append(ShadowWrite(item.key, mapping.record_hash(item.basis), record.twenty_id, None, item.basis))
        if rows:
            await put_shadows(self.store, self.company_id, shadow_name, rows)

    async def _name(
        self, key: str | None, read: Callable[[str], Awaitable[str | None]], problems: list[Problem]
    ) -> str | None:
        if not key:
            return None
        if key not in self._names:
            try:
                self._names[key] = await read(key)
            except NeedsReconnect:
                raise
            except (AuthError, SkippableError) as exc:  # shown by its id instead
                problems.append(Problem("opportunity", key, f"not read from Whop: {exc}"))
                self._names[key] = None
        return self._names[key]

    async def _promo_code(self, promo_code_id: str) -> str | None:
        return _clean((await self.whop.get_promo_code(promo_code_id)).code) or None

    async def _username(self, user_id: str) -> str | None:
        user = await self.whop.get_user(user_id)
        return _clean(user.username) or _clean(user.name) or None


# Batches whose Twenty records one keyed read covers (as the sync's phases read ahead).
READ_AHEAD_BATCHES = 5


async def write_read_ahead(writer: ObjectWriter, items: list[Item]) -> WriteReport:
    """Write `items`, reading the changed ones from Twenty once for several batches: attribution
    is a second pass over records the sync just wrote, and a read per batch would double a
    backfill's reads. Unchanged ones cost no call at all."""
    changed, report = await writer.triage(items)
    group = writer.batch_size * READ_AHEAD_BATCHES
    for start in range(0, len(changed), group):
        chunk = changed[start : start + group]
        if not writer.dry_run:
            await writer.twenty.read_ahead(writer.obj, [i.key for i in chunk])
        report.merge(await writer.write_changed(chunk))
    return report
