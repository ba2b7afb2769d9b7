"""`whop-twenty-bridge doctor`: check a deployment end to end and say what to fix.

Each check becomes one line: ✓ (fine), ! (works, but look at it), ✗ (the bridge cannot do its
job until this is fixed) or – (not checked, because something it needs failed first). The exit
code is 1 when any line is ✗.

Checks declare what they need (`Step.needs`); the `Checklist` runs them in dependency order and
skips the dependents of a failed check, naming it, so no check writes a skip for another. What a
check learns for later ones (the engine, the metadata client, the plan, the Whop credential) is
kept on the `Doctor`, which is the context every check receives.

Everything here reads. The one request that looks like a write is the data-model permission
probe: an empty update of a field id that does not exist. Twenty checks the key's role before it
looks the field up, so the answer ("forbidden" or "not found") tells whether the key may change
the data model, and nothing can be changed by it. Secrets are never printed: every line is
scrubbed of every configured secret value before it is shown.

HTTP transports are injectable (`runtime.Transports`) so tests run the same checks against the
in-process fakes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from rich.console import Console
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import registration, retry
from bridge.config import SECRET_VARIABLES, Settings, load_settings, password_problem
from bridge.crypto import TokenBox, UndecryptableToken
from bridge.errors import AuthError, BridgeError, ConfigError
from bridge.registration import WebhookState
from bridge.runtime import Runtime, Transports
from bridge.store import connections
from bridge.store.connections import Connection
from bridge.store.migrate import alembic_config, current_revision, head_revision
from bridge.twenty.data import TwentyDataClient
from bridge.twenty.documents import Dialect
from bridge.twenty.metadata import MetadataClient, MetadataError
from bridge.twenty.provision import Plan, PlanItem, plan_workspace
from bridge.twenty.schema import load_data_model
from bridge.twenty.view_records import ViewRecordsApi
from bridge.whop.client import WhopClient
from bridge.whop.oauth import DEFAULT_SCOPES

__all__ = ["Check", "Checklist", "Doctor", "Outcome", "Report", "Step", "render_report", "run_doctor"]

Status = Literal["ok", "warn", "fail", "skip"]
OK: Status = "ok"
WARN: Status = "warn"
FAIL: Status = "fail"
SKIP: Status = "skip"

SYMBOLS: dict[Status, tuple[str, str]] = {
    OK: ("✓", "green"),
    WARN: ("!", "yellow"),
    FAIL: ("✗", "red bold"),
    SKIP: ("–", "dim"),
}

# A random UUID no field will ever have: the permission probe must not be able to touch anything.
PROBE_FIELD_ID = "9d0c0c1e-5f0e-4c51-9d8e-d0c7012e0000"
PROBE_DOCUMENT = "mutation DoctorProbe($input: UpdateOneFieldMetadataInput!) { updateOneField(input: $input) { id } }"

# What the sync reads at Whop, and the permission each read needs (for the fix line).
WHOP_READS = (
    ("products", "access_pass:basic:read"),
    ("members", "member:basic:read"),
    ("payments", "payment:basic:read"),
    ("memberships", "member:basic:read"),
)
OIDC_SCOPES = frozenset({"openid", "profile", "email"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# An access token closer than this to its expiry is not used for the live probe.
TOKEN_MARGIN = timedelta(minutes=2)
# Very short values are not scrubbed: replacing "a" everywhere would make the report unreadable.
MIN_SCRUB = 4


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    def skip(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self.add(name, SKIP, f"not checked: {reason}")

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def status_of(self, name: str) -> Status | None:
        return next((c.status for c in self.checks if c.name == name), None)

    def scrubbed(self, secrets: Iterable[str]) -> Report:
        values = sorted({s for s in secrets if len(s) >= MIN_SCRUB}, key=len, reverse=True)

        def clean(text: str) -> str:
            for value in values:
                text = text.replace(value, "***")
            return text

        return Report([replace(c, detail=clean(c.detail), fix=clean(c.fix)) for c in self.checks])


# Checks and their runner -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one check found; the runner turns it into the check's line."""

    status: Status
    detail: str
    fix: str = ""


Context = TypeVar("Context")


@dataclass(frozen=True)
class Step(Generic[Context]):
    """One check: the name of its line, what it needs, and the coroutine that runs it.

    `needs`: checks that must pass (✓ or !) first. When one of them fails or is not checked,
    this one is not run; its line says which check it was waiting for.
    `after`: checks that only have to run first, whatever they find, because this one uses what
    they leave in the context when they leave something (the plan, the database engine).
    """

    name: str
    run: Callable[[Context], Awaitable[Outcome]]
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def prerequisites(self) -> tuple[str, ...]:
        return (*self.needs, *self.after)


class Checklist(Generic[Context]):
    """Runs steps in dependency order, keeping the declared order where the needs allow it.

    A step that names a check nobody declared, or needs checks that (in the end) need it, is a
    programming error: it raises `ValueError` here, when the checklist is defined, not when a
    user runs the doctor.
    """

    def __init__(self, steps: Iterable[Step[Context]]) -> None:
        self.steps: tuple[Step[Context], ...] = tuple(_in_dependency_order(list(steps)))

    @property
    def names(self) -> list[str]:
        return [step.name for step in self.steps]

    async def run(self, context: Context) -> Report:
        report = Report()
        # For each check that did not pass: the reason its dependents give for not running.
        unavailable: dict[str, str] = {}
        for step in self.steps:
            blocked = next((unavailable[name] for name in step.needs if name in unavailable), None)
            if blocked is not None:
                # The reason is passed on unchanged, so a chain of skips names the check to fix.
                report.skip((step.name,), blocked)
                unavailable[step.name] = blocked
                continue
            outcome = await _attempt(step, context)
            report.add(step.name, outcome.status, outcome.detail, outcome.fix)
            if outcome.status == FAIL:
                unavailable[step.name] = f"needs {step.name}, which failed"
            elif outcome.status == SKIP:
                unavailable[step.name] = f"needs {step.name}, which was not checked"
        return report


async def _attempt(step: Step[Context], context: Context) -> Outcome:
    try:
        return await step.run(context)
    except Exception as exc:
        # An unforeseen answer in one check is its own line, not a traceback hiding every other line.
        return Outcome(FAIL, f"the check itself failed: {describe(exc)}")


def _in_dependency_order(steps: list[Step[Context]]) -> list[Step[Context]]:
    declared: set[str] = set()
    for step in steps:
        if step.name in declared:
            raise ValueError(f"two checks are named {step.name!r}")
        declared.add(step.name)
    for step in steps:
        unknown = next((name for name in step.prerequisites if name not in declared), None)
        if unknown is not None:
            raise ValueError(f"check {step.name!r} needs {unknown!r}, which is not declared")
    ordered: list[Step[Context]] = []
    done: set[str] = set()
    waiting = list(steps)
    while waiting:
        # The first declared step whose prerequisites have run: declared order, where it is possible.
        ready = next((s for s in waiting if done.issuperset(s.prerequisites)), None)
        if ready is None:
            raise ValueError(f"checks that need each other: {' → '.join(_cycle(waiting))}")
        waiting.remove(ready)
        ordered.append(ready)
        done.add(ready.name)
    return ordered


def _cycle(waiting: list[Step[Context]]) -> list[str]:
    # Every waiting step has a prerequisite that is waiting too, so following them must loop.
    by_name = {step.name: step for step in waiting}
    path = [waiting[0].name]
    while True:
        following = next(n for n in by_name[path[-1]].prerequisites if n in by_name)
        if following in path:
            return [*path[path.index(following) :], following]
        path.append(following)


# Names of the lines.
CONFIGURATION = "configuration"
ADMIN = "admin page"
DATABASE = "database"
TWENTY_REACHABLE = "Twenty reachable"
TWENTY_KEY = "Twenty API key"
TWENTY_MODEL = "Twenty data model"
TWENTY_PERMISSION = "Twenty data-model permission"
TWENTY_RECORDS = "Twenty records API"
WHOP_CONNECTION = "Whop connection"
WHOP_ACCESS = "Whop permissions"
WEBHOOK_CHECK = "Whop webhook secret"
PUBLIC_URL = "public URL"


async def run_doctor(
    load: Callable[[], Settings] = load_settings,
    *,
    transports: Transports | None = None,
    now: Callable[[], datetime] | None = None,
    http_timeout: float = 10.0,
) -> Report:
    """Load the settings (a bad one is reported, not raised) and run every check."""
    try:
        settings = load()
    except ConfigError as exc:
        report = Report()
        report.add(
            CONFIGURATION, FAIL, str(exc), f"fix {exc.variable} in the environment (or .env) and run doctor again"
        )
        return report.scrubbed(_environment_secrets())
    # The process's runtime, not opened: the doctor reads and never migrates the database.
    runtime = Runtime(settings, transports=transports)
    report = await Doctor(runtime, now=now, http_timeout=http_timeout).run()
    return report.scrubbed([*_environment_secrets(), *secret_values(settings)])


@dataclass(frozen=True)
class _WhopAccess:
    """What the Whop connection check leaves for the permissions check."""

    # None: the OAuth access token must be refreshed before it can be used, which the doctor won't do.
    tokens: _FixedToken | None
    company_id: str
    # A note on the granted scopes, shown after what could be read.
    scopes: str = ""
    missing: tuple[str, ...] = ()


class Doctor:
    """The checks, and the context they share: settings, clients and what earlier checks found."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        now: Callable[[], datetime] | None = None,
        http_timeout: float = 10.0,
    ) -> None:
        self.runtime = runtime
        settings = self.settings = runtime.settings
        self.transports = runtime.transports
        self.now = now or (lambda: datetime.now(UTC))
        # Shorter than the sync's timeouts: a doctor that hangs for minutes is no help.
        self.timeout = min(http_timeout, settings.twenty_timeout_seconds)
        # Clients a check opens for the checks after it; all are closed when the run ends.
        self._resources = AsyncExitStack()
        self._engine: AsyncEngine | None = None
        self._meta: MetadataClient | None = None
        self._plan: Plan | None = None
        self._whop: _WhopAccess | None = None

    async def run(self) -> Report:
        async with self._resources:
            return await CHECKS.run(self)

    # Bridge ---------------------------------------------------------------------------------

    async def _configuration(self) -> Outcome:
        # The settings loaded, or run_doctor would have reported why and stopped.
        return Outcome(OK, "the settings are valid")

    async def _admin(self) -> Outcome:
        s = self.settings
        missing = []
        if s.bridge_admin_password is None or not s.bridge_admin_password.get_secret_value():
            missing.append("BRIDGE_ADMIN_PASSWORD")
        if s.bridge_secret_key is None:
            missing.append("BRIDGE_SECRET_KEY")
        if missing:
            return Outcome(
                WARN,
                f"nobody can log in to the admin page (Connect Whop, progress) until {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} set",
                "BRIDGE_SECRET_KEY: `whop-twenty-bridge keygen`; BRIDGE_ADMIN_PASSWORD: a long random password "
                "(`openssl rand -base64 24`)",
            )
        assert s.bridge_admin_password is not None
        # The rule `serve` applies at start (config.password_problem): doctor says it first.
        problem = password_problem(s.bridge_admin_password.get_secret_value())
        if problem is not None:
            return Outcome(
                WARN,
                f"BRIDGE_ADMIN_PASSWORD {problem}: `serve` will refuse it",
                "use a passphrase of three or more words, or a long random password (`openssl rand -base64 24`)",
            )
        return Outcome(OK, "BRIDGE_ADMIN_PASSWORD and BRIDGE_SECRET_KEY are set")

    async def _database(self) -> Outcome:
        url = self.settings.database_url
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            return Outcome(FAIL, "DATABASE_URL is not a valid database URL", _DATABASE_FIX)
        shown = parsed.render_as_string(hide_password=True)
        probe_url = url
        if parsed.get_backend_name() == "sqlite":
            unusable = self._sqlite_file_unusable(parsed, shown)
            if unusable is not None:
                return unusable
        elif "connect_timeout" not in parsed.query:
            # Without it an unreachable PostgreSQL host can hold the check for minutes.
            probe_url = parsed.update_query_dict({"connect_timeout": str(max(1, int(self.timeout)))}).render_as_string(
                hide_password=False
            )
        try:
            revision = await asyncio.to_thread(current_revision, probe_url)
        except Exception as exc:
            return Outcome(FAIL, f"cannot open {shown}: {describe(exc)}", _DATABASE_FIX)
        if revision is None:
            return Outcome(
                WARN, f"{shown} is reachable but empty", "`serve` and `sync` create the tables when they start"
            )
        head = head_revision()
        if revision != head and revision not in _known_revisions():
            return Outcome(
                FAIL,
                f"{shown}: schema at revision {revision}, which this version of the bridge does not know",
                "a newer bridge migrated this database: run that version (or restore a backup)",
            )
        # A schema this version knows: the Whop check reads the stored connections from it.
        self._engine = self.runtime.store
        self._resources.push_async_callback(self.runtime.close_loop)
        if revision == head:
            return Outcome(OK, f"{shown}: schema at revision {head} (current)")
        return Outcome(
            WARN,
            f"{shown}: schema at revision {revision}, this version's is {head}",
            "`serve` and `sync` migrate it when they start",
        )

    def _sqlite_file_unusable(self, parsed: sa.URL, shown: str) -> Outcome | None:
        """Checks a SQLite file without creating it (opening a missing file would create one)."""
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            return Outcome(
                WARN,
                "an in-memory SQLite database: connections and sync progress are lost when the bridge stops",
                "set DATABASE_URL to a file (sqlite:////data/whop-twenty-bridge.db) or PostgreSQL",
            )
        path = Path(database)
        if not path.exists():
            folder = path.absolute().parent
            if folder.is_dir() and os.access(folder, os.W_OK):
                return Outcome(
                    WARN, f"{shown} does not exist yet", "`serve` and `sync` create and migrate it when they start"
                )
            return Outcome(
                FAIL,
                f"{shown}: the folder {folder} does not exist or is not writable",
                "point DATABASE_URL at a writable folder (the Docker image keeps its state in the /data volume)",
            )
        if not os.access(path, os.W_OK):
            return Outcome(FAIL, f"{shown} is not writable by this user", "fix the file's owner or mode")
        return None

    # Twenty ---------------------------------------------------------------------------------

    async def _twenty_reachable(self) -> Outcome:
        url = self._twenty_url
        if not url:
            return Outcome(
                FAIL,
                "TWENTY_URL is not set",
                "set TWENTY_URL to Twenty's server address (http://server:3000 inside docker-compose.twenty.yml)",
            )
        try:
            async with httpx.AsyncClient(transport=self.transports.twenty, timeout=self.timeout) as http:
                response = await http.get(f"{url}/healthz")
        except Exception as exc:
            return Outcome(
                FAIL,
                f"cannot reach {url}: {describe(exc)}",
                "start Twenty, or fix TWENTY_URL (inside docker-compose.twenty.yml it is http://server:3000)",
            )
        if response.status_code == 200:
            return Outcome(OK, f"GET {url}/healthz answered 200")
        if response.status_code == 404:
            # Something answers, but not Twenty's health endpoint; the metadata check says more.
            return Outcome(
                WARN,
                f"{url}/healthz answered 404",
                "is TWENTY_URL Twenty's server address (not its front end or a proxy path)?",
            )
        return Outcome(
            FAIL,
            f"GET {url}/healthz answered {response.status_code}: Twenty is starting or unhealthy",
            "wait for it, or read its logs (`docker compose -f docker-compose.twenty.yml logs server`)",
        )

    async def _twenty_key(self) -> Outcome:
        key = self._twenty_key_value
        if not key:
            return Outcome(FAIL, "TWENTY_API_KEY is not set", _TWENTY_KEY_FIX)
        # One try, like every check here: the doctor reports what it sees, it does not wait it out.
        once = retry.DEFAULT.replace(attempts=1)
        client = MetadataClient(
            self._twenty_url, key, transport=self.transports.twenty, timeout=self.timeout, retry_policy=once
        )
        try:
            # Kept open for the model and permission checks.
            self._meta = await self._resources.enter_async_context(client)
            return Outcome(OK, f"accepted; the metadata API speaks {self._meta.dialect.value}")
        except AuthError as exc:
            return Outcome(FAIL, str(exc), _TWENTY_KEY_FIX)
        except Exception as exc:
            return Outcome(FAIL, f"the metadata API failed: {describe(exc)}", "check TWENTY_URL and Twenty's logs")

    def _data_client(self) -> TwentyDataClient:
        """A data API client that tries once: the doctor reports, it does not wait things out."""
        return TwentyDataClient(
            self._twenty_url,
            self._twenty_key_value,
            requests_per_minute=self.settings.twenty_requests_per_minute,
            transport=self.transports.twenty,
            timeout=self.timeout,
            max_attempts=1,
        )

    async def _twenty_model(self) -> Outcome:
        assert self._meta is not None
        try:
            views = None
            if self._meta.dialect is Dialect.V1:  # 1.x's screens show the views kept as records
                views = ViewRecordsApi(await self._resources.enter_async_context(self._data_client()))
            self._plan = await plan_workspace(
                self._meta,
                load_data_model(self.settings.bridge_schema_dir),
                self._public_url_value,
                view_records=views,
            )
        except Exception as exc:
            return Outcome(FAIL, f"cannot compare the data model: {describe(exc)}")
        return _model_outcome(self._plan)

    async def _twenty_permission(self) -> Outcome:
        assert self._meta is not None
        # Without a plan (the comparison failed) provisioning is assumed to have work left.
        unprovisioned = self._plan is None or bool(self._plan.pending)
        try:
            await self._meta.execute(
                PROBE_DOCUMENT, {"input": {"id": PROBE_FIELD_ID, "update": {}}}, operation="data-model permission probe"
            )
        except AuthError:
            return _no_permission(unprovisioned)
        except MetadataError as exc:
            if exc.code == "NOT_FOUND":
                # The role check runs before the lookup: "not found" means the key got past it.
                return Outcome(
                    OK,
                    "granted (an empty update of a field that does not exist was refused as 'not found', "
                    "not as 'forbidden'; nothing was changed)",
                )
            outcome = describe(exc)
        except Exception as exc:
            outcome = describe(exc)
        else:
            outcome = "the probe was accepted"
        return Outcome(
            WARN,
            f"cannot verify without a write ({outcome})",
            "run `whop-twenty-bridge provision --dry-run`; `provision` reports a missing permission on its first "
            "change",
        )

    async def _twenty_records(self) -> Outcome:
        plurals = ["people", "opportunities"]
        plan = self._plan
        if plan is not None and not any(i.kind == "object" and i.name == "whopProduct" for i in plan.pending):
            plurals.append("whopProducts")
        try:
            async with self._data_client() as data:
                for plural in plurals:
                    await data.graphql(
                        f"query DoctorRead {{ {plural}(first: 1) {{ edges {{ node {{ id }} }} }} }}",
                        {},
                        operation=f"read {plural}",
                        write=False,
                    )
        except AuthError as exc:
            return Outcome(
                FAIL, str(exc), "give the key's role read and write access to People, Opportunities and Whop products"
            )
        except Exception as exc:
            return Outcome(FAIL, f"a read failed: {describe(exc)}", "read Twenty's server logs")
        return Outcome(
            OK, f"{', '.join(plurals)} readable (writes are not tried: a refused write shows in the sync's report)"
        )

    @property
    def _twenty_url(self) -> str:
        return self.settings.twenty_url or ""

    @property
    def _twenty_key_value(self) -> str:
        key = self.settings.twenty_api_key
        return key.get_secret_value() if key is not None else ""

    # Whop -----------------------------------------------------------------------------------

    async def _whop_connection(self) -> Outcome:
        s = self.settings
        rows: list[Connection] = []
        if self._engine is not None:
            try:
                rows = await connections.list_connections(self._engine)
            except Exception as exc:
                return Outcome(FAIL, f"cannot read the stored connections: {describe(exc)}")
        live = [c for c in connections.active(rows, api_key=False)]  # OAuth only, preferred first
        stuck = [c for c in rows if c.mode == "oauth" and c.status == connections.STATUS_NEEDS_RECONNECT]
        api_key = s.whop_api_key.get_secret_value() if s.whop_api_key is not None else ""
        if live:
            # The same choice the sync makes (the runtime's credentials): the newest OAuth connection.
            return self._whop_oauth(live[0])
        if api_key:
            return await self._whop_api_key(api_key, stuck[-1] if stuck else None)
        if stuck:
            row = stuck[-1]
            reason = f" ({row.last_error})" if row.last_error else ""
            return Outcome(
                FAIL,
                f"{_company(row)} must be reconnected{reason}",
                f"open the admin page ({self._public_url_value}/) and use Reconnect",
            )
        where = "" if self._engine is not None else " (no stored connection could be read: see the database line)"
        fix = (
            f"open the admin page ({self._public_url_value}/) and use Connect Whop"
            if s.whop_client_id
            else "set WHOP_API_KEY (a company API key), or WHOP_CLIENT_ID and WHOP_CLIENT_SECRET to use "
            "Connect Whop on the admin page"
        )
        return Outcome(FAIL, f"no Whop company is connected and WHOP_API_KEY is not set{where}", fix)

    def _whop_oauth(self, row: Connection) -> Outcome:
        s = self.settings
        if s.bridge_secret_key is None:
            return Outcome(
                FAIL,
                f"{_company(row)} is connected by OAuth, but BRIDGE_SECRET_KEY is not set: its tokens cannot be read",
                "set BRIDGE_SECRET_KEY back to the key the tokens were stored with",
            )
        box = TokenBox(s.fernet)
        try:
            access = row.access_token(box)
            refresh = row.refresh_token(box)
        except UndecryptableToken:
            return Outcome(
                FAIL,
                f"{_company(row)}: the stored tokens cannot be decrypted with BRIDGE_SECRET_KEY",
                "put the key they were stored with back (a new key goes first: NEW,OLD), or reconnect on the admin "
                "page",
            )
        now = self.now()
        expires = row.token_expires_at
        usable = access if access is not None and (expires is None or expires - TOKEN_MARGIN > now) else None
        if usable is not None:
            expiry_text = "access token valid" + (f" for {_minutes(expires - now)}" if expires is not None else "")
        elif refresh:
            expiry_text = "access token expired; it is refreshed on next use"
        else:
            return Outcome(
                FAIL,
                f"{_company(row)}: the access token expired and there is no refresh token",
                f"reconnect on the admin page ({self._public_url_value}/)",
            )
        missing = tuple(x for x in DEFAULT_SCOPES if x not in OIDC_SCOPES and x not in row.scope_list)
        scopes = ""
        if row.scopes is None:
            scopes = "granted scopes not recorded"
        elif missing:
            scopes = f"granted scopes lack {', '.join(missing)}"
        refused = "Whop refused the stored OAuth access token (401); reconnect if the next sync cannot refresh it"
        tokens = _FixedToken(usable, refused) if usable is not None else None
        self._whop = _WhopAccess(tokens, row.company_id, scopes, missing)
        return Outcome(OK, f"OAuth: {_company(row)}, connected; {expiry_text}")

    async def _whop_api_key(self, api_key: str, stuck: Connection | None) -> Outcome:
        company_id = self.settings.whop_company_id or ""
        note = f"; the OAuth connection of {_company(stuck)} needs reconnecting, so the key is used" if stuck else ""
        tokens = _FixedToken(api_key, "Whop rejected WHOP_API_KEY (401)")
        try:
            async with self._whop_client(tokens, company_id or "biz_pending") as whop:
                account = await whop.get_account_me()
        except _TokenRefused as exc:
            return Outcome(
                FAIL,
                str(exc),
                "create a company API key in Whop's dashboard (Developer → API keys) and put it in WHOP_API_KEY",
            )
        except AuthError as exc:
            # 403 on /accounts/me: the key works but may not read its account (an app key, say).
            if not company_id:
                return Outcome(
                    FAIL,
                    f"the API key did not identify its company: {describe(exc)}",
                    "set WHOP_COMPANY_ID to the company to sync (biz_…)",
                )
            outcome = Outcome(WARN, f"API key for {company_id} (its account could not be read: {describe(exc)}){note}")
        except Exception as exc:
            return Outcome(
                FAIL,
                f"cannot reach Whop at {self.settings.whop_api_url}: {describe(exc)}",
                "check the network and WHOP_API_URL (the default is https://api.whop.com)",
            )
        else:
            outcome, company_id = _key_account(account, company_id, stuck=stuck is not None, note=note)
        self._whop = _WhopAccess(tokens, company_id, "API keys carry no scope list")
        return outcome

    async def _whop_access(self) -> Outcome:
        access = self._whop
        assert access is not None
        scopes = f"; {access.scopes}" if access.scopes else ""
        if access.tokens is None:
            # Refreshing here would rotate the refresh token: that is the sync's job, not the doctor's.
            detail = f"not probed live (the token must be refreshed first){scopes}"
            if access.missing:
                return Outcome(WARN, detail, "reconnect on the admin page to grant them")
            return Outcome(OK, detail)
        if not access.company_id:
            return Outcome(SKIP, "not checked: Whop did not name the key's company")
        readable: list[str] = []
        try:
            async with self._whop_client(access.tokens, access.company_id) as whop:
                for resource, _permission in WHOP_READS:
                    await whop.request("GET", f"/{resource}", {"account_id": access.company_id, "first": 1})
                    readable.append(resource)
        except AuthError as exc:
            needed = next(p for r, p in WHOP_READS if r not in readable)
            return Outcome(
                FAIL,
                f"{describe(exc)}{scopes}",
                f"grant {needed} (API key: its permissions in Whop's dashboard; OAuth: reconnect)",
            )
        except Exception as exc:
            return Outcome(FAIL, f"a read failed: {describe(exc)}", "check WHOP_API_URL and Whop's status")
        detail = f"can read {', '.join(readable)}{scopes}"
        if access.missing:
            return Outcome(WARN, detail, "reconnect on the admin page to grant the missing scopes")
        return Outcome(OK, detail)

    def _whop_client(self, tokens: _FixedToken, company_id: str) -> _OwnedWhopClient:
        http = httpx.AsyncClient(transport=self.transports.whop, timeout=self.timeout)
        client = WhopClient(
            self.settings.whop_api_url,
            tokens,
            company_id,
            http=http,
            requests_per_second=self.settings.whop_requests_per_second,
            max_retries=0,
            timeout=self.timeout,
        )
        return _OwnedWhopClient(client, http)

    # Webhooks and URL -------------------------------------------------------------------------

    async def _webhooks(self) -> Outcome:
        """The webhooks the bridge registered per company, then WHOP_WEBHOOK_SECRET for the rest."""
        hooks: list[WebhookState] = []
        if self._engine is not None:
            try:
                hooks = [h for h in await registration.states(self._engine) if h.error or h.webhook_id]
            except Exception as exc:
                return Outcome(FAIL, f"cannot read the stored connections: {describe(exc)}")
        if not hooks:
            return await self._webhook_secret()
        return _registered_webhooks(hooks, secret_set=bool(self.settings.webhook_secrets))

    async def _webhook_secret(self) -> Outcome:
        secrets = self.settings.webhook_secrets
        endpoint = f"{self._public_url_value}/webhooks/whop"
        if not secrets:
            return Outcome(
                FAIL,
                "WHOP_WEBHOOK_SECRET is not set: every Whop webhook is refused, and changes wait for the hourly "
                "reconciliation",
                f"in Whop's dashboard (Developer → Webhooks) add a webhook for {endpoint}, then put its secret "
                "(ws_…) in WHOP_WEBHOOK_SECRET",
            )
        odd = [str(n) for n, value in enumerate(secrets, 1) if not value.startswith("ws_")]
        if odd:
            which = "it does" if len(secrets) == 1 else f"value(s) {', '.join(odd)} of {len(secrets)} do"
            return Outcome(
                WARN,
                f"WHOP_WEBHOOK_SECRET is set, but {which} not look like a Whop webhook secret (ws_…)",
                f"copy the secret shown on the page of the webhook for {endpoint} in Whop's dashboard",
            )
        rotation = " (several: a rotation is in progress)" if len(secrets) > 1 else ""
        return Outcome(OK, f"{len(secrets)} secret(s) set, shaped like Whop's (ws_…){rotation}")

    async def _public_url(self) -> Outcome:
        url = self._public_url_value
        parts = urlsplit(url)
        if parts.scheme == "https":
            return Outcome(OK, url)
        if (parts.hostname or "") in LOCAL_HOSTS:
            return Outcome(OK, f"{url} (local: fine for a trial; Whop cannot deliver webhooks to it)")
        return Outcome(
            WARN,
            f"{url} is plain http: webhooks, the OAuth callback and the admin login would travel unencrypted",
            "put the bridge behind HTTPS (a reverse proxy) and set BRIDGE_PUBLIC_URL to its https:// address",
        )

    @property
    def _public_url_value(self) -> str:
        return (self.settings.bridge_public_url or "http://127.0.0.1:8000").rstrip("/")


# The doctor's lines, in the order they are printed. `needs` is what makes a line "not checked";
# `after` only orders: the permission and records checks use the plan when there is one, and the
# Whop check reads the stored connections when the database has them, but neither requires it.
CHECKS: Checklist[Doctor] = Checklist(
    [
        Step(CONFIGURATION, Doctor._configuration),
        Step(ADMIN, Doctor._admin),
        Step(DATABASE, Doctor._database),
        Step(TWENTY_REACHABLE, Doctor._twenty_reachable),
        Step(TWENTY_KEY, Doctor._twenty_key, needs=(TWENTY_REACHABLE,)),
        Step(TWENTY_MODEL, Doctor._twenty_model, needs=(TWENTY_KEY,)),
        Step(TWENTY_PERMISSION, Doctor._twenty_permission, needs=(TWENTY_KEY,), after=(TWENTY_MODEL,)),
        Step(TWENTY_RECORDS, Doctor._twenty_records, needs=(TWENTY_KEY,), after=(TWENTY_MODEL,)),
        Step(WHOP_CONNECTION, Doctor._whop_connection, after=(DATABASE,)),
        Step(WHOP_ACCESS, Doctor._whop_access, needs=(WHOP_CONNECTION,)),
        Step(WEBHOOK_CHECK, Doctor._webhooks, after=(DATABASE,)),
        Step(PUBLIC_URL, Doctor._public_url),
    ]
)


# Helpers --------------------------------------------------------------------------------------

_DATABASE_FIX = (
    "check DATABASE_URL and that its server is up (in docker-compose.twenty.yml: the whop_bridge database "
    "on the db service)"
)
_TWENTY_KEY_FIX = (
    "in Twenty: Settings → APIs & Webhooks → create an API key (role with data-model access, e.g. Admin), "
    "and put it in TWENTY_API_KEY"
)


class _TokenRefused(AuthError):
    """Whop answered 401 to the credential itself (not 403 to one permission)."""


class _FixedToken:
    """A token used as is. The doctor never refreshes an OAuth token: refreshing rotates it."""

    __slots__ = ("_refused", "_token")

    def __init__(self, token: str, refused: str) -> None:
        self._token = token
        self._refused = refused

    def __repr__(self) -> str:
        return "_FixedToken(***)"

    async def token(self) -> str:
        return self._token

    async def invalidate(self, token: str) -> None:
        raise _TokenRefused(self._refused)


class _OwnedWhopClient:
    """A WhopClient plus the httpx client it was given (WhopClient leaves a given client open)."""

    def __init__(self, client: WhopClient, http: httpx.AsyncClient) -> None:
        self.client = client
        self.http = http

    async def __aenter__(self) -> WhopClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.http.aclose()


def _unsupported_what(item: PlanItem) -> str:
    """What an item this Twenty cannot have is, in a word or two ("timeline lines", "dashboard")."""
    return {"timeline": "timeline lines", "tab": "record-page tabs", "section": "record-page sections"}.get(
        item.kind, item.kind.replace("_", " ")
    )


def _model_outcome(plan: Plan) -> Outcome:
    """The data model line from the plan: conflicts, then missing essentials, then optional changes."""
    essential, optional = _pending(plan)
    if plan.conflicts:
        names = ", ".join(i.name for i in plan.conflicts[:5])
        return Outcome(
            FAIL,
            f"{len(plan.conflicts)} conflict(s) with the workspace: {names}",
            "`whop-twenty-bridge provision --dry-run` shows each one and why",
        )
    if essential:
        names = ", ".join(i.name for i in essential[:6]) + (", …" if len(essential) > 6 else "")
        return Outcome(
            FAIL,
            f"not provisioned: {len(essential)} object(s)/field(s) missing ({names})",
            "run `whop-twenty-bridge provision` (or Provision on the admin page)",
        )
    if optional:
        names = ", ".join(i.name for i in optional[:4])
        return Outcome(
            WARN,
            f"the objects and fields are there; {len(optional)} optional change(s) pending ({names})",
            "run `whop-twenty-bridge provision`",
        )
    return Outcome(OK, f"provisioned: every object, field and view is present{_provisioned_note(plan)}")


def _provisioned_note(plan: Plan) -> str:
    """What a provisioned workspace still lacks: items to add by hand, and what this Twenty cannot have."""
    manual = [i for i in plan.items if i.status == "manual"]
    note = f"; {len(manual)} item(s) to add by hand (provision --dry-run lists them)" if manual else ""
    # What this Twenty version cannot have (1.x: dashboards, record-page tabs, timeline lines).
    missing = list(dict.fromkeys(_unsupported_what(i) for i in plan.items if i.status == "unsupported"))
    if missing:
        note += f"; not on this Twenty version: {', '.join(missing)}"
    return note


def _pending(plan: Plan) -> tuple[list[PlanItem], list[PlanItem]]:
    # Objects and fields the sync writes are essential; options, views and links are not.
    essential = [i for i in plan.pending if i.kind in ("object", "field") and i.status == "create"]
    optional = [i for i in plan.pending if i not in essential]
    return essential, optional


def _registered_webhooks(hooks: list[WebhookState], *, secret_set: bool) -> Outcome:
    """The webhook line when the bridge registered (or tried to register) some: a company whose
    registration failed needs WHOP_WEBHOOK_SECRET; a registered one Whop disabled or that fails, a fix."""
    lines = "; ".join(f"{h.company_id}: {h.summary}" for h in hooks)
    manual = [h for h in hooks if h.webhook_id is None]
    if manual and not secret_set:
        return Outcome(FAIL, f"deliveries of {', '.join(h.company_id for h in manual)} cannot be verified", lines)
    troubled = [h for h in hooks if h.webhook_id is not None and not h.ok]
    if troubled:
        return Outcome(WARN, lines, "; ".join(_webhook_fix(h) for h in troubled))
    return Outcome(OK, lines)


def _webhook_fix(hook: WebhookState) -> str:
    if hook.enabled is False:
        return f"whop-twenty-bridge webhooks enable {hook.company_id} (or Re-enable on the admin page)"
    return f"check that Whop can reach {hook.url}, then whop-twenty-bridge webhooks recover --company {hook.company_id}"


def _no_permission(unprovisioned: bool) -> Outcome:
    if unprovisioned:
        return Outcome(
            FAIL,
            "the API key's role lacks the data-model permission, and provisioning still has work to do",
            "give the key a role with Settings → Data model access (e.g. Admin), at least until provisioning is done",
        )
    return Outcome(
        WARN,
        "the API key's role lacks the data-model permission; the model is provisioned, so syncing works, "
        "but a new Whop status cannot be added as an option by itself",
        "give the key a role with Settings → Data model access (e.g. Admin)",
    )


def _key_account(account: dict[str, Any], company_id: str, *, stuck: bool, note: str) -> tuple[Outcome, str]:
    """The line for the account an API key read, and the company to check: WHOP_COMPANY_ID when it is
    set (a key of another company is a warning), else the key's own."""
    found = str(account.get("id") or "")
    title = account.get("title")
    shown = f"{title} ({found})" if title else found
    if company_id and found and found != company_id:
        return (
            Outcome(
                WARN,
                f"the API key belongs to {shown}, but WHOP_COMPANY_ID is {company_id}{note}",
                "set WHOP_COMPANY_ID to the key's company, or remove it",
            ),
            company_id,
        )
    return Outcome(WARN if stuck else OK, f"API key of {shown}{note}"), company_id or found


def _company(row: Connection) -> str:
    return f"{row.company_title} ({row.company_id})" if row.company_title else row.company_id


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def describe(exc: BaseException) -> str:
    """One short line about a failure; secrets are scrubbed later from the whole report."""
    if isinstance(exc, BridgeError):
        text = str(exc)
    elif isinstance(exc, httpx.ConnectError):
        text = "connection refused or host not found"
    elif isinstance(exc, httpx.TimeoutException):
        text = "timed out"
    elif isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = f"{type(exc.orig).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "…"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, whole and split at commas (rotation lists)."""
    found: list[str] = []
    for value in settings.model_dump().values():
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            found.append(raw)
            found.extend(part.strip() for part in raw.split(","))
    try:
        password = sa.make_url(settings.database_url).password
    except sa.exc.ArgumentError:
        password = None
    if password:
        found.append(str(password))
    return [v for v in found if v]


def _environment_secrets() -> list[str]:
    # When the settings do not load, the raw variables are all there is to scrub with. DATABASE_URL
    # is not scrubbed whole (it is shown with its password hidden); only its password is.
    found: list[str] = []
    for name in SECRET_VARIABLES - {"DATABASE_URL"}:
        raw = os.environ.get(name)
        if raw:
            found.append(raw)
            found.extend(part.strip() for part in raw.split(","))
    raw_url = os.environ.get("DATABASE_URL")
    if raw_url:
        try:
            password = sa.make_url(raw_url).password
        except sa.exc.ArgumentError:
            password = None
        if password:
            found.append(str(password))
    return [v for v in found if v]


def render_report(report: Report, console: Console) -> None:
    for check in report.checks:
        symbol, style = SYMBOLS[check.status]
        line = Text()
        line.append(f"{symbol} ", style=style)
        line.append(check.name, style="bold")
        line.append(f": {check.detail}")
        console.print(line)
        if check.fix and check.status in (FAIL, WARN):
            console.print(Text(f"    fix: {check.fix}", style="dim"))
    if report.failed:
        console.print(
            Text(f"{len(report.failed)} problem(s) to fix, {len(report.warnings)} warning(s)", style="red bold")
        )
    else:
        console.print(Text(f"all required checks passed, {len(report.warnings)} warning(s)", style="green"))
