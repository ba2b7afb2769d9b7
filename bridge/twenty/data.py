"""Client for Twenty's record (data) API: batched GraphQL upserts and keyed reads.

Writes go through GraphQL `create<Plural>(data: [...], upsert: true)` on `/graphql`: it is the
path that upserts on both 1.x and 2.x (a real 1.x ignored REST's `?upsert=true`). Reads use the
same endpoint with `in` filters passed as variables, so ids and e-mail addresses never need
escaping. Every call first takes a token from a client-side bucket set below Twenty's
per-workspace limit. What an answer means (retry, throttle, send fewer, skip, fail) is
`twenty/responses.py`'s table, and the retries are `bridge/retry.py`'s: a throttle pauses the
bucket, which everyone on it then waits out.

Records are shaped for the server before they are sent (`WriteRules`): on 1.x every TEXT column
is NOT NULL, so a `null` for a TEXT field refuses the whole batch; there "" clears it instead.
The field types come from the live metadata, so a field added to `schema/` later is covered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge import metrics, reach, retry
from bridge.errors import BatchTooLarge, FatalError
from bridge.limiter import Limiter, TokenBucket
from bridge.retry import Action, Failure, RetryPolicy
from bridge.twenty import responses
from bridge.twenty.documents import Dialect
from bridge.twenty.metadata import LiveObject, MetadataClient
from bridge.twenty.responses import Api

log = logging.getLogger(__name__)

RULES_REFRESH_SECONDS = 30.0  # how often unknown fields in a record may trigger a metadata re-read
# A keyed read done ahead answers for this long at most (a backfill uses it within seconds).
READ_AHEAD_SECONDS = 60.0


@dataclass(frozen=True)
class ObjectApi:
    """Names Twenty derives from an object's metadata."""

    singular: str  # person
    plural: str  # people
    key: str  # whopUserId
    selection: str  # GraphQL selection of the fields the bridge reads back

    @property
    def type_prefix(self) -> str:
        return self.singular[:1].upper() + self.singular[1:]


PERSON = ObjectApi(
    "person",
    "people",
    "whopUserId",
    "id whopUserId whopMemberId name { firstName lastName } emails { primaryEmail additionalEmails } "
    "phones { primaryPhoneNumber primaryPhoneCountryCode primaryPhoneCallingCode additionalPhones }",
)
OPPORTUNITY = ObjectApi(
    "opportunity",
    "opportunities",
    "whopMembershipId",
    "id whopMembershipId name stage amount { amountMicros currencyCode } pointOfContactId whopProductId",
)
WHOP_PRODUCT = ObjectApi("whopProduct", "whopProducts", "whopProductId", "id whopProductId name")
WHOP_PAYMENT = ObjectApi("whopPayment", "whopPayments", "whopPaymentId", "id whopPaymentId name personId opportunityId")
WHOP_REVIEW = ObjectApi("whopReview", "whopReviews", "whopReviewId", "id whopReviewId name personId productId")
TASK = ObjectApi("task", "tasks", "id", "id title")
TASK_TARGET = ObjectApi("taskTarget", "taskTargets", "id", "id")
# A line on a record page's timeline (bridge/sync/timeline.py); its id is derived from the event.
TIMELINE_ACTIVITY = ObjectApi("timelineActivity", "timelineActivities", "id", "id")
OBJECTS = {o.singular: o for o in (PERSON, OPPORTUNITY, WHOP_PRODUCT, WHOP_PAYMENT, WHOP_REVIEW)}
# The smallest read of the record API: a standard object every workspace has.
PROBE_QUERY = "query Probe { opportunities(first: 1) { edges { node { id } } } }"


@dataclass(frozen=True)
class WriteRules:
    """What the live workspace accepts in a record, learned from its metadata."""

    dialect: Dialect
    text_fields: dict[str, frozenset[str]]  # object nameSingular -> its TEXT fields
    known_fields: dict[str, frozenset[str]] = field(default_factory=dict)  # every writable name
    # object nameSingular -> its metadata id (what a timeline activity names its linked record's object by)
    object_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_live(cls, dialect: Dialect, objects: dict[str, LiveObject]) -> WriteRules:
        texts: dict[str, frozenset[str]] = {}
        known: dict[str, frozenset[str]] = {}
        for name, obj in objects.items():
            texts[name] = frozenset(f.name for f in obj.fields.values() if f.type == "TEXT")
            # A MANY_TO_ONE relation is written through its join column (`pointOfContactId`). A morph
            # relation (2.21's taskTarget `target`, listed once) has one per object it may point at:
            # `targetPersonId`, `targetOpportunityId`…
            joins = {f"{f.name}Id" for f in obj.fields.values() if f.type == "RELATION"}
            for f in obj.fields.values():
                if f.type == "MORPH_RELATION":
                    joins |= {f"{f.name}{other[:1].upper()}{other[1:]}Id" for other in objects}
            known[name] = frozenset({"id", *obj.fields, *joins})
        return cls(dialect, texts, known, {name: obj.id for name, obj in objects.items()})

    def knows(self, obj: str, record: dict[str, Any]) -> bool:
        """Every field of `record` was in the metadata these rules were read from."""
        known = self.known_fields.get(obj)
        return known is not None and known.issuperset(record)

    def prepare(self, obj: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as this server takes it: on 1.x a TEXT field is cleared with "", never null."""
        if self.dialect is not Dialect.V1:
            return record
        texts = self.text_fields.get(obj, frozenset())
        if not any(value is None and name in texts for name, value in record.items()):
            return record
        return {name: "" if value is None and name in texts else value for name, value in record.items()}


def target_column(known: frozenset[str], kind: str) -> str:
    """The column pointing a task target or a timeline activity at a `kind` record: `personId`
    (1.x, and 2.x before morph relations), or `targetPersonId` where the target is a morph
    relation (2.21: observed, "Object taskTarget doesn't have any personId field")."""
    morph = f"target{kind[:1].upper()}{kind[1:]}Id"
    return morph if morph in known and f"{kind}Id" not in known else f"{kind}Id"


def timeline_unsupported(rules: WriteRules) -> str | None:
    """Why this Twenty cannot show lines the bridge writes on its timelines, or None when it can.

    2.x shows an activity that links a record as "Twenty linked a <object> <its text>". 1.x shows
    only its own kinds (a record created or updated, a note, a task, an e-mail, an event): an
    activity linking another object renders there as an empty row (its front, `da560afb`)."""
    if rules.dialect is Dialect.V1:
        return "this Twenty version (1.x) shows only its own kinds of timeline entries"
    known = rules.known_fields.get(TIMELINE_ACTIVITY.singular)
    if not known or not {"linkedObjectMetadataId", "linkedRecordId", "linkedRecordCachedName"} <= known:
        return "this Twenty has no timeline activities the data API can write"
    if not {target_column(known, "person"), target_column(known, "opportunity")} <= known:
        return "this Twenty's timeline activities cannot point at a Person and an Opportunity"
    return None


@dataclass
class ReadAhead:
    """What one keyed read found for keys and e-mails a writer is about to write: later reads
    of any of them are answered from here, so one call serves several batches. An upsert of
    this client drops what it changes (and everything it could have changed) first."""

    key: str
    keys: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)
    read_at: float = field(default_factory=time.monotonic)  # the oldest read it holds

    def covers(self, keys: Sequence[str], emails: Sequence[str]) -> bool:
        fresh = time.monotonic() - self.read_at < READ_AHEAD_SECONDS
        return fresh and self.keys.issuperset(keys) and self.emails.issuperset(emails)

    def answer(self, keys: Sequence[str], emails: Sequence[str]) -> list[dict[str, Any]]:
        """The rows a read by these keys and e-mails would return."""
        wanted_keys, wanted_emails = set(keys), set(emails)
        return [r for r in self.rows if r.get(self.key) in wanted_keys or _primary_email(r) in wanted_emails]

    def add(self, keys: Sequence[str], emails: Sequence[str], rows: list[dict[str, Any]]) -> None:
        seen = {str(r.get("id")) for r in self.rows}
        self.rows += [r for r in rows if str(r.get("id")) not in seen]
        self.keys.update(keys)
        self.emails.update(emails)

    def changed(self, records: Sequence[dict[str, Any]]) -> None:
        """Forget the records an upsert may change: by key, by id and by e-mail."""
        keys, ids, emails = self._identities(records)
        stale = [r for r in self.rows if self._same_record(r, keys, ids, emails)]
        for row in stale:
            keys.add(str(row.get(self.key) or ""))
            emails.add(_primary_email(row) or "")
        self.rows = [r for r in self.rows if not any(r is s for s in stale)]
        self.keys -= keys
        self.emails -= emails

    def _identities(self, records: Sequence[dict[str, Any]]) -> tuple[set[str], set[str], set[str]]:
        """The keys, ids and e-mails the records carry (those they leave empty are not counted)."""
        keys = {str(r[self.key]) for r in records if r.get(self.key)}
        ids = {str(r["id"]) for r in records if r.get("id")}
        emails = {e for e in (_primary_email(r) for r in records) if e}
        return keys, ids, emails

    def _same_record(self, row: dict[str, Any], keys: set[str], ids: set[str], emails: set[str]) -> bool:
        """Whether a held row is one of the records written: by key, by id or by e-mail."""
        return row.get(self.key) in keys or str(row.get("id")) in ids or _primary_email(row) in emails


def _primary_email(record: dict[str, Any]) -> str | None:
    emails = record.get("emails")
    value = emails.get("primaryEmail") if isinstance(emails, dict) else None
    return value if isinstance(value, str) and value else None


@dataclass
class CallStats:
    reads: int = 0
    writes: int = 0
    throttled: int = 0
    retries: int = 0

    @property
    def calls(self) -> int:
        return self.reads + self.writes


class TwentyDataClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_minute: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = retry.DEFAULT.attempts,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limiter: Limiter | None = None,
        rules: WriteRules | None = None,
        selections: dict[str, str] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._transport = transport
        self._timeout = timeout
        self._rules = rules
        # What a keyed read selects per object (default: the object's own `selection`).
        self.selections = selections or {}
        self._rules_lock = asyncio.Lock()
        self._rules_read_at = time.monotonic()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=reach.timeout(timeout),
            transport=transport,
        )
        self._answered = False  # until Twenty first answers, a refused connection is not retried for long
        self.requests_per_minute = requests_per_minute
        # Twenty refills its bucket continuously (N per 60 s); a burst of N is allowed once.
        self.limiter: Limiter = limiter or TokenBucket(
            rate_per_second=requests_per_minute / 60.0, capacity=float(requests_per_minute), sleep=sleep
        )
        self.retry = retry_policy or retry.DEFAULT.replace(attempts=max_attempts, sleep=sleep)
        self.stats = CallStats()
        self.upsert_cap: int | None = None  # learned from a refusal of the batch size
        self._reserved = 0  # tokens taken ahead by `reserve`, spent by the next calls
        self._ahead: dict[str, ReadAhead] = {}  # per object: keyed reads done ahead (`read_ahead`)

    async def aclose(self) -> None:
        await self._http.aclose()

    def learn_rules(self, rules: WriteRules) -> None:
        """Use what a caller already read from the metadata API (saves reading it again)."""
        self._rules = rules
        self._rules_read_at = time.monotonic()

    def _rules_age(self) -> float:
        return time.monotonic() - self._rules_read_at

    async def write_rules(self, *, refresh: bool = False) -> WriteRules:
        """The workspace's write rules, read from its metadata API on first need (or `refresh`)."""
        stale = self._rules
        if stale is None or refresh:
            async with self._rules_lock:
                if self._rules is stale:  # nobody re-read them while this one waited
                    async with MetadataClient(
                        self._base_url,
                        self._api_key,
                        transport=self._transport,
                        timeout=self._timeout,
                        requests_per_minute=self.requests_per_minute,
                        retry_policy=self.retry,
                    ) as meta:
                        self._rules = WriteRules.from_live(meta.dialect, await meta.list_objects())
                    self._rules_read_at = time.monotonic()
        assert self._rules is not None
        return self._rules

    async def __aenter__(self) -> TwentyDataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def reserve(self) -> None:
        """Take the token of a call that is sure to come (the next upsert, while the current one
        is in flight), so waiting for it overlaps other work instead of delaying that call.
        Taking it early is safe: Twenty sees the call later than the budget counted it."""
        await self.limiter.acquire()
        self._reserved += 1

    # Transport ----------------------------------------------------------------------------

    async def graphql(self, query: str, variables: dict[str, Any], *, operation: str, write: bool) -> dict[str, Any]:
        """POST /graphql under the budget, retried as the table says (`bridge/retry.py`)."""
        body = {"query": query, "variables": variables}

        async def attempt() -> dict[str, Any] | Failure:
            if self._reserved:
                self._reserved -= 1
            else:
                await self.limiter.acquire()
            if write:
                self.stats.writes += 1
            else:
                self.stats.reads += 1
            metrics.API_CALLS.labels("twenty", "write" if write else "read").inc()
            with metrics.API_SECONDS.labels("twenty").time():
                return await self._attempt(body, operation)

        return await retry.call(
            attempt, self.retry, what=f"twenty {operation}", pause=self.limiter.pause, on_retry=self._count_retry
        )

    async def probe(self) -> None:
        """One cheap read, never retried: returns once Twenty answers it, else raises what the
        answer means (`RetryableError` while Twenty is down). The inbox worker's breaker asks
        this while it holds events back, instead of retrying them."""
        await self.limiter.acquire()
        self.stats.reads += 1
        outcome = await self._attempt({"query": PROBE_QUERY, "variables": {}}, "probe")
        if isinstance(outcome, Failure):
            raise outcome.error

    async def _attempt(self, body: dict[str, Any], operation: str) -> dict[str, Any] | Failure:
        """One POST /graphql: its data, or what the table makes of the answer."""
        try:
            response = await self._http.post("/graphql", json=body)
        except httpx.TransportError as exc:
            answer = responses.from_network(
                Api.DATA, operation, exc, first_contact=not self._answered, url=self._base_url
            )
        else:
            self._answered = True
            read = responses.read(Api.DATA, operation, response)
            if not isinstance(read, responses.Answer):
                return read
            answer = read
        failure = responses.classify(answer, throttle_floor=60.0 / self.requests_per_minute)
        if failure.action is Action.THROTTLE:
            self.stats.throttled += 1
            metrics.API_THROTTLED.labels("twenty").inc()
        return failure

    def _count_retry(self, _: Failure) -> None:
        self.stats.retries += 1

    # Reads --------------------------------------------------------------------------------

    async def find(
        self, obj: ObjectApi, filter_: dict[str, Any], *, selection: str | None = None, page_size: int = 200
    ) -> list[dict[str, Any]]:
        """All records matching `filter_` (soft-deleted ones excluded), following cursors."""
        query = (
            f"query Find($filter: {obj.type_prefix}FilterInput, $first: Int, $after: String) {{"
            f" {obj.plural}(filter: $filter, first: $first, after: $after) {{"
            f" edges {{ node {{ {selection or obj.selection} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        )
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            data = await self.graphql(
                query,
                {"filter": filter_, "first": page_size, "after": after},
                operation=f"read {obj.plural}",
                write=False,
            )
            conn = data[obj.plural]
            found.extend(edge["node"] for edge in conn["edges"])
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return found
            after = info["endCursor"]

    async def find_deleted(self, objects: Sequence[ObjectApi]) -> dict[str, list[dict[str, Any]]]:
        """Every record of `objects` soft-deleted in Twenty (`id` and key), one request for all:
        there are usually none, so the check costs one call per look."""
        if not objects:
            return {}
        filter_ = {"deletedAt": {"is": "NOT_NULL"}}
        # Each root field takes its own object's filter type, so one variable per object.
        args = ", ".join(f"$f{i}: {o.type_prefix}FilterInput" for i, o in enumerate(objects))
        node = "edges { node { id %s } } pageInfo { hasNextPage }"
        parts = " ".join(f"{o.plural}(filter: $f{i}, first: 200) {{ {node % o.key} }}" for i, o in enumerate(objects))
        query = f"query Deleted({args}) {{ {parts} }}"
        variables = {f"f{i}": filter_ for i in range(len(objects))}
        data = await self.graphql(query, variables, operation="read deleted records", write=False)
        found: dict[str, list[dict[str, Any]]] = {}
        for o in objects:
            conn = data.get(o.plural) or {}
            rows = [edge["node"] for edge in conn.get("edges") or []]
            if (conn.get("pageInfo") or {}).get("hasNextPage"):  # many deleted: page through this one
                rows = await self.find(o, filter_, selection=f"id {o.key}")
            found[o.singular] = rows
        return found

    async def find_by_keys(
        self, obj: ObjectApi, keys: Sequence[str], *, emails: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Records with these keys, or (people) these primary e-mails; answered from a read
        done ahead when it covers them all."""
        if not keys and not emails:
            return []
        ahead = self._ahead.get(obj.singular)
        if ahead is not None and ahead.covers(keys, emails):
            return ahead.answer(keys, emails)
        return await self._find_by_keys(obj, keys, emails)

    async def read_ahead(self, obj: ObjectApi, keys: Sequence[str], *, emails: Sequence[str] = ()) -> None:
        """One keyed read for records about to be written in several batches (a backfill's next
        ones): their own reads are then answered without a call, until an upsert changes them
        or `forget_reads`. Keys and e-mails already read ahead are not asked again."""
        ahead = self._ahead.get(obj.singular)
        if ahead is None or not ahead.covers([], []):  # none yet, or too old to keep
            ahead = self._ahead[obj.singular] = ReadAhead(obj.key)
        keys = [k for k in dict.fromkeys(keys) if k not in ahead.keys]
        emails = [e for e in dict.fromkeys(emails) if e not in ahead.emails]
        if keys or emails:
            ahead.add(keys, emails, await self._find_by_keys(obj, keys, emails))

    def forget_reads(self, obj: ObjectApi | None = None) -> None:
        """Drop the reads done ahead (of `obj`, or all): their writer is done."""
        if obj is None:
            self._ahead.clear()
        else:
            self._ahead.pop(obj.singular, None)

    async def _find_by_keys(self, obj: ObjectApi, keys: Sequence[str], emails: Sequence[str]) -> list[dict[str, Any]]:
        clauses: list[dict[str, Any]] = []
        if keys:
            clauses.append({obj.key: {"in": list(keys)}})
        if emails:
            clauses.append({"emails": {"primaryEmail": {"in": list(emails)}}})
        return await self.find(
            obj, clauses[0] if len(clauses) == 1 else {"or": clauses}, selection=self.selections.get(obj.singular)
        )

    # Writes -------------------------------------------------------------------------------

    async def upsert(self, obj: ObjectApi, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert `records` in as few calls as the server takes; returns what Twenty answered,
        which may be shorter than sent (1.x lists 60).

        A server that refuses the batch size (2.x: more than 200; some plans fewer) is answered
        by sending halves (or the size it named), and the size is remembered for later calls.
        """
        cap = self.upsert_cap
        if cap is not None and len(records) > cap:
            answers: list[dict[str, Any]] = []
            for start in range(0, len(records), cap):
                answers += await self.upsert(obj, records[start : start + cap])
            return answers
        try:
            return await self._upsert_once(obj, records)
        except BatchTooLarge as exc:
            if len(records) <= 1:
                raise FatalError(f"upsert {obj.plural}: Twenty refuses even one record a call ({exc})") from None
            limit = exc.limit if exc.limit is not None and exc.limit < len(records) else len(records) // 2
            self.upsert_cap = max(1, limit)
            log.warning("twenty refused %d records in one call; sending %d from now on", len(records), limit)
            return await self.upsert(obj, records)

    async def _upsert_once(self, obj: ObjectApi, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        plural_type = obj.plural[:1].upper() + obj.plural[1:]
        query = (
            f"mutation Upsert($data: [{obj.type_prefix}CreateInput!]!) {{"
            f" create{plural_type}(data: $data, upsert: true) {{ {obj.selection} }} }}"
        )
        rules = await self.write_rules()
        if not all(rules.knows(obj.singular, r) for r in records) and self._rules_age() > RULES_REFRESH_SECONDS:
            # Read before the workspace was provisioned (a long-running worker): read them again,
            # at most so often, since a field that really is missing is refused by Twenty anyway.
            rules = await self.write_rules(refresh=True)
        if (ahead := self._ahead.get(obj.singular)) is not None:
            ahead.changed(records)  # before it is sent: a read meanwhile asks Twenty again
        data = await self.graphql(
            query,
            {"data": [rules.prepare(obj.singular, r) for r in records]},
            operation=f"upsert {obj.plural}",
            write=True,
        )
        return list(data.get(f"create{plural_type}") or [])

    async def restore(self, obj: ObjectApi, record_id: str) -> None:
        """Undo a soft delete. The id's GraphQL type differs between versions, so it is inlined."""
        uuid.UUID(record_id)  # only ever inline a well-formed id
        self.forget_reads(obj)
        query = f'mutation Restore {{ restore{obj.type_prefix}(id: "{record_id}") {{ id }} }}'
        await self.graphql(query, {}, operation=f"restore {obj.singular}", write=True)
