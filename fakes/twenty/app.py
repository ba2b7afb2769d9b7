"""FakeTwenty: the ASGI app tests talk to, with auth, rate limiting, failure injection and stats."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .data_graphql import execute_data
from .errors import TwentyError
from .metadata_api import execute_metadata
from .records import InputChecker, stamp_insert
from .rest import handle_rest
from .rules import DIALECTS
from .table import json_copy
from .ui import index_page, object_page
from .workspace import Meta, Record, Workspace, now_iso

WINDOW_SECONDS = 60.0  # Twenty's long bucket: API_RATE_LIMITING_LONG_TTL_IN_MS = 60000


@dataclass
class FakeTwentyStats:
    """Counters the tests read. `operations` counts executed root fields / REST routes by name."""

    data_calls: int = 0  # every authenticated /graphql or /rest call, throttled or failed included
    data_reads: int = 0  # executed calls that only read
    data_writes: int = 0  # executed calls with a mutation / POST / PATCH / PUT / DELETE
    records_written: int = 0  # rows created, updated, deleted or restored by executed calls
    throttled: int = 0  # calls refused by the rate limit
    held: int = 0  # writes held by `/_fake/hold` (a test stops a client mid-run deterministically)
    metadata_queries: int = 0  # /metadata query documents (introspection included)
    metadata_mutations: int = 0  # /metadata mutation root fields, failed or forbidden ones included
    # With a timing model: seconds this fake's own work took beyond the modelled time (an
    # in-memory stand-in scans what a database would look up in an index).
    model_overrun_seconds: float = 0.0
    operations: Counter[str] = field(default_factory=Counter)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["operations"] = dict(self.operations)
        return out

    def reset(self) -> None:
        for item in fields(self):
            if item.name == "operations":
                self.operations.clear()
            else:
                setattr(self, item.name, 0)


@dataclass(frozen=True)
class Timing:
    """How long a real Twenty 2.21 took to answer, as `bench/live_backfill.py --calibrate` fitted
    it on this project's 2-core machine (2026-12-07 06:15, load 5-6 from other work): a create
    upsert ≈ 0.39 s a call + 2.3 ms a record (200 records ≈ 0.86 s), an update ≈ 7.9 ms a record,
    a keyed read ≈ 0.024 s + 0.09 ms a record found. Off by default; the backfill benchmark turns
    it on so that its times predict a real server's.
    A created record costs no more in a fuller workspace, when the load is the same: at load 8
    (third session) the 4k backfill's upserts averaged 1.10 s and the 20k one's 1.06 s. (An
    earlier fit, 2.1 ms + 0.05 µs per record held, came from a 4k and a 20k run made at different
    loads, and put the 20k backfill with its timeline at 1,043 s against the real 697 s.)
    Calls at once share the server (`capacity`): two upserts in flight each took ~1.3× as long as
    one alone, so two at once go ~1.5× as fast as one after the other (the 20k backfill of
    2026-12-07, third session: 230 s with two upserts in flight). `serial` serves one call at a
    time instead, as an earlier reading suggested (a read sent during an upsert answered after it).
    (Fitted at load 6-9 earlier that day: 0.1 s a call + 9 ms a created record, 28 ms an updated
    one: the server's speed follows the machine's load, so compare runs made side by side.)"""

    per_call: float = 0.39
    per_created: float = 0.0021
    per_created_per_held: float = 0.0
    per_updated: float = 0.0079
    per_read_record: float = 0.00009
    read_call: float = 0.024
    serial: bool = False
    capacity: float = 1.5

    def seconds(self, response: dict[str, Any], created: int, updated: int, held: int = 0) -> float:
        """A call's time alone on the server: `held` is how many records the workspace held before it."""
        data = response.get("data") or {}
        read = sum(len(v.get("edges") or ()) for v in data.values() if isinstance(v, dict))
        if not created and not updated:
            return self.read_call + read * self.per_read_record
        per_created = self.per_created + held * self.per_created_per_held
        return self.per_call + created * per_created + max(0, updated) * self.per_updated

    def shared(self, seconds: float, at_once: int) -> float:
        """A call's time while `at_once` calls (itself included) are being answered."""
        return seconds * max(1.0, at_once / self.capacity)


REAL_TIMING = Timing()


@dataclass
class ModelledTime:
    """What the timing model charged, by kind of call: the benchmark's floor is built from it
    (a read that answers records costs more than an empty one)."""

    reads: int = 0
    read_seconds: float = 0.0
    writes: int = 0
    write_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class TokenBucket:
    """Capacity N, refilled at N per 60 s, on an injectable monotonic clock.

    `whole_tokens` is 2.21's ThrottlerService (observed in its source and on the server,
    2026-12-07): an accepted call adds `floor(elapsed × rate)` and restarts the refill clock, so the
    fraction of a token earned since the last call is lost; a refused call changes nothing. Calls
    less than 60/N s apart earn nothing, and a client sending two at once drains the bucket even
    below N a minute. Without it (1.x), the refill is continuous.
    """

    def __init__(self, capacity: int, clock: Callable[[], float], *, whole_tokens: bool = False) -> None:
        self.capacity = capacity
        self.clock = clock
        self.whole_tokens = whole_tokens
        self.tokens = float(capacity)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        elapsed = max(0.0, now - self.updated)
        if self.whole_tokens:
            # Twenty computes in milliseconds: floor(elapsedMs * maxTokens / timeWindowMs).
            gained = math.floor(round(elapsed * 1000) * self.capacity / (WINDOW_SECONDS * 1000))
            available = min(float(self.capacity), self.tokens + gained)
            if available < 1:
                return False
            self.tokens, self.updated = available - 1, now
            return True
        self.updated = now
        self.tokens = min(float(self.capacity), self.tokens + elapsed * self.capacity / WINDOW_SECONDS)
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    @property
    def message(self) -> str:
        return f"Limit reached ({self.capacity} tokens per {int(WINDOW_SECONDS * 1000)} ms)"


def _unauthenticated_graphql() -> JSONResponse:
    error = {"message": "Token invalid.", "extensions": {"code": "UNAUTHENTICATED"}}
    return JSONResponse({"errors": [error]}, status_code=200)


class FakeTwenty:
    """A Twenty server stand-in speaking the "1.x" or "2.x" dialect; an ASGI app.

    Use in-process with `httpx.ASGITransport(app=fake)` or on loopback with uvicorn.
    """

    def __init__(
        self,
        dialect: str = "2.x",
        api_key: str = "twenty-test-key",
        rate_limit_per_minute: int | None = None,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        timing: Timing | None = None,
        max_upsert: int | None = None,
        release: str | None = None,
    ) -> None:
        """`release`: "2.21" for that release's metadata API (with `dialect="2.x"`)."""
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
        self.dialect = dialect
        self.api_key = api_key
        self.latency = latency
        self.clock = clock
        self.stats = FakeTwentyStats()
        self.data_model_permission = True
        self.down = False
        self.workspace = Workspace(dialect, release)
        if max_upsert is not None:
            self.workspace.max_upsert = max_upsert
        self.timing = timing
        self._serving = asyncio.Lock()  # the timing model's one server (`Timing.serial`)
        self._answering = 0  # calls the timing model is answering now (`Timing.capacity`)
        self.modelled = ModelledTime()
        self._fail_remaining = 0
        self._fail_status = 500
        self._cache_flushed = False
        self._bucket: TokenBucket | None = None
        self.set_rate_limit(rate_limit_per_minute)
        self._hold_after: int | None = None  # records written after which writes wait (`/_fake/hold`)
        self._released = asyncio.Event()
        self._app = Starlette(
            routes=[
                Route("/metadata", self._metadata, methods=["POST"]),
                Route("/graphql", self._graphql, methods=["POST"]),
                Route("/rest/{path:path}", self._rest, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/_fake/stats", self._stats, methods=["GET"]),
                Route("/_fake/timing", self._modelled, methods=["GET"]),
                Route("/_fake/hold", self._hold, methods=["POST"]),
                Route("/", self._ui_index, methods=["GET"]),
                Route("/ui/{plural}", self._ui_object, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    # -- knobs ------------------------------------------------------------------------------

    @property
    def rate_limit_per_minute(self) -> int | None:
        return self._bucket.capacity if self._bucket else None

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Requests per 60 s per workspace on /graphql and /rest/* (None = off); starts full."""
        if per_minute is not None and per_minute < 1:
            raise ValueError("rate limit must be at least 1 request per minute, or None")
        self._bucket = TokenBucket(per_minute, self.clock, whole_tokens=self.dialect == "2.x") if per_minute else None

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next `n` data-API calls answer `status` (Twenty restarting, a 5xx), then normal."""
        self._fail_remaining = n
        self._fail_status = status

    def flush_cache(self) -> None:
        """Twenty's Redis cache was cleared (e.g. restarted): observed #16 and 1.22, the next
        data-API call answers 500 "Metadata cache version not found"; the one after succeeds.
        /metadata keeps answering (it rebuilds the cache first)."""
        self._cache_flushed = True

    def reset_stats(self) -> None:
        self.stats.reset()

    # -- direct access for tests ----------------------------------------------------------------

    def _object(self, name: str) -> Meta:
        obj = self.workspace.object(name)
        if obj is None:
            raise KeyError(f"no object named {name!r}")
        return obj

    def records(self, name: str) -> list[Record]:
        """Copies of every stored record of an object (by singular or plural name), soft-deleted
        ones included (their deletedAt is set), in insertion order."""
        return [json_copy(r) for r in self.workspace.records_of(self._object(name)).values()]

    def add_record(self, name: str, data: dict[str, Any]) -> Record:
        """Seed a record directly (no uniqueness check, no stats); returns it with its id.

        Values are checked like a create input; `deletedAt` may be given to seed a soft-deleted row.
        """
        obj = self._object(name)
        values = InputChecker(self.workspace, obj, operation="Create").check(data)
        record = stamp_insert(self.workspace, obj, self.workspace.blank_record(obj), values)
        record["deletedAt"] = values.get("deletedAt")
        self.workspace.records_of(obj)[record["id"]] = record
        return json_copy(record)

    def soft_delete(self, name: str, record_id: str) -> None:
        record = self.workspace.records_of(self._object(name))[record_id]
        record["deletedAt"] = now_iso()

    def object_by_name(self, name: str) -> Meta:
        """A copy of an object's metadata; its fields are under both "fieldsList" and "fields"."""
        obj = copy.deepcopy(self._object(name))
        obj["fields"] = obj["fieldsList"]
        return obj

    def field_by_name(self, object_name: str, field_name: str) -> Meta:
        found = self.workspace.field(self._object(object_name), field_name)
        if found is None:
            raise KeyError(f"{object_name} has no field {field_name!r}")
        return copy.deepcopy(found)

    @property
    def views(self) -> list[Meta]:
        return copy.deepcopy(self.workspace.views)

    @property
    def view_groups(self) -> list[Meta]:
        return copy.deepcopy(self.workspace.view_groups)

    @property
    def navigation_menu_items(self) -> list[Meta]:
        return copy.deepcopy(self.workspace.nav_items)

    # -- HTTP ---------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    @staticmethod
    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        return json.loads(raw)

    async def _metadata(self, request: Request) -> Response:
        # Metadata is neither throttled nor slowed down (the sheet: not throttled by this code).
        if not self._authorized(request):
            return _unauthenticated_graphql()
        try:
            body = await self._json_body(request)
        except ValueError:
            return JSONResponse(
                {"errors": [{"message": "Invalid JSON body", "extensions": {"code": "BAD_REQUEST"}}]}, 400
            )
        response, outcome = execute_metadata(self.workspace, body, data_model_permission=self.data_model_permission)
        if outcome.operation == "query":
            self.stats.metadata_queries += 1
        elif outcome.operation == "mutation":
            self.stats.metadata_mutations += len(outcome.root_fields)
        for name in outcome.root_fields:
            self.stats.operations[name] += 1
        if outcome.encoded is not None:
            return Response(outcome.encoded, media_type="application/json")
        return JSONResponse(response)

    async def _data_gate(self, request: Request, *, graphql: bool) -> Response | None:
        """What every data-API call goes through before doing anything: latency, auth, outages,
        injected failures, then the rate limit. Returns the response to answer instead, if any."""
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if not self._authorized(request):
            if graphql:
                return _unauthenticated_graphql()
            body = {"statusCode": 401, "error": "UNAUTHENTICATED", "messages": ["Token invalid."]}
            return JSONResponse(body, status_code=401)
        self.stats.data_calls += 1
        if self.down:
            return PlainTextResponse("Service Unavailable", status_code=503)
        if self._fail_remaining > 0:
            self._fail_remaining -= 1
            status = self._fail_status
            if graphql:
                error = {"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
                return JSONResponse({"errors": [error]}, status_code=status)
            body = {"statusCode": status, "error": "Internal Server Error", "messages": ["Internal server error"]}
            return JSONResponse(body, status_code=status)
        if self._cache_flushed:
            self._cache_flushed = False
            message = "Metadata cache version not found"
            if graphql:
                error = {"message": message, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
                return JSONResponse({"errors": [error]}, status_code=500)
            body = {"statusCode": 500, "error": "InternalServerError", "messages": [message]}
            return JSONResponse(body, status_code=500)
        if self._bucket is not None and not self._bucket.take():
            self.stats.throttled += 1
            message = self._bucket.message
            if graphql:
                # As 2.21 answers: HTTP 200, a BAD_USER_INPUT error with subCode LIMIT_REACHED.
                extensions = {
                    "subCode": "LIMIT_REACHED",
                    "userFriendlyMessage": "Rate limit reached. Please try again later.",
                    "code": "BAD_USER_INPUT",
                }
                return JSONResponse({"errors": [{"message": message, "extensions": extensions}]})
            body = {"statusCode": 429, "error": "HttpException", "messages": [message]}  # as 2.21 says it
            return JSONResponse(body, status_code=429)
        return None

    async def _graphql(self, request: Request) -> Response:
        refused = await self._data_gate(request, graphql=True)
        if refused is not None:
            return refused
        started = time.monotonic()
        try:
            body = await self._json_body(request)
        except ValueError:
            return JSONResponse(
                {"errors": [{"message": "Invalid JSON body", "extensions": {"code": "BAD_REQUEST"}}]}, 400
            )
        if self._hold_after is not None and self.stats.records_written >= self._hold_after and _is_mutation(body):
            self.stats.held += 1
            await self._released.wait()
        before = self._record_count() if self.timing else 0
        own_before = self.workspace.own_entries
        response, outcome = execute_data(self.workspace, body)
        answer = JSONResponse(response)
        if self.timing is not None:
            # The observed times were a whole call's, as its client saw it: this fake's own work
            # (reading the request, executing it, writing the answer) counts towards them. Twenty's
            # own timeline entries are its worker's, after the answer, and not the caller's.
            created = self._record_count() - before - (self.workspace.own_entries - own_before)
            held = before - own_before  # as fitted: the records the API wrote
            modelled = self.timing.seconds(response, created, outcome.records_written - created, held)
            spent = time.monotonic() - started
            self.stats.model_overrun_seconds += max(0.0, spent - modelled)
            if outcome.writes:
                self.modelled.writes += 1
                self.modelled.write_seconds += modelled
            else:
                self.modelled.reads += 1
                self.modelled.read_seconds += modelled
            if self.timing.serial:
                async with self._serving:  # one call at a time, each its whole modelled time
                    await asyncio.sleep(max(0.0, modelled - spent))
            else:
                self._answering += 1
                try:
                    shared = self.timing.shared(modelled, self._answering)
                    await asyncio.sleep(max(0.0, shared - spent))
                finally:
                    self._answering -= 1
        self.stats.data_reads += outcome.reads
        self.stats.data_writes += outcome.writes
        self.stats.records_written += outcome.records_written
        for name in outcome.operations:
            self.stats.operations[name] += 1
        return answer

    async def _rest(self, request: Request) -> Response:
        refused = await self._data_gate(request, graphql=False)
        if refused is not None:
            return refused
        parts = [p for p in request.path_params["path"].split("/") if p]
        try:
            body = await self._json_body(request) if request.method in ("POST", "PATCH", "PUT") else None
        except ValueError:
            return JSONResponse(
                {"statusCode": 400, "error": "BadRequestException", "messages": ["Invalid JSON body"]}, 400
            )
        try:
            outcome = handle_rest(self.workspace, request.method, parts, dict(request.query_params), body)
        except TwentyError as error:
            status, payload = error.rest()
            return JSONResponse(payload, status_code=status)
        if outcome.write:
            self.stats.data_writes += 1
            self.stats.records_written += outcome.records_written
        else:
            self.stats.data_reads += 1
        self.stats.operations[outcome.operation] += 1
        return JSONResponse(outcome.body, status_code=outcome.status)

    def _record_count(self) -> int:
        return sum(len(self.workspace.records_of(obj)) for obj in self.workspace.objects)

    async def _hold(self, request: Request) -> Response:
        """Not a Twenty route: `{"after_records": N}` holds every data API write once N records were
        written, until `{"release": true}`, so a test can stop a client part-way, whatever the speed."""
        body = await request.json()
        if body.get("release"):
            self._hold_after = None
            self._released.set()
        else:
            self._hold_after = int(body["after_records"])
            self._released = asyncio.Event()
        return JSONResponse({"held": self.stats.held, "records_written": self.stats.records_written})

    async def _stats(self, _request: Request) -> Response:
        """The counters, for tests that run the fake in another process (not a Twenty route)."""
        return JSONResponse(self.stats.as_dict())

    async def _modelled(self, _request: Request) -> Response:
        """The timing model's charges so far (not a Twenty route)."""
        return JSONResponse(self.modelled.as_dict())

    async def _healthz(self, _request: Request) -> Response:
        if self.down:
            return PlainTextResponse("Service Unavailable", status_code=503)
        return JSONResponse({"status": "ok"})

    async def _ui_index(self, _request: Request) -> Response:
        return HTMLResponse(index_page(self.workspace))

    async def _ui_object(self, request: Request) -> Response:
        obj = self.workspace.object(request.path_params["plural"])
        if obj is None:
            return HTMLResponse("<h1>No such object</h1><p><a href='/'>back</a></p>", status_code=404)
        show_deleted = request.query_params.get("deleted") in ("1", "true")
        return HTMLResponse(object_page(self.workspace, obj, show_deleted=show_deleted))


def _is_mutation(body: Any) -> bool:
    documents = body if isinstance(body, list) else [body]
    return any(isinstance(d, dict) and str(d.get("query") or "").lstrip().startswith("mutation") for d in documents)
